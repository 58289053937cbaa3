from __future__ import annotations

import gc
import os
import pickle

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alt_lightning.data import decode
from alt_lightning.data.decode import VideoDecodeError, VideoInfo, VideoReader, decode_frames, probe_video

SEQUENTIAL = 10**6  # seek_threshold that never seeks forward
ALWAYS_SEEK = 0


def test_info_of_each_format(video_factory, vt, video_case):
    name = video_case
    kw = vt.cases[name]
    path = video_factory(name, **kw)
    info = probe_video(path)
    assert isinstance(info, VideoInfo)
    assert info.num_frames == 60
    assert info.fps == pytest.approx(30.0)
    assert info.duration_s == pytest.approx(2.0, abs=0.05)
    assert (info.width, info.height) == (kw.get("width", 64), kw.get("height", 48))
    assert info.size_bytes == os.path.getsize(path)
    # webm/mkv headers carry no frame count: it was counted from packets.
    assert info.reported_frames == (None if name.endswith((".webm", ".mkv")) else 60)
    assert info.codec == {"libx264": "h264", "libvpx-vp9": "vp9"}.get(kw["codec"], kw["codec"])


def _keyframes(path) -> list[int]:
    """Presentation indices of keyframes, read independently with plain PyAV."""
    with av.open(str(path)) as c:
        packets = [(p.pts, p.is_keyframe) for p in c.demux(c.streams.video[0]) if p.size]
    return [i for i, (_, key) in enumerate(sorted(packets)) if key]


def test_get_returns_asked_frames_in_order_seek_and_sequential(video_factory, vt, video_case):
    path = video_factory(video_case, **vt.cases[video_case])
    asks = [[5, 2, 9], [45, 12, 33, 12, 59, 0], [7, 7, 58]]
    stats = {}
    for mode, threshold in (("seek", ALWAYS_SEEK), ("sequential", SEQUENTIAL)):
        with VideoReader(path, seek_threshold=threshold, threads=2) as r:
            for ask in asks:
                frames = r.get(ask)
                assert frames.dtype == np.uint8
                assert frames.shape == (len(ask), r.info.height, r.info.width, 3)
                assert vt.read_indices(frames) == ask, (mode, ask)
                assert r.last_issue is None
            stats[mode] = r.stats
    # Sequential: backward jumps only (start of the 2nd and 3rd asks: 9 -> 0 and 59 -> 7), each
    # landing on the last keyframe at or before the target, then decoding forward.
    k7 = max(k for k in _keyframes(path) if k <= 7)
    assert stats["sequential"].seeks == 2
    assert stats["sequential"].frames_decoded == 10 + 60 + (59 - k7)
    # Seeking (keyframe every 10 frames) decodes far fewer frames.
    assert stats["seek"].seeks >= 5
    assert stats["seek"].frames_decoded < stats["sequential"].frames_decoded // 2


@pytest.mark.parametrize("name", ["h264.mp4", "vp9.webm", "mjpeg.avi"])
def test_rate_index_mode_matches_packets_on_constant_frame_rate(video_factory, name, vt):
    path = video_factory(name, **vt.cases[name])
    with VideoReader(path, frame_index="rate", seek_threshold=4) as r:
        frames = r.get([40, 3, 22, 59, 3])
        assert vt.read_indices(frames) == [40, 3, 22, 59, 3]
        assert r.stats.seeks >= 2


@pytest.mark.parametrize("ext", [".mkv", ".mp4"])
def test_variable_frame_rate_uses_timestamps(video_factory, ext, vt):
    # Irregular gaps (17..200 ms) and x264 B-frames (decode order != presentation order).
    gaps = [33, 17, 70, 10, 170, 10, 10, 80, 100, 200, 40, 33, 33, 50, 17, 90, 33, 33, 120, 20] * 2
    pts = list(np.cumsum([0, *gaps[:39]]))
    path = video_factory(f"vfr{ext}", num_frames=40, codec="libx264", gop=8, pts_ms=[int(p) for p in pts])
    with av.open(str(path)) as c:  # the file really is VFR with reordered packets
        s = c.streams.video[0]
        packet_pts = [p.pts for p in c.demux(s) if p.size]
    assert packet_pts != sorted(packet_pts)
    ask = [5, 2, 9, 37, 20, 21, 39]
    for threshold in (ALWAYS_SEEK, SEQUENTIAL):
        with VideoReader(path, seek_threshold=threshold) as r:
            assert r.info.num_frames == 40
            assert vt.read_indices(r.get(ask)) == ask
            assert vt.read_indices(r.get([3, 0])) == [3, 0]


