"""Video decoding with PyAV: open once, read any frame indices, fail loudly and never hang.

The reader maps *frame index* ``i`` to "the i-th frame in presentation order", i.e. the i-th frame a
plain sequential decode yields. It builds a table of presentation timestamps (pts) from the video
stream's packets (demuxing only, no decoding), which gives the frame count of containers that report
none (webm/mkv), handles variable frame rate, and tells where the keyframes are. For each wanted frame
it then either decodes forward from where the decoder stands (sequential) or seeks to the keyframe
before the target and decodes forward to the exact pts (seek), whichever costs fewer decoded frames.

AVI stores no presentation timestamps: FFmpeg guesses packet pts from the decoding order, and the
guess is wrong for reordered frames (h264 B-frames, DivX-style *packed* B-frames as in many UCF-101
and HMDB-51 files). For an AVI whose packets are reordered the reader therefore counts decoded frames
instead of looking up pts, and reaches a frame by decoding from the start (no seeking; such files are
short and cheap to decode).

Frames come out as the file is meant to be shown: a display matrix (the rotation of phone videos,
mirroring) is applied, and :class:`VideoInfo` reports the shown size.

Bad files raise :class:`VideoDecodeError` with a short ``reason``; a truncated file whose header
promises more frames than exist is clamped to the frames that decode (see :meth:`VideoReader.get`).
"""

from __future__ import annotations

import bisect
import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from types import TracebackType
from typing import Any

import av
import numpy as np

from alt_lightning.data.parsers import os_error_reason

__all__ = [
    "DecodeStats",
    "DecoderSetupError",
    "VideoDecodeError",
    "VideoInfo",
    "VideoReader",
    "decode_frames",
    "probe_video",
]


def _os_error(path: str, err: OSError) -> VideoDecodeError:
    """``"missing file"``, or ``"unreadable (Permission denied)"`` & co. with what to check."""
    reason = os_error_reason(err)
    fix = "check the path and the dataset root" if reason == "missing file" else "check the mount and the permissions"
    return VideoDecodeError(path, reason, fix)


def _open_container(path: str) -> av.container.InputContainer:
    """Open for reading; PyAV < 19 needs ``metadata_errors="ignore"`` to survive bad metadata, 19 dropped the flag."""
    try:
        return av.open(path, mode="r", metadata_errors="ignore")
    except TypeError:
        return av.open(path, mode="r")


class VideoDecodeError(RuntimeError):
    """A video file cannot be decoded (at all, or within its time limit).

    Attributes:
        path: The file that failed.
        reason: Short machine-friendly cause: ``"missing file"``, ``"unreadable (<OS message>)"`` (e.g.
            ``Permission denied``), ``"empty file"``, ``"undecodable"``, ``"no video stream"``, ``"zero frames"``,
            ``"timeout"``, ...
        detail: Longer human-readable explanation (FFmpeg's message, what to do).
    """

    def __init__(self, path: str | os.PathLike[str], reason: str, detail: str = "") -> None:
        self.path = os.fspath(path)
        self.reason = reason
        self.detail = detail
        msg = f"cannot decode video {self.path!r}: {reason}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)

    def __reduce__(self) -> tuple[type[VideoDecodeError], tuple[str, str, str]]:
        # Keep the exception picklable so it survives DataLoader worker processes.
        return (type(self), (self.path, self.reason, self.detail))


