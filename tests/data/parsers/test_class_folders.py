"""A folder per class (``data/parsers/class_folders.py``)."""

from __future__ import annotations

import pytest

from alt_lightning.data.parsers.class_folders import parse_class_folders
from alt_lightning.data.parsers.common import AnnotationError


def test_class_folders(tmp_path, touch):
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