def test_size_argument_resizes_in_the_scaler(video_factory, vt):
    path = video_factory("h264.mp4", **vt.cases["h264.mp4"])
    frames = decode_frames(path, [10, 1], size=(24, 32))
    assert frames.shape == (2, 24, 32, 3)
    assert vt.read_indices(frames) == [10, 1]
    with pytest.raises(ValueError, match="size"):
        VideoReader(path, size=(0, 32))


def test_odd_size_keeps_odd_dimensions(video_factory, vt):
    path = video_factory("ffv1_odd.mkv", **vt.cases["ffv1_odd.mkv"])
    frames = decode_frames(path, [59, 30])
    assert frames.shape == (2, 61, 97, 3)
    # ffv1 is lossless: pixels equal the written ones exactly.
    np.testing.assert_array_equal(frames[0], vt.index_frame(59, 61, 97))


def test_single_frame_clip_and_index_past_the_end(video_factory, vt):
    path = video_factory("one.mp4", num_frames=1)
    with VideoReader(path) as r:
        assert r.info.num_frames == 1
        assert vt.read_indices(r.get([0, 0, 0])) == [0, 0, 0]
        assert r.last_issue is None
        frames = r.get([0, 5])
        assert vt.read_indices(frames) == [0, 0]
        assert r.last_issue is not None and r.last_issue.startswith("index past the end: got 1 of 2 frames")
        assert r.warnings == [r.last_issue]


def test_empty_and_negative_indices(video_factory, vt):
    path = video_factory("h264.mp4", **vt.cases["h264.mp4"])
    with VideoReader(path) as r:
        assert r.get([]).shape == (0, 48, 64, 3)
        with pytest.raises(IndexError, match="must be >= 0, got -1"):
            r.get([3, -1])
    with pytest.raises(ValueError, match=r"VideoReader for .* is closed"):
        r.get([0])


def test_thread_settings_give_identical_frames(video_factory, vt):
    path = video_factory("h264.mp4", **vt.cases["h264.mp4"])
    a = decode_frames(path, [17, 4, 50], threads=1, thread_type="NONE")
    b = decode_frames(path, [17, 4, 50], threads=4, thread_type="AUTO")
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------------------- bad files


@pytest.mark.timeout(30)
def test_missing_empty_and_garbage_files(tmp_path):
    with pytest.raises(VideoDecodeError) as e:
        VideoReader(tmp_path / "nope.mp4")
    assert e.value.reason == "missing file"
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoDecodeError) as e:
        probe_video(tmp_path / "empty.mp4")
    assert e.value.reason == "empty file"
    assert e.value.path == str(tmp_path / "empty.mp4")
    (tmp_path / "garbage.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, np.uint8).tobytes())
    with pytest.raises(VideoDecodeError) as e:
        decode_frames(tmp_path / "garbage.mp4", [0])
    assert e.value.reason == "undecodable"


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("name", "codec"), [("audio.wav", "pcm_s16le"), ("audio.mkv", "aac")])
def test_audio_only_has_no_video_stream(tmp_path, name, codec, vt):
    path = vt.write_audio(tmp_path / name, codec)
    with pytest.raises(VideoDecodeError) as e:
        VideoReader(path)
    assert e.value.reason == "no video stream"


@pytest.mark.timeout(30)
def test_zero_frame_video(tmp_path):
    path = tmp_path / "zero.avi"
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        c.start_encoding()  # header with a video stream, then no packet at all
    with pytest.raises(VideoDecodeError) as e:
        probe_video(path)
    assert e.value.reason == "zero frames"


