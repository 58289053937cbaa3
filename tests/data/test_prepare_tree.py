"""Dataset preparation (``alt_lightning.data.prepare``): paths, sizes, keyframes, frames, picture, resume, failures.

The source tree holds index videos (each frame shows its number as 8 blocks, see ``conftest.py``), so the test reads
back which source frame every prepared frame shows, without sharing code with the preparation.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import av
import numpy as np
import pytest

from alt_lightning.data.decode import VideoReader
from alt_lightning.data.prepare import PrepareError, PrepareSettings, check_roots, prepare_tree, target_size

CAN_WRITE_DISPLAY_MATRIX = hasattr(av.video.stream.VideoStream, "set_display_rotation")  # PyAV >= 18
SHORT = 32
GOP = 8
SETTINGS = PrepareSettings(short_side=SHORT, gop=GOP)


def _write_rotated(path: Path, vt, num_frames: int = 24) -> None:
    """64x48 coded index frames shown turned by -90 degrees (a phone held upright): shown 48 wide, 64 high."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.set_display_rotation(-90)
        for i in range(num_frames):
            img = vt.index_frame(i, 48, 64)
            img[:12, :12] = (230, 30, 30)  # a corner marker: any wrong turn or mirror moves it
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _write_with_audio(path: Path, vt, num_frames: int = 30) -> None:
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=30)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("pcm_s16le", rate=8000)
        for i in range(num_frames):
            for p in v.encode(av.VideoFrame.from_ndarray(vt.index_frame(i, 48, 64), format="rgb24")):
                c.mux(p)
        f = av.AudioFrame.from_ndarray(np.zeros((1, 8000), np.int16), format="s16", layout="mono")
        f.sample_rate = 8000
        for p in [*a.encode(f), *a.encode()]:
            c.mux(p)
        for p in v.encode():
            c.mux(p)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, vt) -> Path:
    """A dataset root: videos in sub-folders (h264 with B-frames, rotated, VP9 webm, full-range MJPEG AVI, with audio),
    a truncated file, a broken and an empty one, and annotation files."""
    root = tmp_path_factory.mktemp("prepare_source")
    for sub in ("clips/a", "clips/b/c"):
        (root / sub).mkdir(parents=True)
    vt.write_video(root / "clips/a/h264.mp4", 60, gop=30, codec_options={"bf": "2"})
    vt.write_video(root / "clips/b/mjpeg.avi", 30, codec="mjpeg", pix_fmt="yuvj420p")
    if vt.has_encoder("libvpx-vp9"):
        vt.write_video(root / "clips/b/c/vp9.webm", 30, codec="libvpx-vp9", codec_options={"deadline": "realtime"})
    if CAN_WRITE_DISPLAY_MATRIX:
        _write_rotated(root / "clips/a/phone.mp4", vt)
    _write_with_audio(root / "clips/b/audio.mkv", vt)
    # moov first, so the header promises 60 frames that the cut file cannot deliver
    full = vt.write_video(root / "full.mp4", 60, noise_seed=1, container_options={"movflags": "faststart"})
    data = full.read_bytes()
    full.unlink()
    (root / "clips/truncated.mp4").write_bytes(data[: len(data) // 2])
    (root / "clips/broken.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes())
    (root / "clips/b/empty.avi").write_bytes(b"")
    (root / "train.txt").write_text("clips/a/h264.mp4 0\nclips/b/mjpeg.avi 1\n")
    (root / "clips/b/notes.csv").write_text("id,name\n0,a\n")
    return root


def _snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every file under ``root``."""
    return {
        p.relative_to(root).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _videos(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix in (".mp4", ".avi", ".webm", ".mkv")}


def _decodable(path: Path) -> int:
    """Frames a plain sequential PyAV decode yields (stops at the first error)."""
    n = 0
    with av.open(str(path)) as c:
        try:
            for _ in c.decode(video=0):
                n += 1
        except av.FFmpegError:
            pass
    return n


def _keyframes(path: Path) -> list[int]:
    """Stored positions of keyframe packets (no B-frames: stored order is shown order)."""
    with av.open(str(path)) as c:
        packets = [p for p in c.demux(c.streams.video[0]) if p.size]
    return [i for i, p in enumerate(packets) if p.is_keyframe]


@pytest.fixture(scope="module")
def prepared(source: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, dict]:
    """The source prepared once in 2 processes: (out root, report, source snapshot taken before)."""
    before = _snapshot(source)
    out = tmp_path_factory.mktemp("prepared") / "out"
    seen = []
    report = prepare_tree(source, out, SETTINGS, workers=2, on_result=seen.append)
    assert len(seen) == len(report.results)
    return out, report, before


def test_relative_paths_names_and_other_files_are_kept(source: Path, prepared) -> None:
    out, report, _ = prepared
    status = {r.path: r.status for r in report.results}
    assert set(status) == _videos(source)
    assert {p for p, s in status.items() if s != "failed"} == _videos(out)
    assert (out / "train.txt").read_text() == (source / "train.txt").read_text()
    assert (out / "clips/b/notes.csv").read_text() == "id,name\n0,a\n"
    assert not list(out.rglob("*.tmp"))  # no temporary file left behind


def test_outputs_have_the_short_side_the_gop_and_no_audio(source: Path, prepared) -> None:
    out, report, _ = prepared
    for r in report.results:
        if r.status == "failed":
            continue
        with VideoReader(source / r.path) as a, VideoReader(out / r.path) as b:
            shown = (a.info.width, a.info.height)
            got = (b.info.width, b.info.height)
            assert min(got) == SHORT and b.info.rotation == 0 and b.info.codec == "h264", r.path
            assert abs(got[0] / got[1] - shown[0] / shown[1]) < 0.05, (r.path, shown, got)  # aspect kept
            n = b.info.num_frames
        assert _keyframes(out / r.path) == list(range(0, n, GOP)), r.path
        with av.open(str(out / r.path)) as c:
            assert [s.type for s in c.streams] == ["video"], r.path


def test_every_frame_is_kept_in_order_at_the_source_rate(source: Path, prepared, vt) -> None:
    out, report, _ = prepared
    for r in report.results:
        if r.status != "done" or "phone" in r.path:
            continue
        n = _decodable(source / r.path)
        with VideoReader(out / r.path) as b:
            assert b.info.num_frames == n, r.path
            assert vt.read_indices(b.get(range(n))) == list(range(n)), r.path
            with VideoReader(source / r.path) as a:
                assert abs(b.info.fps - a.info.fps) < 1e-6 and abs(b.info.duration_s - a.info.duration_s) < 0.05


@pytest.mark.skipif(not CAN_WRITE_DISPLAY_MATRIX, reason="PyAV < 18 cannot write a display matrix")
def test_rotated_video_is_written_upright_with_the_same_picture(source: Path, prepared) -> None:
    out, _, _ = prepared
    with VideoReader(out / "clips/a/phone.mp4") as b:
        assert (b.info.width, b.info.height, b.info.rotation) == (32, 42, 0)  # shown 48x64 -> 32x42, no matrix
        got = b.get(range(24)).astype(np.int16)
    with VideoReader(source / "clips/a/phone.mp4", size=(42, 32)) as a:  # what the decoder shows, at that size
        want = a.get(range(24)).astype(np.int16)
    assert np.abs(got - want).mean() < 6
    # A picture turned the other way (or mirrored) is far off: the test can tell.
    assert np.abs(got[:, ::-1, ::-1] - want).mean() > 20
    assert np.abs(got[:, :, ::-1] - want).mean() > 20


def test_full_range_source_keeps_its_brightness(source: Path, prepared) -> None:
    out, _, _ = prepared
    with VideoReader(out / "clips/b/mjpeg.avi") as b:
        got = b.get(range(30)).astype(np.int16)
    with VideoReader(source / "clips/b/mjpeg.avi", size=(32, 42)) as a:
        want = a.get(range(30)).astype(np.int16)
    # Within swscale's rounding (2 levels measured); full range read as limited would be ~19 levels darker.
    assert abs(got.mean() - want.mean()) < 3 and np.abs(got - want).mean() < 6


def test_failures_csv_lists_failed_and_partial_videos_with_reasons(source: Path, prepared, vt) -> None:
    out, _, _ = prepared
    with (out / "prepare_failures.csv").open(newline="") as f:
        rows = {r["path"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"clips/broken.mp4", "clips/b/empty.avi", "clips/truncated.mp4"}
    assert rows["clips/broken.mp4"]["status"] == "failed"
    assert rows["clips/broken.mp4"]["reason"].startswith("undecodable")
    assert rows["clips/b/empty.avi"]["status"] == "failed"
    assert rows["clips/b/empty.avi"]["reason"].startswith("empty file")
    assert rows["clips/truncated.mp4"]["status"] == "partial"
    n_ok = _decodable(source / "clips/truncated.mp4")
    assert rows["clips/truncated.mp4"]["reason"].startswith(f"truncated: {n_ok} of the 60 frames the header states")
    assert 5 < n_ok < 55
    with VideoReader(out / "clips/truncated.mp4") as b:  # the decodable frames were written
        assert vt.read_indices(b.get(range(b.info.num_frames))) == list(range(n_ok))


def test_resume_skips_verified_outputs_and_redoes_damaged_ones(source: Path, prepared) -> None:
    out, _, before = prepared
    first = _snapshot(out)
    damaged = out / "clips/b/mjpeg.avi"
    damaged.write_bytes(damaged.read_bytes()[:300])  # an output cut short (e.g. copied by hand and interrupted)
    report = prepare_tree(source, out, SETTINGS, workers=0)
    status = {r.path: (r.status, r.reason) for r in report.results}
    assert status["clips/b/mjpeg.avi"][0] == "done"
    assert status["clips/b/mjpeg.avi"][1].startswith("existing output redone: does not decode")
    assert status["clips/truncated.mp4"][0] == "partial"  # still listed as damaged, though not re-encoded
    assert status["clips/broken.mp4"][0] == "failed"  # retried, failed again
    skipped = {p for p, (s, _) in status.items() if s == "skipped"}
    assert skipped == _videos(out) - {"clips/b/mjpeg.avi", "clips/truncated.mp4"}
    after = _snapshot(out)
    for rel in skipped | {"clips/truncated.mp4"}:
        assert after[rel] == first[rel], rel  # neither rewritten nor touched
    rows = list(csv.DictReader((out / "prepare_failures.csv").open(newline="")))
    assert {r["path"] for r in rows} == {"clips/broken.mp4", "clips/b/empty.avi", "clips/truncated.mp4"}
    assert _snapshot(source) == before  # the source never changed (contents and mtimes)


def test_other_settings_on_the_same_output_are_refused_unless_overwriting(source: Path, prepared) -> None:
    out, _, _ = prepared
    with pytest.raises(PrepareError, match=r"gop: 8 -> 16.*--overwrite"):
        prepare_tree(source, out, PrepareSettings(short_side=SHORT, gop=16))


def test_frame_rate_conversion_keeps_the_duration(source: Path, tmp_path: Path, vt) -> None:
    src = tmp_path / "src"
    src.mkdir()
    vt.write_video(src / "v.mp4", 60)  # 30 fps, 2 s
    report = prepare_tree(src, tmp_path / "out", PrepareSettings(short_side=SHORT, gop=GOP, fps=15), others="skip")
    assert [(r.path, r.status, r.frames) for r in report.results] == [("v.mp4", "done", 30)]
    with VideoReader(tmp_path / "out/v.mp4") as b:
        assert b.info.fps == 15 and b.info.num_frames == 30
        # output frame k at k/15 s shows the source frame at that time: 2k
        assert vt.read_indices(b.get(range(30))) == [2 * k for k in range(30)]


def test_overlapping_roots_are_refused(tmp_path: Path) -> None:
    (tmp_path / "data/k400").mkdir(parents=True)
    for out in ("data/k400", "data/k400/prepared", "data"):
        with pytest.raises(PrepareError):
            check_roots(tmp_path / "data/k400", tmp_path / out)
    assert check_roots(tmp_path / "data/k400", tmp_path / "data/k400_256")[1] == (tmp_path / "data/k400_256").resolve()
    with pytest.raises(PrepareError, match="inside the source"):
        prepare_tree(tmp_path / "data/k400", tmp_path / "out", failures_csv=tmp_path / "data/k400/f.csv")
    assert not (tmp_path / "out").exists()


def test_symlink_and_skip_for_other_files(source: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.txt").write_text("x 0\n")
    prepare_tree(src, tmp_path / "linked", SETTINGS, others="symlink")
    assert (tmp_path / "linked/train.txt").resolve() == (src / "train.txt").resolve()
    prepare_tree(src, tmp_path / "none", SETTINGS, others="skip")
    assert not (tmp_path / "none/train.txt").exists()


@pytest.mark.parametrize(
    ("size", "short", "upscale", "expected"),
    [
        ((1920, 1080), 256, False, (456, 256)),  # 455.1 -> even
        ((1080, 1920), 256, False, (256, 456)),
        ((340, 256), 256, False, (340, 256)),
        ((320, 240), 256, False, (320, 240)),  # smaller: kept
        ((320, 240), 256, True, (342, 256)),
        ((97, 61), 256, False, (96, 60)),  # odd sides: the nearest even (halves to even, as round() does)
    ],
)
def test_target_size(size, short, upscale, expected) -> None:
    assert target_size(*size, short, upscale) == expected


def test_bad_settings_are_refused() -> None:
    for kwargs in ({"short_side": 255}, {"gop": 0}, {"fps": 0.0}, {"crf": 60}, {"preset": "quick"}):
        with pytest.raises(PrepareError):
            PrepareSettings(**kwargs)


def test_a_subset_of_the_videos_can_be_prepared(source: Path, tmp_path: Path) -> None:
    report = prepare_tree(source, tmp_path / "out", SETTINGS, videos=["clips/b/mjpeg.avi"], others="skip")
    assert [(r.path, r.status) for r in report.results] == [("clips/b/mjpeg.avi", "done")]
    assert _videos(tmp_path / "out") == {"clips/b/mjpeg.avi"}
    with pytest.raises(PrepareError, match=r"train\.txt: not a video file"):
        prepare_tree(source, tmp_path / "out", SETTINGS, videos=["train.txt"])
