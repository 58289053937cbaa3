from __future__ import annotations

import json
import os
import re

import pytest

from alt_lightning.data.annotations import (
    MANIFEST_MAGIC,
    AnnotationError,
    KineticsParse,
    check_missing,
    hmdb51_split_classes,
    parse_class_folders,
    parse_hmdb51_split,
    parse_kinetics_csv,
    parse_path_label_list,
    parse_ssv2_json,
    parse_ucf101_split,
    read_label_names_csv,
    read_ssv2_labels,
    read_ucf101_classes,
)
from alt_lightning.data.manifests import read_manifest
from alt_lightning.data.records import VideoRecord


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def raises_at(path, line):
    """pytest.raises for an AnnotationError naming ``path:line``."""
    return pytest.raises(AnnotationError, match=re.escape(f"{path}:{line}:"))


# ----------------------------------------------------------------------------------------- Kinetics

CLASSES = ["abseiling", "air drumming", "passing American football (in game)"]
K_HEADER = "label,youtube_id,time_start,time_end,split\n"


def k_name(yid, a, b):
    return f"{yid}_{a:06d}_{b:06d}.mp4"


def test_kinetics_flat_layout_and_missing_report(tmp_path):
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


def test_kinetics_per_class_folders_with_underscores_and_auto(tmp_path):
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


def test_kinetics_test_csv_without_labels(tmp_path):
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


def test_kinetics_malformed_rows_name_file_and_line(tmp_path):
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


# ------------------------------------------------------------------------------- path-label lists


def test_path_label_list_with_spaces_blank_lines_and_names(tmp_path):
    lst = tmp_path / "train.txt"
    lst.write_text(f"\nabseiling/a.mp4 0\n\nmy videos/clip one.mp4\t2\n{tmp_path}/abs/c.mp4 1\n")
    names = tmp_path / "labels.csv"
    names.write_text('id,name\n1,air drumming\n0,abseiling\n2,"passing American football, in game"\n')
    assert read_label_names_csv(names) == ["abseiling", "air drumming", "passing American football, in game"]
    recs = parse_path_label_list(lst, tmp_path / "root", label_names_csv=names)
    assert [(r.path, r.label, r.video_id) for r in recs] == [
        (str(tmp_path / "root" / "abseiling/a.mp4"), 0, "abseiling/a.mp4"),
        (str(tmp_path / "root" / "my videos/clip one.mp4"), 2, "my videos/clip one.mp4"),
        (f"{tmp_path}/abs/c.mp4", 1, f"{tmp_path}/abs/c.mp4"),
    ]
    assert [r.meta["source"] for r in recs] == [f"{lst}:2", f"{lst}:4", f"{lst}:5"]
    assert recs[1].meta["label_name"] == "passing American football, in game"
    plain = parse_path_label_list(lst)
    assert plain[0].path == "abseiling/a.mp4" and "label_name" not in plain[0].meta


def test_label_names_csv_without_header_and_errors(tmp_path):
    p = tmp_path / "names.csv"
    p.write_text("0,a\n1,b, with comma\n")
    assert read_label_names_csv(p) == ["a", "b, with comma"]
    p.write_text("0,a\n0,b\n")
    with raises_at(p, 2) as e:
        read_label_names_csv(p)
    assert "already given on line 1" in str(e.value)
    p.write_text("0,a\n2,c\n")
    with pytest.raises(AnnotationError, match="id 1 is missing"):
        read_label_names_csv(p)
    p.write_text("id,name\n0,a\nx,b\n")
    with raises_at(p, 3):
        read_label_names_csv(p)
    p.write_text("0,a\n1\n")
    with raises_at(p, 2):
        read_label_names_csv(p)


def test_path_label_list_malformed_lines(tmp_path):
    lst = tmp_path / "l.txt"
    lst.write_text("a.mp4 0\nb.mp4\n")
    with raises_at(lst, 2) as e:
        parse_path_label_list(lst)
    assert "<path> <label>" in str(e.value)
    lst.write_text("a.mp4 0\n\nb.mp4 cat\n")
    with raises_at(lst, 3):
        parse_path_label_list(lst)
    lst.write_text("a.mp4 -1\n")
    with raises_at(lst, 1):
        parse_path_label_list(lst)
    names = tmp_path / "n.csv"
    names.write_text("0,a\n1,b\n")
    lst.write_text("a.mp4 1\nb.mp4 2\n")
    with raises_at(lst, 2) as e:
        parse_path_label_list(lst, label_names_csv=names)
    assert "2 names" in str(e.value)


# ------------------------------------------------------------------------------------------ UCF101


def write_ucf(tmp_path):
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


def test_ucf101_train_and_test_lists(tmp_path):
    split_dir, root = write_ucf(tmp_path)
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


def test_ucf101_malformed(tmp_path):
    split_dir, root = write_ucf(tmp_path)
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


# ------------------------------------------------------------------------------------------ HMDB51


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


def test_hmdb51_split_files(tmp_path):
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


def test_hmdb51_malformed(tmp_path):
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


