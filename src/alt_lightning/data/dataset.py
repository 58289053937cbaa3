"""One generic video dataset over records from any parser.

Training: one item per record; a video that cannot be decoded is logged and another record is drawn (seeded), so
epoch length never changes. Evaluation: one item per (record, view) for ``num_clips x num_crops`` views; a video
that cannot be decoded is returned with ``ok=False`` so that it is counted and reported as failed, never dropped.
Both go to the bad-file log (CSV) with the reason.
"""

from __future__ import annotations

import csv
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

from alt_lightning.data.decode import VideoDecodeError
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

    def load_clip(self, record: VideoRecord, view: int, rng: np.random.Generator | None) -> torch.Tensor:
        """Decode, sample and transform one view of a record; raises :class:`VideoDecodeError`."""
        clip, crop = divmod(view, self.sampling.num_crops)
        with open_video(
            record.path, self.decoder, timeout_s=self.decode_timeout_s, threads=self.decode_threads
        ) as reader:
            indices = self.frame_indices(reader.info.num_frames, clip, rng)
            frames = reader.get(indices)  # [T, H, W, 3] uint8
            issue = reader.last_issue
        if issue is not None and record.path not in self._clamped:
            # Usable but damaged (e.g. truncated): frames past the last decodable one repeat it. Say so once.
            self._clamped.add(record.path)
            self._log(record, issue, "clamped")
        if self.train:
            return self.transform(frames, rng)
        return self.transform(frames, None, crop if self.sampling.num_crops == 3 else 1)

    def _bad(self, record: VideoRecord, err: BaseException, action: str) -> None:
        self._log(record, error_reason(err), action)

    def _log(self, record: VideoRecord, reason: str, action: str) -> None:
        log.warning("bad video %s (%s): %s", record.path, reason, action)
        if self.bad_file_log is not None:
            self.bad_file_log.add(self.split, record, reason, action)

    def __getitem__(self, index: int) -> dict[str, Any]:
        epoch = getattr(index, "epoch", self.epoch)  # an EpochIndex from the training sampler brings its own
        index = int(index)
        rec_idx, view = divmod(index, self.num_views)
        record = self.records[rec_idx]
        if not self.train:
            try:
                video, ok = self.load_clip(record, view, None), True
            except DECODE_ERRORS as err:
                # Counted as a failed video by the evaluation (never dropped): a placeholder keeps batch shapes.
                self._bad(record, err, f"failed (view {view})")
                s = self.sampling
                size = int(getattr(self.transform, "size", 0))
                video, ok = torch.zeros(s.num_frames, 3, size, size), False
            return self._item(video, record, rec_idx, view, ok)
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
