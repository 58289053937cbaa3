"""Callbacks that ALT's trainer uses by default: per-video predictions, throughput, alignment heatmaps.

* :class:`PredictionWriter` writes ``<log_dir>/predictions_test.csv`` after every test run: one row per evaluated
  video with its label and top-k class ids, names and scores (views already aggregated by the module).
* :class:`ThroughputMonitor` logs clips/s and frames/s of every training epoch.
* :class:`StepSeed` makes the training step's randomness a function of the step, so resumed runs match.
* :class:`BestAndLastCheckpoint` keeps ``best.ckpt`` (best monitored score) and ``last.ckpt`` (state after the last
  training epoch, what ``alt fit --ckpt_path last`` resumes from).
* :class:`AlignmentHeatmapLogger` draws, every N validation epochs, a few validation frames with each region
  coloured by the entity it was aligned to, into TensorBoard.

The drawing helpers (:func:`entity_patch_map`, :func:`render_alignment`) are shared with ``alt predict``.
matplotlib is optional: with it the image has a legend with entity names; without it the image is drawn with numpy
and the legend goes to TensorBoard as text.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn

from alt_lightning.model.region_encoder import region_assignment

log = logging.getLogger(__name__)

#: Distinct colours (RGB 0-255) for the most frequent entities of an image; the rest are drawn grey.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
)
OTHER_COLOUR = (128, 128, 128)


# ----------------------------------------------------------------------------------------------- predictions
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
            or bool(trainer.fast_dev_run)
            or trainer.sanity_checking
            or trainer.state.fn != TrainerFn.FITTING
        ):
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


# ----------------------------------------------------------------------------------------------- heatmaps
def entity_patch_map(
    source: torch.Tensor, entity_ids: torch.Tensor, confidence: torch.Tensor, grid_size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which entity, and how confidently, each patch of each frame was aligned to.

    Args:
        source: ``[T, 1 + R, 1 + P]`` source map of the frames (cls row/column first).
        entity_ids: ``[T, R]`` entity chosen per region.
        confidence: ``[T, R]`` its soft probability.
        grid_size: ``(gh, gw)`` patch grid.

    Returns:
        ``entity [T, gh, gw]`` (long) and ``conf [T, gh, gw]`` (float).
    """
    region = region_assignment(source.float(), grid_size)  # [T, gh, gw], values in [0, R)
    t = region.shape[0]
    flat = region.reshape(t, -1)  # [T, P]
    entity = entity_ids.long().gather(1, flat).reshape_as(region)  # [T, gh, gw]
    conf = confidence.float().gather(1, flat).reshape_as(region)  # [T, gh, gw]
    return entity, conf


def colour_assignment(entities: torch.Tensor, max_colours: int = len(PALETTE)) -> dict[int, tuple[int, int, int]]:
    """Colours for the ``max_colours`` most frequent entity ids (by patch count) of ``entities`` (any shape)."""
    ids, counts = torch.unique(entities.reshape(-1), return_counts=True)
    order = counts.argsort(descending=True, stable=True)
    return {int(ids[i]): PALETTE[j] for j, i in enumerate(order[:max_colours].tolist())}