# ------------------------------------------------------------------------------------------- SSv2


def write_ssv2(tmp_path):
    labels = tmp_path / "labels.json"
    labels.write_text(
        json.dumps(
            {
                "Approaching something with your camera": "0",
                "Holding something next to something": "2",
                "Attaching something to something": "1",
            },
            indent=4,
        )
    )
    train = tmp_path / "train.json"
    train.write_text(
        json.dumps(
            [
                {
                    "id": "78687",
                    "label": "holding potato next to vicks vaporub bottle",
                    "template": "Holding [something] next to [something]",
                    "placeholders": ["potato", "vicks vaporub bottle"],
                },
                {
                    "id": "42326",
                    "label": "approaching a cup with your camera",
                    "template": "Approaching [something] with your camera",
                    "placeholders": ["a cup"],
                },
            ],
            indent=4,
        )
    )
    return labels, train


def test_ssv2_json(tmp_path):
    labels, train = write_ssv2(tmp_path)
    assert read_ssv2_labels(labels) == [
        "Approaching something with your camera",
        "Attaching something to something",
        "Holding something next to something",
    ]
    recs = parse_ssv2_json(labels, train, tmp_path / "videos")
    assert [(r.video_id, r.label) for r in recs] == [("78687", 2), ("42326", 0)]
    assert recs[0].path == str(tmp_path / "videos" / "78687.webm")
    assert recs[0].meta["template"] == "Holding [something] next to [something]"
    assert recs[0].meta["placeholders"] == ["potato", "vicks vaporub bottle"]
    assert recs[0].meta["label_text"] == "holding potato next to vicks vaporub bottle"
    # json.dumps(indent=4): record 1's "id" is on line 3, record 2's on line 12.
    assert [r.meta["source"] for r in recs] == [f"{train}:3", f"{train}:12"]
    test = tmp_path / "test.json"
    test.write_text('[{"id": "1"}, {"id": 2}]')
    assert [(r.video_id, r.label) for r in parse_ssv2_json(labels, test, tmp_path, ext=".mp4")] == [
        ("1", -1),
        ("2", -1),
    ]


def test_ssv2_malformed(tmp_path):
    labels, train = write_ssv2(tmp_path)
    data = json.loads(train.read_text())
    data[1]["template"] = "Juggling [something]"
    train.write_text(json.dumps(data, indent=4))
    with raises_at(train, 12) as e:
        parse_ssv2_json(labels, train, tmp_path)
    assert "'Juggling [something]' of video 42326" in str(e.value)
    train.write_text('[{"id": "1",\n "template": }]')
    with raises_at(train, 2) as e:
        parse_ssv2_json(labels, train, tmp_path)
    assert "invalid JSON" in str(e.value)
    train.write_text('[{"label": "x"}]')
    with pytest.raises(AnnotationError, match="record #0 has no 'id'"):
        parse_ssv2_json(labels, train, tmp_path)
    labels.write_text('{"a": "0", "b": "2"}')
    with pytest.raises(AnnotationError, match=re.escape("0..K-1")):
        read_ssv2_labels(labels)


# ---------------------------------------------------------------------------------- class folders


def test_class_folders(tmp_path):
    root = tmp_path / "data"
    touch(root / "walking" / "b.mp4")
    touch(root / "walking" / "a.MKV")
    touch(root / "walking" / "notes.txt")
    touch(root / "running" / "day1" / "r.avi")
    (root / "sitting").mkdir()
    (root / ".cache").mkdir()
    touch(root / "stray.mp4")
    recs, classes = parse_class_folders(root)
    assert classes == ["running", "sitting", "walking"]
    assert [(r.video_id, r.label) for r in recs] == [
        ("running/day1/r", 0),
        ("walking/a", 2),
        ("walking/b", 2),
    ]
    assert recs[1].path == str(root / "walking" / "a.MKV")
    assert recs[1].meta == {"source": "walking/a.MKV", "label_name": "walking"}
    only_mp4, _ = parse_class_folders(root, exts=("mp4",))
    assert [r.video_id for r in only_mp4] == ["walking/b"]
    with pytest.raises(AnnotationError, match="no class folders"):
        parse_class_folders(root / "sitting")
    with pytest.raises(AnnotationError, match="not a folder"):
        parse_class_folders(root / "nope")


def test_check_missing(tmp_path):
    here = touch(tmp_path / "a.mp4")
    recs = [
        VideoRecord(str(here), 0, "a"),
        VideoRecord(str(tmp_path / "b.mp4"), 1, "b"),
        VideoRecord(str(tmp_path), 0, "d"),
    ]
    assert [r.video_id for r in check_missing(recs)] == ["b", "d"]


# ------------------------------------------------------------------------- data files are data (issue 11)

HASH_NAME = "#122_Cleaning_Up_The_Beach_In_Chiba__Japan_catch_f_cm_np1_fr_med_0.avi"


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


