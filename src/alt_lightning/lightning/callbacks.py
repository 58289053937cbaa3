"""Callbacks that ALT's trainer uses by default: console, per-video predictions, throughput, alignment heatmaps.

* :class:`ProgressBar` shows a few metrics under short names (``loss``, ``top1``), so the bar fits 80 columns.
* :class:`ModelSummary` prints the module tree without a FLOPs column of zeros (Lightning counts FLOPs only for a
  module with an ``example_input_array``; ``alt flops`` counts ALT's).
* :class:`PredictionWriter` writes ``<log_dir>/predictions_test.csv`` after every test run: one row per evaluated
  video with its label and top-k class ids, names and scores (views already aggregated by the module).
* :class:`ThroughputMonitor` logs clips/s and frames/s of every training epoch.
* :class:`StepSeed` makes the training step's randomness a function of the step, so resumed runs match.
* :class:`BestAndLastCheckpoint` keeps ``best.ckpt`` (best monitored score) and ``last.ckpt`` (state after the last
  training epoch, what ``alt fit --ckpt_path last`` resumes from).
* :class:`AlignmentHeatmapLogger` draws, every N validation epochs, a few validation clips with each region
  coloured by the entity it was aligned to, into TensorBoard.

The pictures and the entity evidence are :mod:`alt_lightning.explain`'s, the same as ``alt predict``'s.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, RichModelSummary, RichProgressBar
from lightning.pytorch.trainer.states import TrainerFn

from alt_lightning.explain import (
    MATPLOTLIB_MISSING,
    alignment_maps,
    clip_heatmap,
    matplotlib_available,
    output_evidence,
)
from alt_lightning.lightning.module import ALTModule

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------- predictions
#: What :class:`ProgressBar` shows by default: logged name -> name in the bar.
BAR_METRICS = {"train/loss": "loss", "val/top1": "top1"}
#: Characters of :class:`ProgressBar`'s bar.
BAR_WIDTH = 12


class ProgressBar(RichProgressBar):
    """Lightning's rich progress bar with a few metrics under short names, so that one line fits 80 columns.

    The loggers (TensorBoard, CSV) keep every metric under its full name; the bar shows only ``metrics`` and no
    ``v_num`` (the run folder says which run it is).

    Args:
        metrics: Logged name -> name shown in the bar (default :data:`BAR_METRICS`: ``train/loss`` as ``loss``,
            ``val/top1`` as ``top1``).
        **kwargs: Arguments of :class:`lightning.pytorch.callbacks.RichProgressBar`.
    """

    def __init__(self, metrics: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics = dict(BAR_METRICS if metrics is None else metrics)

    def configure_columns(self, trainer: pl.Trainer) -> list:
        """Lightning's columns, with a bar of ``BAR_WIDTH`` characters (Rich's 40 leave the metrics no room)."""
        columns = super().configure_columns(trainer)
        for column in columns:
            if hasattr(column, "bar_width"):
                column.bar_width = BAR_WIDTH
        return columns

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        """The configured metrics logged so far with ``prog_bar=True``, under their short names."""
        logged = trainer.progress_bar_metrics
        return {short: logged[name] for name, short in self.metrics.items() if name in logged}


class ModelSummary(RichModelSummary):
    """Lightning's rich model summary, without the FLOPs column and total when nothing was counted (all zeros).

    Lightning counts FLOPs only by running a module's ``example_input_array``, which ``ALTModule`` does not set (a
    forward pass of the backbone at every start); ``alt flops`` counts ALT's FLOPs per clip. The modules in eval mode
    are the frozen backbone's layers (``RegionEncoder`` keeps them there on purpose), which the summary says.
    """

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        """Print the table and the totals (the FLOPs column and total only when some FLOPs were counted)."""
        from lightning.pytorch.utilities.model_summary.model_summary import get_human_readable_count
        from rich import get_console
        from rich.table import Table

        columns = [(name, values) for name, values in summary_data if name != "FLOPs" or total_flops]
        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        table.add_column(" ", style="dim")
        for name, _ in columns[1:]:
            table.add_column(name, justify="right" if name in ("Params", "FLOPs") else "left", no_wrap=name == "Name")
        for row in zip(*(values for _, values in columns), strict=True):
            table.add_row(*row)
        console = get_console()
        console.print(table)
        eval_modes = total_training_modes.get("eval", 0)
        lines = [
            f"Trainable params: {get_human_readable_count(int(trainable_parameters))}",
            f"Non-trainable params: {get_human_readable_count(int(total_parameters - trainable_parameters))}",
            f"Total params: {get_human_readable_count(int(total_parameters))}",
            f"Total estimated model params size (MB): {model_size:.3f}",
            f"Modules in train mode: {total_training_modes.get('train', 0)}",
            f"Modules in eval mode: {eval_modes}" + (" (the frozen backbone's, on purpose)" if eval_modes else ""),
        ]
        if total_flops:
            lines.append(f"Total FLOPs: {get_human_readable_count(int(total_flops))}")
        console.print("\n".join(lines), markup=False, highlight=False)


def topk_table(
    probs: torch.Tensor, k: int, class_names: Sequence[str]
) -> tuple[list[list[str]], list[list[float]], list[list[int]]]:
    """Top-k class names, scores and class ids per row of ``probs`` ``[M, N]``, best first."""
    k = min(k, probs.shape[1])
    scores, ids = probs.float().topk(k, dim=1)  # [M, k]
    names = [[class_names[i] for i in row] for row in ids.tolist()]
    return names, scores.tolist(), ids.tolist()


def write_predictions(
    path: str | Path,
    last_eval: dict[str, Any],
    records: Sequence[Any],
    class_names: Sequence[str],
    top_k: int = 5,
) -> Path:
    """Write one CSV row per evaluated video: id, path, label, correctness and the top-k classes with scores.

    Columns: ``video_id, path, label_id, label, correct_top1, correct_top<k>``, then per rank ``j`` (best first)
    ``pred_id_<j>`` (class id), ``pred_<j>`` (class name) and ``score_<j>`` (probability averaged over the views).
    The ids alone recompute top-1, top-5 and mean-class (``tests/reference``); videos that failed to decode or are
    missing have no row (they are in ``bad_videos.csv``).

    Args:
        path: Output CSV.
        last_eval: ``ALTModule.last_eval``: ``index`` ``[M]`` (record indices), ``probs`` ``[M, N]``, ``label`` ``[M]``.
        records: The split's records (``dataset.records``), indexed by ``last_eval["index"]``.
        class_names: Class names in label order.
        top_k: Classes per row.

    Returns:
        The written path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    index = last_eval["index"].tolist()
    labels = last_eval["label"].tolist()
    probs = last_eval["probs"].detach().cpu()
    names, scores, ids = topk_table(probs, top_k, class_names)
    k = len(names[0]) if names else min(top_k, len(class_names))
    header = ["video_id", "path", "label_id", "label", "correct_top1", f"correct_top{k}"]
    for j in range(1, k + 1):
        header += [f"pred_id_{j}", f"pred_{j}", f"score_{j}"]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i, rec_idx in enumerate(index):
            rec = records[rec_idx]
            label = int(labels[i])
            label_name = class_names[label] if 0 <= label < len(class_names) else ""
            row: list[Any] = [rec.video_id, rec.path, label, label_name]
            row += [int(ids[i][0] == label), int(label in ids[i])]
            for cid, name, score in zip(ids[i], names[i], scores[i], strict=True):
                row += [cid, name, f"{score:.6f}"]
            w.writerow(row)
    return path


