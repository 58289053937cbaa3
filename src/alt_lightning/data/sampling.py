"""Frame samplers: which frame indices of a video make one clip (pure functions, RNG passed in).

Two families, as the video-CLIP literature uses them:

* **segment** (TSN, Wang et al. 2016): split the video into ``T`` equal segments and take one frame
  per segment: a random one in training, a fixed one at test. Covers the whole video whatever its
  length; the usual choice of X-CLIP / ViFi-CLIP / ALT-style CLIP video models with 8-32 frames.
* **dense**: ``T`` frames ``stride`` apart from one start (SlowFast / mmaction ``SampleFrames``):
  a random start in training, evenly spaced starts at test.

Multi-view testing (e.g. ALT-B/16's 3 temporal clips x 1 crop) asks each sampler for clip ``j`` of
``n``; every view is deterministic, and different clips of one video use different frames.

Segment geometry used throughout: segment ``s`` of ``T`` over ``N`` frames is the integer range
``[floor(s*N/T), floor((s+1)*N/T))``; when ``N < T`` some ranges are empty and are widened to one
frame, so the ``T`` indices repeat frames but stay sorted. A fraction ``f`` in ``[0, 1)`` of a segment
of length ``L`` starting at ``b`` is frame ``b + floor(f*L)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ViewSpec", "dense_indices", "segment_indices", "view_indices"]


def _check_counts(num_frames: int, num_out: int, what: str) -> None:
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1 (the video has no frames?), got {num_frames}")
    if num_out < 1:
        raise ValueError(f"{what} must be >= 1, got {num_out}")


def _check_clip(clip_index: int, num_clips: int) -> None:
    if num_clips < 1 or not 0 <= clip_index < num_clips:
        raise ValueError(f"need 0 <= clip_index < num_clips, got clip_index={clip_index}, num_clips={num_clips}")


def _segments(num_frames: int, num_segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Starts and lengths (>= 1) of the ``num_segments`` segments of ``num_frames`` frames."""
    bounds = (np.arange(num_segments + 1, dtype=np.int64) * num_frames) // num_segments  # [T + 1]
    starts = bounds[:-1]  # [T]
    lengths = np.maximum(bounds[1:] - starts, 1)  # [T]; empty segments (N < T) hold their start frame
    return starts, lengths


def segment_indices(
    num_frames: int,
    num_segments: int,
    *,
    train: bool,
    rng: np.random.Generator | None = None,
    clip_index: int = 0,
    num_clips: int = 1,
) -> list[int]:
    """TSN sampling: one frame from each of ``num_segments`` equal segments.

    Training takes a uniformly random frame in each segment. Test takes, for temporal clip ``j`` of
    ``n``, the frame at fraction ``(j + 0.5) / n`` of each segment: with ``n = 1`` the segment centre,
    with ``n = 3`` the frames at 1/6, 1/2 and 5/6 of each segment. Our choice (paper silent): these
    evenly spread offsets, so the ``n`` test clips see different frames whenever segments are at
    least ``n`` frames long; alternatives are random offsets with a fixed seed (mmaction ``twice_sample``
    takes offsets 0 and 1/2).

    Args:
        num_frames: Frames in the video (``>= 1``).
        num_segments: Frames to return, ``T``.
        train: Random offsets (``True``) or the deterministic test offsets (``False``).
        rng: NumPy generator for training; a fresh unseeded one when ``None``.
        clip_index: Test clip ``j`` (ignored in training).
        num_clips: Test clips ``n`` (ignored in training).

    Returns:
        ``T`` sorted (non-decreasing) indices in ``[0, num_frames)``; strictly increasing when
        ``num_frames >= T``; frames repeat when the video is shorter than ``T``.
    """
    _check_counts(num_frames, num_segments, "num_segments")
    _check_clip(clip_index, num_clips)
    starts, lengths = _segments(num_frames, num_segments)
    if train:
        rng = rng if rng is not None else np.random.default_rng()
        offsets = rng.integers(0, lengths)  # [T], uniform in [0, L_s)
    else:
        offsets = ((2 * clip_index + 1) * lengths) // (2 * num_clips)  # floor(f * L), f = (j + 0.5) / n
    idx = np.minimum(starts + offsets, num_frames - 1)
    return [int(i) for i in idx]


