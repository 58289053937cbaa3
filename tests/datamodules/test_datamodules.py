"""Each parser-backed DataModule on files written in the dataset's official format."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest

from alt_lightning.data.annotations import AnnotationError
from alt_lightning.datamodules import (
    KineticsDataModule,
    SSv2DataModule,
    UCFHMDBDataModule,
    VideoDataModule,
    VideoListDataModule,
)
from alt_lightning.text.classes import class_names

COMMON = {"num_workers": 0, "num_frames": 4, "batch_size": 2, "image_size": 32, "pin_memory": False}


def _videos(root: Path) -> list[Path]:
    return sorted((root / "videos").rglob("*.mp4"))


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src, dst)


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


# ------------------------------------------------------------------------------------------- Kinetics


@pytest.fixture
def kinetics_root(synthetic_root: Path, tmp_path: Path) -> Path:
    """K400 CVDF layout: train/ flat, val/ in label folders; one training video absent from disk."""
    root = tmp_path / "k400"
    ann = root / "annotations"
    ann.mkdir(parents=True)
    header = "label,youtube_id,time_start,time_end,split\n"
    train = [("abseiling", "aaa", 0, 10), ("air drumming", "bb-b_1", 12, 22), ("abseiling", "ccc", 5, 15)]
    train += [("answering questions", "gone", 0, 10)]  # taken down from YouTube: not on disk
    val = [("air drumming", "vvv", 30, 40), ("answering questions", "www", 0, 10)]
    (ann / "train.csv").write_text(header + "".join(f"{a},{b},{c},{d},train\n" for a, b, c, d in train))
    (ann / "validate.csv").write_text(header + "".join(f'"{a}",{b},{c},{d},validate\n' for a, b, c, d in val))
    videos = iter(_videos(synthetic_root))
    for _, yid, s, e in train[:3]:
        _link(next(videos), root / "train" / f"{yid}_{s:06d}_{e:06d}.mp4")
    for label, yid, s, e in val:
        _link(next(videos), root / "val" / label.replace(" ", "_") / f"{yid}_{s:06d}_{e:06d}.mp4")
    return root


def test_kinetics_reports_missing_videos_and_loads_the_rest(kinetics_root: Path, tmp_path: Path, caplog) -> None:
    dm = KineticsDataModule(str(kinetics_root), bad_file_log=str(tmp_path / "bad.csv"), **COMMON)
    assert dm.class_names == class_names("kinetics400") and dm.num_classes == 400
    assert dm.dataset_name == "kinetics400"
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
    train = dm.dataset("train")
    assert [r.video_id for r in train.records] == ["aaa_000000_000010", "bb-b_1_000012_000022", "ccc_000005_000015"]
    assert [r.label for r in train.records] == [0, 1, 0]
    assert "train: 1 of 4 videos are missing: gone_000000_000010.mp4" in caplog.text
    assert "train.csv:5" in caplog.text  # the annotation line of the missing video
    rows = dm.bad_file_log().rows()
    assert [(r["video_id"], r["reason"], r["action"]) for r in rows] == [
        ("gone_000000_000010", "missing file", "dropped (missing)")
    ]
    # Validation found the label folders ("air_drumming") by itself (layout auto).
    assert [Path(r.path).parent.name for r in dm.dataset("val").records] == ["air_drumming", "answering_questions"]
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape == (2, 4, 3, 32, 32)
    # The field's protocol tests on validate.csv.
    assert [r.video_id for r in dm.records("test")] == [r.video_id for r in dm.records("val")]


def test_kinetics_versions_missing_error_and_lists(kinetics_root: Path, tmp_path: Path) -> None:
    assert KineticsDataModule(str(kinetics_root), version=600, **COMMON).num_classes == 600
    assert KineticsDataModule(str(kinetics_root), version=700, **COMMON).num_classes == 700
    with pytest.raises(ValueError, match="400, 600 or 700"):
        KineticsDataModule(str(kinetics_root), version=500)
    strict = KineticsDataModule(str(kinetics_root), missing="error", bad_file_log=str(tmp_path / "b.csv"), **COMMON)
    with pytest.raises(AnnotationError, match="1 of 4 videos are missing"):
        strict.setup("fit")
    keep = KineticsDataModule(str(kinetics_root), missing="keep", bad_file_log=str(tmp_path / "k.csv"), **COMMON)
    assert len(keep.dataset("train").records) == 4  # kept: training redraws it, evaluation counts it failed
    (kinetics_root / "k400_train.txt").write_text("train/aaa_000000_000010.mp4 0\ntrain/ccc_000005_000015.mp4 399\n")
    lists = KineticsDataModule(str(kinetics_root), lists={"train": "k400_train.txt"}, **COMMON)
    assert [r.label for r in lists.records("train")] == [0, 399]
    (kinetics_root / "bad.txt").write_text("train/aaa_000000_000010.mp4 400\n")
    with pytest.raises(ValueError, match=r"bad.txt:1: label 400 is outside the 400 classes"):
        KineticsDataModule(str(kinetics_root), lists={"train": "bad.txt"}).records("train")


# -------------------------------------------------------------------------------------------- UCF-101


def test_ucf101_official_splits(ucf_root: Path, tmp_path: Path) -> None:
    dm = UCFHMDBDataModule("ucf101", 1, str(ucf_root), bad_file_log=str(tmp_path / "bad.csv"), **COMMON)
    assert dm.class_names == ["ApplyEyeMakeup", "Archery", "YoYo"]  # from classInd.txt
    train, test = dm.records("train"), dm.records("test")
    assert len(train) == 15 and len(test) == 6
    assert [r.label for r in test] == [0, 0, 1, 1, 2, 2]
    assert test[0].video_id == "v_ApplyEyeMakeup_g01_c01"
    assert [r.video_id for r in dm.records("val")] == [r.video_id for r in test]  # no official validation set
    split2 = UCFHMDBDataModule("ucf101", 2, str(ucf_root), **COMMON)
    assert {r.video_id for r in split2.records("test")} != {r.video_id for r in test}
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["video"].shape == (2, 4, 3, 32, 32) and batch["ok"].all()
    with pytest.raises(ValueError, match="split 1, 2 or 3"):
        UCFHMDBDataModule("ucf101", 4, str(ucf_root))


def test_ucf101_without_class_index_uses_the_shipped_list(tmp_path: Path) -> None:
    assert UCFHMDBDataModule("ucf101", 1, str(tmp_path)).class_names == class_names("ucf101")


# -------------------------------------------------------------------------------------------- HMDB-51


def test_hmdb51_official_split_files(tmp_path: Path) -> None:
    root = tmp_path / "hmdb51"
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    names = class_names("hmdb51")
    for split in (1, 2, 3):
        for cls in names:
            flags = [(1, 2, 0), (2, 1, 0), (0, 1, 2)][split - 1]
            lines = [f"{cls}_video_{k}.avi {flag} " for k, flag in enumerate(flags)]  # official trailing space
            (splits / f"{cls}_test_split{split}.txt").write_text("\n".join(lines) + "\n")
    for cls in names:
        for k in range(3):
            _touch(root / cls / f"{cls}_video_{k}.avi")
    dm = UCFHMDBDataModule("hmdb51", 1, str(root), **COMMON)
    assert dm.class_names == names and dm.dataset_name == "hmdb51"
    train = dm.records("train")
    assert len(train) == 51 and train[0].video_id == "brush_hair_video_0" and train[-1].label == 50
    assert [r.video_id for r in dm.records("test")][:2] == ["brush_hair_video_1", "cartwheel_video_1"]
    assert [r.video_id for r in UCFHMDBDataModule("hmdb51", 3, str(root)).records("test")][:1] == ["brush_hair_video_2"]
    (splits / "wave_test_split1.txt").write_text("wave_video_0.avi 7\n")
    with pytest.raises(AnnotationError, match=r"wave_test_split1.txt:1: expected"):
        dm.records("train")


# ------------------------------------------------------------------------------------------------ SSv2


def _write_ssv2(root: Path, prefix: str = "") -> None:
    templates = ["Approaching something with your camera", "Moving something from left to right", "Pushing something"]
    (root / f"{prefix}labels.json").write_text(json.dumps({t: str(i) for i, t in enumerate(templates)}, indent=1))
    train = [
        {
            "id": "78687",
            "label": "moving a cup from left to right",
            "template": "Moving [something] from left to right",
            "placeholders": ["a cup"],
        },
        {"id": "42326", "label": "pushing a pen", "template": "Pushing [something]", "placeholders": ["a pen"]},
    ]
    val = [
        {
            "id": "1",
            "label": "approaching a door with your camera",
            "template": "Approaching [something] with your camera",
            "placeholders": ["a door"],
        }
    ]
    (root / f"{prefix}train.json").write_text(json.dumps(train, indent=2))
    (root / f"{prefix}validation.json").write_text(json.dumps(val, indent=2))


@pytest.mark.parametrize("prefix", ["", "something-something-v2-"])
def test_ssv2_json_annotations_and_no_flip(tmp_path: Path, prefix: str) -> None:
    _write_ssv2(tmp_path, prefix)
    dm = SSv2DataModule(str(tmp_path), **COMMON)
    assert dm.class_names[1] == "Moving something from left to right"
    train = dm.records("train")
    assert [(r.video_id, r.label) for r in train] == [("78687", 1), ("42326", 2)]
    assert train[0].path == str(tmp_path / "20bn-something-something-v2" / "78687.webm")
    assert [r.label for r in dm.records("test")] == [0]  # validation set (test labels are not public)
    assert dm.cfg.flip == 0.0 and dm.transform("train").flip == 0.0  # direction labels
    assert SSv2DataModule(str(tmp_path), flip=0.5).transform("train").flip == 0.5


# ------------------------------------------------------------------------------------------ list + base


def test_list_datamodule_decode_threads_and_missing_report(synthetic_root: Path, tmp_path: Path, caplog) -> None:
    lines = (synthetic_root / "val.txt").read_text().splitlines()
    (tmp_path / "val.txt").write_text("\n".join([*lines, "videos/nowhere one.mp4 1"]) + "\n")
    kw = {**COMMON, "bad_file_log": str(tmp_path / "bad.csv")}
    dm = VideoListDataModule(str(synthetic_root), "classes.txt", val_list=str(tmp_path / "val.txt"), **kw)
    assert dm.class_names[0] == "red square moving right"
    with caplog.at_level(logging.WARNING):
        ds = dm.dataset("val")
    assert len(ds.records) == len(lines) and "1 of 9 videos are missing: nowhere one.mp4" in caplog.text
    assert ds.decode_threads == 0  # main-process decoding: FFmpeg's choice
    assert VideoListDataModule(str(synthetic_root), "classes.txt", num_workers=2).decode_threads == 1
    assert VideoListDataModule(str(synthetic_root), "classes.txt", num_workers=2, decode_threads=3).decode_threads == 3
    csv_names = VideoListDataModule(str(synthetic_root), "label_names.csv")
    assert csv_names.class_names == dm.class_names


def test_base_settings_survive_in_cfg_and_checks() -> None:
    dm = VideoDataModule(num_frames=6, test_clips=3, test_crops=3, image_size=48)
    s = dm.sampling_config("test")
    assert (s.num_frames, s.num_clips, s.num_crops, s.num_views) == (6, 3, 3, 9)
    assert dm.sampling_config("train").num_views == 1
    tf = dm.transform("test")
    assert (tf.size, tf.num_crops, tf.interpolation) == (48, 3, "bicubic")  # CLIP's own resize filter
    for bad in ({"sampling": "random"}, {"test_crops": 2}, {"missing": "ignore"}):
        with pytest.raises(ValueError):
            VideoDataModule(**bad)


@pytest.mark.parametrize("name", ["val.csv", "kinetics-400_val.csv"])
def test_kinetics_finds_other_names_of_the_validation_csv(kinetics_root: Path, tmp_path: Path, name: str) -> None:
    root = tmp_path / "renamed"
    shutil.copytree(kinetics_root, root)
    (root / "annotations" / "validate.csv").rename(root / "annotations" / name)
    dm = KineticsDataModule(str(root), bad_file_log=str(tmp_path / "bad.csv"), **COMMON)
    assert [Path(r.path).parent.name for r in dm.records("val")] == ["air_drumming", "answering_questions"]