def test_path_label_lists_have_no_comments_but_our_manifest_header_is_skipped(tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text(f"{HASH_NAME} 5\n# clip with spaces.mp4 3\nvideos/a.mp4 2\n")
    recs = parse_path_label_list(lst)
    assert [(r.path, r.label, r.meta["source"]) for r in recs] == [
        (HASH_NAME, 5, f"{lst}:1"),
        ("# clip with spaces.mp4", 3, f"{lst}:2"),
        ("videos/a.mp4", 2, f"{lst}:3"),
    ]
    # A '#' line that is not '<path> <label>' is a malformed line, not a comment.
    lst.write_text("# my list\na.mp4 0\n")
    with raises_at(lst, 1) as e:
        parse_path_label_list(lst)
    assert "'list' is not an integer" in str(e.value)
    # Our manifest: the magic line and the '# key: value' lines after it are its header; then everything is data.
    manifest = tmp_path / "few_shot.txt"
    manifest.write_text(f"{MANIFEST_MAGIC}\n# kind: few-shot\n# sha256: abc\n{HASH_NAME} 0\ncatch/b.avi 0\n")
    recs = parse_path_label_list(manifest)
    assert [(r.path, r.label, r.meta["source"]) for r in recs] == [
        (HASH_NAME, 0, f"{manifest}:4"),
        ("catch/b.avi", 0, f"{manifest}:5"),
    ]
    read = read_manifest(manifest, verify=False)
    assert read.header == {"kind": "few-shot", "sha256": "abc"}
    assert [(e.item, e.label, e.line) for e in read.entries] == [(HASH_NAME, 0, 4), ("catch/b.avi", 0, 5)]
    # A plain list (another project's few-shot list) has no header: its '#' names are entries.
    plain = tmp_path / "train1_few_shot_2.txt"
    plain.write_text(f"{HASH_NAME} 5\nv_YoYo_g01_c01.avi 100\n")
    assert [(e.item, e.label) for e in read_manifest(plain).entries] == [(HASH_NAME, 5), ("v_YoYo_g01_c01.avi", 100)]
    assert read_manifest(plain).header == {}


def test_official_index_files_have_no_comments(tmp_path):
    split_dir, root = write_ucf(tmp_path)
    (split_dir / "classInd.txt").write_bytes(b"# classes\r\n1 ApplyEyeMakeup\r\n")
    with raises_at(split_dir / "classInd.txt", 1):
        read_ucf101_classes(split_dir)
    (split_dir / "classInd.txt").write_bytes(b"1 ApplyEyeMakeup\r\n2 YoYo\r\n")
    (split_dir / "testlist01.txt").write_bytes(b"YoYo/v_YoYo_g01_c01.avi\r\n#YoYo/v_YoYo_g02_c01.avi\r\n")
    with raises_at(split_dir / "testlist01.txt", 2) as e:  # not skipped: its folder is no class
        parse_ucf101_split(split_dir, root, 1, "test")
    assert "'#YoYo'" in str(e.value)
    names = tmp_path / "names.csv"
    names.write_text("id,name\n0,a\n# 1,b\n1,b\n")
    with raises_at(names, 3):
        read_label_names_csv(names)


def test_class_index_and_label_names_refuse_duplicates(tmp_path):
    split_dir, _ = write_ucf(tmp_path)
    class_ind = split_dir / "classInd.txt"
    class_ind.write_bytes(b"1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n2 YoYo\r\n")
    with raises_at(class_ind, 3) as e:  # id 2 twice would have dropped HandstandPushups silently
        read_ucf101_classes(split_dir)
    assert "id 2 already given to 'HandstandPushups'" in str(e.value)
    class_ind.write_bytes(b"1 ApplyEyeMakeup\r\n2 YoYo\r\n3 YoYo\r\n")
    with raises_at(class_ind, 3):
        read_ucf101_classes(split_dir)
    names = tmp_path / "names.csv"
    names.write_text("id,name\n0,abseiling\n1,air drumming\n2,abseiling\n")
    with raises_at(names, 4) as e:
        read_label_names_csv(names)
    assert "'abseiling' already given on line 2" in str(e.value)


def test_an_empty_label_among_labelled_rows_is_an_error(tmp_path):
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


def test_an_ssv2_record_without_template_among_labelled_ones_is_an_error(tmp_path):
    labels, train = write_ssv2(tmp_path)
    data = json.loads(train.read_text())
    del data[1]["template"]
    train.write_text(json.dumps(data, indent=4))
    with raises_at(train, 12) as e:
        parse_ssv2_json(labels, train, tmp_path)
    assert "record #1 (video 42326) has no 'template', while 1 other records have one" in str(e.value)


def test_hmdb51_split_classes(tmp_path):
    split_dir, _ = write_hmdb(tmp_path)
    assert hmdb51_split_classes(split_dir, 1) == ["brush_hair", "cartwheel"]
    with pytest.raises(AnnotationError, match=re.escape("no '*_test_split3.txt' files")):
        hmdb51_split_classes(split_dir, 3)
    with pytest.raises(AnnotationError, match="split folder not found"):
        hmdb51_split_classes(tmp_path / "nope", 1)