class PredictionWriter(Callback):
    """Writes ``<log_dir>/predictions_<stage>.csv`` (video, label, top-k with scores) after each test run.

    It reads ``pl_module.last_eval`` (views aggregated per video, gathered over ranks) and the DataModule's records
    (``trainer.datamodule.dataset(stage).records``); only global rank 0 writes.

    Args:
        top_k: Classes per video.
        stages: Evaluation stages to write (``"test"``; add ``"val"`` to write after every validation).
        filename: File name pattern under the log folder; ``{stage}`` is replaced.
    """

    def __init__(
        self, top_k: int = 5, stages: Sequence[str] = ("test",), filename: str = "predictions_{stage}.csv"
    ) -> None:
        super().__init__()
        self.top_k = top_k
        self.stages = tuple(stages)
        self.filename = filename
        self.last_path: Path | None = None

    def _write(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage not in self.stages or trainer.sanity_checking:
            return
        if not isinstance(pl_module, ALTModule):
            raise TypeError(f"PredictionWriter needs an ALTModule (its class names), got {type(pl_module).__name__}.")
        log_dir = trainer.log_dir  # a broadcast under DDP: every rank must ask before rank 0 goes on alone
        if not trainer.is_global_zero:
            return
        result = getattr(pl_module, "last_eval", None) or {}
        dm = getattr(trainer, "datamodule", None)
        if result.get("stage") != stage or dm is None or not hasattr(dm, "dataset"):
            return
        records = dm.dataset(stage).records
        folder = Path(log_dir or trainer.default_root_dir)
        self.last_path = write_predictions(
            folder / self.filename.format(stage=stage), result, records, pl_module.class_names, self.top_k
        )
        log.info("per-video %s predictions: %s", stage, self.last_path)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        # on_test_end, not on_test_epoch_end: callbacks' epoch-end hooks run before the module aggregates the views.
        self._write(trainer, pl_module, "test")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        self._write(trainer, pl_module, "val")


# ----------------------------------------------------------------------------------------------- throughput
class ThroughputMonitor(Callback):
    """Logs training throughput per epoch: ``perf/clips_per_s`` and ``perf/frames_per_s`` (all ranks summed).

    The time is the epoch's wall-clock time from its first batch request to its end, data loading included, so
    a data-bound run shows it. Our choice: per epoch (a per-step figure is noisy); Lightning's own
    ``ThroughputMonitor`` logs per step if that is wanted.
    """

    def __init__(self) -> None:
        super().__init__()
        self._start: float | None = None
        self._clips = 0
        self._frames = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        self._start = time.perf_counter()
        self._clips = self._frames = 0

    def on_train_batch_start(  # noqa: D102
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._start is None:  # resumed mid-epoch: Lightning skips on_train_epoch_start
            self._start = time.perf_counter()

    def on_train_batch_end(  # noqa: D102
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # Decoded clips [B, T, 3, S, S] or cached tokens [B, T, 1+R, C]: both start with B, T.
        video = (batch["video"] if "video" in batch else batch["tokens"]) if isinstance(batch, dict) else batch[0]
        self._clips += int(video.shape[0])
        self._frames += int(video.shape[0] * video.shape[1])

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        if self._clips == 0 or self._start is None:
            return
        if torch.cuda.is_available() and pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        seconds = max(time.perf_counter() - self._start, 1e-9)
        self._start = None
        for name, count in (("perf/clips_per_s", self._clips), ("perf/frames_per_s", self._frames)):
            pl_module.log(name, count / seconds, on_step=False, on_epoch=True, sync_dist=True, reduce_fx="sum")


# ----------------------------------------------------------------------------------------------- resumable RNG
class StepSeed(Callback):
    """Reseeds torch's RNG before every training step from ``(seed, global step, rank)``.

    The training step's randomness (Gumbel noise of the alignment, dropout) then depends only on where training is,
    not on what ran before, so a run resumed from a checkpoint draws the same noise as an uninterrupted one. Without
    it the global RNG would differ after a resume: Lightning does not checkpoint RNG states, and every DataLoader
    iterator (training and validation) draws from the global RNG when it starts. Data randomness is already a
    function of ``(seed, epoch, index)`` (see :class:`~alt_lightning.data.dataset.VideoDataset`).

    Our choice (resumability over one global stream); remove the callback to keep the single stream seeded once.

    Args:
        seed: Base seed; ``None`` takes ``seed_everything``'s (``PL_GLOBAL_SEED``), else 0.
    """

    def __init__(self, seed: int | None = None) -> None:
        super().__init__()
        self.seed = seed

    def step_seed(self, global_step: int, rank: int) -> int:
        """The seed of one training step on one rank (a hash, so neighbouring steps get unrelated streams)."""
        base = self.seed if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))
        digest = hashlib.sha256(f"{base}|{global_step}|{rank}".encode()).digest()
        return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)

    def on_train_batch_start(  # noqa: D102
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        torch.manual_seed(self.step_seed(trainer.global_step, trainer.global_rank))  # CPU and every CUDA device


# ----------------------------------------------------------------------------------------------- checkpoints
class BestAndLastCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` whose ``last.ckpt`` is the state after every training epoch and at fit end.

    Under Lightning 2.6, ``save_last=True`` rewrites ``last.ckpt`` only at a step where a top-k checkpoint is written
    too: once the monitored score stops improving, ``last.ckpt`` stays at the best epoch (a resume redoes the epochs
    after it; a test of "the last weights" tests the best ones), and without validation it is written only when the
    fit ends. Here, with ``save_last=True``, ``last.ckpt`` is also written at the end of every training epoch (after
    that epoch's validation, so it holds the updated best score) and at the end of fit (``max_steps``, early
    stopping), unless it already holds this global step. Top-k selection (``best.ckpt``) is Lightning's, unchanged;
    ``save_last="link"`` and ``False`` keep Lightning's behaviour.

    Takes ``ModelCheckpoint``'s arguments.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_written_step = 0  # as Lightning: nothing to write before the first step
        self._stage: str | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:  # noqa: D102
        super().setup(trainer, pl_module, stage)
        self._stage = stage  # setup runs before a checkpoint's callback states are restored

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the best score and paths only to continue a fit; a test of a checkpoint saves none.

        Lightning would otherwise compare the saved run's folder with this test run's and warn that the "dirpath has
        changed" on every ``alt test --ckpt_path``.
        """
        if self._stage in (None, TrainerFn.FITTING.value):
            super().load_state_dict(state_dict)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        super().on_train_epoch_end(trainer, pl_module)
        self._write_last(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        super().on_train_end(trainer, pl_module)
        self._write_last(trainer)

    def _save_last_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict[str, torch.Tensor]) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        if self.save_last:
            self._last_written_step = trainer.global_step

    def _write_last(self, trainer: pl.Trainer) -> None:
        if (
            self.save_last is not True
            or self._last_written_step == trainer.global_step
            or bool(getattr(trainer, "fast_dev_run", False))  # set by the Trainer at run time, not declared
            or trainer.sanity_checking
            or trainer.state.fn != TrainerFn.FITTING
        ):
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


# ----------------------------------------------------------------------------------------------- heatmaps
def image_tag(position: int, video_id: str, label: str) -> str:
    """TensorBoard tag of a heatmap: ``alignment/<position>_<video id>_<label>`` (characters TensorBoard allows)."""
    return "alignment/" + re.sub(r"[^-\w.]", "_", f"{position}_{video_id}_{label}")


class AlignmentHeatmapLogger(Callback):
    """Every ``every_n_epochs`` validation epochs, log region-to-entity pictures of a few validation clips.

    The first validation batch's first ``num_videos`` clips are kept; after validation they are run again with
    the source map on (so training never pays for it) and drawn by :func:`~alt_lightning.explain.clip_heatmap`:
    sampled frames on top, regions coloured by their aligned entity below, columns titled with the frame, rows
    labelled, a legend with each entity's area share and confidence over the clip, and a caption saying which frames
    are drawn. Logged with ``add_image`` to every TensorBoard logger (skipped without one) under
    :func:`image_tag` (video id and label), titled with the video, its label, the predicted class and the epoch; the
    title, caption and legend also go to ``add_text`` (the only text when matplotlib is missing).

    Args:
        every_n_epochs: Interval in validation epochs (our choice: 5).
        num_videos: Videos drawn, one clip each (the first of its views in the first validation batch).
        num_frames: Frames drawn per clip, evenly spaced (our choice 8: every frame of an 8-frame clip).
    """

    def __init__(self, every_n_epochs: int = 5, num_videos: int = 2, num_frames: int = 8) -> None:
        super().__init__()
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}.")
        self.every_n_epochs = every_n_epochs
        self.num_videos = num_videos
        self.num_frames = num_frames
        self._video: torch.Tensor | None = None
        self._video_ids: list[str] = []
        self._labels: list[int] = []
        self._validations = 0
        self._warned = False
        self.logged: list[int] = []
        self.tags: list[str] = []

    def _due(self, trainer: pl.Trainer) -> bool:
        return not trainer.sanity_checking and (self._validations + 1) % self.every_n_epochs == 0

    @staticmethod
    def _tensorboards(trainer: pl.Trainer) -> list[Any]:
        from lightning.pytorch.loggers import TensorBoardLogger

        return [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]

    def on_validation_batch_end(  # noqa: D102
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        # Cached-feature batches carry no frames to draw on: nothing to log for them.
        due = batch_idx == 0 and dataloader_idx == 0 and self._due(trainer) and trainer.is_global_zero
        if due and "video" in batch:
            rows = self._first_views(batch)
            self._video = batch["video"][rows].detach().cpu()  # [n, T, 3, S, S]
            ids = batch.get("video_id")
            self._video_ids = [str(ids[r]) for r in rows] if ids is not None else [f"video_{i}" for i in rows]
            labels = batch.get("label")
            self._labels = [int(labels[r]) for r in rows] if labels is not None else [-1] * len(rows)

    def _first_views(self, batch: dict[str, Any]) -> list[int]:
        """Rows of the first ``num_videos`` distinct videos of ``batch``, each its first clip in the batch.

        Evaluation batches hold every view of each video (one decoding pass per video), so the first rows are views
        of one video: drawing them would show the same video twice. Batches without ``index`` are taken as they come.
        """
        n = len(batch["video"])
        index = batch.get("index")
        if index is None:
            return list(range(min(self.num_videos, n)))
        rows: dict[int, int] = {}  # video -> its first row
        for row, video in enumerate(index.tolist() if isinstance(index, torch.Tensor) else list(index)):
            rows.setdefault(int(video), row)
            if len(rows) == self.num_videos:
                break
        return list(rows.values())

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        if trainer.sanity_checking:
            return
        due = self._due(trainer)
        self._validations += 1
        video, self._video = self._video, None
        if not due or video is None or not trainer.is_global_zero:
            return
        boards = self._tensorboards(trainer)
        if not boards:
            return
        if not isinstance(pl_module, ALTModule):
            raise TypeError(f"AlignmentHeatmapLogger needs an ALTModule, got {type(pl_module).__name__}.")
        try:
            out, entity, conf = alignment_maps(pl_module, video)
        except ValueError as err:
            log.warning("alignment heatmaps skipped: %s", err)
            return
        if not self._warned and not matplotlib_available():
            log.warning(MATPLOTLIB_MISSING)
            self._warned = True
        cfg = pl_module.preprocess_config
        names = list(getattr(pl_module, "entity_units", []))
        classes = list(pl_module.class_names)
        probs = out.logits.float().softmax(-1).cpu()  # [B, N]
        self.tags = []
        for i in range(video.shape[0]):
            label = self._labels[i]
            label_name = classes[label] if 0 <= label < len(classes) else "no label"
            score, pred = probs[i].max(0)
            title = (
                f"{self._video_ids[i]}: label {label_name!r}, predicted {classes[int(pred)]!r} "
                f"({100 * float(score):.0f}%), epoch {trainer.current_epoch}"
            )
            evidence = output_evidence(out, names, region=True, video=i)
            heat = clip_heatmap(
                video[i],
                entity[i],
                conf[i],
                evidence,
                names,
                cfg.mean,
                cfg.std,
                max_frames=self.num_frames,
                title=title,
            )
            tag = image_tag(i, self._video_ids[i], label_name)
            text = f"**{title}**  \n{heat.caption}  \n{heat.legend_text()}"
            for board in boards:
                board.experiment.add_image(tag, heat.image, global_step=trainer.global_step, dataformats="HWC")
                board.experiment.add_text(f"{tag}_legend", text, global_step=trainer.global_step)
            self.tags.append(tag)
        self.logged.append(trainer.current_epoch)
