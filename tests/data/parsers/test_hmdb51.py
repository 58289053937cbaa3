"""HMDB-51 split files (``data/parsers/hmdb51.py``): flags, class names from the files, ``#`` names, bad lines."""

from __future__ import annotations

import os
import re

import pytest

from alt_lightning.data.parsers.common import AnnotationError, check_missing
from alt_lightning.data.parsers.hmdb51 import hmdb51_split_classes, parse_hmdb51_split

#: A real HMDB-51 video name (catch_test_split1.txt): data files have no comment syntax.
HASH_NAME = "#122_Cleaning_Up_The_Beach_In_Chiba__Japan_catch_f_cm_np1_fr_med_0.avi"


def write_hmdb(tmp_path):
    split_dir = tmp_path / "splits"
    split_dir.mkdir()
    (split_dir / "brush_hair_test_split1.txt").write_text(
        "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 \nBlonde_brush_hair_f_nm_np2_ri_med_0.avi 2 \nx_0.avi 0 \n"
    )
    (split_dir / "cartwheel_test_split1.txt").write_text(
        "(Rad)Schlag_die_Bank!_cartwheel_f_cm_np1_le_med_0.avi 2\ny_cartwheel_0.avi 1\n"
    )
    root = tmp_path / "hmdb51"
    return split_dir, root


def test_hmdb51_split_files(tmp_path, touch):
    split_dir, root = write_hmdb(tmp_path)
    touch(root / "cartwheel" / "y_cartwheel_0.avi")
    train = parse_hmdb51_split(split_dir, root, 1, "train", ["brush_hair", "cartwheel"])
    assert [(r.label, r.video_id) for r in train] == [
        (0, "April_09_brush_hair_u_nm_np1_ba_goo_0"),
        (1, "y_cartwheel_0"),
    ]
    assert train[0].path == str(root / "brush_hair" / "April_09_brush_hair_u_nm_np1_ba_goo_0.avi")
    assert train[1].meta["source"] == f"{split_dir / 'cartwheel_test_split1.txt'}:2"
    assert check_missing(train) == [train[0]]
    test = parse_hmdb51_split(split_dir, root, 1, "test")  # class names from the split files
    assert [(r.label, r.meta["label_name"]) for r in test] == [(0, "brush_hair"), (1, "cartwheel")]
    assert test[1].video_id == "(Rad)Schlag_die_Bank!_cartwheel_f_cm_np1_le_med_0"


def test_hmdb51_malformed(tmp_path, raises_at):
    split_dir, root = write_hmdb(tmp_path)
    f = split_dir / "cartwheel_test_split1.txt"
    f.write_text("a.avi 1\nb.avi 3\n")
    with raises_at(f, 2) as e:
        parse_hmdb51_split(split_dir, root, 1, "train")
    assert "0 (unused), 1 (train), 2 (test)" in str(e.value)
    with pytest.raises(AnnotationError, match="split file of class 'catch' not found"):
        parse_hmdb51_split(split_dir, root, 1, "train", ["brush_hair", "catch"])
    with pytest.raises(AnnotationError, match=re.escape("no '*_test_split2.txt' files")):
        parse_hmdb51_split(split_dir, root, 2, "train")


def test_hmdb51_video_names_starting_with_hash_are_videos(tmp_path):
    split_dir, root = tmp_path / "splits", tmp_path / "hmdb51"
    split_dir.mkdir()
    # As in the official catch_test_split1.txt: such names are ordinary lines (trailing space included).
    (split_dir / "catch_test_split1.txt").write_text(f"{HASH_NAME} 1 \n#20_Rhythm_clap_u_nm_np1_fr_goo_0.avi 2 \n")
    train = parse_hmdb51_split(split_dir, root, 1, "train", ["catch"])
    test = parse_hmdb51_split(split_dir, root, 1, "test", ["catch"])
    assert [(os.path.basename(r.path), r.label) for r in train] == [(HASH_NAME, 0)]
    assert [r.video_id for r in test] == ["#20_Rhythm_clap_u_nm_np1_fr_goo_0"]
    assert train[0].meta["source"] == f"{split_dir / 'catch_test_split1.txt'}:1"


def test_hmdb51_split_classes(tmp_path):
    split_dir, _ = write_hmdb(tmp_path)
    assert hmdb51_split_classes(split_dir, 1) == ["brush_hair", "cartwheel"]
    with pytest.raises(AnnotationError, match=re.escape("no '*_test_split3.txt' files")):
        hmdb51_split_classes(split_dir, 3)
    with pytest.raises(AnnotationError, match="split folder not found"):
        hmdb51_split_classes(tmp_path / "nope", 1)
