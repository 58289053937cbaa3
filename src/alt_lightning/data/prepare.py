"""Re-encode a dataset tree for fast decoding (the work behind ``alt prepare``; PyAV only, no torch or Lightning).

A raw dataset (Kinetics as downloaded: up to 1080p, a keyframe every 250 frames) costs seconds of CPU per training
clip: reaching 8 frames spread over a video decodes nearly all of it at full size. A prepared copy makes each clip
cheap: frames scaled to a short side of ``short_side`` pixels (256 by default, mmaction2's resize step), a keyframe
every ``gop`` frames so a seek lands close to each wanted frame, no B-frames, no audio.

What a prepared tree keeps, so that it is a complete dataset root that every annotation file still matches:

- **Paths**: each video keeps its relative path *and its file name, extension included*. The stream inside is always
  h264 (yuv420p), in the container the extension names when that container holds h264 (``.mp4``/``.m4v``/``.mov``:
  MP4, ``.avi``: AVI, ``.mkv``: Matroska, ``.flv``: FLV), else in Matroska under the original name (``.webm``,
  ``.mpg``, ``.mpeg``, ``.wmv``, ``.ogv``; FFmpeg, hence every reader here, recognises a file by its content, not its
  extension). A DataModule reads the prepared tree with ``root`` changed and nothing else.
- **Other files** (annotation lists, CSVs, class files): copied (default), symlinked, or skipped.
- **The picture**: frames are written as they are shown. A display matrix (phone videos) is applied to the pixels and
  not written, so the prepared file shows what :class:`~alt_lightning.data.decode.VideoReader` showed for the source.
- **Frames and timing**: with ``fps=None`` every frame is kept: frame ``i`` of the source is frame ``i`` of the
  output, written at the source's average rate (a variable-rate source becomes constant rate with the same frame
  count). With ``fps`` set, output frame ``k`` (time ``k / fps``) shows the source frame nearest to that time, the
  source's frame ``i`` taken to be at ``i / rate``; the duration is kept.

Robustness: the source tree is only read (an output folder equal to the source, inside it or containing it is
refused); each output is written to a temporary name and renamed when complete, so a crash or Ctrl-C never leaves a
file that looks finished; a rerun skips outputs that decode (verified: the file opens, has the expected size, and its
last frame decodes) and retries the rest. Every video that fails, or whose source is damaged (its decodable frames are
written), is listed with the reason in a failures CSV.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from alt_lightning.data.decode import VideoDecodeError, VideoReader, _display_orientation, _open_container, _Orientation
from alt_lightning.data.parsers import VIDEO_EXTENSIONS, os_error_reason

__all__ = [
    "FAILURE_COLUMNS",
    "SETTINGS_FILE",
    "PrepareError",
    "PrepareResult",
    "PrepareSettings",
    "check_roots",
    "container_format",
    "prepare_tree",
    "prepare_video",
    "target_size",
]

#: Written at the prepared root: the settings it was made with (a rerun with other settings is refused).
SETTINGS_FILE = "alt_prepare.json"
#: Default failures CSV at the prepared root.
FAILURES_FILE = "prepare_failures.csv"
FAILURE_COLUMNS = ("path", "status", "reason")

# Extension -> FFmpeg muxer that holds h264 under that name; other video extensions get Matroska.
_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".avi": "avi", ".mkv": "matroska", ".flv": "flv"}
_TMP_SUFFIX = ".alt-prepare.tmp"
_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")


class PrepareError(ValueError):
    """A usage error of ``alt prepare`` (bad roots, settings that contradict an earlier run)."""


@dataclass(frozen=True)
class PrepareSettings:
    """How videos are re-encoded.

    Args:
        short_side: Shorter side of the output in pixels (even). Our default: 256, mmaction2's resize step for
            Kinetics; enough for 224 crops after a short-side resize, including the random resized crop.
        gop: Keyframe interval in frames (exact: scene-cut keyframes are off). Our default: 12, which made 340x256
            clips 2.2x faster to sample than x264's default of 250 (issue 14); 1 makes every frame a keyframe
            (fastest access, files several times larger).
        fps: Output frame rate; ``None`` (default) keeps the source's average rate and every frame.
        crf: x264 constant rate factor (lower = better and larger). Our default: 23, x264's own.
        preset: x264 preset (speed of encoding vs size). Our default: ``"veryfast"``: preparing Kinetics-400 is
            240k videos, and at 256 px the size difference to slower presets is small.
        upscale: Scale videos whose short side is below ``short_side`` up to it. Default ``False``: they keep their
            size (the transforms upscale at load time anyway, and a larger file only costs decoding time).
        threads: FFmpeg threads per video for decoding, scaling and encoding. Default 1: ``alt prepare`` runs one
            process per core instead.
        timeout_s: Wall-clock limit per video, checked between frames (``None``: no limit).
    """

    short_side: int = 256
    gop: int = 12
    fps: float | None = None
    crf: int = 23
    preset: str = "veryfast"
    upscale: bool = False
    threads: int = 1
    timeout_s: float | None = 900.0

    def __post_init__(self) -> None:
        if self.short_side < 2 or self.short_side % 2:
            raise PrepareError(
                f"short_side must be an even number >= 2 (h264 4:2:0 needs even sides), got {self.short_side}"
            )
        if self.gop < 1:
            raise PrepareError(f"gop must be >= 1, got {self.gop}")
        if self.fps is not None and not self.fps > 0:
            raise PrepareError(f"fps must be > 0 (or None to keep the source rate), got {self.fps}")
        if not 0 <= self.crf <= 51:
            raise PrepareError(f"crf must be in 0..51, got {self.crf}")
        if self.preset not in _PRESETS:
            raise PrepareError(f"preset must be one of x264's {', '.join(_PRESETS)}; got {self.preset!r}")

    def recorded(self) -> dict[str, Any]:
        """The settings that shape the output files (what :data:`SETTINGS_FILE` records and a rerun must match)."""
        d = asdict(self)
        for key in ("threads", "timeout_s"):
            d.pop(key)
        return d


@dataclass
class PrepareResult:
    """What happened to one video.

    Attributes:
        path: Path relative to the roots (POSIX separators).
        status: ``"done"`` (written), ``"skipped"`` (a verified output was there), ``"partial"`` (damaged source:
            its decodable frames were written), ``"failed"`` (nothing written).
        reason: Why a file failed, is partial, or was redone; empty otherwise.
        frames: Frames written (or found, when skipped).
        seconds: Time spent on the file.
    """

    path: str
    status: str
    reason: str = ""
    frames: int = 0
    seconds: float = 0.0


@dataclass
class PrepareReport:
    """All results of one :func:`prepare_tree` call."""

    results: list[PrepareResult] = field(default_factory=list)
    others: int = 0  # non-video files copied or linked by this run
    others_present: int = 0  # non-video files an earlier run copied or linked
    failures_csv: Path | None = None

    def count(self, status: str) -> int:
        """Videos with this status."""
        return sum(r.status == status for r in self.results)


def target_size(width: int, height: int, short_side: int, upscale: bool = False) -> tuple[int, int]:
    """Output ``(width, height)``: the shorter side scaled to ``short_side``, the aspect kept, both sides even.

    Sources whose shorter side is already at most ``short_side`` keep their size (rounded to even) unless ``upscale``.
    """
    short = min(width, height)
    scale = short_side / short if (short > short_side or upscale) else 1.0
    w, h = (max(2, 2 * round(v * scale / 2)) for v in (width, height))
    if scale != 1.0:  # the short side exactly, whatever the rounding of the long one
        w, h = (short_side, h) if width <= height else (w, short_side)
    return w, h


def container_format(path: str | os.PathLike[str]) -> str:
    """The FFmpeg muxer a prepared file is written with (chosen from its extension; see the module docstring)."""
    return _MUXERS.get(Path(path).suffix.lower(), "matroska")


def check_roots(source: str | os.PathLike[str], out: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Resolved ``(source, out)``; refuses an output that could overwrite any source file.

    Raises:
        PrepareError: The source is not a folder, or the output is the source, inside it, or contains it.
    """
    src, dst = Path(source).expanduser().resolve(), Path(out).expanduser().resolve()
    if not src.is_dir():
        raise PrepareError(f"{source}: not a folder; give the dataset root to prepare")
    if dst == src or src in dst.parents:
        raise PrepareError(f"{out} is inside the source {source}: write the prepared copy outside the source tree")
    if dst in src.parents:
        raise PrepareError(f"{out} contains the source {source}: the copy would land on the source files; pick another")
    return src, dst


