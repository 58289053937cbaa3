"""Each parser-backed DataModule on files written in the dataset's official format."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

import pytest

from alt_lightning.cli import main as alt_main
from alt_lightning.data.parsers import AnnotationError
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
    with pytest.raises(AnnotationError, match=r"bad.txt:1: label 400 is outside the 400 classes \(0..399\)"):
        KineticsDataModule(str(kinetics_root), lists={"train": "bad.txt"}).dataset("train")


def _unlabelled_test_csv(root: Path, synthetic_root: Path) -> Path:
    """Kinetics test.csv as published without ground truth (no label column), its two videos on disk."""
    (root / "annotations" / "test.csv").write_text("youtube_id,time_start,time_end,split\nt1,0,10,test\nt2,5,15,test\n")
    videos = _videos(synthetic_root)[-2:]
    _link(videos[0], root / "test" / "t1_000000_000010.mp4")
    _link(videos[1], root / "test" / "t2_000005_000015.mp4")
    return root / "annotations" / "test.csv"


def test_unlabelled_kinetics_test_csv_serves_prediction_only(
    kinetics_root: Path, synthetic_root: Path, tmp_path: Path
) -> None:
    test_csv = _unlabelled_test_csv(kinetics_root, synthetic_root)
    dm = KineticsDataModule(str(kinetics_root), test_split="test", bad_file_log=str(tmp_path / "bad.csv"), **COMMON)
    # Evaluation stops before decoding anything, naming the first row (it used to run the whole test, then crash).
    expected = f"{test_csv}:2: video t1_000000_000010 has no label (and 1 more in the test split), and the test split"
    with pytest.raises(AnnotationError, match=re.escape(expected)):
        dm.setup("test")
    dm.setup("predict")
    assert [(r.video_id, r.label) for r in dm.dataset("predict").records] == [
        ("t1_000000_000010", -1),
        ("t2_000005_000015", -1),
    ]
    batch = next(iter(dm.predict_dataloader()))
    assert batch["label"].tolist() == [-1, -1] and batch["ok"].all()
    # `alt check-data` reads the same unlabelled file: it checks the videos and needs no labels.
    report = tmp_path / "check.csv"
    argv = ["check-data", "--data.class_path=alt_lightning.datamodules.KineticsDataModule"]
    argv += [f"--data.init_args.root={kinetics_root}", "--data.init_args.test_split=test", "--splits", "test"]
    clean = tmp_path / "clean.txt"
    assert alt_main([*argv, "--workers=0", "--progress=false", f"--report={report}", f"--clean-list={clean}"]) == 0
    assert [ln.split(",")[3] for ln in report.read_text().splitlines()[1:]] == ["ok", "ok"]
    # A `path label` list cannot say "no label": no `path -1` lines that the list parser would refuse.
    assert clean.read_text() == ""


def test_kinetics_empty_label_in_a_labelled_csv_stops_fit_naming_the_row(kinetics_root: Path, tmp_path: Path) -> None:
    train = kinetics_root / "annotations" / "train.csv"
    lines = train.read_text().splitlines()
    lines[2] = "," + lines[2].split(",", 1)[1]  # row 3 loses its label ("air drumming")
    train.write_text("\n".join(lines) + "\n")
    dm = KineticsDataModule(str(kinetics_root), bad_file_log=str(tmp_path / "bad.csv"), **COMMON)
    with pytest.raises(AnnotationError, match=re.escape(f"{train}:3: the label is empty, while 3 other rows")):
        dm.setup("fit")


def test_list_labels_outside_the_class_list_stop_before_decoding(synthetic_root: Path, tmp_path: Path) -> None:
    lines = (synthetic_root / "val.txt").read_text().splitlines()
    n = len(class_names(str(synthetic_root / "classes.txt")))
    bad = tmp_path / "val.txt"
    bad.write_text("\n".join([*lines[:2], lines[2].rsplit(" ", 1)[0] + f" {n}", *lines[3:]]) + "\n")
    dm = VideoListDataModule(str(synthetic_root), "classes.txt", val_list=str(bad), **COMMON)
    with pytest.raises(AnnotationError, match=re.escape(f"{bad}:3: label {n} is outside the {n} classes (0..{n - 1})")):
        dm.setup("validate")


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


def test_ucf101_partial_class_index_warns_and_labels_index_it(ucf_root: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        dm = UCFHMDBDataModule("ucf101", 1, str(ucf_root), **COMMON)
    assert dm.class_names == ["ApplyEyeMakeup", "Archery", "YoYo"]
    assert "98 of the 101 UCF-101 classes have no line in classInd.txt: ApplyLipstick, BabyCrawling, " in caplog.text
    assert "and 93 more" in caplog.text and "the 3 classes present" in caplog.text
    assert all(dm.class_names[r.label] == r.meta["label_name"] for r in dm.records("train"))


def test_ucf101_complete_class_index_is_the_full_shipped_list(tmp_path: Path, caplog) -> None:
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    names = class_names("ucf101")
    (lists / "classInd.txt").write_bytes("".join(f"{i} {c}\r\n" for i, c in enumerate(names, 1)).encode())
    (lists / "testlist01.txt").write_bytes(
        b"YoYo/v_YoYo_g01_c01.avi\r\nApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\n"
    )
    with caplog.at_level(logging.WARNING):
        dm = UCFHMDBDataModule("ucf101", 1, str(tmp_path), **COMMON)
    assert dm.class_names == names and not caplog.records
    assert [r.label for r in dm.records("test")] == [100, 0]


# -------------------------------------------------------------------------------------------- HMDB-51


def _hmdb_tree(root: Path, names: list[str]) -> Path:
    """Split files (all three splits) and three videos of each class in ``names``."""
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for split in (1, 2, 3):
        for cls in names:
            flags = [(1, 2, 0), (2, 1, 0), (0, 1, 2)][split - 1]
            lines = [f"{cls}_video_{k}.avi {flag} " for k, flag in enumerate(flags)]  # official trailing space
            (splits / f"{cls}_test_split{split}.txt").write_text("\n".join(lines) + "\n")
    for cls in names:
        for k in range(3):
            _touch(root / cls / f"{cls}_video_{k}.avi")
    return splits


def test_hmdb51_official_split_files(tmp_path: Path, caplog) -> None:
    root = tmp_path / "hmdb51"
    names = class_names("hmdb51")
    splits = _hmdb_tree(root, names)
    with caplog.at_level(logging.WARNING):
        dm = UCFHMDBDataModule("hmdb51", 1, str(root), **COMMON)
    assert dm.class_names == names and dm.dataset_name == "hmdb51"
    assert not caplog.records  # the complete archive: the full official label space, no warning
    train = dm.records("train")
    assert len(train) == 51 and train[0].video_id == "brush_hair_video_0" and train[-1].label == 50
    assert [r.video_id for r in dm.records("test")][:2] == ["brush_hair_video_1", "cartwheel_video_1"]
    assert [r.video_id for r in UCFHMDBDataModule("hmdb51", 3, str(root)).records("test")][:1] == ["brush_hair_video_2"]
    (splits / "wave_test_split1.txt").write_text("wave_video_0.avi 7\n")
    with pytest.raises(AnnotationError, match=r"wave_test_split1.txt:1: expected"):
        dm.records("train")


def test_hmdb51_partial_split_files_warn_and_labels_index_the_classes_present(tmp_path: Path, caplog) -> None:
    root = tmp_path / "hmdb51"
    present = ["wave", "brush_hair", "climb"]  # e.g. only three class archives unpacked
    splits = _hmdb_tree(root, present)
    with caplog.at_level(logging.WARNING):
        dm = UCFHMDBDataModule("hmdb51", 1, str(root), **COMMON)
    assert dm.class_names == ["brush_hair", "climb", "wave"]  # the official (sorted) order
    assert "48 of the 51 HMDB-51 classes have no split file <class>_test_split1.txt: cartwheel, catch, chew, " in (
        caplog.text
    )
    assert "and 43 more" in caplog.text and "unpack the complete testTrainMulti_7030_splits" in caplog.text
    train = dm.records("train")
    assert [(r.label, dm.class_names[r.label], r.video_id) for r in train] == [
        (0, "brush_hair", "brush_hair_video_0"),
        (1, "climb", "climb_video_0"),
        (2, "wave", "wave_video_0"),
    ]
    assert all(dm.class_names[r.label] == r.meta["label_name"] for r in dm.records("test"))
    # A split file of a class HMDB-51 does not have joins the label space, named in the warning.
    (splits / "juggling_test_split1.txt").write_text("juggling_video_0.avi 1 \n")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        dm = UCFHMDBDataModule("hmdb51", 1, str(root), **COMMON)
    assert dm.class_names == ["brush_hair", "climb", "wave", "juggling"]
    assert "1 classes are not HMDB-51's: juggling" in caplog.text
    assert dm.records("train")[-1].label == 3


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
