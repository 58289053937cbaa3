"""A second decoder backend: torchcodec (CPU, or CUDA/NVDEC), with the PyAV reader's interface.

:class:`TorchCodecReader` has :class:`~alt_lightning.data.decode.VideoReader`'s ``info``, ``get``, ``last_issue``,
``warnings`` and context manager.

torchcodec is an optional dependency (``pip install alt-lightning[torchcodec]``) that needs FFmpeg's shared libraries
(4 to 8) on the system; PyAV brings its own FFmpeg, torchcodec does not. Chosen by the DataModules' ``decoder``
argument (``"torchcodec"``, ``"torchcodec:cuda"``); see :func:`~alt_lightning.data.readers.open_video`.

Same frames as the PyAV reader: frame ``i`` is the i-th frame in presentation order (torchcodec's exact seek mode
scans the file once at open), the display matrix is applied (torchcodec turns the frame; a mirrored matrix, which it
reads as a turn, is corrected here), and the RGB conversion gives the same pixels (``tests/data/test_torchcodec.py``
compares them on CPU). Known differences: an AVI whose packets are reordered (DivX/XviD packed B-frames, common in
UCF-101 and HMDB-51) is indexed by torchcodec from guessed timestamps, so some indices get a neighbouring frame (the
PyAV reader counts decoded frames there); and ``timeout_s`` cannot interrupt torchcodec's C++ decoding (a broken
file that makes FFmpeg loop is not stopped).

CUDA: frames are decoded on the GPU of this process (``torch.cuda.current_device()``, which Lightning sets to each
DDP rank's own device) and only the wanted frames are copied to the host, so sampling, transforms, batching and the
bad-video policy run exactly as on CPU. CUDA cannot start in forked DataLoader workers once the main process uses it,
so ``"torchcodec:cuda"`` decodes in the main process (``num_workers=0``); asking for it inside a worker is refused with
that message.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from types import TracebackType

import numpy as np

from alt_lightning.data.decode import (
    DecoderSetupError,
    VideoDecodeError,
    VideoInfo,
    _display_orientation,
    _open_container,
    _Orientation,
    checked_indices,
)
from alt_lightning.data.parsers import os_error_reason

__all__ = ["TorchCodecReader", "torchcodec_available"]

INSTALL_HINT = (
    "pip install 'alt-lightning[torchcodec]' (a torchcodec build that matches your torch), and FFmpeg's shared "
    "libraries 4-8 on the system (e.g. apt install libavcodec-dev libavformat-dev libavdevice-dev or conda install "
    "ffmpeg); or use decoder='pyav'"
)


def torchcodec_available() -> str | None:
    """``None`` when torchcodec imports and has found FFmpeg's libraries here, else why not (one line)."""
    try:
        import torchcodec
    except Exception as e:  # ImportError, or an error of the torch/torchcodec build
        return f"torchcodec does not import ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    if getattr(torchcodec, "ffmpeg_major_version", 0) is None:  # set at import, None when no FFmpeg loaded
        return "torchcodec found no FFmpeg shared libraries (4-8) on this system"
    return None


def _shown(frames: np.ndarray, orientation: _Orientation) -> np.ndarray:
    """``[K, H, W, C]`` frames turned/mirrored by ``orientation`` (views)."""
    out = frames.transpose(0, 2, 1, 3) if orientation.transpose else frames
    if orientation.flip_rows:
        out = out[:, ::-1]
    if orientation.flip_cols:
        out = out[:, :, ::-1]
    return out


def _orientation_fix(path: str, turns: int) -> Callable[[np.ndarray], np.ndarray] | None:
    """For a file torchcodec turned by ``turns`` quarter turns: the function that gives its frames as shown.

    torchcodec applies the rotation of a display matrix but not a mirror in it; the exact orientation is read from
    the matrix itself (with PyAV, from the first decoded frame, as the PyAV reader does). ``None`` when torchcodec's
    frames are already right (every matrix without a mirror).
    """
    with _open_container(path) as c:
        frame = next(c.decode(video=0), None)
        orientation = _display_orientation(frame)[0] if frame is not None else _Orientation()
        del frame
    probe = np.arange(12).reshape(1, 3, 4, 1)  # asymmetric: every turn and mirror maps it differently
    if np.array_equal(np.rot90(probe, turns, axes=(1, 2)), _shown(probe, orientation)):
        return None
    return lambda frames: _shown(np.rot90(frames, -turns, axes=(1, 2)), orientation)


