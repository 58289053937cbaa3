"""Reference check of frame-accurate decoding, independent of the package's decoding code.

Every frame index that our samplers produce and our reader returns (seek path included) must equal the frame
at that index of a plain sequential PyAV decode of all frames, pixel for pixel; the frame count the reader
reports must equal the number of frames that decode. The videos are written here with PyAV (plus one Xvid
file with packed B-frames from mmaction2's test data, see tests/data/media/README.md); the writer and the
reference decode share no code with ``alt_lightning``.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from alt_lightning.data.decode import VideoReader, decode_frames
from alt_lightning.data.sampling import dense_indices, segment_indices, view_indices

XVID = Path(__file__).resolve().parents[1] / "data" / "media" / "xvid_packed_bframes.avi"

# Irregular frame gaps in ms (variable frame rate).
_GAPS = [33, 17, 70, 10, 170, 10, 10, 80, 100, 200, 40, 33, 33, 50, 17, 90, 33, 33, 120, 20]
_VFR_PTS = [int(t) for t in np.cumsum([0] + _GAPS * 4)[:80]]

# name -> (frames, codec, pix_fmt, keyframe interval, encoder options, pts in ms or None)
CASES: dict[str, tuple] = {
    # Long GOP: keyframes at 0 and 250 only, 3 B-frames (x264's default), no scene-cut keyframes.
    "h264_gop250.mp4": (300, "libx264", "yuv420p", 250, {"x264-params": "keyint=250:min-keyint=250:scenecut=0"}, None),
    "h264_vfr.mp4": (80, "libx264", "yuv420p", 16, {}, _VFR_PTS),
    "h264_vfr.mkv": (80, "libx264", "yuv420p", 16, {}, _VFR_PTS),
    "mpeg4.avi": (60, "mpeg4", "yuv420p", 12, {}, None),
    "mpeg4_bframes.avi": (60, "mpeg4", "yuv420p", 12, {"bf": "2"}, None),
    "h264_bframes.avi": (60, "libx264", "yuv420p", 12, {}, None),
    "vp9.webm": (60, "libvpx-vp9", "yuv420p", 12, {"deadline": "realtime", "cpu-used": "8"}, None),
    "mjpeg.avi": (40, "mjpeg", "yuvj420p", 1, {}, None),
}


def _image(i: int, h: int = 48, w: int = 64) -> np.ndarray:
    """Blocky noise (8x8-pixel cells), different for every frame and cheap to encode."""
    cells = np.random.default_rng(1000 + i).integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    return np.repeat(np.repeat(cells, 8, axis=0), 8, axis=1)


def _write(path: Path, n: int, codec: str, pix_fmt: str, gop: int, options: dict, pts_ms: list[int] | None) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=30, options=dict(options))
        s.width, s.height, s.pix_fmt = 64, 48, pix_fmt
        s.codec_context.gop_size = gop
        if codec == "mpeg4":
            s.codec_context.bit_rate = 2_000_000
        if pts_ms is not None:
            s.codec_context.time_base = Fraction(1, 1000)
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(_image(i), format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _sequential(path: Path) -> np.ndarray:
    """All frames of the first video stream, in the order a plain decode yields them: uint8 [N, H, W, 3]."""
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])


def _packets(path: Path) -> list[tuple[int | None, int | None, bool]]:
    with av.open(str(path)) as c:
        return [(p.pts, p.dts, p.is_keyframe) for p in c.demux(c.streams.video[0]) if p.size]


def _index_sets(n: int) -> list[list[int]]:
    """Far-apart and backward indices (they force seeks and restarts) and our samplers' clips of several sizes."""
    sets = [
        [n - 1, 0, n // 2, 5, n - 2, n // 3, n // 3 + 9, 1],
        list(range(n - 1, -1, -max(1, n // 7))),
        [n // 2, n // 2 + 1, min(n // 2 + 20, n - 2), n - 1],
    ]
    for t in (8, 32):
        for clips in (1, 3):
            sets += [view_indices(n, t, j, clips, mode="segment") for j in range(clips)]
            sets += [view_indices(n, t, j, clips, mode="dense", stride=2) for j in range(clips)]
        rng = np.random.default_rng(t)
        sets.append(segment_indices(n, t, train=True, rng=rng))
        sets.append(dense_indices(n, t, 4, train=True, rng=rng))
    return sets


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reference_videos")
    out = {"xvid_packed_bframes.avi": XVID}
    for name, (n, codec, pix_fmt, gop, options, pts_ms) in CASES.items():
        try:
            av.Codec(codec, "w")
        except (av.codec.codec.UnknownCodecError, ValueError):
            continue  # this FFmpeg build lacks the encoder: the test of that case skips
        _write(root / name, n, codec, pix_fmt, gop, options, pts_ms)
        out[name] = root / name
    return out


@pytest.mark.parametrize("name", [*CASES, "xvid_packed_bframes.avi"])
def test_every_returned_frame_is_the_sequentially_decoded_frame(videos, name):
    if name not in videos:
        pytest.skip(f"this PyAV/FFmpeg build cannot encode {name}")
    path = videos[name]
    seq = _sequential(path)  # [N, H, W, 3]
    n = len(seq)
    assert len({f.tobytes() for f in seq}) == n  # every frame differs: an off-by-one cannot pass
    packets = _packets(path)
    # The files are what their names say.
    if name in CASES:
        assert n == CASES[name][0]
    if name == "h264_gop250.mp4":
        assert [i for i, (pts, _, key) in enumerate(sorted(packets)) if key] == [0, 250]
    if "bframes" in name or "gop250" in name or "vfr" in name:
        assert any(pts != dts for pts, dts, _ in packets)  # frames are stored out of presentation order
    if "vfr" in name:
        assert len(set(np.diff(sorted(pts for pts, _, _ in packets)))) > 5  # irregular frame gaps

    with VideoReader(path) as r:
        assert r.info.num_frames == n
        assert (r.info.height, r.info.width) == seq.shape[1:3]
    seeks = 0
    for ask in _index_sets(n):
        with VideoReader(path) as r:  # a fresh reader per clip, as the dataset does
            np.testing.assert_array_equal(r.get(ask), seq[ask], err_msg=f"{name} {ask}")
            assert r.last_issue is None, r.last_issue
            seeks += r.stats.seeks
    # One reader for all clips, seeking whenever a keyframe lies between (decoder position carried over).
    with VideoReader(path, seek_threshold=0) as r:
        for ask in _index_sets(n):
            np.testing.assert_array_equal(r.get(ask), seq[ask], err_msg=f"{name} {ask} (always seek)")
            assert r.last_issue is None, r.last_issue
        seeks += r.stats.seeks
    for i in sorted({0, 1, n // 2, n - 1}):
        np.testing.assert_array_equal(decode_frames(path, [i])[0], seq[i], err_msg=f"{name} [{i}]")
    if name.endswith((".mp4", ".mkv", ".webm")) or name in ("mpeg4.avi", "mjpeg.avi"):
        assert seeks > 0  # real timestamps: the seek path was taken (and gave the exact frames)
