"""Entity corpus runtime: schema checks, canonical hash, loading (``text/corpus.py``)."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from alt_lightning.text import corpus as C

HEADER = {"format": "alt-entity-corpus", "version": "1.0.0", "name": "toy", "description": "A toy corpus."}
GOOD_A = {
    "unit": "aaa bench",
    "kind": "object",
    "description": "A long wooden seat.",
    "sources": {},
}
RACKET = {
    "unit": "tennis racket",
    "kind": "object",
    "description": "An oval strung frame on a long handle.",
    "sources": {"kinetics400": ["playing tennis"]},
}


def dump(obj: object) -> str:
    return json.dumps(obj)


def write_lines(path: Path, lines: list[str], newline: str = "\n") -> Path:
    path.write_bytes((newline.join(lines) + newline).encode("utf-8"))
    return path


def corpus_file(tmp_path: Path, records: list[object], name: str = "c.jsonl") -> Path:
    lines = [dump(HEADER)] + [r if isinstance(r, str) else dump(r) for r in records]
    return write_lines(tmp_path / name, lines)


# ---------------------------------------------------------------------------------------------------------
# Schema validation: one case per kind of malformed record; (records after the header, line, unit, fragment)

BAD_RECORDS = {
    "bad json": (['{"unit": "tennis racket", "kind": '], 3, None, "bad JSON"),
    "not an object": (["[1, 2]"], 3, None, "expected a JSON object"),
    "missing key": (
        [{k: v for k, v in RACKET.items() if k != "description"}],
        3,
        "tennis racket",
        "missing key",
    ),
    "unknown key": ([{**RACKET, "colour": "green"}], 3, "tennis racket", "unknown key(s) ['colour']"),
    "wrong type kind": ([{**RACKET, "kind": 3}], 3, "tennis racket", "'kind' must be a string"),
    "wrong type sources": (
        [{**RACKET, "sources": ["playing tennis"]}],
        3,
        "tennis racket",
        "'sources' must be",
    ),
    "unknown kind": ([{**RACKET, "kind": "thing"}], 3, "tennis racket", "unknown kind 'thing'"),
    "empty unit": ([{**RACKET, "unit": "  "}], 3, "  ", "unit is empty"),
    "long unit": (
        [{**RACKET, "unit": "very big old green tennis racket frame"}],
        3,
        "very big old green tennis racket frame",
        "unit has 7 words",
    ),
    "empty description": ([{**RACKET, "description": ""}], 3, "tennis racket", "description is empty"),
    "long description": (
        [{**RACKET, "description": " ".join(["word"] * 41) + "."}],
        3,
        "tennis racket",
        "description has 41 words",
    ),
    "two sentences": (
        [{**RACKET, "description": "An oval frame. It has strings."}],
        3,
        "tennis racket",
        "more than one sentence",
    ),
    "restates label": (
        [{**RACKET, "unit": "playing tennis court"}],
        3,
        "playing tennis court",
        "restates class label 'playing tennis' of kinetics400",
    ),
    "restates camelcase label": (
        [{**RACKET, "unit": "apply eye makeup", "sources": {"ucf101": ["ApplyEyeMakeup"]}}],
        3,
        "apply eye makeup",
        "restates class label 'ApplyEyeMakeup'",
    ),
    "restates snake_case label": (
        [{**RACKET, "unit": "brush hair", "sources": {"hmdb51": ["brush_hair"]}}],
        3,
        "brush hair",
        "restates class label 'brush_hair'",
    ),
    "duplicate unit": ([RACKET, RACKET], 4, "tennis racket", "duplicate unit (first at line 3)"),
    "non-ascii": (
        [{**RACKET, "description": "An oval frame made in a caf\u00e9."}],
        3,
        "tennis racket",
        "non-ASCII character",
    ),
    "unsorted": ([RACKET, {**GOOD_A, "unit": "ball"}], 4, "ball", "not sorted by unit"),
    "not normalised": ([{**RACKET, "unit": "Tennis Racket"}], 3, "Tennis Racket", "write 'tennis racket'"),
}


@pytest.mark.parametrize("case", list(BAD_RECORDS), ids=list(BAD_RECORDS))
def test_validation_catches_each_malformed_record(tmp_path: Path, case: str) -> None:
    records, line, unit, fragment = BAD_RECORDS[case]
    path = corpus_file(tmp_path, [GOOD_A, *records])
    issues = C.validate_corpus_file(path)
    hits = [i for i in issues if i.line == line and i.unit == unit and fragment in i.message]
    assert hits, f"no issue at line {line} for unit {unit!r} with {fragment!r}; got {[str(i) for i in issues]}"
    assert all(i.line != 2 for i in issues)  # the good record on line 2 is not blamed
    text = str(hits[0])
    assert f"{path}:{line}:" in text
    if unit is not None:
        assert f"unit {unit!r}" in text
    with pytest.raises(C.CorpusError) as err:
        C.load_corpus(path)
    assert text in str(err.value)


@pytest.mark.parametrize(
    ("first_line", "fragment"),
    [
        (dump({**HEADER, "format": "something-else"}), "format is 'something-else'"),
        (dump({k: v for k, v in HEADER.items() if k != "version"}), "missing key(s) ['version']"),
        (dump({**HEADER, "extra": 1}), "unknown key(s) ['extra']"),
        (dump({**HEADER, "name": 7}), "'name' must be a string"),
        (dump(RACKET), "line 1 is a record, not the header"),
        ("", "file is empty or line 1 is blank"),
    ],
    ids=["format", "missing", "unknown", "type", "record first", "blank"],
)
def test_validation_catches_bad_header(tmp_path: Path, first_line: str, fragment: str) -> None:
    path = write_lines(tmp_path / "c.jsonl", [first_line, dump(RACKET)])
    issues = C.validate_corpus_file(path)
    assert any(
        i.line == 1 and i.unit is None and "bad header" in i.message and fragment in i.message for i in issues
    ), [str(i) for i in issues]
    with pytest.raises(C.CorpusError, match="bad header"):
        C.load_corpus(path)


def test_valid_file_loads(tmp_path: Path) -> None:
    path = corpus_file(tmp_path, [GOOD_A, RACKET])
    assert C.validate_corpus_file(path) == []
    corpus = C.load_corpus(path)
    assert (corpus.name, corpus.version, corpus.description) == ("toy", "1.0.0", "A toy corpus.")
    assert corpus.units == ["aaa bench", "tennis racket"]
    assert len(corpus) == 2
    assert corpus.records[1].sources == {"kinetics400": ("playing tennis",)}
    assert corpus.texts()[1] == "a photo of tennis racket. An oval strung frame on a long handle."
    assert corpus.texts("{kind}: {unit}") == ["object: aaa bench", "object: tennis racket"]
    with pytest.raises(ValueError, match="unknown placeholder"):
        corpus.texts("{label}")


def test_load_corpus_unknown_spec() -> None:
    with pytest.raises(FileNotFoundError, match="neither a file nor a shipped corpus"):
        C.load_corpus("no-such-corpus-v9")


def test_readable_label_and_restating() -> None:
    assert C.readable_label("ApplyEyeMakeup") == "apply eye makeup"
    assert C.readable_label("brush_hair") == "brush hair"
    assert C.readable_label("YoYo") == "yo yo"
    assert C.readable_label("passing American football (in game)") == "passing american football (in game)"
    assert C.restates_label("guitar playing", "playing guitar") is False
    assert C.restates_label("playing guitar", "playing guitar") is True
    assert C.restates_label("eye makeup brush", "ApplyEyeMakeup") is False
    assert C.restates_label("apply eye makeup kit", "ApplyEyeMakeup") is True
    assert C.restates_label("backflip", "backflip (human)") is True  # equal to the label without its qualifier
    assert C.restates_label("curling stone", "curling (sport)") is False
    assert C.restates_label("chewing gum", "chew") is False  # whole words only


# ---------------------------------------------------------------------------------------------------------
# Canonical form and hash


def test_hash_is_sha256_of_canonical_lines(tmp_path: Path) -> None:
    corpus = C.load_corpus(corpus_file(tmp_path, [GOOD_A, RACKET]))
    expected_lines = (
        '{"description":"A long wooden seat.","kind":"object","sources":{},"unit":"aaa bench"}\n'
        '{"description":"An oval strung frame on a long handle.","kind":"object",'
        '"sources":{"kinetics400":["playing tennis"]},"unit":"tennis racket"}\n'
    )
    assert corpus.hash == hashlib.sha256(expected_lines.encode()).hexdigest()
    assert corpus.short_hash == corpus.hash[:12]
    # The canonical file is the header plus exactly these lines.
    assert corpus.to_jsonl().split("\n", 1)[1] == expected_lines


def test_hash_ignores_key_order_label_order_spacing_and_header(tmp_path: Path) -> None:
    canonical = C.load_corpus(corpus_file(tmp_path, [GOOD_A, {**RACKET, "sources": {"kinetics400": ["a", "b"]}}]))
    shuffled = [
        '{ "sources" : {},  "description": "A long wooden seat.", "kind": "object", "unit": "aaa bench" }',
        dump(
            {
                "sources": {"kinetics400": ["b", "a", "b"]},
                "kind": "object",
                "unit": "tennis racket",
                "description": RACKET["description"],
            }
        ),
    ]
    other_header = {**HEADER, "name": "renamed", "version": "9.9.9"}
    path = write_lines(tmp_path / "s.jsonl", [dump(other_header), *shuffled])
    assert C.validate_corpus_file(path) == []
    assert C.load_corpus(path).hash == canonical.hash


def test_hash_ignores_record_order() -> None:
    records = [
        C.EntityRecord(f"unit {i}", "object", f"Thing number {i}.", {"kinetics400": ["abseiling"]}) for i in range(20)
    ]
    shuffled = records[:]
    random.Random(0).shuffle(shuffled)
    a = C.Corpus("x", "1.0.0", tuple(records))
    b = C.Corpus("y", "2.0.0", tuple(shuffled))
    assert a.hash == b.hash
    assert a.units == b.units == sorted(r.unit for r in records)
    assert C.records_hash(shuffled) == a.hash
    changed = C.Corpus("x", "1.0.0", (*records[1:], C.EntityRecord("unit 0", "object", "Another thing.")))
    assert changed.hash != a.hash


def test_hash_same_for_crlf_and_lf(tmp_path: Path) -> None:
    lines = [dump(HEADER), dump(GOOD_A), dump(RACKET)]
    lf = write_lines(tmp_path / "lf.jsonl", lines, "\n")
    crlf = write_lines(tmp_path / "crlf.jsonl", lines, "\r\n")
    assert b"\r\n" in crlf.read_bytes()
    assert C.validate_corpus_file(crlf) == []
    assert C.load_corpus(crlf).hash == C.load_corpus(lf).hash
    assert C.load_corpus(crlf) == C.load_corpus(lf)


def test_duplicate_units_refused_by_corpus() -> None:
    r = C.EntityRecord("ball", "object", "A round ball.")
    with pytest.raises(ValueError, match="'ball' appears twice"):
        C.Corpus("x", "1", (r, r))
