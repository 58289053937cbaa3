"""The ``decoder`` option: torchcodec gives the PyAV reader's frames pixel for pixel (CPU), and fails clearly.

The comparisons skip when torchcodec (an optional extra, which needs FFmpeg's shared libraries on the system) cannot
run here; the checks of the option itself (names, the early error, CUDA refused in workers) always run.
"""

from __future__ import annotations

import numpy as np
import pytest

from alt_lightning.data.dataset import SamplingConfig, VideoDataset
from alt_lightning.data.decode import DecoderSetupError, VideoDecodeError, VideoReader
from alt_lightning.data.readers import check_decoder, open_video
from alt_lightning.data.records import VideoRecord
from alt_lightning.data.torchcodec_reader import TorchCodecReader, torchcodec_available
from alt_lightning.data.transforms import ClipTransform

WHY_NOT = torchcodec_available()
needs_torchcodec = pytest.mark.skipif(WHY_NOT is not None, reason=f"torchcodec cannot run here: {WHY_NOT}")


# ------------------------------------------------------------------------------------ always
def test_unknown_decoders_are_refused() -> None:
    for bad in ("decord", "pyav:cuda", "torchcodec:gpu", ""):
        with pytest.raises(ValueError, match="decoder must be one of"):
            check_decoder(bad)
    check_decoder("pyav")


def test_missing_torchcodec_is_one_clear_error_before_any_decoding(monkeypatch, synthetic_root, tmp_path) -> None:
    import alt_lightning.data.torchcodec_reader as tc

    monkeypatch.setattr(tc, "torchcodec_available", lambda: "torchcodec does not import (ModuleNotFoundError: x)")
    with pytest.raises(DecoderSetupError, match=r"not usable here: torchcodec does not import.*alt-lightning\[torch"):
        check_decoder("torchcodec:cuda")
    record = VideoRecord(str(synthetic_root / "videos/x.mp4"), 0, "x")
    with pytest.raises(DecoderSetupError, match="decoder='torchcodec' is not usable"):  # at construction
        VideoDataset(
            [record], ClipTransform(32, (0, 0, 0), (1, 1, 1)), SamplingConfig(4), train=False, decoder="torchcodec"
        )
    from alt_lightning.datamodules import VideoListDataModule

    dm = VideoListDataModule(
        root=str(synthetic_root), classes="classes.txt", num_workers=0, decoder="torchcodec",
        bad_file_log=str(tmp_path / "bad.csv"),
    )  # fmt: skip
    with pytest.raises(DecoderSetupError):  # the DataModule's own datasets are built with it
        dm.setup("validate")


def test_cuda_decoding_is_refused_inside_dataloader_workers(monkeypatch, synthetic_root) -> None:
    import torch

    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: object())
    path = next((synthetic_root / "videos").rglob("*.mp4"))
    with pytest.raises(DecoderSetupError, match="num_workers=0"):
        TorchCodecReader(path, device="cuda")


# ------------------------------------------------------------------------------------ with torchcodec
@needs_torchcodec
def test_same_frames_as_pyav_pixel_for_pixel(video_factory, vt, video_case) -> None:
    path = video_factory(video_case, **vt.cases[video_case])
    ask = [59, 3, 30, 0, 31, 7, 7, 58]  # any order, repeats, both ends
    with VideoReader(path) as a, open_video(path, "torchcodec") as b:
        assert (b.info.num_frames, b.info.width, b.info.height) == (a.info.num_frames, a.info.width, a.info.height)
        assert b.info.fps == pytest.approx(a.info.fps) and b.info.codec == a.info.codec
        frames = b.get(ask)
        assert frames.dtype == np.uint8 and frames.shape == (8, a.info.height, a.info.width, 3)
        np.testing.assert_array_equal(frames, a.get(ask))
        assert vt.read_indices(frames) == ask


@needs_torchcodec
@pytest.mark.parametrize(("degrees", "hflip"), [(-90, False), (90, False), (180, False), (0, True), (90, True)])
def test_display_matrix_gives_the_same_picture(tmp_path, degrees, hflip) -> None:
    import av

    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.set_display_rotation(degrees, hflip=hflip)
        for i in range(12):
            img = np.zeros((48, 64, 3), np.uint8)
            img[:16, :24] = (230, 30, 30)  # a corner marker: every turn and mirror moves it elsewhere
            img[:, :, 1] = (np.arange(64)[None, :] * 3 + np.arange(48)[:, None] + 5 * i) % 256
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    with VideoReader(path) as a, open_video(path, "torchcodec") as b:
        assert (b.info.width, b.info.height) == (a.info.width, a.info.height)
        np.testing.assert_array_equal(b.get([0, 5, 11]), a.get([0, 5, 11]))


@needs_torchcodec
def test_bad_files_raise_the_pyav_readers_reasons(tmp_path, video_factory, vt) -> None:
    (tmp_path / "broken.mp4").write_bytes(b"no video here" * 100)
    (tmp_path / "empty.mp4").write_bytes(b"")
    for name, reason in (("broken.mp4", "undecodable"), ("empty.mp4", "empty file"), ("absent.mp4", "missing file")):
        with pytest.raises(VideoDecodeError) as e:
            open_video(tmp_path / name, "torchcodec")
        assert e.value.reason == reason
    with open_video(video_factory("h264.mp4", **vt.cases["h264.mp4"]), "torchcodec") as r:
        assert vt.read_indices(r.get([70, 2])) == [59, 2] and r.last_issue.startswith("index past the end")
        with pytest.raises(IndexError, match="must be >= 0, got -1"):
            r.get([3, -1])
    with pytest.raises(ValueError, match=r"TorchCodecReader for .* is closed"):
        r.get([0])


@needs_torchcodec
def test_a_datamodule_with_torchcodec_gives_the_pyav_batches(synthetic_root, tmp_path) -> None:
    import torch

    from alt_lightning.datamodules import VideoListDataModule

    def batch(decoder: str) -> dict:
        dm = VideoListDataModule(
            root=str(synthetic_root), classes="classes.txt", num_frames=4, batch_size=4, num_workers=0, image_size=32,
            test_list="test.txt", decoder=decoder, bad_file_log=str(tmp_path / f"{decoder}.csv"),
        )  # fmt: skip
        dm.setup("test")
        return next(iter(dm.test_dataloader()))

    a, b = batch("pyav"), batch("torchcodec")
    assert a["video_id"] == b["video_id"] and torch.equal(a["video"], b["video"])