def list_tree(root: Path) -> tuple[list[str], list[str]]:
    """Relative POSIX paths of the video files and of the other files under ``root`` (sorted; links followed)."""
    videos, others = [], []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        for name in sorted(filenames):
            rel = (Path(dirpath) / name).relative_to(root).as_posix()
            if name.endswith(_TMP_SUFFIX):
                continue
            if Path(name).suffix.lower() in VIDEO_EXTENSIONS:
                videos.append(rel)
            elif rel not in (SETTINGS_FILE, FAILURES_FILE):  # a previous preparation's records are not data
                others.append(rel)
    return videos, others


# ------------------------------------------------------------------------------------------------ one video
class _TimeoutError(Exception):
    """The per-video time limit ran out."""


def _rate(stream: av.video.stream.VideoStream) -> Fraction | None:
    for r in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if r:
            return Fraction(r)
    return None


def _out_rate(fps: float | None, source: Fraction) -> Fraction:
    if fps is None:
        return source
    return Fraction(str(fps)).limit_denominator(1001)


def _planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y ``[H, W]``, U and V ``[H/2, W/2]`` of an even-sized yuv420p frame (copies)."""
    h, w = frame.height, frame.width
    flat = frame.to_ndarray().reshape(-1)  # Y rows, then U, then V (yuv420p layout of PyAV)
    y = flat[: h * w].reshape(h, w)
    u = flat[h * w : h * w * 5 // 4].reshape(h // 2, w // 2)
    v = flat[h * w * 5 // 4 :].reshape(h // 2, w // 2)
    return y, u, v


def _oriented(frame: av.VideoFrame, orientation: _Orientation) -> av.VideoFrame:
    """The yuv420p frame turned/mirrored as shown, plane by plane (no colour conversion)."""
    y, u, v = (orientation.apply(p[..., None])[..., 0] for p in _planes(frame))
    h, w = y.shape
    data = np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(h * 3 // 2, w)
    out = av.VideoFrame.from_ndarray(data, format="yuv420p")
    for attr in ("colorspace", "color_range", "color_primaries", "color_trc"):
        setattr(out, attr, getattr(frame, attr))
    return out


def _encode(src: str, tmp: str, out_format: str, s: PrepareSettings) -> tuple[int, str]:
    """Re-encode ``src`` into ``tmp``; returns (frames written, damage note or "")."""
    deadline = None if s.timeout_s is None else time.monotonic() + s.timeout_s
    error = ""
    try:
        if os.stat(src).st_size == 0:
            raise VideoDecodeError(src, "empty file", "the file has 0 bytes; re-download it")
        inp = _open_container(src)
    except OSError as e:  # an errno (not bad data): say which
        raise VideoDecodeError(src, os_error_reason(e)) from e
    except (av.FFmpegError, UnicodeDecodeError) as e:
        raise VideoDecodeError(src, "undecodable", f"FFmpeg cannot open it: {e}") from e
    with inp:
        try:
            stream = inp.streams.best("video")
        except (av.FFmpegError, ValueError):
            stream = None
        if not isinstance(stream, av.VideoStream) or stream.codec_context is None:
            raise VideoDecodeError(src, "no video stream", "the file holds no decodable video track")
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = s.threads
        rate = _rate(stream)
        if rate is None:
            raise VideoDecodeError(src, "unknown frame rate", "the file states no frame rate; pass --fps")
        out_rate = _out_rate(s.fps, rate)
        reported = int(stream.frames or 0)
        frames = inp.decode(stream)  # VideoFrames only: one video stream
        written = decoded = 0
        with av.open(tmp, "w", format=out_format) as out:
            ostream: av.video.stream.VideoStream | None = None
            orientation = _Orientation()
            size = (0, 0)
            convert: dict[str, Any] = {}
            small: av.VideoFrame | None = None
            while True:
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                except av.FFmpegError as e:  # damaged data: keep what decoded, say so
                    error = str(e)
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise _TimeoutError
                if ostream is None:  # the first frame tells the orientation, size and colour of the output
                    orientation, _, _ = _display_orientation(frame)
                    shown = (frame.height, frame.width) if orientation.transpose else (frame.width, frame.height)
                    size = target_size(*shown, s.short_side, s.upscale)
                    ostream = out.add_stream("libx264", rate=out_rate, options=_x264_options(s))
                    ostream.width, ostream.height, ostream.pix_fmt = *size, "yuv420p"
                    ostream.codec_context.thread_count = s.threads
                    convert, tags = _colour(frame)
                    for attr, value in tags.items():
                        with contextlib.suppress(AttributeError, TypeError, ValueError):  # unset tags stay unset
                            setattr(ostream.codec_context, attr, value)
                coded = (size[1], size[0]) if orientation.transpose else size
                small = frame.reformat(
                    width=coded[0],
                    height=coded[1],
                    format="yuv420p",
                    interpolation="BICUBIC",
                    threads=s.threads,
                    **convert,
                )
                if orientation != _Orientation():
                    small = _oriented(small, orientation)
                # The decoder marks the source's keyframes as I pictures and x264 would honour that: keyframes every
                # `gop` frames, and only there.
                small.pict_type = av.video.frame.PictureType.NONE
                # Output frame k (time k / out_rate) shows the source frame nearest in time: frame i covers
                # [(i - 1/2) / rate, (i + 1/2) / rate). With out_rate == rate, k == i.
                written = _emit(out, ostream, small, written, (decoded + Fraction(1, 2)) * out_rate / rate)
                decoded += 1
            if ostream is None or small is None:
                raise VideoDecodeError(src, "undecodable", error or "no frame of the video stream decodes")
            written = _emit(out, ostream, small, written, decoded * out_rate / rate)  # the last frame lasts 1 / rate
            for packet in ostream.encode():
                out.mux(packet)
    note = f"decode error after {decoded} frames: {error}" if error else ""
    if reported and decoded < reported:
        note = f"truncated: {decoded} of the {reported} frames the header states decode" + (f"; {note}" if note else "")
    return written, note


def _emit(
    out: av.container.OutputContainer,
    stream: av.video.stream.VideoStream,
    frame: av.VideoFrame,
    written: int,
    until: Fraction,
) -> int:
    """Encode ``frame`` as every output frame ``k >= written`` with ``k < until``; returns the new ``written``."""
    time_base = 1 / Fraction(stream.codec_context.framerate)
    while written < until:
        frame.pts, frame.time_base = written, time_base
        for packet in stream.encode(frame):
            out.mux(packet)
        written += 1
    return written


def _x264_options(s: PrepareSettings) -> dict[str, str]:
    # keyint = keyint_min and no scene-cut keyframes: a keyframe exactly every `gop` frames; no B-frames, so every
    # container (AVI included, which stores no timestamps) gives frames in stored order and seeks stay exact.
    return {
        "crf": str(s.crf),
        "preset": s.preset,
        "g": str(s.gop),
        "keyint_min": str(s.gop),
        "sc_threshold": "0",
        "bf": "0",
    }


def _colour(frame: av.VideoFrame) -> tuple[dict[str, Any], dict[str, Any]]:
    """How the first frame's colour is carried over: ``(reformat arguments, output stream tags)``.

    A YUV source keeps its YUV values and its matrix, primaries and transfer tags, so a reader converts the prepared
    file to the same RGB; full-range YUV (``yuvj*`` or tagged full) is converted to the limited range that
    yuv420p h264 is read with. Any other source (RGB, gray, palette) is converted by swscale's default (BT.601,
    limited range) and left untagged, which readers take for BT.601.
    """
    if not frame.format.name.startswith("yuv"):
        return {}, {}
    tags = {a: getattr(frame, a) for a in ("colorspace", "color_primaries", "color_trc")}
    if frame.format.name.startswith("yuvj") or int(frame.color_range) == 2:  # 2 = JPEG (full range)
        return {"src_color_range": "JPEG", "dst_color_range": "MPEG"}, {**tags, "color_range": 1}  # 1 = MPEG
    return {}, {**tags, "color_range": frame.color_range}


def verify_output(src: str, dst: str, settings: PrepareSettings) -> str | None:
    """``None`` when ``dst`` is a finished output of ``src`` under ``settings``, else why it is not.

    Finished: it opens, has the size ``settings`` give for the source, (with ``fps`` set) that rate, and its last
    frame decodes cleanly. The source is only probed (header and first frame).
    """
    try:
        with VideoReader(src, threads=settings.threads, timeout_s=settings.timeout_s) as r:
            want = target_size(r.info.width, r.info.height, settings.short_side, settings.upscale)
        with VideoReader(dst, threads=settings.threads, timeout_s=settings.timeout_s) as r:
            info = r.info
            if (info.width, info.height) != want:
                return f"size {info.width}x{info.height}, expected {want[0]}x{want[1]}"
            if settings.fps is not None and abs(info.fps - settings.fps) > 0.01:
                return f"{info.fps:.3f} fps, expected {settings.fps}"
            r.get([info.num_frames - 1])
            if r.last_issue:
                return f"incomplete ({r.last_issue})"
    except VideoDecodeError as e:
        return f"does not decode ({e.reason})"
    return None


def prepare_video(src: str, dst: str, rel: str, settings: PrepareSettings, overwrite: bool = False) -> PrepareResult:
    """Re-encode one video (or skip it when a verified output exists); never raises.

    Args:
        src: Source file (only read).
        dst: Output file; written as ``<dst>.alt-prepare.tmp`` then renamed.
        rel: The path reported in the result.
        settings: How to encode.
        overwrite: Re-encode even when a verified output exists.
    """
    t0 = time.monotonic()
    redo = ""
    if os.path.exists(dst) and not overwrite:
        why = verify_output(src, dst, settings)
        if why is None:
            return PrepareResult(rel, "skipped", seconds=time.monotonic() - t0)
        redo = f"existing output redone: {why}"
    tmp = dst + _TMP_SUFFIX
    try:
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        frames, note = _encode(src, tmp, container_format(dst), settings)
        os.replace(tmp, dst)
    except VideoDecodeError as e:
        return _failed(rel, tmp, f"{e.reason}: {e.detail}" if e.detail else e.reason, t0)
    except _TimeoutError:
        return _failed(rel, tmp, f"timeout: more than {settings.timeout_s} s", t0)
    except OSError as e:
        if not os.path.exists(src):
            return _failed(rel, tmp, "missing file", t0)
        return _failed(rel, tmp, f"{type(e).__name__}: {e}", t0)
    except Exception as e:  # whatever a file does to FFmpeg, report it and go on with the others
        return _failed(rel, tmp, f"{type(e).__name__}: {e}", t0)
    status, reason = ("partial", note) if note else ("done", redo)
    return PrepareResult(rel, status, reason, frames, time.monotonic() - t0)


def _failed(rel: str, tmp: str, reason: str, t0: float) -> PrepareResult:
    with contextlib.suppress(OSError):
        os.unlink(tmp)
    return PrepareResult(rel, "failed", reason, 0, time.monotonic() - t0)


# ------------------------------------------------------------------------------------------------ a whole tree
def _check_settings(out: Path, settings: PrepareSettings, overwrite: bool) -> None:
    path = out / SETTINGS_FILE
    if not path.exists() or overwrite:
        return
    try:
        before = json.loads(path.read_text()).get("settings", {})
    except (OSError, ValueError) as e:
        raise PrepareError(f"{path}: unreadable ({e}); remove it or pass --overwrite true") from e
    now = settings.recorded()
    if before != now:
        diff = ", ".join(f"{k}: {before.get(k)!r} -> {now[k]!r}" for k in now if before.get(k) != now[k])
        raise PrepareError(
            f"{out} was prepared with other settings ({diff}); use another output folder, the same settings, or "
            "--overwrite true to re-encode every video"
        )


def _copy_other(src: Path, dst: Path, mode: str) -> bool:
    """Copy or link one non-video file; ``False`` when an earlier run already did."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if mode == "symlink":
        if dst.is_symlink() and os.readlink(dst) == str(src):
            return False
        dst.unlink(missing_ok=True)
        dst.symlink_to(src)
        return True
    if dst.exists() and not dst.is_symlink():
        st_s, st_d = src.stat(), dst.stat()
        if st_s.st_size == st_d.st_size and int(st_s.st_mtime) == int(st_d.st_mtime):
            return False  # copied by an earlier run (copy2 keeps the mtime)
    dst.unlink(missing_ok=True)
    shutil.copy2(src, dst)
    return True


