"""One generic video dataset over records from any parser.

Training: one item per record; a video that cannot be decoded is logged and another record is drawn (seeded), so
epoch length never changes. Evaluation: one item per (record, view) for ``num_clips x num_crops`` views; a video
that cannot be decoded is returned with ``ok=False`` so that it is counted and reported as failed, never dropped.
Both go to the bad-file log (CSV) with the reason.

Evaluation decodes each video once per batch, not once per view: the DataLoader hands a whole batch of indices to
:meth:`VideoDataset.__getitems__`, which opens each video of the batch once and decodes the frames of all its
views in one pass (one ``get`` of their union). The DataModules keep a video's views together (the evaluation
sampler shards by video, batches hold whole videos), so at x264's default GOP (250) a 3-view video costs one
forward pass instead of three (figures in ``docs/benchmarks.md``). The clips are the same, bit for bit, as those of
one open per view (``ds[i]``), which is what a single item still does.
"""

from __future__ import annotations

import csv
import itertools
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from torch.utils.data import Dataset

from alt_lightning.data.decode import VideoDecodeError, VideoReader
from alt_lightning.data.readers import check_decoder, open_video
from alt_lightning.data.records import VideoRecord
from alt_lightning.data.sampling import dense_indices, segment_indices, view_indices

log = logging.getLogger(__name__)

BAD_FILE_COLUMNS = ("time", "split", "path", "video_id", "reason", "action")

#: What a bad video may raise while being decoded, sampled and transformed; anything else is a bug and propagates.
DECODE_ERRORS: tuple[type[BaseException], ...] = (VideoDecodeError, av.FFmpegError, OSError, ValueError, EOFError)


def error_reason(err: BaseException) -> str:
    """The reason a bad video is reported with: :class:`VideoDecodeError`'s ``reason``, else ``"<Type>: <message>"``."""
    return str(getattr(err, "reason", None) or f"{type(err).__name__}: {err}")