def dense_indices(
    num_frames: int,
    num_frames_out: int,
    stride: int,
    *,
    train: bool,
    rng: np.random.Generator | None = None,
    clip_index: int = 0,
    num_clips: int = 1,
    short: str = "loop",
) -> list[int]:
    """Dense sampling: ``T`` frames ``stride`` apart from one start frame.

    The clip spans ``span = (T - 1) * stride + 1`` frames. When the video holds a whole span, the
    start is uniform in ``[0, N - span]`` in training; at test the ``N - span + 1`` possible starts are
    cut into ``n`` equal parts and clip ``j`` starts at the middle of part ``j`` (``n = 1``: the centred
    clip), so test clips are evenly spread and deterministic.

    Shorter videos start at frame 0 and wrap or stop at the end, per ``short``. Our choice (paper
    silent): ``"loop"`` (index modulo ``N``, what mmaction's ``SampleFrames`` does) keeps the motion
    speed; ``"clamp"`` repeats the last frame instead (indices stay sorted).

    Args:
        num_frames: Frames in the video (``>= 1``).
        num_frames_out: Frames to return, ``T``.
        stride: Frame step between samples (``>= 1``).
        train: Random start (``True``) or the deterministic test starts (``False``).
        rng: NumPy generator for training; a fresh unseeded one when ``None``.
        clip_index: Test clip ``j`` (ignored in training).
        num_clips: Test clips ``n`` (ignored in training).
        short: ``"loop"`` or ``"clamp"``, for videos shorter than a span.

    Returns:
        ``T`` indices in ``[0, num_frames)``; sorted unless a short video loops.
    """
    _check_counts(num_frames, num_frames_out, "num_frames_out")
    _check_clip(clip_index, num_clips)
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if short not in ("loop", "clamp"):
        raise ValueError(f"short must be 'loop' or 'clamp', got {short!r}")
    span = (num_frames_out - 1) * stride + 1
    steps = np.arange(num_frames_out, dtype=np.int64) * stride  # [T]
    if num_frames >= span:
        n_starts = num_frames - span + 1
        if train:
            rng = rng if rng is not None else np.random.default_rng()
            start = int(rng.integers(0, n_starts))
        else:
            start = int(((2 * clip_index + 1) * n_starts) // (2 * num_clips))  # middle of part j of n
        return [int(i) for i in start + steps]
    idx = steps % num_frames if short == "loop" else np.minimum(steps, num_frames - 1)
    return [int(i) for i in idx]


@dataclass(frozen=True)
class ViewSpec:
    """Test-time views of one video: ``num_clips`` temporal clips x ``num_crops`` spatial crops.

    View ``v`` is clip ``v // num_crops``, crop ``v % num_crops``.

    Attributes:
        num_clips: Temporal clips per video (ALT-B/16 reports 3).
        num_crops: Spatial crops per clip (ALT-B/16 reports 1).
    """

    num_clips: int = 1
    num_crops: int = 1

    def __post_init__(self) -> None:
        if self.num_clips < 1 or self.num_crops < 1:
            raise ValueError(f"num_clips and num_crops must be >= 1, got {self.num_clips}, {self.num_crops}")

    @property
    def num_views(self) -> int:
        """Views per video: ``num_clips * num_crops``."""
        return self.num_clips * self.num_crops

    def split(self, view: int) -> tuple[int, int]:
        """``(clip_index, crop_index)`` of view ``view``."""
        if not 0 <= view < self.num_views:
            raise ValueError(f"view must be in [0, {self.num_views}), got {view}")
        return view // self.num_crops, view % self.num_crops


def view_indices(
    num_frames: int,
    num_frames_out: int,
    view_clip: int,
    num_clips: int,
    mode: str = "segment",
    stride: int | None = None,
    *,
    short: str = "loop",
) -> list[int]:
    """Deterministic frame indices of temporal clip ``view_clip`` of ``num_clips`` at test time.

    ``mode="segment"``: :func:`segment_indices` with offset fraction ``(view_clip + 0.5) / num_clips``
    of every segment. ``mode="dense"``: :func:`dense_indices` with the ``view_clip``-th of ``num_clips``
    evenly spread starts.

    Args:
        num_frames: Frames in the video.
        num_frames_out: Frames per clip, ``T``.
        view_clip: Temporal clip index ``j`` in ``[0, num_clips)``.
        num_clips: Temporal clips ``n``.
        mode: ``"segment"`` or ``"dense"``.
        stride: Frame step for ``mode="dense"`` (required there, ignored for ``"segment"``).
        short: Short-video policy of :func:`dense_indices`.

    Returns:
        ``T`` frame indices.
    """
    if mode == "segment":
        return segment_indices(num_frames, num_frames_out, train=False, clip_index=view_clip, num_clips=num_clips)
    if mode == "dense":
        if stride is None:
            raise ValueError("mode='dense' needs a stride (frames between samples), e.g. stride=8 for 8x8 clips")
        return dense_indices(
            num_frames,
            num_frames_out,
            stride,
            train=False,
            clip_index=view_clip,
            num_clips=num_clips,
            short=short,
        )
    raise ValueError(f"mode must be 'segment' or 'dense', got {mode!r}")