@pytest.mark.timeout(30)
def test_mp4_cut_in_half_without_index_is_undecodable(video_factory, tmp_path, vt):
    data = video_factory("h264.mp4", **vt.cases["h264.mp4"]).read_bytes()  # moov atom at the end
    path = tmp_path / "half.mp4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoDecodeError) as e:
        decode_frames(path, [0, 1])
    assert e.value.reason == "undecodable"


@pytest.mark.timeout(30)
def test_packets_present_but_none_decodes(vt, tmp_path):
    path = vt.write_video(tmp_path / "ok.mp4", 20)
    data = bytearray(path.read_bytes())
    with av.open(str(path)) as c:
        packets = [(p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size]
    for pos, size in packets:  # wipe every compressed frame, keep the container intact
        data[pos : pos + size] = bytes(size)
    bad = tmp_path / "wiped.mp4"
    bad.write_bytes(bytes(data))
    with VideoReader(bad) as r:
        assert r.info.num_frames == 20
        with pytest.raises(VideoDecodeError) as e:
            r.get([0, 5])
    assert e.value.reason == "undecodable"


def _decodable_frames(path) -> int:
    """Ground truth: frames plain PyAV decodes before the data ends."""
    n = 0
    with av.open(str(path)) as c:
        try:
            for _ in c.decode(c.streams.video[0]):
                n += 1
        except av.FFmpegError:
            pass
    return n


@pytest.mark.timeout(30)
def test_truncated_file_clamps_to_last_decodable_frame(video_factory, tmp_path, vt):
    # moov at the front, so the header still promises 60 frames after the cut.
    src = video_factory("faststart.mp4", codec="libx264", noise_seed=1, container_options={"movflags": "faststart"})
    data = src.read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: len(data) // 2])
    n_ok = _decodable_frames(path)
    assert 5 < n_ok < 55
    for threshold in (ALWAYS_SEEK, SEQUENTIAL):
        with VideoReader(path, seek_threshold=threshold) as r:
            assert r.info.reported_frames == 60
            frames = r.get([0, 3, 59, 57])
            assert frames.shape[0] == 4
            got = vt.read_indices(frames)
            assert got[:2] == [0, 3]
            assert got[2] == got[3] == n_ok - 1
            assert r.last_issue is not None
            assert r.last_issue.startswith("truncated: got 2 of 4 frames")
            assert vt.read_indices(r.get([1])) == [1] and r.last_issue is None


@pytest.mark.timeout(30)
def test_truncated_mkv_counts_the_packets_present(video_factory, tmp_path, vt):
    data = video_factory("noisy.mkv", codec="libx264", noise_seed=2).read_bytes()
    path = tmp_path / "truncated.mkv"
    path.write_bytes(data[: len(data) // 2])
    with VideoReader(path) as r:
        n = r.info.num_frames
        assert r.info.reported_frames is None and 5 < n < 60
        n_ok = _decodable_frames(path)
        frames = r.get([n - 1, 0, 59])
        assert vt.read_indices(frames) == [n_ok - 1, 0, n_ok - 1]
        assert r.last_issue is not None


def test_timeout_is_checked_between_frames(video_factory, monkeypatch, vt):
    path = video_factory("h264.mp4", **vt.cases["h264.mp4"])
    with pytest.raises(VideoDecodeError) as e:
        decode_frames(path, [0], timeout_s=0.0)
    assert e.value.reason == "timeout"
    # A decoder that takes 1 s per frame: the 5 s limit stops it after a few frames, not at the end.
    now = [0.0]

    def slow_clock() -> float:
        now[0] += 1.0
        return now[0]

    monkeypatch.setattr(decode, "_clock", slow_clock)
    with VideoReader(path, timeout_s=5.0, seek_threshold=SEQUENTIAL) as r:
        with pytest.raises(VideoDecodeError) as e:
            r.get([59])
        assert e.value.reason == "timeout"
        assert 1 <= r.stats.frames_decoded < 10


def test_error_is_picklable_and_readable(tmp_path):
    err = VideoDecodeError(tmp_path / "x.mp4", "truncated: got 3 of 8 frames", "detail")
    back = pickle.loads(pickle.dumps(err))
    assert (back.path, back.reason, back.detail) == (str(tmp_path / "x.mp4"), err.reason, "detail")
    assert "x.mp4" in str(back) and "truncated" in str(back)
    assert isinstance(back, RuntimeError)


def test_picks_the_main_video_stream_not_a_cover_picture(tmp_path, vt):
    # Stream 0: a one-frame still (as cover art often is); stream 1: the real 12-frame video.
    path = tmp_path / "cover.mkv"
    with av.open(str(path), "w") as c:
        art = c.add_stream("mjpeg", rate=1)
        art.width, art.height, art.pix_fmt = 64, 48, "yuvj420p"
        v = c.add_stream("libx264", rate=30)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        for p in [*art.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), 200, np.uint8), "rgb24"))]:
            c.mux(p)
        for p in art.encode():
            c.mux(p)
        for i in range(12):
            for p in v.encode(av.VideoFrame.from_ndarray(vt.index_frame(i, 48, 64), format="rgb24")):
                c.mux(p)
        for p in v.encode():
            c.mux(p)
    with VideoReader(path) as r:
        assert (r.info.num_frames, r.info.codec) == (12, "h264")
        assert vt.read_indices(r.get([11, 4])) == [11, 4]