@dataclass
class VideoInfo:
    """What a video file holds, as far as its header (and, if needed, its packets) tell.

    Attributes:
        num_frames: Frames in presentation order; the header's count when it reports one,
            otherwise the number of video packets (counted by demuxing, without decoding).
        fps: Average frame rate (frames per second); 0.0 when the file says nothing.
        duration_s: Duration in seconds (stream duration, else container duration, else
            ``num_frames / fps``).
        width: Shown frame width in pixels (the coded height when the display matrix turns the frame by 90
            degrees).
        height: Shown frame height in pixels.
        size_bytes: File size in bytes.
        codec: FFmpeg decoder name (e.g. ``"h264"``, ``"vp9"``, ``"mpeg4"``).
        reported_frames: Frame count stated by the container header, ``None`` when it states none
            (webm, mkv). May exceed what actually decodes (truncated files).
        rotation: Degrees counter-clockwise that the display matrix turns the coded frame, in ``(-180, 180]``
            (FFmpeg's sign: a phone video held upright is usually ``-90``); 0 when there is none. Frames are
            returned turned (and mirrored, when the matrix says so).
    """

    num_frames: int
    fps: float
    duration_s: float
    width: int
    height: int
    size_bytes: int
    codec: str
    reported_frames: int | None
    rotation: int = 0


@dataclass
class DecodeStats:
    """Counters of what the reader did (for tests, benchmarks and debugging)."""

    seeks: int = 0
    restarts: int = 0
    frames_decoded: int = 0
    frames_converted: int = 0


@dataclass
class _FrameTable:
    """Presentation-order pts of every video packet and the presentation indices of keyframes."""

    pts: list[int]
    keyframes: list[int]
    complete: bool = True  # False when demuxing stopped early on a read error
    detail: str = ""
    _index_of_pts: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Exact lookup first; bisect is the fallback for pts the packets did not list.
        for i, p in enumerate(self.pts):
            self._index_of_pts.setdefault(p, i)

    def index_of(self, pts: int) -> int:
        """Presentation index of a decoded frame's pts (nearest listed pts if not listed)."""
        hit = self._index_of_pts.get(pts)
        if hit is not None:
            return hit
        j = bisect.bisect_left(self.pts, pts)
        if j <= 0:
            return 0
        if j >= len(self.pts):
            return len(self.pts) - 1
        return j if self.pts[j] - pts < pts - self.pts[j - 1] else j - 1


@dataclass(frozen=True)
class _Orientation:
    """How to turn a coded ``[H, W, C]`` frame into the shown one: transpose, then reverse rows and/or columns."""

    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """The shown frame (a view of ``frame``)."""
        out = frame.transpose(1, 0, 2) if self.transpose else frame  # [W, H, C] when transposed
        if self.flip_rows:
            out = out[::-1]
        if self.flip_cols:
            out = out[:, ::-1]
        return out


def _display_orientation(frame: av.VideoFrame) -> tuple[_Orientation, int, str | None]:
    """Orientation and rotation (degrees counter-clockwise) from a decoded frame's display matrix side data.

    PyAV exposes no stream-level side data, but FFmpeg attaches the stream's display matrix to every decoded
    frame. The matrix (FFmpeg's ``AV_PKT_DATA_DISPLAYMATRIX`` layout, 9 int32, 16.16 fixed point) maps a coded
    pixel ``(x, y)`` to the shown ``(a*x + c*y + tx, b*x + d*y + ty)`` with ``a, b, c, d = m[0], m[1], m[3], m[4]``.

    Returns:
        The orientation, the rotation for :attr:`VideoInfo.rotation`, and a note when the matrix is not a
        multiple of 90 degrees (then left unapplied).
    """
    matrix = None
    # Read it from a tiny converted copy (conversion keeps side data): PyAV's side-data objects and their frame
    # reference each other, and a decoded frame left to the garbage collector keeps the decoder's threads alive
    # after close (a fork meanwhile, e.g. starting DataLoader workers, then deadlocks in FFmpeg).
    copy = frame.reformat(format="gray", width=2, height=2)
    # PyAV's stubs type side_data as a TypedDict (str keys); iterating it at run time yields SideData objects.
    entries: Iterable[Any] = copy.side_data
    for side_data in entries:
        if getattr(side_data.type, "name", "") == "DISPLAYMATRIX":
            matrix = np.frombuffer(bytes(side_data), dtype=np.int32)
    if matrix is None or matrix.size != 9:
        return _Orientation(), 0, None
    a, b, c, d = (int(v) for v in matrix[[0, 1, 3, 4]])
    degrees = -math.degrees(math.atan2(b, a))  # counter-clockwise, as FFmpeg and ffprobe report it
    rotation = round(degrees) % 360
    rotation = rotation - 360 if rotation > 180 else rotation  # (-180, 180]
    if a == 0 and d == 0 and b != 0 and c != 0:  # quarter turn: shown x follows coded y, shown y coded x
        return _Orientation(transpose=True, flip_rows=b < 0, flip_cols=c < 0), rotation, None
    if b == 0 and c == 0 and a != 0 and d != 0:
        return _Orientation(flip_rows=d < 0, flip_cols=a < 0), rotation, None
    if (a, b, c, d) == (0, 0, 0, 0):
        return _Orientation(), 0, None  # an all-zero matrix: nothing to apply
    return _Orientation(), 0, f"display matrix turns by {degrees:.1f} degrees: not applied (only multiples of 90 are)"


