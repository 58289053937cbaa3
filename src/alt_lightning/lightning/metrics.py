"""Evaluation metrics over videos, and the helpers that turn the views scored on every rank into them.

* :func:`video_metrics`: top-1, top-5 and mean-class accuracy (``ALTModule.configure_metrics`` returns it);
* :class:`MeanClassAccuracy`: mean recall over the classes present in the evaluated set;
* :func:`gather_variable`: all-gather tensors whose length differs between ranks (no padding, no duplicates);
* :func:`aggregate_views`: average each video's decoded views (evaluation scores are per video, not per view);
* :func:`count_videos`: what became of every listed video (``listed = evaluated + failed + missing + not_run``).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import lightning.pytorch as pl
import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy


def video_metrics(num_classes: int) -> MetricCollection:
    """Top-1, top-5 and mean-class accuracy over videos (evaluation scores are averaged over views first).

    * ``top1`` / ``top5``: the share of videos whose label is the first / among the first five classes
      (``average="micro"``; torchmetrics' default, ``"macro"``, would average over classes instead). The field's
      definition (X-CLIP, ViFi-CLIP, mmaction2) and the checkpoint monitor (``val/top1``).
    * ``mean_class``: see :class:`MeanClassAccuracy` (classes present in the evaluated set only).
    """
    return MetricCollection(
        {
            "top1": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
            "top5": MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro"),
            "mean_class": MeanClassAccuracy(num_classes),
        }
    )


class MeanClassAccuracy(Metric):
    """Mean-class accuracy: the mean, over the classes with at least one sample, of their top-1 recall.

    A class with no sample in the evaluated set is left out whether it is predicted or not. torchmetrics' macro
    average (``MulticlassAccuracy(average="macro")``, 1.9) counts a class that is predicted but absent as recall 0,
    which drags the mean down by the share of such classes (a zero-shot subset, a test set missing a class).

    Args:
        num_classes: Number of classes ``N``.
    """

    full_state_update = False
    correct: torch.Tensor
    support: torch.Tensor

    def __init__(self, num_classes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.add_state("correct", torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")  # [N]
        self.add_state("support", torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")  # [N]

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Count samples and top-1 hits per class (``preds`` ``[B, N]`` scores, ``target`` ``[B]`` labels)."""
        hit = preds.argmax(dim=-1) == target  # [B]
        self.support += torch.bincount(target, minlength=self.num_classes)
        self.correct += torch.bincount(target[hit], minlength=self.num_classes)

    def compute(self) -> torch.Tensor:
        """Mean recall over the classes present (0 when there are none)."""
        present = self.support > 0
        if not bool(present.any()):
            return torch.tensor(0.0, device=self.support.device)
        return (self.correct[present].double() / self.support[present]).mean().float()


def gather_variable(module: pl.LightningModule, tensor: torch.Tensor) -> torch.Tensor:
    """All-gather tensors whose first dimension differs between ranks (evaluation without padding)."""
    if module._trainer is None or module.trainer.world_size == 1:
        return tensor
    size = torch.tensor([tensor.shape[0]], device=module.device)
    sizes = module.all_gather(size).reshape(-1)  # [W]
    padded = torch.zeros((int(sizes.max()), *tensor.shape[1:]), dtype=tensor.dtype, device=module.device)
    padded[: tensor.shape[0]] = tensor
    gathered = module.all_gather(padded)  # [W, max, ...]
    return torch.cat([gathered[r, : int(s)] for r, s in enumerate(sizes.tolist())])


def aggregate_views(index: torch.Tensor, label: torch.Tensor, ok: torch.Tensor, probs: torch.Tensor) -> dict[str, Any]:
    """Average the scores of each video's decoded views.

    Args:
        index: ``[V]`` video (record) index of each view.
        label: ``[V]`` label of each view.
        ok: ``[V]`` whether the view decoded.
        probs: ``[V, N]`` class probabilities of each view.

    Returns:
        ``probs`` ``[M, N]`` and ``label`` ``[M]`` of the ``M`` videos with at least one decoded view, their
        ``index``, the ``views`` counted per video, ``num_videos``/``num_failed`` counts and ``failed_index``, the
        record indices of the videos with no decoded view.

    Raises:
        RuntimeError: If a view was scored twice (a sampler that pads or duplicates would bias the metrics).
    """
    videos = torch.unique(index)
    n_views = torch.bincount(index - index.min(), minlength=1)
    views_per_video = n_views[n_views > 0]
    if views_per_video.min() != views_per_video.max():
        raise RuntimeError(
            f"Videos were scored with different numbers of views ({views_per_video.min()}-{views_per_video.max()}): "
            "a sampler padded or dropped items. Evaluation must see every view exactly once."
        )
    sums = torch.zeros(len(videos), probs.shape[1], device=probs.device)
    counts = torch.zeros(len(videos), device=probs.device)
    pos = torch.searchsorted(videos, index)
    okf = ok.float()
    sums.index_add_(0, pos, probs * okf[:, None])
    counts.index_add_(0, pos, okf)
    labels = torch.zeros(len(videos), dtype=torch.long, device=probs.device)
    labels[pos] = label
    good = counts > 0
    return {
        "index": videos[good],
        "probs": sums[good] / counts[good, None],
        "label": labels[good],
        "views": int(views_per_video[0]),
        "num_videos": len(videos),
        "num_failed": int((~good).sum()),
        "failed_index": videos[~good],
    }


def count_videos(result: dict[str, Any], accounting: tuple[int, int, Collection[int]] | None = None) -> dict[str, int]:
    """What became of every video the annotations list: ``listed = evaluated + failed + missing + not_run``.

    Args:
        result: :func:`aggregate_views` of the gathered views.
        accounting: The DataModule's ``split_accounting(stage)``: records listed, files missing on disk, and the
            record indices of the missing files kept for the loader (``missing="keep"``: they fail to decode and are
            counted as missing, not as failed). ``None`` (no DataModule that reports its splits): ``listed`` is what
            the loader held and ``missing`` 0.

    Returns:
        ``listed``, ``evaluated`` (videos scored: at least one view decoded), ``failed`` (present files with no
        decodable view), ``missing`` and ``not_run`` (listed videos no view of which reached the step:
        ``limit_*_batches``).
    """
    evaluated = int(result["index"].numel())
    failed_index = set(result["failed_index"].tolist())
    if accounting is None:
        listed, missing, kept_missing = evaluated + len(failed_index), 0, set()
    else:
        listed, missing, kept_missing = accounting[0], accounting[1], set(accounting[2])
    failed = len(failed_index - kept_missing)
    return {
        "listed": listed,
        "evaluated": evaluated,
        "failed": failed,
        "missing": missing,
        "not_run": listed - evaluated - failed - missing,
    }