@settings(max_examples=40, deadline=None)
@given(
    asks=st.lists(st.lists(st.integers(0, 59), min_size=1, max_size=8), min_size=1, max_size=4),
    threshold=st.sampled_from([0, 3, 12, 24, SEQUENTIAL]),
    name=st.sampled_from(["h264.mp4", "vp9.webm", "mpeg4.avi"]),
)
def test_any_sequence_of_asks_returns_the_right_frames(video_factory, vt, asks, threshold, name):
    # One reader over several calls: the decoder position carries over between them.
    path = video_factory(name, **vt.cases[name])
    with VideoReader(path, seek_threshold=threshold) as r:
        for ask in asks:
            assert vt.read_indices(r.get(ask)) == ask


# ------------------------------------------------------------------------------------ display matrix

CAN_WRITE_DISPLAY_MATRIX = hasattr(av.video.stream.VideoStream, "set_display_rotation")  # PyAV >= 18


def _write_rotated(path, degrees: int, hflip: bool, num_frames: int = 24) -> np.ndarray:
    """h264 mp4 of 64x48 frames with a display matrix; returns the coded frames as plain PyAV decodes them."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.gop_size = 10
        s.set_display_rotation(degrees, hflip=hflip)  # counter-clockwise degrees, as FFmpeg reads them back
        for i in range(num_frames):
            img = np.zeros((48, 64, 3), np.uint8)
            img[:16, :24] = (230, 30, 30)  # top-left marker: no rotation or mirror maps the image onto itself
            img[30:, 40 + i % 20 :] = (30, 30, 230)
            img[:, :, 1] = (np.arange(64)[None, :] * 3 + np.arange(48)[:, None] + 5 * i) % 256
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    with av.open(str(path)) as c:  # plain decode: PyAV leaves the display matrix to the caller
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@pytest.mark.skipif(not CAN_WRITE_DISPLAY_MATRIX, reason="PyAV < 18 cannot write a display matrix")
@pytest.mark.parametrize(("degrees", "hflip"), [(-90, False), (90, False), (180, False), (0, True), (90, True)])
def test_display_matrix_rotates_and_mirrors_frames(tmp_path, degrees, hflip):
    coded = _write_rotated(tmp_path / "phone.mp4", degrees, hflip)  # [T, 48, 64, 3]
    # np.rot90 turns counter-clockwise for k > 0, the display matrix's sign convention; the mirror comes after.
    shown = np.rot90(coded, k=degrees // 90, axes=(1, 2))
    if hflip:
        shown = shown[:, :, ::-1]
    orientations = [np.rot90(coded[0], k) for k in range(4)]
    orientations += [o[:, ::-1] for o in orientations]
    assert len({o.tobytes() + bytes(o.shape) for o in orientations}) == 8  # a wrong orientation cannot pass
    if degrees == -90 and not hflip:  # a phone held upright: the coded top row is the shown right column
        np.testing.assert_array_equal(shown[:, :, -1], coded[:, 0, :])
    h, w = shown.shape[1:3]
    ask = [20, 3, 11, 0, 23, 3]
    for threshold in (ALWAYS_SEEK, SEQUENTIAL):
        with VideoReader(tmp_path / "phone.mp4", seek_threshold=threshold) as r:
            assert (r.info.height, r.info.width) == (h, w)
            if not hflip:
                assert r.info.rotation == degrees
            frames = r.get(ask)
            assert frames.shape == (len(ask), h, w, 3)
            np.testing.assert_array_equal(frames, shown[ask])
            assert r.get([]).shape == (0, h, w, 3)
    # size= is the shown (height, width): the scaler works in coded orientation, then the frame turns.
    small = decode_frames(tmp_path / "phone.mp4", [5, 17], size=(h // 2, w // 2))
    with av.open(str(tmp_path / "phone.mp4")) as c:  # half the coded 48x64, scaled in coded orientation
        ref = [f.to_ndarray(format="rgb24", height=24, width=32) for f in c.decode(video=0)]
    ref_shown = np.rot90(np.stack(ref), k=degrees // 90, axes=(1, 2))
    if hflip:
        ref_shown = ref_shown[:, :, ::-1]
    np.testing.assert_array_equal(small, ref_shown[[5, 17]])


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through Linux /proc")
def test_closed_reader_leaves_no_decoder_threads(tmp_path, video_factory, vt):
    # A decoded frame that outlives close() in a reference cycle keeps FFmpeg's decoder threads alive until the
    # next garbage collection; DataLoader workers forked meanwhile hang in av.open. The display-matrix lookup at
    # open must not create such a cycle, whether or not get() uses the frame decoded at open.
    paths = [video_factory("h264.mp4", **vt.cases["h264.mp4"])]
    if CAN_WRITE_DISPLAY_MATRIX:
        _write_rotated(tmp_path / "phone.mp4", -90, False, num_frames=12)
        paths.append(tmp_path / "phone.mp4")
    decode_frames(paths[0], [0, 3], threads=2)  # warm-up: FFmpeg may keep a pool thread once it has converted
    gc.disable()
    try:
        before = len(os.listdir("/proc/self/task"))
        for path in paths:
            for ask in ([0, 5], [5], []):
                r = VideoReader(path, threads=2, thread_type="FRAME")
                r.get(ask)
                r.close()
                del r
                assert len(os.listdir("/proc/self/task")) == before, (path, ask)
    finally:
        gc.enable()


def test_no_display_matrix_keeps_coded_orientation(video_factory, vt):
    path = video_factory("h264.mp4", **vt.cases["h264.mp4"])
    with VideoReader(path) as r:
        assert (r.info.width, r.info.height, r.info.rotation) == (64, 48, 0)


# --------------------------------------------------------------------------------- packed B-frames

MEDIA = os.path.join(os.path.dirname(__file__), "media")


def _sequential_frames(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_xvid_packed_b_frames_decode_the_asked_frames():
    # DivX-style packed B-frames (as in many UCF-101 / HMDB-51 files): AVI stores no presentation timestamps and
    # FFmpeg's guessed packet pts do not follow the decoded order, so frame i must be the i-th frame decoded.
    path = os.path.join(MEDIA, "xvid_packed_bframes.avi")
    seq = _sequential_frames(path)
    assert len(seq) == 164
    for i in range(0, 164, 10):  # the indices of the bug report, each from a freshly opened file
        np.testing.assert_array_equal(decode_frames(path, [i])[0], seq[i], err_msg=f"index {i}")
    rng = np.random.default_rng(0)
    for threshold in (ALWAYS_SEEK, SEQUENTIAL):
        with VideoReader(path, seek_threshold=threshold) as r:
            assert r.info.num_frames == 164
            ask = [int(i) for i in rng.permutation(164)[:40]] + [163, 0, 1, 2, 3]
            np.testing.assert_array_equal(r.get(ask), np.stack([seq[i] for i in ask]))
            assert r.last_issue is None and r.warnings == []
