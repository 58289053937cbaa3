"""`alt prepare`: the command, its exit status, and a DataModule reading the prepared root with only `root` changed."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import torch

from alt_lightning.cli import main as alt_main
from alt_lightning.data.decode import VideoReader
from alt_lightning.datamodules import VideoListDataModule


def _dm(root: Path) -> VideoListDataModule:
    return VideoListDataModule(
        root=str(root), classes="classes.txt", test_list="test.txt", num_frames=4, batch_size=4, num_workers=0,
        flip=0.0, image_size=32, bad_file_log=str(root.parent / f"{root.name}_bad.csv"),
    )  # fmt: skip


def test_prepared_root_serves_a_datamodule_with_only_the_root_changed(synthetic_root: Path, tmp_path: Path, capsys):
    out = tmp_path / "prepared"
    args = ["prepare", str(synthetic_root), str(out), "--short_side=48", "--gop=4", "--workers=2", "--progress=false"]
    assert alt_main(args) == 0
    printed = capsys.readouterr().out
    assert "44 videos: 44 prepared" in printed and "0 failed" in printed
    assert "other files: 5 copied, 0 already there" in printed  # train/val/test lists, classes.txt, label_names.csv
    raw, prepared = _dm(synthetic_root), _dm(out)
    assert prepared.class_names == raw.class_names
    for split in ("train", "val", "test"):
        a, b = raw.records(split), prepared.records(split)
        assert [(r.video_id, r.label) for r in a] == [(r.video_id, r.label) for r in b]
        assert prepared.missing_records(split, b) == []
        assert all(Path(r.path).is_relative_to(out) for r in b)
    with VideoReader(prepared.records("test")[0].path) as r:
        assert (r.info.width, r.info.height) == (48, 48)  # 64x64 synthetic videos, short side 48
    prepared.setup("test")
    batch = next(iter(prepared.test_dataloader()))
    assert batch["video"].shape == (4, 4, 3, 32, 32) and bool(batch["ok"].all())
    ref = next(iter(_setup(raw).test_dataloader()))
    assert batch["video_id"] == ref["video_id"] and torch.equal(batch["label"], ref["label"])
    # Same clips, seen through a smaller, re-encoded file: close to the raw clips (normalised units).
    assert (batch["video"] - ref["video"]).abs().mean() < 0.1


def _setup(dm: VideoListDataModule) -> VideoListDataModule:
    dm.setup("test")
    return dm


def test_exit_status_failures_and_resume(synthetic_root: Path, tmp_path: Path, capsys):
    src = tmp_path / "src"
    shutil.copytree(synthetic_root / "videos" / "red_square_moving_right", src / "videos")
    (src / "videos" / "zz_broken.mp4").write_bytes(b"not a video at all" * 50)
    out = tmp_path / "out"
    common = ["--short_side=32", "--workers=0", "--progress=false"]
    assert alt_main(["prepare", str(src), str(out), *common]) == 1  # one video failed
    printed = capsys.readouterr().out
    assert "11 prepared" in printed and "1 failed" in printed and "undecodable" in printed
    rows = list(csv.DictReader((out / "prepare_failures.csv").open(newline="")))
    assert [(r["path"], r["status"]) for r in rows] == [("videos/zz_broken.mp4", "failed")]
    assert alt_main(["prepare", str(src), str(out), *common]) == 1
    assert "0 prepared (0 frames), 11 already prepared" in (printed := capsys.readouterr().out)
    assert "other files: 0 copied, 0 already there" in printed  # the source folder holds only videos
    assert alt_main(["prepare", str(src), str(out), "--gop=6", *common]) == 2  # other settings: refused
    assert "gop: 12 -> 6" in capsys.readouterr().out
    assert alt_main(["prepare", str(src), str(src / "prepared"), *common]) == 2
    assert "inside the source" in capsys.readouterr().out and not (src / "prepared").exists()
