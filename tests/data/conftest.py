"""Fixtures for the data tests: tiny videos written with PyAV whose pixels encode the frame index."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest

# The frame index is written as 8 bits, one per block of a 2 x 4 grid (bright = 1), so it survives
# lossy codecs and rescaling: each block's interior mean is far from the threshold.
_ROWS, _COLS = 2, 4
_LOW, _HIGH = 20, 235


def index_frame(i: int, height: int, width: int, noise_seed: int | None = None) -> np.ndarray:
    """uint8 [H, W, 3] frame showing ``i`` (0..255) as 8 black/white blocks."""
    frame = np.full((height, width, 3), _LOW, np.uint8)
    for b in range(_ROWS * _COLS):
        if (i >> b) & 1:
            r, c = divmod(b, _COLS)
            frame[r * height // _ROWS : (r + 1) * height // _ROWS, c * width // _COLS : (c + 1) * width // _COLS] = (
                _HIGH
            )
    if noise_seed is not None:  # texture that makes packets large (for truncation tests)
        noise = np.random.default_rng(noise_seed + i).integers(-12, 13, frame.shape)
        frame = np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return frame


def read_index(frame: np.ndarray) -> int:
    """Inverse of :func:`index_frame` for a decoded uint8 [H, W, 3] frame."""
    h, w = frame.shape[:2]
    value = 0
    for b in range(_ROWS * _COLS):
        r, c = divmod(b, _COLS)
        y0, y1 = r * h // _ROWS, (r + 1) * h // _ROWS
        x0, x1 = c * w // _COLS, (c + 1) * w // _COLS
        my, mx = (y1 - y0) // 4, (x1 - x0) // 4
        if frame[y0 + my : y1 - my, x0 + mx : x1 - mx].mean() > (_LOW + _HIGH) / 2:
            value |= 1 << b
    return value


def read_indices(frames: np.ndarray) -> list[int]:
    """Frame indices shown by decoded uint8 [T, H, W, 3] frames."""
    return [read_index(f) for f in frames]


def has_encoder(name: str) -> bool:
    """Whether this PyAV/FFmpeg build can encode with ``name``."""
    try:
        av.Codec(name, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        return False
    return True


def write_video(
    path: Path,
    num_frames: int = 60,
    *,
    codec: str = "libx264",
    width: int = 64,
    height: int = 48,
    pix_fmt: str = "yuv420p",
    rate: int = 30,
    gop: int = 10,
    pts_ms: list[int] | None = None,
    bit_rate: int | None = None,
    codec_options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    noise_seed: int | None = None,
) -> Path:
    """Encode ``num_frames`` index frames into ``path`` (container from the extension).

    ``pts_ms`` gives each frame's presentation time in milliseconds (variable frame rate).
    """
    with av.open(str(path), "w", options=container_options or {}) as c:
        s = c.add_stream(codec, rate=rate, options=codec_options or {})
        s.width, s.height, s.pix_fmt = width, height, pix_fmt
        s.codec_context.gop_size = gop
        if bit_rate is not None:
            s.codec_context.bit_rate = bit_rate
        if pts_ms is not None:
            s.codec_context.time_base = Fraction(1, 1000)
        for i in range(num_frames):
            f = av.VideoFrame.from_ndarray(index_frame(i, height, width, noise_seed), format="rgb24")
            if pts_ms is not None:
                f.pts, f.time_base = pts_ms[i], Fraction(1, 1000)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def write_audio(path: Path, codec: str = "pcm_s16le") -> Path:
    """An audio-only file (0.25 s of silence)."""
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=8000)
        fmt = "s16" if codec == "pcm_s16le" else "fltp"
        dtype = np.int16 if codec == "pcm_s16le" else np.float32
        f = av.AudioFrame.from_ndarray(np.zeros((1, 2048), dtype), format=fmt, layout="mono")
        f.sample_rate = 8000
        for p in s.encode(f):
            c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


_VP9_FAST = {"deadline": "realtime", "cpu-used": "8"}

# name -> write_video kwargs; all 60 frames (2 s at 30 fps) with a keyframe every 10 frames.
VIDEO_CASES: dict[str, dict] = {
    "h264.mp4": {"codec": "libx264"},
    "mpeg4.avi": {"codec": "mpeg4", "bit_rate": 2_000_000},
    "vp9.webm": {"codec": "libvpx-vp9", "codec_options": _VP9_FAST},
    "mjpeg.avi": {"codec": "mjpeg", "pix_fmt": "yuvj420p"},
    "mjpeg_odd.mkv": {"codec": "mjpeg", "pix_fmt": "yuvj444p", "width": 97, "height": 61},
    "ffv1_odd.mkv": {"codec": "ffv1", "pix_fmt": "yuv444p", "width": 97, "height": 61},
}


@pytest.fixture(scope="session")
def video_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``make(name, **write_video_kwargs) -> Path``; each name is written once per session."""
    root = tmp_path_factory.mktemp("videos")
    cache: dict[str, Path] = {}

    def make(name: str, **kwargs: object) -> Path:
        if name not in cache:
            codec = str(kwargs.get("codec", "libx264"))
            if not has_encoder(codec):
                pytest.skip(f"this PyAV/FFmpeg build has no {codec} encoder")
            cache[name] = write_video(root / name, **kwargs)  # type: ignore[arg-type]
        return cache[name]

    return make


@pytest.fixture(scope="session")
def vt() -> SimpleNamespace:
    """Video test tools (helpers are handed out as a fixture so tests never import ``conftest``)."""
    return SimpleNamespace(
        index_frame=index_frame,
        read_index=read_index,
        read_indices=read_indices,
        write_video=write_video,
        write_audio=write_audio,
        has_encoder=has_encoder,
        cases=VIDEO_CASES,
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that takes ``video_case`` once per entry of :data:`VIDEO_CASES`."""
    if "video_case" in metafunc.fixturenames:
        metafunc.parametrize("video_case", list(VIDEO_CASES))