class BadFileLog:
    """Appends one CSV row per bad video; safe from several DataLoader workers (one short O_APPEND write each)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:  # exclusive create: DDP ranks racing here must not truncate rows another rank already wrote
            with self.path.open("x", newline="") as f:
                f.write(",".join(BAD_FILE_COLUMNS) + "\n")
        except FileExistsError:
            pass

    def add(self, split: str, record: VideoRecord, reason: str, action: str) -> None:
        """Record one bad video."""
        row = [time.strftime("%Y-%m-%dT%H:%M:%S"), split, record.path, record.video_id, reason, action]
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow(row)

    def rows(self) -> list[dict[str, str]]:
        """All rows logged so far."""
        with self.path.open(newline="") as f:
            return list(csv.DictReader(f))


@dataclass
class SamplingConfig:
    """How frames are picked from a video.

    Args:
        num_frames: Frames per clip ``T``.
        mode: ``"segment"`` (TSN: one frame per equal segment; the field's protocol for CLIP-based models) or
            ``"dense"`` (``T`` frames at ``stride``).
        stride: Frame stride in dense mode.
        num_clips: Temporal clips per video at evaluation (ALT-B/16 protocol: 3).
        num_crops: Spatial crops per clip at evaluation (1 or 3; ALT-B/16 protocol: 1).
    """

    num_frames: int = 8
    mode: str = "segment"
    stride: int = 8
    num_clips: int = 1
    num_crops: int = 1

    @property
    def num_views(self) -> int:
        """Views per video at evaluation."""
        return self.num_clips * self.num_crops


class VideoDataset(Dataset):
    """Decoded, sampled and transformed clips from a list of :class:`VideoRecord`.

    Args:
        records: Videos, from any annotation parser.
        transform: Maps uint8 ``[T, H, W, 3]`` (plus an RNG and a crop index) to float ``[T, 3, S, S]``.
        sampling: Frame sampling and evaluation views.
        train: Random sampling and bad-video redraws when ``True``; every view of every video otherwise.
        split: Name used in logs (``"train"``, ``"val"``, ``"test"``).
        seed: Base seed; item randomness depends only on ``(seed, epoch, index)``, so runs are reproducible
            with any number of workers. The epoch is the one the index carries when the sampler yields
            :class:`~alt_lightning.datamodules.samplers.EpochIndex` (always, in training through the DataModules),
            else :attr:`epoch` (``set_epoch``), which inside a worker process is that of the pickled copy.
        bad_file_log: Where bad videos are recorded; ``None`` logs them only through ``logging``.
        decode_timeout_s: Time limit per video, so a broken file never hangs a run.
        max_redraws: Training redraws before giving up with an error (a sign the dataset is mostly broken).
        decode_threads: Codec threads per decoder (0 = FFmpeg's choice); the DataModules pass 1 inside DataLoader
            workers.
        decoder: ``"pyav"`` (default) or ``"torchcodec"`` / ``"torchcodec:cuda"``
            (:func:`~alt_lightning.data.readers.open_video`); checked here, before anything is decoded.
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        transform: Callable[..., torch.Tensor],
        sampling: SamplingConfig,
        *,
        train: bool,
        split: str = "train",
        seed: int = 0,
        bad_file_log: BadFileLog | None = None,
        decode_timeout_s: float = 30.0,
        max_redraws: int = 20,
        decode_threads: int = 0,
        decoder: str = "pyav",
    ) -> None:
        check_decoder(decoder)
        if not records:
            raise ValueError(f"The {split} split has no videos: check the annotation file and the data root.")
        self.records = list(records)
        self.transform = transform
        self.sampling = sampling
        self.train = train
        self.split = split
        self.seed = seed
        self.epoch = 0
        self.bad_file_log = bad_file_log
        self.decode_timeout_s = decode_timeout_s
        self.max_redraws = max_redraws
        self.decode_threads = decode_threads
        self.decoder = decoder
        # Paths already logged as clamped by this process (each worker holds its own copy): one warning row per
        # truncated file and worker, not one per view and epoch.
        self._clamped: set[str] = set()

    @property
    def num_views(self) -> int:
        """Items per video: 1 in training, ``num_clips * num_crops`` in evaluation."""
        return 1 if self.train else self.sampling.num_views

    def __len__(self) -> int:
        return len(self.records) * self.num_views

    def set_epoch(self, epoch: int) -> None:
        """Change the training randomness of indices that carry no epoch (called by the sampler at each epoch)."""
        self.epoch = epoch

    def frame_indices(self, num_frames: int, clip: int, rng: np.random.Generator | None) -> list[int]:
        """Frame indices of one clip (random in training, view ``clip`` at evaluation)."""
        s = self.sampling
        if self.train:
            if s.mode == "segment":
                return segment_indices(num_frames, s.num_frames, train=True, rng=rng)
            return dense_indices(num_frames, s.num_frames, s.stride, train=True, rng=rng)
        return view_indices(num_frames, s.num_frames, clip, s.num_clips, mode=s.mode, stride=s.stride)

    def open_reader(self, path: str) -> VideoReader:
        """Open one video with this dataset's decoder, threads and time limit (the one place a reader is made)."""
        return open_video(path, self.decoder, timeout_s=self.decode_timeout_s, threads=self.decode_threads)

    def _decode(
        self, record: VideoRecord, indices_of: Callable[[int], list[list[int]]]
    ) -> list[np.ndarray]:  # each [T, H, W, 3] uint8
        """Open ``record`` once and decode the clips ``indices_of(num_frames)`` asks for, in one ``get``.

        The reader decodes each distinct frame once, in presentation order (seeking forward where that skips enough
        frames), so overlapping or interleaved clips cost one pass over the video.
        """
        with self.open_reader(record.path) as reader:
            clips = indices_of(reader.info.num_frames)
            frames = reader.get([i for clip in clips for i in clip])  # [sum T, H, W, 3] uint8
            issue = reader.last_issue
        if issue is not None and record.path not in self._clamped:
            # Usable but damaged (e.g. truncated): frames past the last decodable one repeat it. Say so once.
            self._clamped.add(record.path)
            self._log(record, issue, "clamped")
        bounds = [0, *itertools.accumulate(len(c) for c in clips)]
        return [frames[a:b] for a, b in itertools.pairwise(bounds)]

    def load_clip(self, record: VideoRecord, view: int, rng: np.random.Generator | None) -> torch.Tensor:
        """Decode, sample and transform one view of a record; raises :class:`VideoDecodeError`."""
        if not self.train:
            return self.load_views(record, [view])[0]
        (frames,) = self._decode(record, lambda n: [self.frame_indices(n, 0, rng)])
        return self.transform(frames, rng)

    def load_views(self, record: VideoRecord, views: Sequence[int]) -> list[torch.Tensor]:
        """Evaluation views of one record, decoded in one pass (one open); raises :class:`VideoDecodeError`.

        Args:
            record: The video.
            views: View numbers (``clip * num_crops + crop``), in any order, repeats allowed.

        Returns:
            One ``[T, 3, S, S]`` clip per view, in the order of ``views``.
        """
        s = self.sampling
        clip_crop = [divmod(int(v), s.num_crops) for v in views]
        frames = self._decode(record, lambda n: [self.frame_indices(n, clip, None) for clip, _ in clip_crop])
        return [
            self.transform(f, None, crop if s.num_crops == 3 else 1)
            for f, (_, crop) in zip(frames, clip_crop, strict=True)
        ]

    def _eval_items(self, rec_idx: int, views: Sequence[int]) -> list[dict[str, Any]]:
        """The items of some views of one video, decoded in one pass; a video that fails fails every view asked."""
        record = self.records[rec_idx]
        try:
            clips = self.load_views(record, views)
        except DECODE_ERRORS as err:
            # Counted as a failed video by the evaluation (never dropped): a placeholder keeps batch shapes.
            s = self.sampling
            size = int(getattr(self.transform, "size", 0))
            for view in views:
                self._bad(record, err, f"failed (view {view})")
            return [self._item(torch.zeros(s.num_frames, 3, size, size), record, rec_idx, v, False) for v in views]
        return [self._item(clip, record, rec_idx, v, True) for clip, v in zip(clips, views, strict=True)]

    def _bad(self, record: VideoRecord, err: BaseException, action: str) -> None:
        self._log(record, error_reason(err), action)

    def _log(self, record: VideoRecord, reason: str, action: str) -> None:
        log.warning("bad video %s (%s): %s", record.path, reason, action)
        if self.bad_file_log is not None:
            self.bad_file_log.add(self.split, record, reason, action)

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """A batch of items (what the DataLoader asks for): in evaluation each video of the batch is decoded once.

        The items equal ``[self[i] for i in indices]`` (same clips, bit for bit); training items are exactly those,
        and so are the items of a subclass that overrides ``__getitem__`` (its override is never bypassed).
        """
        if self.train or type(self).__getitem__ is not VideoDataset.__getitem__:
            return [self[i] for i in indices]
        views_of: dict[int, list[int]] = {}  # record -> its views in this batch, first appearance order
        for index in indices:
            rec_idx, view = divmod(int(index), self.num_views)
            views_of.setdefault(rec_idx, []).append(view)
        items: dict[tuple[int, int], dict[str, Any]] = {}
        for rec_idx, views in views_of.items():
            for view, item in zip(views, self._eval_items(rec_idx, views), strict=True):
                items[rec_idx, view] = item
        return [items[divmod(int(index), self.num_views)] for index in indices]

    def __getitem__(self, index: int) -> dict[str, Any]:
        epoch = getattr(index, "epoch", self.epoch)  # an EpochIndex from the training sampler brings its own
        index = int(index)
        rec_idx, view = divmod(index, self.num_views)
        record = self.records[rec_idx]
        if not self.train:
            return self._eval_items(rec_idx, [view])[0]
        rng = np.random.default_rng([self.seed, epoch, index])
        last: BaseException | None = None
        for _ in range(self.max_redraws + 1):
            try:
                return self._item(self.load_clip(record, 0, rng), record, rec_idx, 0, True)
            except DECODE_ERRORS as err:
                last = err
                rec_idx = int(rng.integers(len(self.records)))
                self._bad(record, err, f"redrawn as {self.records[rec_idx].video_id}")
                record = self.records[rec_idx]
        raise RuntimeError(
            f"{self.max_redraws + 1} videos in a row failed to decode in the {self.split} split (last: {last}). "
            "Run `alt check-data` on this configuration to find and drop the bad files."
        ) from last

    @staticmethod
    def _item(video: torch.Tensor, record: VideoRecord, rec_idx: int, view: int, ok: bool) -> dict[str, Any]:
        return {
            "video": video,  # [T, 3, S, S]
            "label": record.label,
            "index": rec_idx,
            "view": view,
            "ok": ok,
            "video_id": record.video_id,
        }


def worker_init(_: int) -> None:
    """DataLoader worker setup: one intra-op thread per worker (decoding threads are separate)."""
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
