"""Reference: each official annotation format, written here from its published description, parses as expected.

The fixtures are typed in by hand from the formats' own documentation (DeepMind's Kinetics readme, the UCF101 and
HMDB51 split archives, the Something-Something v2 download, mmaction2's ``VideoDataset`` docstring, X-CLIP's label
CSVs), never produced by this package's writers, and the expected ``(path, label)`` lists are literals: a parser
that drops, reorders, renumbers or misreads a line fails here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from alt_lightning.data.parsers import (
    parse_hmdb51_split,
    parse_kinetics_csv,
    parse_path_label_list,
    parse_ssv2_json,
    parse_ucf101_split,
    read_label_names_csv,
    read_ssv2_labels,
    read_ucf101_classes,
)


def _pairs(records: list, root: Path) -> list[tuple[str, int]]:
    """``(path relative to root with '/', label)`` of each record, in parse order."""
    return [(Path(os.path.relpath(r.path, root)).as_posix(), r.label) for r in records]


def _touch(root: Path, rel: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(b"")


# ------------------------------------------------------------------------------------------- Kinetics
# DeepMind's readme: one row per clip, columns label (lowercase letters, spaces and "'"; held out for the test set),
# youtube_id, time_start, time_end (integer seconds), split; K400 adds is_cc. Downloaders name a clip
# <youtube_id>_<time_start:06d>_<time_end:06d>.mp4. Class ids are positions in the class list.

K_CLASSES = ["abseiling", "air drumming", "massaging person's head", "passing American football (in game)"]


def test_kinetics_csv_with_labels(tmp_path: Path) -> None:
    csv_path = tmp_path / "train.csv"
    csv_path.write_text(
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        "abseiling,---QUuC4vJs,3,13,train,0\n"
        "massaging person's head,-1Fsi7qLyAo,31,41,train,1\n"
        '"passing American football (in game)",-5Bdf1nY2rE,12,22,train,0\n'
        "air drumming,--nQbRBEz2s,104,114,train,0\n"
    )
    root = tmp_path / "train"
    expected = [
        ("---QUuC4vJs_000003_000013.mp4", 0),
        ("-1Fsi7qLyAo_000031_000041.mp4", 2),
        ("-5Bdf1nY2rE_000012_000022.mp4", 3),
        ("--nQbRBEz2s_000104_000114.mp4", 1),
    ]
    for name, _ in expected:
        _touch(root, name)
    parsed = parse_kinetics_csv(csv_path, root, K_CLASSES, layout="flat", missing="error")
    assert _pairs(parsed.records, root) == expected
    assert parsed.num_rows == 4 and parsed.missing == []


def test_kinetics_test_csv_without_labels(tmp_path: Path) -> None:
    csv_path = tmp_path / "test.csv"
    csv_path.write_text("youtube_id,time_start,time_end,split\n--33Lscn6sk,4,14,test\n-0CFE6zMPv4,0,10,test\n")
    root = tmp_path / "test"
    for name in ("--33Lscn6sk_000004_000014.mp4", "-0CFE6zMPv4_000000_000010.mp4"):
        _touch(root, name)
    parsed = parse_kinetics_csv(csv_path, root, K_CLASSES, missing="error")
    assert _pairs(parsed.records, root) == [
        ("--33Lscn6sk_000004_000014.mp4", -1),
        ("-0CFE6zMPv4_000000_000010.mp4", -1),
    ]


# -------------------------------------------------------------------------------------------- UCF-101
# ucfTrainTestlist: classInd.txt "<1-based id> <Class>", trainlistNN.txt "<Class>/<file>.avi <1-based id>",
# testlistNN.txt "<Class>/<file>.avi"; CRLF line ends, as the archive has them (here the last line has none).


def test_ucf101_class_index_and_lists_with_crlf(tmp_path: Path) -> None:
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_bytes(b"1 ApplyEyeMakeup\r\n2 ApplyLipstick\r\n3 Archery\r\n")
    (lists / "trainlist01.txt").write_bytes(
        b"ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\n"
        b"ApplyLipstick/v_ApplyLipstick_g08_c01.avi 2\r\n"
        b"Archery/v_Archery_g08_c01.avi 3\r\n"
        b"ApplyEyeMakeup/v_ApplyEyeMakeup_g25_c07.avi 1"
    )
    (lists / "testlist01.txt").write_bytes(
        b"ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\nArchery/v_Archery_g07_c07.avi\r\n"
    )
    root = tmp_path / "UCF-101"
    assert read_ucf101_classes(lists) == ["ApplyEyeMakeup", "ApplyLipstick", "Archery"]
    assert _pairs(parse_ucf101_split(lists, root, 1, "train"), root) == [
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", 0),
        ("ApplyLipstick/v_ApplyLipstick_g08_c01.avi", 1),
        ("Archery/v_Archery_g08_c01.avi", 2),
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g25_c07.avi", 0),
    ]
    assert _pairs(parse_ucf101_split(lists, root, 1, "test"), root) == [
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", 0),
        ("Archery/v_Archery_g07_c07.avi", 2),
    ]


# -------------------------------------------------------------------------------------------- HMDB-51
# testTrainMulti_7030_splits: <class>_test_split<k>.txt, one "<video>.avi <flag> " line per video of the class
# (trailing space), flag 1 = train, 2 = test, 0 = unused. Names may start with "#" (catch_test_split1.txt).


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_hmdb51_split_files(tmp_path: Path, newline: str) -> None:
    splits = tmp_path / "testTrainMulti_7030_splits"
    splits.mkdir()
    brush = [
        "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 ",
        "Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi 2 ",
        "Brushing_Hair_with_Beth_brush_hair_h_nm_np1_le_goo_0.avi 0 ",
    ]
    catch = [
        "#122_Cleaning_Up_The_Beach_In_Chiba__Japan_catch_f_cm_np1_fr_med_0.avi 1 ",
        "Ball_hochwerfen_-_Rolle_-_Ball_fangen_(Timo_3)_catch_f_cm_np1_ri_med_0.avi 2 ",
        "#20_Rhythm_clap_u_nm_np1_fr_goo_0.avi 2 ",
    ]
    for cls, lines in (("brush_hair", brush), ("catch", catch)):
        (splits / f"{cls}_test_split1.txt").write_bytes(newline.join(lines).encode() + newline.encode())
    root = tmp_path / "hmdb51"
    classes = ["brush_hair", "catch"]
    assert _pairs(parse_hmdb51_split(splits, root, 1, "train", classes), root) == [
        ("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi", 0),
        ("catch/#122_Cleaning_Up_The_Beach_In_Chiba__Japan_catch_f_cm_np1_fr_med_0.avi", 1),
    ]
    assert _pairs(parse_hmdb51_split(splits, root, 1, "test", classes), root) == [
        ("brush_hair/Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi", 0),
        ("catch/Ball_hochwerfen_-_Rolle_-_Ball_fangen_(Timo_3)_catch_f_cm_np1_ri_med_0.avi", 1),
        ("catch/#20_Rhythm_clap_u_nm_np1_fr_goo_0.avi", 1),
    ]


# ---------------------------------------------------------------------------------------------- SSv2
# labels.json: {"<template without brackets>": "<id>"}; train/validation.json: [{"id", "label", "template",
# "placeholders"}]; test.json: [{"id"}] only. The class is the template with "[" and "]" removed; videos <id>.webm.

SSV2_LABELS = (
    '{"Approaching something with your camera": "0", "Holding something next to something": "1", '
    '"Pushing something from left to right": "2"}'
)


def test_ssv2_labels_and_annotation_files(tmp_path: Path) -> None:
    (tmp_path / "labels.json").write_text(SSV2_LABELS)
    (tmp_path / "train.json").write_text(
        '[{"id":"78687","label":"holding potato next to vicks vaporub bottle",'
        '"template":"Holding [something] next to [something]","placeholders":["potato","vicks vaporub bottle"]},\n'
        '{"id":"42326","label":"pushing a pen from left to right",'
        '"template":"Pushing [something] from left to right","placeholders":["a pen"]}]'
    )
    (tmp_path / "validation.json").write_text(
        '[{"id":"74225","label":"approaching a door with your camera",'
        '"template":"Approaching [something] with your camera","placeholders":["a door"]}]'
    )
    (tmp_path / "test.json").write_text('[{"id":"1420"},{"id":"95891"}]')
    root = tmp_path / "20bn-something-something-v2"
    assert read_ssv2_labels(tmp_path / "labels.json") == [
        "Approaching something with your camera",
        "Holding something next to something",
        "Pushing something from left to right",
    ]

    def parse(name: str) -> list[tuple[str, int]]:
        return _pairs(parse_ssv2_json(tmp_path / "labels.json", tmp_path / name, root), root)

    assert parse("train.json") == [("78687.webm", 1), ("42326.webm", 2)]
    assert parse("validation.json") == [("74225.webm", 0)]
    assert parse("test.json") == [("1420.webm", -1), ("95891.webm", -1)]


# ------------------------------------------------------------------------------ path-label list, id,name CSV
# mmaction2's VideoDataset: "each line indicates a sample video with the filepath and label, which are split with a
# whitespace" (no comment syntax: a path starting with "#" is a path). X-CLIP's label CSVs: "id,name" header, then
# one "<0-based id>,<class name>" row per class.


def test_mmaction2_style_list(tmp_path: Path) -> None:
    lst = tmp_path / "train_list.txt"
    lst.write_text(
        "some/path/000.mp4 1\n"
        "some/path/001.mp4 1\n"
        "#122_Cleaning_Up_The_Beach_In_Chiba__Japan_catch_f_cm_np1_fr_med_0.avi 0\n"
        "some/path/002.mp4 2\n"
    )
    root = tmp_path / "videos"
    assert _pairs(parse_path_label_list(lst, root), root) == [
        ("some/path/000.mp4", 1),
        ("some/path/001.mp4", 1),
        ("#122_Cleaning_Up_The_Beach_In_Chiba__Japan_catch_f_cm_np1_fr_med_0.avi", 0),
        ("some/path/002.mp4", 2),
    ]


def test_id_name_label_csv(tmp_path: Path) -> None:
    names = tmp_path / "k400_labels.csv"
    names.write_text("id,name\n0,abseiling\n1,air drumming\n2,answering questions\n3,applauding\n")
    assert read_label_names_csv(names) == ["abseiling", "air drumming", "answering questions", "applauding"]
    lst = tmp_path / "val.txt"
    lst.write_text("air_drumming/a.mp4 1\napplauding/b.mp4 3\n")
    records = parse_path_label_list(lst, tmp_path, label_names_csv=names)
    assert [(r.video_id, r.label, r.meta["label_name"]) for r in records] == [
        ("air_drumming/a.mp4", 1, "air drumming"),
        ("applauding/b.mp4", 3, "applauding"),
    ]
