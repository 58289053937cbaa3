"""``<path> <label>`` lists, ``id,name`` label CSVs and our manifests' header (``data/parsers/lists.py``)."""

from __future__ import annotations

import pytest

from alt_lightning.data.manifests import read_manifest
from alt_lightning.data.parsers.common import AnnotationError
from alt_lightning.data.parsers.lists import MANIFEST_MAGIC, parse_path_label_list, read_label_names_csv

#: A real HMDB-51 video name (catch_test_split1.txt): data files have no comment syntax.
HASH_NAME = "#122_Cleaning_Up_The_Beach_In_Chiba__Japan_catch_f_cm_np1_fr_med_0.avi"


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


def test_label_names_csv_without_header_and_errors(tmp_path, raises_at):
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


def test_path_label_list_malformed_lines(tmp_path, raises_at):
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


def test_path_label_lists_have_no_comments_but_our_manifest_header_is_skipped(tmp_path, raises_at):
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


def test_label_names_csv_has_no_comments(tmp_path, raises_at):
    names = tmp_path / "names.csv"
    names.write_text("id,name\n0,a\n# 1,b\n1,b\n")
    with raises_at(names, 3):
        read_label_names_csv(names)


def test_label_names_csv_refuses_duplicate_names(tmp_path, raises_at):
    names = tmp_path / "names.csv"
    names.write_text("id,name\n0,abseiling\n1,air drumming\n2,abseiling\n")
    with raises_at(names, 4) as e:
        read_label_names_csv(names)
    assert "'abseiling' already given on line 2" in str(e.value)
