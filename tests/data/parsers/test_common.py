"""What the parsers share (``data/parsers/common.py``): missing-file checks."""

from __future__ import annotations

from alt_lightning.data.parsers.common import check_missing
from alt_lightning.data.records import VideoRecord


def test_check_missing(tmp_path, touch):
    here = touch(tmp_path / "a.mp4")
    recs = [
        VideoRecord(str(here), 0, "a"),
        VideoRecord(str(tmp_path / "b.mp4"), 1, "b"),
        VideoRecord(str(tmp_path), 0, "d"),
    ]
    assert [r.video_id for r in check_missing(recs)] == ["b", "d"]
