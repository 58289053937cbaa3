"""UCF-101 split lists (``data/parsers/ucf101.py``): CRLF files, case-insensitive paths, bad lines."""

from __future__ import annotations

import re

import pytest

from alt_lightning.data.parsers.common import AnnotationError, check_missing
from alt_lightning.data.parsers.ucf101 import parse_ucf101_split, read_ucf101_classes


def write_ucf(tmp_path, touch):
    split_dir = tmp_path / "ucfTrainTestlist"
    split_dir.mkdir()
    # Official files use CRLF line endings.
    (split_dir / "classInd.txt").write_bytes(b"1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n3 YoYo\r\n")
    (split_dir / "trainlist01.txt").write_bytes(
        b"ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\n"
        b"HandstandPushups/v_HandStandPushups_g09_c02.avi 2\r\n"
        b"YoYo/v_YoYo_g10_c03.avi 3\r\n"
    )
    (split_dir / "testlist01.txt").write_bytes(
        b"ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\nHandstandPushups/v_HandStandPushups_g02_c01.avi\r\n"
    )
    root = tmp_path / "UCF-101"
    touch(root / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g08_c01.avi")
    touch(root / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c01.avi")
    # This copy spells the folder with a capital S: the list's path only resolves case-insensitively.
    touch(root / "HandStandPushups" / "v_HandStandPushups_g09_c02.avi")
    touch(root / "HandStandPushups" / "v_HandStandPushups_g02_c01.avi")
    touch(root / "YoYo" / "v_YoYo_g10_c03.avi")
    return split_dir, root


def test_ucf101_train_and_test_lists(tmp_path, touch):
    split_dir, root = write_ucf(tmp_path, touch)
    assert read_ucf101_classes(split_dir) == ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]
    train = parse_ucf101_split(split_dir, root, 1, "train")
    assert [(r.label, r.video_id) for r in train] == [
        (0, "v_ApplyEyeMakeup_g08_c01"),
        (1, "v_HandStandPushups_g09_c02"),
        (2, "v_YoYo_g10_c03"),
    ]
    assert train[1].path == str(root / "HandStandPushups" / "v_HandStandPushups_g09_c02.avi")
    assert check_missing(train) == []
    assert train[0].meta == {
        "source": f"{split_dir / 'trainlist01.txt'}:1",
        "label_name": "ApplyEyeMakeup",
        "group": 8,
    }
    test = parse_ucf101_split(split_dir, root, 1, "test")
    assert [(r.label, r.meta["group"]) for r in test] == [(0, 1), (1, 2)]
    assert check_missing(test) == []


def test_ucf101_malformed(tmp_path, touch, raises_at):
    split_dir, root = write_ucf(tmp_path, touch)
    train = split_dir / "trainlist01.txt"
    train.write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nYoYo/v_YoYo_g10_c03.avi 1\n")
    with raises_at(train, 2) as e:
        parse_ucf101_split(split_dir, root, 1, "train")
    assert "disagrees with folder 'YoYo'" in str(e.value)
    train.write_text("Juggling/v_Juggling_g01_c01.avi 1\n")
    with raises_at(train, 1):
        parse_ucf101_split(split_dir, root, 1, "train")
    train.write_text("v_YoYo_g10_c03.avi 3\n")
    with raises_at(train, 1):
        parse_ucf101_split(split_dir, root, 1, "train")
    (split_dir / "classInd.txt").write_text("1 ApplyEyeMakeup\nHandstandPushups\n")
    with raises_at(split_dir / "classInd.txt", 2):
        read_ucf101_classes(split_dir)
    with pytest.raises(AnnotationError, match=re.escape("testlist02.txt not found")):
        (split_dir / "classInd.txt").write_text("1 ApplyEyeMakeup\n")
        parse_ucf101_split(split_dir, root, 2, "test")
    with pytest.raises(ValueError, match="splits 1, 2, 3"):
        parse_ucf101_split(split_dir, root, 4, "test")


def test_ucf101_index_and_lists_have_no_comments(tmp_path, touch, raises_at):
    split_dir, root = write_ucf(tmp_path, touch)
    (split_dir / "classInd.txt").write_bytes(b"# classes\r\n1 ApplyEyeMakeup\r\n")
    with raises_at(split_dir / "classInd.txt", 1):
        read_ucf101_classes(split_dir)
    (split_dir / "classInd.txt").write_bytes(b"1 ApplyEyeMakeup\r\n2 YoYo\r\n")
    (split_dir / "testlist01.txt").write_bytes(b"YoYo/v_YoYo_g01_c01.avi\r\n#YoYo/v_YoYo_g02_c01.avi\r\n")
    with raises_at(split_dir / "testlist01.txt", 2) as e:  # not skipped: its folder is no class
        parse_ucf101_split(split_dir, root, 1, "test")
    assert "'#YoYo'" in str(e.value)


def test_ucf101_class_index_refuses_duplicates(tmp_path, touch, raises_at):
    split_dir, _ = write_ucf(tmp_path, touch)
    class_ind = split_dir / "classInd.txt"
    class_ind.write_bytes(b"1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n2 YoYo\r\n")
    with raises_at(class_ind, 3) as e:  # id 2 twice would have dropped HandstandPushups silently
        read_ucf101_classes(split_dir)
    assert "id 2 already given to 'HandstandPushups'" in str(e.value)
    class_ind.write_bytes(b"1 ApplyEyeMakeup\r\n2 YoYo\r\n3 YoYo\r\n")
    with raises_at(class_ind, 3):
        read_ucf101_classes(split_dir)