def denormalize(frames: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Normalised frames ``[T, 3, S, S]`` back to uint8 ``[T, S, S, 3]``."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    x = (frames.detach().float().cpu() * s + m).clamp(0, 1)
    return (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


def overlay(
    frame: np.ndarray,
    entity: np.ndarray,
    conf: np.ndarray,
    colours: dict[int, tuple[int, int, int]],
    alpha: tuple[float, float] = (0.3, 0.75),
    conf_max: float | None = None,
) -> np.ndarray:
    """Colour each patch of ``frame`` ``[S, S, 3]`` by its entity (opacity grows with confidence), with borders.

    Args:
        frame: uint8 ``[S, S, 3]``.
        entity: ``[gh, gw]`` entity id per patch.
        conf: ``[gh, gw]`` confidence per patch (0-1).
        colours: Entity id -> RGB; other entities are grey.
        alpha: Opacity at the lowest and the highest confidence. Opacity follows confidence relative to
            ``conf_max``, because over a corpus of ~1000 entities absolute confidences can all be small.
        conf_max: Confidence drawn fully opaque (default: the maximum of ``conf``).

    Returns:
        uint8 ``[S, S, 3]``.
    """
    s_h, s_w = frame.shape[:2]
    gh, gw = entity.shape
    rows = np.arange(s_h) * gh // s_h  # patch row of each pixel row
    cols = np.arange(s_w) * gw // s_w
    ent = entity[rows][:, cols]  # [S, S]
    top = float(conf.max()) if conf_max is None else conf_max
    rel = np.clip(conf / max(top, 1e-12), 0.0, 1.0)
    a = (alpha[0] + (alpha[1] - alpha[0]) * rel)[rows][:, cols][..., None]  # [S, S, 1]
    lut = {int(e): colours.get(int(e), OTHER_COLOUR) for e in np.unique(entity)}
    colour = np.zeros((s_h, s_w, 3), np.float32)
    for e, c in lut.items():
        colour[ent == e] = c
    out = (1 - a) * frame.astype(np.float32) + a * colour
    # One-pixel borders where the entity changes, so neighbouring regions with similar colours stay apart.
    edge = np.zeros((s_h, s_w), bool)
    edge[1:] |= ent[1:] != ent[:-1]
    edge[:, 1:] |= ent[:, 1:] != ent[:, :-1]
    out[edge] = 255
    return out.round().clip(0, 255).astype(np.uint8)


def _matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def render_alignment(
    frames: np.ndarray,
    entity: torch.Tensor,
    conf: torch.Tensor,
    entity_names: Sequence[str],
    title: str = "",
    use_matplotlib: bool | None = None,
) -> tuple[np.ndarray, list[tuple[str, tuple[int, int, int], float]]]:
    """Draw frames (top row) and their region-to-entity overlays (bottom row) into one image.

    Args:
        frames: uint8 ``[T, S, S, 3]``.
        entity: ``[T, gh, gw]`` entity id per patch.
        conf: ``[T, gh, gw]`` confidence per patch.
        entity_names: Entity id -> name (``ALTModule.entity_units``).
        title: Figure title (matplotlib only).
        use_matplotlib: ``None``: when importable; ``False`` draws with numpy only (no text).

    Returns:
        uint8 image ``[H, W, 3]`` and the legend: ``(entity name, colour, share of patches)`` per coloured entity.
    """
    colours = colour_assignment(entity)
    total = entity.numel()
    legend = [(entity_names[e], c, float((entity == e).sum()) / total) for e, c in colours.items()]
    conf_max = float(conf.max())
    tiles = [
        overlay(f, e.numpy(), c.numpy(), colours, conf_max=conf_max)
        for f, e, c in zip(frames, entity, conf, strict=True)
    ]
    if use_matplotlib is None:
        use_matplotlib = _matplotlib_available()
    if not use_matplotlib:
        gap = 2
        t, s_h, s_w = frames.shape[:3]
        image = np.full((2 * s_h + gap, t * s_w + (t - 1) * gap, 3), 255, np.uint8)
        for i in range(t):
            x = i * (s_w + gap)
            image[:s_h, x : x + s_w] = frames[i]
            image[s_h + gap :, x : x + s_w] = tiles[i]
        return image, legend
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    t = len(frames)
    fig = Figure(figsize=(2.2 * t, 5.2), dpi=100)
    canvas = FigureCanvasAgg(fig)
    axes = fig.subplots(2, t, squeeze=False)
    for i in range(t):
        axes[0, i].imshow(frames[i])
        axes[1, i].imshow(tiles[i])
        axes[0, i].set_title(f"frame {i}", fontsize=8)
        for row in (0, 1):
            axes[row, i].axis("off")
    handles = [Patch(color=np.array(c) / 255, label=f"{n} ({100 * s:.0f}%)") for n, c, s in legend]
    fig.legend(handles=handles, loc="lower center", ncol=min(4, max(1, len(handles))), fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.9, bottom=0.2, wspace=0.03, hspace=0.05)
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    return image, legend


@torch.no_grad()
def alignment_maps(pl_module: pl.LightningModule, video: torch.Tensor) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """Run the model on clips ``[B, T, 3, S, S]`` with the source map kept; return the output and patch maps.

    The encoder's ``keep_source`` is switched on only for this call and the module is put in eval mode (no Gumbel
    noise), then both are restored.

    Returns:
        The model output, ``entity [B, T, gh, gw]`` and ``conf [B, T, gh, gw]``.

    Raises:
        ValueError: If the model has no alignment (``align=False``) or no regions (``region=False``).
    """
    model = pl_module.model
    if model.aligner is None:
        raise ValueError("This model has no entity alignment (align=False): there is nothing to draw.")
    if not model.region:
        raise ValueError("This model aligns frame cls tokens only (region=False): there are no regions to draw.")
    encoder = model.encoder
    was_training, kept = pl_module.training, encoder.keep_source
    encoder.keep_source = True
    pl_module.eval()
    try:
        out = pl_module(video.to(pl_module.device))
    finally:
        encoder.keep_source = kept
        pl_module.train(was_training)
    b, t = out.entity_ids.shape[:2]
    entity, conf = entity_patch_map(
        out.source.flatten(0, 1).cpu(),
        out.entity_ids.flatten(0, 1).cpu(),
        out.confidence.flatten(0, 1).cpu(),
        encoder.grid_size,
    )
    gh, gw = encoder.grid_size
    return out, entity.view(b, t, gh, gw), conf.view(b, t, gh, gw)


class AlignmentHeatmapLogger(Callback):
    """Every ``every_n_epochs`` validation epochs, log region-to-entity overlays of a few validation clips.

    The first validation batch's first ``num_videos`` clips are kept; after validation they are run again with
    the source map on (so training never pays for it) and drawn: sampled frames on top, regions coloured by
    their aligned entity below. Logged with ``add_image`` to every TensorBoard logger (skipped without one).

    Args:
        every_n_epochs: Interval in validation epochs (our choice: 5).
        num_videos: Clips drawn.
        num_frames: Frames drawn per clip (evenly spaced).
    """

    def __init__(self, every_n_epochs: int = 5, num_videos: int = 2, num_frames: int = 4) -> None:
        super().__init__()
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}.")
        self.every_n_epochs = every_n_epochs
        self.num_videos = num_videos
        self.num_frames = num_frames
        self._video: torch.Tensor | None = None
        self._validations = 0
        self.logged: list[int] = []

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
            self._video = batch["video"][: self.num_videos].detach().cpu()

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
        try:
            _, entity, conf = alignment_maps(pl_module, video)
        except ValueError as err:
            log.warning("alignment heatmaps skipped: %s", err)
            return
        t = video.shape[1]
        pick = np.linspace(0, t - 1, min(self.num_frames, t)).round().astype(int).tolist()
        cfg = pl_module.preprocess_config
        names = list(getattr(pl_module, "entity_units", []))
        for i in range(video.shape[0]):
            frames = denormalize(video[i, pick], cfg.mean, cfg.std)
            image, legend = render_alignment(frames, entity[i, pick], conf[i, pick], names)
            text = "  \n".join(f"rgb{c}: {n} ({100 * s:.0f}% of patches)" for n, c, s in legend)
            for board in boards:
                board.experiment.add_image(
                    f"alignment/video_{i}", image, global_step=trainer.global_step, dataformats="HWC"
                )
                board.experiment.add_text(f"alignment/video_{i}_legend", text, global_step=trainer.global_step)
        self.logged.append(trainer.current_epoch)