def _previous_partials(csv_path: Path) -> dict[str, PrepareResult]:
    if not csv_path.exists():
        return {}
    try:
        with csv_path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error):
        return {}
    return {
        r["path"]: PrepareResult(r["path"], "partial", r.get("reason", ""))
        for r in rows
        if r.get("status") == "partial"
    }


def prepare_tree(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    settings: PrepareSettings | None = None,
    *,
    workers: int = 0,
    overwrite: bool = False,
    others: str = "copy",
    failures_csv: str | os.PathLike[str] | None = None,
    videos: Sequence[str] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[PrepareResult], None] | None = None,
) -> PrepareReport:
    """Prepare every video under ``source`` into ``out`` (same relative paths); see the module docstring.

    Args:
        source: Dataset root (only read).
        out: Prepared root (created; must not overlap the source).
        settings: Encoding settings (defaults: :class:`PrepareSettings`).
        workers: Processes (0: this process).
        overwrite: Re-encode every video even when a verified output exists, and accept other settings than the
            earlier run's.
        others: Non-video files: ``"copy"`` (default: the prepared root stands on its own), ``"symlink"`` (follows
            later edits of the source's annotation files) or ``"skip"``.
        failures_csv: Where failed and partial videos are listed (``path,status,reason``); default
            ``<out>/prepare_failures.csv``. Rewritten by every run (a partial file skipped on a rerun stays listed).
        videos: Relative paths of the videos to prepare (default: every video under ``source``).
        on_start: Called with the number of videos before the first one is processed (a progress bar's total).
        on_result: Called with each video's result as it finishes.

    Raises:
        PrepareError: Overlapping roots, a bad ``others``, or settings that differ from the earlier run's.
    """
    settings = settings or PrepareSettings()
    if others not in ("copy", "symlink", "skip"):
        raise PrepareError(f"others must be 'copy', 'symlink' or 'skip', got {others!r}")
    src, dst = check_roots(source, out)
    _check_settings(dst, settings, overwrite)
    csv_path = Path(failures_csv).expanduser().resolve() if failures_csv is not None else dst / FAILURES_FILE
    if csv_path == src or src in csv_path.parents:
        raise PrepareError(f"{failures_csv} is inside the source {source}: write the failures CSV elsewhere")
    found, other_files = list_tree(src)
    if videos is not None:
        wanted = {Path(v).as_posix() for v in videos}
        unknown = sorted(wanted - set(found))
        if unknown:
            raise PrepareError(f"{unknown[0]}: not a video file under {source} ({len(unknown)} such paths)")
        found = [v for v in found if v in wanted]
    dst.mkdir(parents=True, exist_ok=True)
    partial_before = _previous_partials(csv_path)
    (dst / SETTINGS_FILE).write_text(
        json.dumps({"version": 1, "source": str(src), "settings": settings.recorded()}, indent=1) + "\n"
    )
    report = PrepareReport(failures_csv=csv_path)
    if others != "skip":
        for rel in other_files:
            if _copy_other(src / rel, dst / rel, others):
                report.others += 1
            else:
                report.others_present += 1
    if on_start is not None:
        on_start(len(found))
    jobs = [(str(src / rel), str(dst / rel), rel, settings, overwrite) for rel in found]

    def record(result: PrepareResult) -> None:
        if result.status == "skipped" and result.path in partial_before:
            result.status, result.reason = "partial", partial_before[result.path].reason
        report.results.append(result)
        if on_result is not None:
            on_result(result)

    try:
        if workers <= 0:
            for job in jobs:
                record(prepare_video(*job))
        else:
            _run_pool(jobs, workers, record)
    finally:  # also after Ctrl-C: the failures met so far are listed
        report.results.sort(key=lambda r: r.path)
        _write_failures(csv_path, report.results)
    return report


def _run_pool(jobs: list[tuple], workers: int, record: Callable[[PrepareResult], None]) -> None:
    """:func:`prepare_video` over ``jobs`` in ``workers`` processes; an interruption cancels the pending ones."""
    import multiprocessing

    from alt_lightning.data.processes import main_module_hidden

    # forkserver: workers start clean (no torch threads or Lightning inherited) and import only what they run.
    ctx = multiprocessing.get_context("forkserver" if sys.platform != "win32" else "spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    try:
        with main_module_hidden():  # the workers start on these submits, without re-running the caller's script
            futures = [pool.submit(prepare_video, *job) for job in jobs]
        for future in as_completed(futures):
            record(future.result())
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # the running videos finish (their files stay consistent)
        raise
    pool.shutdown(wait=True)


def _write_failures(path: Path, results: list[PrepareResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FAILURE_COLUMNS)
        for r in results:
            if r.status in ("failed", "partial"):
                w.writerow([r.path, r.status, r.reason])