# Containers that store no presentation timestamps (FFmpeg guesses packet pts from the decoding order).
_NO_PTS_FORMATS = frozenset({"avi"})

_ENDED = object()  # sentinel of an exhausted frame iterator
_clock = time.monotonic  # module-level so tests can simulate a slow decoder


def checked_indices(reader: object, indices: Sequence[int], open_: bool) -> list[int]:
    """``indices`` as ints for a reader's ``get`` (shared by every reader class).

    Raises:
        ValueError: If the reader is closed.
        IndexError: For a negative index.
    """
    path = getattr(reader, "path", "?")
    if not open_:
        raise ValueError(f"{type(reader).__name__} for {path!r} is closed")
    idx = [int(i) for i in indices]
    if any(i < 0 for i in idx):
        raise IndexError(f"frame indices must be >= 0, got {min(idx)} for {path!r}")
    return idx


class VideoReader:
    """Random access to the frames of one video file (a context manager; opens the file once).

    Example:
        >>> with VideoReader("clip.mp4") as r:  # doctest: +SKIP
        ...     n = r.info.num_frames
        ...     frames = r.get([0, n // 2, n - 1])  # uint8 [3, H, W, 3]

    Attributes:
        info: :class:`VideoInfo` read at open.
        last_issue: Problem met by the latest :meth:`get` that did not raise (e.g. truncation),
            ``None`` when it went cleanly.
        warnings: Every such problem met since open, in order.
        stats: :class:`DecodeStats` counters.
    """

    info: VideoInfo  # read from the header when the file opens

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        threads: int = 0,
        thread_type: str = "AUTO",
        timeout_s: float | None = 60.0,
        seek_threshold: int = 8,
        size: tuple[int, int] | None = None,
        frame_index: str = "packets",
    ) -> None:
        """Open a video file and read its header.

        Args:
            path: Video file.
            threads: Decoder threads; ``0`` lets FFmpeg pick (one per core). Our choice (paper silent):
                0; inside DataLoader workers 1-2 avoids oversubscribing the CPUs.
            thread_type: FFmpeg threading mode: ``"AUTO"`` (frame + slice), ``"FRAME"``, ``"SLICE"``,
                ``"NONE"``.
            timeout_s: Wall-clock limit of each :meth:`get` call and of the open/probe, checked between
                frames and packets; ``None`` disables it. Our choice (paper silent): 60 s, far above what
                decoding a 10 s clip takes, so only broken or pathological files hit it.
            seek_threshold: Seek only when seeking skips at least this many frames that sequential
                decoding would decode (a seek flushes the decoder and costs about as much as decoding
                a few frames). Our choice (paper silent): 8, which decodes far fewer frames per training clip
                than 24 on h264 with a keyframe every 12 frames (the figures are in ``docs/benchmarks.md``);
                ``0`` seeks whenever a keyframe lies between, a very large value always decodes
                sequentially.
            size: Shown ``(height, width)`` to let FFmpeg's scaler resize while converting to RGB (cheaper
                than resizing the full frame later); ``None`` keeps the shown size of the file.
            frame_index: How a frame index maps to a timestamp: ``"packets"`` (default) demuxes the
                video packets once and sorts their pts, exact for variable frame rate and B-frames (and
                counts decoded frames for AVIs with reordered frames, whose pts are guesses);
                ``"rate"`` computes ``start + i / fps`` from the stream's average rate and time base,
                which avoids the demux pass but is only right for constant frame rate with real
                timestamps (not AVIs with B-frames).

        The first frame is decoded at open: the display matrix is side data of decoded frames. It is kept
        for a :meth:`get` that asks for it, and decoding goes on from there.

        Raises:
            VideoDecodeError: missing/empty/undecodable file, no video stream, zero frames, timeout.
            ValueError: A bad argument.
        """
        if frame_index not in ("packets", "rate"):
            raise ValueError(f"frame_index must be 'packets' or 'rate', got {frame_index!r}")
        if size is not None and (len(size) != 2 or min(size) <= 0):
            raise ValueError(f"size must be (height, width) with positive values, got {size!r}")
        self.path = os.fspath(path)
        self.threads = int(threads)
        self.thread_type = thread_type
        self.timeout_s = timeout_s
        self.seek_threshold = int(seek_threshold)
        self.size = size
        self.frame_index = frame_index
        self.last_issue: str | None = None
        self.warnings: list[str] = []
        self.stats = DecodeStats()

        self._container: av.container.InputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._frames: Iterator[av.VideoFrame] | None = None
        self._cursor: int | None = -1  # index of the last decoded frame; None = unknown (after a seek)
        self._exhausted = False
        self._table: _FrameTable | None = None
        self._table_built = False
        self._table_ok = False  # the table's pts are real timestamps (not just a packet count)
        self._by_count = False  # index = decoded frames counted from the start (pts are guesses: reordered AVI)
        self._orientation = _Orientation()
        self._held: tuple[int, av.VideoFrame] | None = None  # the frame decoded at open, until a get()

        deadline = self._deadline()
        try:
            size_bytes = os.stat(self.path).st_size
        except OSError as e:  # not exists(): that says False for "Permission denied" too
            raise _os_error(self.path, e) from e
        if size_bytes == 0:
            raise VideoDecodeError(self.path, "empty file", "the file has 0 bytes; re-download it")
        self._open()
        stream = self._stream
        assert stream is not None
        reported = int(stream.frames or 0) or None
        if reported is None:
            # webm/mkv headers carry no frame count: count packets (and keep their pts) instead.
            table = self._get_table(deadline)
            num_frames = len(table.pts) if table is not None else 0
        else:
            num_frames = reported
        if num_frames == 0:
            self.close()
            raise VideoDecodeError(self.path, "zero frames", "the video stream holds no frames")
        try:
            rotation = self._decode_first_frame(deadline)
        except VideoDecodeError:
            self.close()
            raise
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
        if self._orientation.transpose:
            width, height = height, width
        fps = self._rate()
        self.info = VideoInfo(
            num_frames=num_frames,
            fps=float(fps) if fps else 0.0,
            duration_s=self._duration_s(num_frames, fps),
            width=width,
            height=height,
            size_bytes=int(size_bytes),
            codec=str(stream.codec_context.name),
            reported_frames=reported,
            rotation=rotation,
        )

    # ----------------------------------------------------------------------------- public API
    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._frames = None
        self._held = None
        if self._container is not None:
            self._container.close()
            self._container = None
            self._stream = None

    def get(self, indices: Sequence[int]) -> np.ndarray:
        """Decode the frames at the given presentation-order indices.

        Indices may repeat and come in any order; the result follows the order asked. Each distinct
        frame is decoded at most once per call.

        A frame that the file promises but cannot deliver (truncated file, index past the last frame)
        is replaced by the last decodable frame before it (or the first one after it when none is
        before), so the result always has ``len(indices)`` frames; :attr:`last_issue` then says
        ``"truncated: got k of n frames ..."``.

        Args:
            indices: Frame indices, each ``>= 0``.

        Returns:
            uint8 array ``[len(indices), H, W, 3]`` (RGB; ``H, W`` from ``size`` when given).

        Raises:
            VideoDecodeError: ``"timeout"``, or ``"undecodable"`` when no frame decodes at all.
            IndexError: A negative index.
        """
        idx = checked_indices(self, indices, open_=self._container is not None)
        self.last_issue = None
        h, w = self.size if self.size is not None else (self.info.height, self.info.width)
        if not idx:
            return np.empty((0, h, w, 3), np.uint8)
        deadline = self._deadline()
        wanted = sorted(set(idx))
        found: dict[int, np.ndarray] = {}
        if self._held is not None:  # the frame decoded at open (the decoder stands after it)
            held_index, held_frame = self._held
            self._held = None
            if held_index in wanted:
                found[held_index] = self._to_array(held_frame)
        table = self._use_table(deadline)
        # Frames that exist: the packets' count when known (a truncated file has fewer packets than its
        # header promises), else the header's count. Indices past it get the last existing frame.
        limit = len(table.pts) if table is not None else self.info.num_frames
        past = [i for i in wanted if i >= limit]
        self._decode_into(sorted({i for i in wanted if i < limit} | ({limit - 1} if past else set())), found, deadline)
        if past and limit - 1 in found:
            for i in past:
                found[i] = found[limit - 1]
            n_got = len(wanted) - len(past)
            if limit < self.info.num_frames:
                self._issue(
                    f"truncated: got {n_got} of {len(wanted)} frames (last decodable frame {limit - 1}, "
                    f"{self.info.num_frames} expected; missing ones repeat the last frame)"
                )
            else:
                self._issue(
                    f"index past the end: got {n_got} of {len(wanted)} frames; indices >= {limit} repeat the last frame"
                )
        missing = [i for i in wanted if i not in found]
        if missing:
            self._recover(missing, found, deadline)
        return np.stack([found[i] for i in idx])

    # ---------------------------------------------------------------------------- internals
    def _deadline(self) -> float | None:
        return None if self.timeout_s is None else _clock() + float(self.timeout_s)

    def _check_time(self, deadline: float | None) -> None:
        if deadline is not None and _clock() > deadline:
            raise VideoDecodeError(
                self.path, "timeout", f"took more than timeout_s={self.timeout_s} s; the file may be damaged"
            )

    def _open(self) -> None:
        """(Re)open the container and configure the video decoder."""
        self.close()
        try:
            container = _open_container(self.path)
        except OSError as e:  # an errno (av.error.PermissionError is one), not bad data: say which
            raise _os_error(self.path, e) from e
        except (av.FFmpegError, UnicodeDecodeError) as e:
            raise VideoDecodeError(self.path, "undecodable", f"FFmpeg cannot open it: {e}") from e
        try:
            stream = container.streams.best("video")
        except (av.FFmpegError, ValueError):
            stream = None
        if not isinstance(stream, av.VideoStream):
            # best() skips attached pictures (cover art); a file with only those has no video.
            container.close()
            raise VideoDecodeError(self.path, "no video stream", "the file holds no video track")
        if stream.codec_context is None:
            container.close()
            raise VideoDecodeError(self.path, "undecodable", "this FFmpeg build has no decoder for it")
        stream.thread_type = self.thread_type
        stream.codec_context.thread_count = self.threads
        self._container = container
        self._stream = stream
        self._frames = None
        self._cursor = -1
        self._exhausted = False

    def _decode_first_frame(self, deadline: float | None) -> int:
        """Decode the first frame, read its display matrix, keep it for :meth:`get`; returns the rotation."""
        frame = self._next_frame(deadline)
        if frame is None:
            return 0  # nothing decodes: get() tells (undecodable) or clamps
        index = self._index_of(frame, self._use_table(deadline))
        assert index is not None  # the position is known when decoding from the start
        self._cursor = index
        self._held = (index, frame)
        self._orientation, rotation, note = _display_orientation(frame)
        if note:
            self._note(note)
        return rotation

    def _rate(self) -> Fraction | None:
        s = self._stream
        assert s is not None
        for r in (s.average_rate, s.guessed_rate, s.base_rate):
            if r:
                return Fraction(r)
        return None

    def _duration_s(self, num_frames: int, fps: Fraction | None) -> float:
        s = self._stream
        assert s is not None and self._container is not None
        if s.duration and s.time_base:
            return float(s.duration * s.time_base)
        if self._container.duration:
            return float(self._container.duration) / av.time_base
        return float(num_frames / fps) if fps else 0.0

    def _get_table(self, deadline: float | None) -> _FrameTable | None:
        """Demux (no decode) every video packet once; ``None`` when packets carry no timestamps."""
        if self._table_built:
            return self._table
        self._table_built = True
        s = self._stream
        assert s is not None
        ts: list[int] = []
        keys: list[bool] = []
        timestamps_ok = True
        reordered = False  # some packet's pts differs from its dts: frames are shown in another order than stored
        complete, detail = True, ""
        # A second handle, so the decoding container's position is untouched.
        with _open_container(self.path) as c:
            cs = c.streams[s.index]
            no_pts_format = bool(set(str(c.format.name).split(",")) & _NO_PTS_FORMATS)
            try:
                for n, packet in enumerate(c.demux(cs)):
                    if n % 64 == 0:
                        self._check_time(deadline)
                    if packet.size == 0 or packet.is_discard:
                        continue  # flush packet / edit-list preroll that never becomes a shown frame
                    t = packet.pts if packet.pts is not None else packet.dts
                    if t is None:
                        timestamps_ok = False
                        t = len(ts)
                    reordered = reordered or (packet.dts is not None and packet.dts != t)
                    ts.append(int(t))
                    keys.append(bool(packet.is_keyframe))
            except av.FFmpegError as e:
                complete, detail = False, f"demuxing stopped after {len(ts)} packets: {e}"
                self._note(detail)
        if no_pts_format and reordered:
            # The pts are FFmpeg's guesses and do not follow the decoded order (h264 B-frames, packed B-frames):
            # count decoded frames from the start instead. The table still gives the packet count.
            self._by_count = True
        if not timestamps_ok:
            # Count is still right; index->pts mapping falls back to the frame rate.
            self._table = _FrameTable(pts=list(range(len(ts))), keyframes=[], complete=complete)
            self._table_ok = False
            return self._table
        order = sorted(range(len(ts)), key=lambda i: ts[i])
        pts_sorted = [ts[i] for i in order]
        keyframes = sorted(rank for rank, i in enumerate(order) if keys[i])
        self._table = _FrameTable(pts=pts_sorted, keyframes=keyframes, complete=complete, detail=detail)
        self._table_ok = True
        return self._table

    def _use_table(self, deadline: float | None) -> _FrameTable | None:
        """The pts table when ``frame_index="packets"`` and packets carry timestamps, else ``None``."""
        if self.frame_index != "packets":
            return None
        table = self._get_table(deadline)
        return table if table is not None and self._table_ok and not self._by_count else None

    def _pts_of(self, index: int, table: _FrameTable | None) -> int | None:
        if table is not None:
            return table.pts[index] if index < len(table.pts) else None
        s = self._stream
        assert s is not None
        rate = self._rate()
        if not rate or not s.time_base:
            return None
        start = s.start_time or 0
        return int(start + round(Fraction(index) / rate / s.time_base))

    def _index_of(self, frame: av.VideoFrame, table: _FrameTable | None) -> int | None:
        """Presentation index of a decoded frame, ``None`` when it cannot be told (no pts after a seek)."""
        if frame.pts is None or self._by_count:
            return None if self._cursor is None else self._cursor + 1
        if table is not None:
            return table.index_of(int(frame.pts))
        s = self._stream
        assert s is not None
        rate = self._rate()
        if rate and s.time_base:
            start = s.start_time or 0
            return round((int(frame.pts) - start) * s.time_base * rate)
        return None if self._cursor is None else self._cursor + 1

    def _can_seek(self, table: _FrameTable | None) -> bool:
        return table is not None or (self.frame_index == "rate" and self._rate() is not None)

    def _should_seek(self, target: int, table: _FrameTable | None) -> bool:
        cur = self._cursor
        if cur is None or cur >= target or (self._exhausted and cur < target):
            return True  # must go back (or position unknown): seek, or restart when seeking is impossible
        if not self._can_seek(table):
            return False
        if table is not None and table.keyframes:
            # A seek lands on the last keyframe <= target; it pays off only if that skips enough frames.
            j = bisect.bisect_right(table.keyframes, target) - 1
            if j < 0:
                return False  # no keyframe at or before target (open-GOP start): only decoding gets there
            return table.keyframes[j] - (cur + 1) >= max(self.seek_threshold, 1)
        return target - (cur + 1) >= max(self.seek_threshold, 1)

    def _seek(self, target: int, table: _FrameTable | None) -> None:
        """Position the decoder before ``target``: a keyframe seek when possible, otherwise a restart."""
        pts = self._pts_of(target, table) if self._can_seek(table) else None
        if pts is None:
            self._restart()
            return
        assert self._container is not None and self._stream is not None
        try:
            # backward=True, any_frame=False: land on the last keyframe at or before pts.
            self._container.seek(pts, stream=self._stream, backward=True, any_frame=False)
        except av.FFmpegError:
            self._restart()
            return
        self.stats.seeks += 1
        self._frames = None
        self._cursor = None
        self._exhausted = False

    def _restart(self) -> None:
        """Reopen the file and decode from the first frame (works for every file)."""
        self._open()
        self.stats.restarts += 1

    def _next_frame(self, deadline: float | None) -> av.VideoFrame | None:
        """Next decoded frame, or ``None`` at the end of the stream or on a decode error."""
        self._check_time(deadline)
        if self._exhausted:
            return None
        if self._frames is None:
            assert self._container is not None and self._stream is not None
            self._frames = self._container.decode(self._stream)
        try:
            frame = next(self._frames, _ENDED)
        except av.FFmpegError as e:
            self._note(f"decode error after frame {self._cursor}: {e}")
            frame = _ENDED
        if frame is _ENDED:
            self._exhausted = True
            self._frames = None
            return None
        self.stats.frames_decoded += 1
        return frame  # type: ignore[return-value]

    def _to_array(self, frame: av.VideoFrame) -> np.ndarray:
        """RGB ``[H, W, 3]`` as shown (display matrix applied; ``size`` is the shown size)."""
        self.stats.frames_converted += 1
        o = self._orientation
        if self.size is not None:
            h, w = (self.size[1], self.size[0]) if o.transpose else self.size  # the scaler works on the coded frame
            return o.apply(frame.to_ndarray(format="rgb24", height=h, width=w))
        return o.apply(frame.to_ndarray(format="rgb24"))

    def _advance_to(self, target: int, wanted: set[int], found: dict[int, np.ndarray], deadline: float | None) -> None:
        """Decode forward until the decoder has passed ``target``, keeping every wanted frame met."""
        table = self._use_table(deadline)
        while self._cursor is None or self._cursor < target:
            frame = self._next_frame(deadline)
            if frame is None:
                return
            i = self._index_of(frame, table)
            if i is None or (self._cursor is None and i > target):
                # After a seek: position unknown (no pts) or the demuxer overshot -> decode from the start.
                self._restart()
                continue
            self._cursor = i
            if i in wanted and i not in found:
                found[i] = self._to_array(frame)

    def _decode_into(self, wanted: list[int], found: dict[int, np.ndarray], deadline: float | None) -> None:
        table = self._use_table(deadline)
        wanted_set = set(wanted)
        limit = len(table.pts) if table is not None else None
        for target in wanted:
            if target in found:
                continue
            if limit is not None and target >= limit:
                break  # past the last packet: handled by _recover
            if self._should_seek(target, table):
                if self._exhausted and self._cursor is not None and self._cursor < target:
                    break  # the stream ended before target: nothing further exists
                self._seek(target, table)
            self._advance_to(target, wanted_set, found, deadline)

    def _recover(self, missing: list[int], found: dict[int, np.ndarray], deadline: float | None) -> None:
        """Fill frames that could not be reached: one sequential pass from the start, then clamp."""
        n_wanted = len(found) + len(missing)
        self._restart()
        table = self._use_table(deadline)
        todo = set(missing)
        filled: set[int] = set()  # indices given a neighbouring frame instead of their own
        # The previous decoded frame, converted to RGB only if some index ends up needing it.
        prev: av.VideoFrame | None = None
        prev_arr: np.ndarray | None = None
        last_index = -1
        while todo:
            frame = self._next_frame(deadline)
            if frame is None:
                break
            i = self._index_of(frame, table)
            assert i is not None  # the cursor is known when decoding from the start
            self._cursor = i
            arr: np.ndarray | None = None
            skipped = sorted(x for x in todo if x < i)
            if skipped:  # passed without seeing them (frames lost mid-stream): nearest earlier frame
                if prev is not None and prev_arr is None:
                    prev_arr = self._to_array(prev)
                if prev_arr is None:
                    arr = self._to_array(frame)
                for m in skipped:
                    found[m] = prev_arr if prev_arr is not None else arr  # type: ignore[assignment]
                    filled.add(m)
                    todo.discard(m)
            if i in todo:
                arr = arr if arr is not None else self._to_array(frame)
                found[i] = arr
                todo.discard(i)
            prev, prev_arr, last_index = frame, arr, i
        if prev is None:
            self.close()
            raise VideoDecodeError(self.path, "undecodable", "no frame of the video stream decodes")
        if todo:  # beyond the last decodable frame: repeat it
            prev_arr = prev_arr if prev_arr is not None else self._to_array(prev)
            for m in todo:
                found[m] = prev_arr
            filled |= todo
        n_got = n_wanted - len(filled)
        if last_index == self.info.num_frames - 1 and all(m >= self.info.num_frames for m in filled):
            issue = (
                f"index past the end: got {n_got} of {n_wanted} frames; indices >= {self.info.num_frames} "
                f"repeat the last frame"
            )
        else:
            issue = (
                f"truncated: got {n_got} of {n_wanted} frames (last decodable frame {last_index}, "
                f"{self.info.num_frames} expected; missing ones repeat the nearest earlier frame)"
            )
        self._issue(issue)

    def _issue(self, issue: str) -> None:
        self.last_issue = issue
        self.warnings.append(issue)

    def _note(self, issue: str) -> None:
        self.warnings.append(issue)


def decode_frames(path: str | os.PathLike[str], indices: Sequence[int], **kwargs: Any) -> np.ndarray:
    """Open ``path``, decode ``indices`` (see :meth:`VideoReader.get`) and close it.

    Args:
        path: Video file.
        indices: Presentation-order frame indices (may repeat, any order).
        **kwargs: Passed to :class:`VideoReader` (``threads``, ``timeout_s``, ``size``, ...).

    Returns:
        uint8 array ``[len(indices), H, W, 3]``.
    """
    with VideoReader(path, **kwargs) as reader:
        return reader.get(indices)


def probe_video(path: str | os.PathLike[str], **kwargs: Any) -> VideoInfo:
    """Read a video's :class:`VideoInfo` without decoding frames (demuxes packets only if needed).

    Raises:
        VideoDecodeError: As :class:`VideoReader`.
    """
    with VideoReader(path, **kwargs) as reader:
        return reader.info


class DecoderSetupError(RuntimeError):
    """The chosen decoder cannot run here (not installed, no FFmpeg libraries, CUDA in a DataLoader worker).

    Not a bad video: it is never counted as one, it stops the run with its message.
    """
