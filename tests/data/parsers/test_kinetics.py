"""Kinetics CSVs (``data/parsers/kinetics.py``): layouts, missing videos, unlabelled test CSVs, bad rows."""

from __future__ import annotations

import os

import pytest

from alt_lightning.data.parsers.common import AnnotationError
from alt_lightning.data.parsers.kinetics import KineticsParse, parse_kinetics_csv

CLASSES = ["abseiling", "air drumming", "passing American football (in game)"]
K_HEADER = "label,youtube_id,time_start,time_end,split\n"


def k_name(yid, a, b):
    return f"{yid}_{a:06d}_{b:06d}.mp4"


def test_kinetics_flat_layout_and_missing_report(tmp_path, touch):
    csv_path = tmp_path / "train.csv"
    csv_path.write_text(
        K_HEADER
        + "abseiling,-3B32lodo2M,59,69,train\n"
        + '"passing American football (in game)",aaa_bbb,12,22,train\n'
        + "\n"
        + "air drumming,gone1,0,10,train\n"
        + "air drumming,gone2,5,15,train\n"
    )
    root = tmp_path / "videos"
    touch(root / k_name("-3B32lodo2M", 59, 69))
    touch(root / k_name("aaa_bbb", 12, 22))
    res = parse_kinetics_csv(csv_path, root, CLASSES, layout="flat")
    assert isinstance(res, KineticsParse)
    assert [(os.path.basename(r.path), r.label) for r in res.records] == [
        ("-3B32lodo2M_000059_000069.mp4", 0),
        ("aaa_bbb_000012_000022.mp4", 2),
    ]
    r0 = res.records[0]
    assert r0.video_id == "-3B32lodo2M_000059_000069"
    assert r0.meta["source"] == f"{csv_path}:2"
    assert (r0.meta["time_start"], r0.meta["time_end"], r0.meta["split"]) == (59, 69, "train")
    assert res.num_rows == 4
    assert [r.video_id for r in res.missing] == ["gone1_000000_000010", "gone2_000005_000015"]
    assert res.missing[0].meta["source"] == f"{csv_path}:5"  # the blank line 4 still counts
    summary = res.summary(max_items=1)
    assert "2 of 4 videos are missing" in summary and "gone1_000000_000010.mp4" in summary
    assert "and 1 more" in summary
    kept = parse_kinetics_csv(csv_path, root, CLASSES, missing="keep")
    assert len(kept.records) == 4 and len(kept.missing) == 2
    with pytest.raises(AnnotationError, match="2 of 4 videos are missing"):
        parse_kinetics_csv(csv_path, root, CLASSES, missing="error")


def test_kinetics_per_class_folders_with_underscores_and_auto(tmp_path, touch):
    csv_path = tmp_path / "validate.csv"
    csv_path.write_text(
        K_HEADER
        + "air drumming,v1,1,11,val\n"
        + "Air_Drumming,v2,2,12,val\n"
        + "abseiling,v3,3,13,train\n"
        + "abseiling,v4,4,14,val\n"
    )
    root = tmp_path / "k400"
    touch(root / "air_drumming" / k_name("v1", 1, 11))
    touch(root / "air_drumming" / k_name("v2", 2, 12))
    touch(root / "abseiling" / k_name("v3", 3, 13))
    touch(root / k_name("v4", 4, 14))  # this one lies flat: only 'auto' finds it
    res = parse_kinetics_csv(csv_path, root, CLASSES, split="validate", layout="per_class")
    assert [r.video_id for r in res.records] == ["v1_000001_000011", "v2_000002_000012"]
    assert res.records[0].path == str(root / "air_drumming" / k_name("v1", 1, 11))
    assert [r.label for r in res.records] == [1, 1]
    assert [r.video_id for r in res.missing] == ["v4_000004_000014"]
    auto = parse_kinetics_csv(csv_path, root, CLASSES)
    assert len(auto.records) == 4 and not auto.missing
    assert auto.records[3].path == str(root / k_name("v4", 4, 14))


def test_kinetics_test_csv_without_labels(tmp_path, touch):
    csv_path = tmp_path / "test.csv"
    csv_path.write_text("youtube_id,time_start,time_end,split\nt1,0,10,test\nt2,30,40,test\n")
    root = tmp_path / "v"
    touch(root / "abseiling" / k_name("t1", 0, 10))
    touch(root / k_name("t2", 30, 40))
    res = parse_kinetics_csv(csv_path, root, CLASSES)
    assert [(r.video_id, r.label) for r in res.records] == [
        ("t1_000000_000010", -1),
        ("t2_000030_000040", -1),
    ]
    assert res.records[0].path == str(root / "abseiling" / k_name("t1", 0, 10))


def test_kinetics_malformed_rows_name_file_and_line(tmp_path, raises_at):
    root = tmp_path / "v"
    root.mkdir()
    bad = tmp_path / "bad.csv"
    bad.write_text(K_HEADER + "abseiling,a,1,11,train\nflying,b,1,11,train\n")
    with raises_at(bad, 3) as e:
        parse_kinetics_csv(bad, root, CLASSES)
    assert "'flying'" in str(e.value) and "class list" in str(e.value)
    bad.write_text(K_HEADER + "abseiling,a,one,11,train\n")
    with raises_at(bad, 2):
        parse_kinetics_csv(bad, root, CLASSES)
    bad.write_text(K_HEADER + "abseiling,a,1,11\n")
    with raises_at(bad, 2) as e:
        parse_kinetics_csv(bad, root, CLASSES)
    assert "4 fields where the header has 5" in str(e.value)
    bad.write_text("label,id,start,end\nabseiling,a,1,11\n")
    with raises_at(bad, 1) as e:
        parse_kinetics_csv(bad, root, CLASSES)
    assert "youtube_id" in str(e.value)
    with pytest.raises(AnnotationError, match="not found"):
        parse_kinetics_csv(tmp_path / "nope.csv", root, CLASSES)
    with pytest.raises(AnnotationError, match="not a folder"):
        parse_kinetics_csv(bad, tmp_path / "no_videos", CLASSES)


def test_an_empty_label_among_labelled_rows_is_an_error(tmp_path, raises_at):
    root = tmp_path / "v"
    root.mkdir()
    csv_path = tmp_path / "train.csv"
    csv_path.write_text(K_HEADER + "abseiling,a,1,11,train\n,b,2,12,train\nair drumming,c,3,13,train\n")
    with raises_at(csv_path, 3) as e:
        parse_kinetics_csv(csv_path, root, CLASSES, missing="keep")
    assert "the label is empty, while 2 other rows are labelled" in str(e.value)
    # Every label empty (a test.csv with an empty label column): no ground truth, label -1.
    csv_path.write_text(K_HEADER + ",a,1,11,test\n,b,2,12,test\n")
    assert [r.label for r in parse_kinetics_csv(csv_path, root, CLASSES, missing="keep").records] == [-1, -1]