class TorchCodecReader:
    """Random access to the frames of one video with torchcodec (see the module docstring).

    Args:
        path: Video file.
        threads: FFmpeg threads for CPU decoding (0: FFmpeg's choice); unused on CUDA.
        timeout_s: Accepted for the interface; torchcodec's decoding cannot be interrupted.
        device: ``"cpu"`` or ``"cuda"`` (this process's current CUDA device) or ``"cuda:N"``.

    Raises:
        VideoDecodeError: missing/empty/undecodable file, no video stream, zero frames (as the PyAV reader).
        DecoderSetupError: torchcodec is not usable here, or CUDA decoding was asked for in a DataLoader worker.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, threads: int = 0, timeout_s: float | None = None, device: str = "cpu"
    ) -> None:
        self.path = os.fspath(path)
        self.last_issue: str | None = None
        self.warnings: list[str] = []
        self.timeout_s = timeout_s
        import torch

        if device != "cpu" and not device.startswith("cuda"):
            raise ValueError(f"torchcodec device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
        if device.startswith("cuda"):
            if torch.utils.data.get_worker_info() is not None:
                raise DecoderSetupError(
                    "decoder='torchcodec:cuda' decodes in the main process (CUDA cannot start in forked DataLoader "
                    "workers): set num_workers=0"
                )
            if device == "cuda":
                device = f"cuda:{torch.cuda.current_device()}"
        self.device = device
        try:
            size_bytes = os.stat(self.path).st_size
        except OSError as e:
            raise VideoDecodeError(self.path, os_error_reason(e)) from e
        if size_bytes == 0:
            raise VideoDecodeError(self.path, "empty file", "the file has 0 bytes; re-download it")
        why = torchcodec_available()
        if why is not None:
            raise DecoderSetupError(f"decoder='torchcodec' is not usable here: {why}. {INSTALL_HINT}")
        from torchcodec.decoders import VideoDecoder

        try:
            self._decoder = VideoDecoder(
                self.path, dimension_order="NHWC", num_ffmpeg_threads=int(threads), device=device, seek_mode="exact"
            )
            meta = self._decoder.metadata
        except (RuntimeError, ValueError) as e:  # torchcodec says RuntimeError for files FFmpeg cannot open
            raise VideoDecodeError(self.path, "undecodable", f"torchcodec: {_last_line(e)}") from e
        n = int(meta.num_frames or 0)
        if n == 0:
            raise VideoDecodeError(self.path, "zero frames", "the video stream holds no frames")
        rotation = round(getattr(meta, "rotation", None) or 0) % 360
        rotation = rotation - 360 if rotation > 180 else rotation  # (-180, 180], as VideoInfo says
        self._fix = _orientation_fix(self.path, round(rotation / 90)) if rotation % 90 == 0 and rotation else None
        fps = float(meta.average_fps or 0.0)
        self.info = VideoInfo(
            num_frames=n,
            fps=fps,
            duration_s=float(meta.duration_seconds or (n / fps if fps else 0.0)),
            width=int(meta.width),
            height=int(meta.height),
            size_bytes=int(size_bytes),
            codec=str(meta.codec),
            reported_frames=meta.num_frames_from_header,
            rotation=rotation,
        )

    def __enter__(self) -> TorchCodecReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the decoder (idempotent)."""
        self._decoder = None

    def get(self, indices: Sequence[int]) -> np.ndarray:
        """uint8 ``[len(indices), H, W, 3]`` RGB frames at presentation-order ``indices`` (on the host).

        Indices past the last frame get the last frame (:attr:`last_issue` says so), as with the PyAV reader.

        Raises:
            VideoDecodeError: ``"undecodable"`` when torchcodec fails on the file.
            IndexError: A negative index.
        """
        idx = checked_indices(self, indices, open_=self._decoder is not None)
        self.last_issue = None
        n = self.info.num_frames
        if not idx:
            return np.empty((0, self.info.height, self.info.width, 3), np.uint8)
        past = sorted({i for i in idx if i >= n})
        if past:
            issue = f"index past the end: indices >= {n} repeat the last frame"
            self.last_issue = issue
            self.warnings.append(issue)
        wanted = sorted({min(i, n - 1) for i in idx})
        try:
            data = self._decoder.get_frames_at(wanted).data  # [K, H, W, 3] uint8, on the decoding device
        except (RuntimeError, IndexError, ValueError) as e:
            raise VideoDecodeError(self.path, "undecodable", f"torchcodec: {_last_line(e)}") from e
        frames = data.cpu().numpy()
        if self._fix is not None:
            frames = np.ascontiguousarray(self._fix(frames))
        row = {i: k for k, i in enumerate(wanted)}
        return frames[[row[min(i, n - 1)] for i in idx]]


def _last_line(err: BaseException) -> str:
    lines = [ln for ln in str(err).splitlines() if ln.strip()]
    return lines[-1] if lines else type(err).__name__
