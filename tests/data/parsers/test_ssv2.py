"""Something-Something v2 JSON (``data/parsers/ssv2.py``): labels, templates, line numbers, test.json, bad files."""

from __future__ import annotations

import json
import re

import pytest

from alt_lightning.data.parsers.common import AnnotationError
from alt_lightning.data.parsers.ssv2 import parse_ssv2_json, read_ssv2_labels


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


def test_ssv2_malformed(tmp_path, raises_at):
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


def test_an_ssv2_record_without_template_among_labelled_ones_is_an_error(tmp_path, raises_at):
    labels, train = write_ssv2(tmp_path)
    data = json.loads(train.read_text())
    del data[1]["template"]
    train.write_text(json.dumps(data, indent=4))
    with raises_at(train, 12) as e:
        parse_ssv2_json(labels, train, tmp_path)
    assert "record #1 (video 42326) has no 'template', while 1 other records have one" in str(e.value)
