"""Entity corpus: schema checks, canonical hash, build, merge, coverage and the `alt corpus` command."""

from __future__ import annotations

import hashlib
import inspect
import json
import random
from pathlib import Path

import pytest

from alt_lightning.commands.corpus import default_answer_paths, main
from alt_lightning.text import corpus as C

REPO = Path(__file__).resolve().parents[2]
ANSWERS_DIR = REPO / "corpus" / "answers"

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

# Small class lists: "playing tennis" is in two lists, "situp" in a Kinetics list and in HMDB.
LISTS = {
    "kinetics400": ["playing tennis", "situp", "abseiling"],
    "kinetics700": ["playing tennis", "abseiling"],
    "hmdb51": ["situp", "brush_hair"],
    "ucf101": ["ApplyEyeMakeup"],
}


def dump(obj: object) -> str:
    return json.dumps(obj)


def write_lines(path: Path, lines: list[str], newline: str = "\n") -> Path:
    path.write_bytes((newline.join(lines) + newline).encode("utf-8"))
    return path


def corpus_file(tmp_path: Path, records: list[object], name: str = "c.jsonl") -> Path:
    lines = [dump(HEADER)] + [r if isinstance(r, str) else dump(r) for r in records]
    return write_lines(tmp_path / name, lines)


def answer(label: str | None, *entities: tuple[str, str, str]) -> str:
    return dump({"label": label, "entities": [{"unit": u, "kind": k, "description": d} for u, k, d in entities]})


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


# ---------------------------------------------------------------------------------------------------------
# Answers and build


@pytest.fixture
def answer_files(tmp_path: Path) -> list[Path]:
    base = write_lines(tmp_path / "_base.jsonl", [answer(None, ("hand", "body part", "The end of the arm."))])
    kin = write_lines(
        tmp_path / "kin.jsonl",
        [
            answer(
                "playing tennis",
                ("tennis racket", "object", "An oval strung frame."),
                ("Tennis  Ball", "object", "A fuzzy yellow ball."),
                ("hand", "body part", "Not the first."),
            ),
            answer(
                "situp",
                ("exercise mat", "object", "A thin padded mat."),
                ("torso", "body part", "The trunk."),
            ),
        ],
    )
    hmdb = write_lines(
        tmp_path / "hmdb.jsonl",
        [
            answer(
                "situp",
                ("exercise mat", "scene", "A different description."),
                ("knee", "body part", "A joint."),
            ),
            answer(
                "brush_hair",
                ("hairbrush", "object", "A brush with bristles."),
                ("tennis ball", "object", "B."),
            ),
        ],
    )
    return [base, kin, hmdb]


def test_build_assigns_sources_and_merges_duplicates(answer_files: list[Path]) -> None:
    warnings: list[str] = []
    corpus = C.build_corpus(answer_files, LISTS, name="toy", version="0.1.0", description="d", warnings_out=warnings)
    by_unit = {r.unit: r for r in corpus.records}
    assert corpus.units == [
        "exercise mat",
        "hairbrush",
        "hand",
        "knee",
        "tennis ball",
        "tennis racket",
        "torso",
    ]
    # A label in two lists is sourced to both; the base entity keeps its first description.
    assert by_unit["tennis racket"].sources == {
        "kinetics400": ("playing tennis",),
        "kinetics700": ("playing tennis",),
    }
    assert by_unit["hand"].description == "The end of the arm."
    assert by_unit["hand"].sources == {"kinetics400": ("playing tennis",), "kinetics700": ("playing tennis",)}
    # "situp" is in kinetics400 and hmdb51: both answers (two files) land under both datasets.
    assert by_unit["exercise mat"].sources == {"hmdb51": ("situp",), "kinetics400": ("situp",)}
    assert by_unit["knee"].sources == {"hmdb51": ("situp",), "kinetics400": ("situp",)}
    # Units are merged by their normal form; first occurrence fixes kind and description.
    assert by_unit["tennis ball"].description == "A fuzzy yellow ball."
    assert by_unit["tennis ball"].sources == {
        "hmdb51": ("brush_hair",),
        "kinetics400": ("playing tennis",),
        "kinetics700": ("playing tennis",),
    }
    assert by_unit["exercise mat"].kind == "object"
    assert len(warnings) == 1
    assert "'exercise mat' has kind 'scene'" in warnings[0] and "hmdb.jsonl:1" in warnings[0]
    assert "kept 'object'" in warnings[0]


def test_build_is_deterministic_bytes(tmp_path: Path, answer_files: list[Path]) -> None:
    a = C.write_corpus(C.build_corpus(answer_files, LISTS), tmp_path / "a.jsonl")
    b = C.write_corpus(C.build_corpus(answer_files, LISTS), tmp_path / "b.jsonl")
    assert a.read_bytes() == b.read_bytes()
    assert b"\r" not in a.read_bytes()
    assert C.load_corpus(a).hash == C.load_corpus(b).hash == C.build_corpus(answer_files, LISTS).hash
    assert C.validate_corpus_file(a) == []
    # The file order matters only through "first occurrence wins".
    swapped = C.build_corpus([answer_files[0], answer_files[2], answer_files[1]], LISTS)
    assert {r.unit: r.kind for r in swapped.records}["exercise mat"] == "scene"


def test_build_unknown_label_names_file_and_line(tmp_path: Path, answer_files: list[Path]) -> None:
    extra = write_lines(
        tmp_path / "x.jsonl",
        [
            answer("abseiling", ("rope", "object", "A rope.")),
            answer("Playing Tennis", ("net", "object", "A net.")),
        ],
    )
    with pytest.raises(C.CorpusError) as err:
        C.build_corpus([*answer_files, extra], LISTS)
    assert [(i.path, i.line) for i in err.value.issues] == [(str(extra), 2)]
    assert "'Playing Tennis' is in no class list" in str(err.value)
    corpus = C.build_corpus([extra], LISTS, allow_unknown_labels=True, dataset="mine")
    assert {r.unit: r.sources for r in corpus.records} == {
        "net": {"mine": ("Playing Tennis",)},
        "rope": {"kinetics400": ("abseiling",), "kinetics700": ("abseiling",)},
    }
    with pytest.raises(ValueError, match="needs a dataset name"):
        C.build_corpus([extra], LISTS, allow_unknown_labels=True)


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("{not json", "bad JSON"),
        (dump({"label": "situp"}), "missing key(s) ['entities']"),
        (dump({"label": "situp", "entities": [], "x": 1}), "unknown key(s) ['x']"),
        (answer("situp", ("mat", "furniture", "A mat.")), "unknown kind 'furniture'"),
        (answer("playing tennis", ("playing tennis", "motion", "Swings.")), "restates the label"),
        (answer("brush_hair", ("brush hair", "motion", "Strokes.")), "restates the label"),
        (answer("situp", ("mat", "object", "A mat."), ("Mat", "object", "Again.")), "unit listed twice"),
        (answer("situp", ("mat", "object", "A mat. A second sentence.")), "more than one sentence"),
    ],
)
def test_read_answers_errors_name_file_and_line(tmp_path: Path, line: str, fragment: str) -> None:
    path = write_lines(tmp_path / "a.jsonl", [answer("abseiling", ("rope", "object", "A rope.")), line])
    with pytest.raises(C.CorpusError) as err:
        C.read_answers(path)
    assert any(i.line == 2 and fragment in i.message for i in err.value.issues), str(err.value)
    assert f"{path}:2:" in str(err.value)


def test_read_answers_duplicate_label(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.jsonl", [answer("situp", ("mat", "object", "A mat."))] * 2)
    with pytest.raises(C.CorpusError, match=r"a\.jsonl:2: label 'situp' already answered at line 1"):
        C.read_answers(path)


def test_read_answers_normalises_units(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.jsonl", ["", answer("situp", ("  Exercise   Mat ", "object", "A mat."))])
    [a] = C.read_answers(path)
    assert (a.label, a.line, a.entities[0].unit) == ("situp", 2, "exercise mat")


# ---------------------------------------------------------------------------------------------------------
# Merge, coverage, stats, prompts


def test_merge_user_additions(tmp_path: Path, answer_files: list[Path]) -> None:
    base = C.build_corpus(answer_files, LISTS, name="toy", version="1.2.0")
    additions = write_lines(
        tmp_path / "mine.jsonl",
        [
            answer("Yo-yo trick", ("hand", "motion", "Conflicting kind."), ("string toy", "object", "A spool.")),
            answer("nap", ("sofa", "object", "A soft couch."), ("tennis ball", "object", "Ignored description.")),
        ],
    )
    warnings: list[str] = []
    merged = C.merge_corpus(base, [additions], "mydata", ["Yo-yo trick", "nap", "unused"], warnings_out=warnings)
    by_unit = {r.unit: r for r in merged.records}
    assert len(merged) == len(base) + 2
    assert by_unit["string toy"].sources == {"mydata": ("Yo-yo trick",)}
    assert by_unit["hand"].kind == "body part" and by_unit["hand"].description == "The end of the arm."
    assert by_unit["hand"].sources["mydata"] == ("Yo-yo trick",)
    assert by_unit["tennis ball"].description == "A fuzzy yellow ball."
    assert by_unit["tennis ball"].sources["hmdb51"] == ("brush_hair",)  # base sources kept
    assert merged.name == "toy+mydata"
    assert merged.version == f"1.2.0+{merged.hash[:8]}"
    assert len(warnings) == 1 and "'hand' has kind 'motion'" in warnings[0]
    again = C.merge_corpus(
        C.load_corpus(C.write_corpus(merged, tmp_path / "m.jsonl")),
        [additions],
        "mydata",
        ["Yo-yo trick", "nap"],
    )
    assert again.hash == merged.hash and again.name == "toy+mydata" and again.version == merged.version
    with pytest.raises(C.CorpusError, match=r"mine\.jsonl:2: label 'nap' is in no class list \(mydata\)"):
        C.merge_corpus(base, [additions], "mydata", ["Yo-yo trick"])
    with pytest.raises(ValueError, match="letters, digits"):
        C.merge_corpus(base, [additions], "my data", ["nap"])


def test_coverage_and_stats(answer_files: list[Path]) -> None:
    corpus = C.build_corpus(answer_files, LISTS)
    cov = C.coverage(corpus, LISTS)
    assert cov == {
        "kinetics400": {"playing tennis": 3, "situp": 3, "abseiling": 0},
        "kinetics700": {"playing tennis": 3, "abseiling": 0},
        "hmdb51": {"situp": 3, "brush_hair": 2},
        "ucf101": {"ApplyEyeMakeup": 0},
    }
    stats = C.corpus_stats(corpus, LISTS, n_fewest=3)
    assert stats.units == 7
    assert stats.units_per_kind == {
        "object": 4,
        "body part": 3,
        "scene": 0,
        "role": 0,
        "motion": 0,
        "attribute": 0,
    }
    k400 = stats.datasets["kinetics400"]
    assert (k400.classes, k400.covered, k400.min_entities, k400.mean_entities) == (3, 2, 0, 2.0)
    assert k400.fewest == (("abseiling", 0), ("playing tennis", 3), ("situp", 3))
    assert stats.fewest == (
        ("kinetics400", "abseiling", 0),
        ("kinetics700", "abseiling", 0),
        ("ucf101", "ApplyEyeMakeup", 0),
    )


def test_render_prompts() -> None:
    text = C.render_prompts(["ApplyEyeMakeup", 'say "hi"'])
    prompts = text.split(f"\n{C.PROMPT_SEPARATOR}\n")
    assert len(prompts) == 2
    assert 'of a "apply eye makeup" video action?' in prompts[0]
    assert '{"label": "ApplyEyeMakeup", "entities": [{"unit": "...", "kind": "...", "description": "..."}' in prompts[0]
    assert '{"label": "say \\"hi\\"", "entities"' in prompts[1]
    assert "hand, fingers, palm" in prompts[0] and "{" + "label}" not in text


def test_base_answers_cover_canonical_body_parts() -> None:
    [base] = C.read_answers(ANSWERS_DIR / "_base.jsonl")
    assert base.label is None
    assert [e.unit for e in base.entities] == list(C.BODY_PARTS)
    assert {e.kind for e in base.entities} == {"body part"}


# ---------------------------------------------------------------------------------------------------------
# The command


@pytest.fixture
def real_answers(tmp_path: Path) -> list[Path]:
    """Answers for real labels of the shipped class lists (the command builds against them)."""
    base = write_lines(tmp_path / "_base.jsonl", [answer(None, ("hand", "body part", "The end of the arm."))])
    kin = write_lines(
        tmp_path / "kin.jsonl",
        [
            answer(
                "playing tennis",
                ("tennis racket", "object", "An oval strung frame."),
                ("tennis court", "scene", "A flat court with white lines."),
            ),
            answer("situp", ("exercise mat", "object", "A thin padded mat.")),
        ],
    )
    return [base, kin]


def test_cli_build_validate_stats(tmp_path: Path, real_answers: list[Path], capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out" / "toy.jsonl"
    assert main(["build", "--answers", *map(str, real_answers), "--output", str(out), "--name", "toy"]) == 0
    printed = capsys.readouterr().out
    corpus = C.load_corpus(out)
    assert corpus.units == ["exercise mat", "hand", "tennis court", "tennis racket"]
    assert f"4 records from 2 answer file(s), hash {corpus.short_hash}" in printed
    assert main(["build", "--answers", *map(str, real_answers), "--output", str(out), "--name", "toy", "--check"]) == 0
    assert "matches" in capsys.readouterr().out

    assert main(["validate", str(out)]) == 0
    assert f"valid, 4 records, hash {corpus.short_hash}" in capsys.readouterr().out

    assert main(["stats", "--corpus", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Units per kind" in printed and "Coverage per dataset" in printed
    assert "│ object    │     2 │ 50.0% │" in printed
    assert "│ kinetics400 │     400 │       2 │   0 │ 0.01 │" in printed
    assert "│ hmdb51      │      51 │       1 │   0 │ 0.02 │" in printed  # "situp" is an HMDB label too
    assert "The 10 classes with fewest entities" in printed

    # Editing the file by hand: validate names the line and unit and fails; build --check sees the change.
    lines = out.read_text().splitlines()
    lines[2] = lines[2].replace('"kind":"body part"', '"kind":"limb"')
    out.write_text("\n".join(lines) + "\n")
    assert main(["validate", str(out)]) == 1
    printed = capsys.readouterr().out
    assert f"{out}:3: unit 'hand': unknown kind 'limb'" in printed and "1 issue(s)" in printed
    assert main(["stats", "--corpus", str(out)]) == 1
    assert main(["build", "--answers", *map(str, real_answers), "--output", str(out), "--name", "toy", "--check"]) == 1


def test_cli_build_reports_answer_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = write_lines(tmp_path / "bad.jsonl", [answer("no such class", ("mat", "object", "A mat."))])
    assert main(["build", "--answers", str(bad), "--output", str(tmp_path / "o.jsonl")]) == 1
    assert f"{bad}:1: label 'no such class' is in no class list" in capsys.readouterr().out
    assert not (tmp_path / "o.jsonl").exists()


def test_cli_merge_and_template(tmp_path: Path, real_answers: list[Path], capsys: pytest.CaptureFixture) -> None:
    base = tmp_path / "base.jsonl"
    assert main(["build", "--answers", *map(str, real_answers), "--output", str(base)]) == 0
    classes = write_lines(tmp_path / "classes.txt", ["knitting socks", "nap"])
    mine = write_lines(tmp_path / "mine.jsonl", [answer("nap", ("sofa", "object", "A soft couch."))])
    out = tmp_path / "merged.jsonl"
    argv = [
        "merge",
        "--base",
        str(base),
        "--answers",
        str(mine),
        "--dataset",
        "home",
        "--classes",
        str(classes),
    ]
    assert main([*argv, "--output", str(out)]) == 0
    merged = C.load_corpus(out)
    assert merged.name == "alt-entities-v1+home" and len(merged) == 5
    assert "(1 new)" in capsys.readouterr().out
    assert main(["stats", "--corpus", str(out)]) == 0
    assert "│ home (labels seen) │       1 │       1 │   1 │ 1.00 │" in capsys.readouterr().out

    assert main(["template", "--labels", str(classes)]) == 0
    printed = capsys.readouterr().out
    assert printed.count(C.PROMPT_SEPARATOR) == 1 and '"knitting socks"' in printed and '{"label": "nap"' in printed
    assert main(["template", "--dataset", "hmdb51"]) == 0
    assert capsys.readouterr().out.count("video action?") == 51
    assert main(["template"]) == 2  # one of --labels / --dataset is required
    assert main(["validate", str(tmp_path / "missing.jsonl")]) == 1
    assert "neither a file nor a shipped corpus" in capsys.readouterr().out


def test_cli_embed_calls_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    torch = pytest.importorskip("torch")
    from alt_lightning.text import embeddings

    path = C.write_corpus(
        C.Corpus("toy", "1.0.0", (C.EntityRecord("ball", "object", "A round ball."),)), tmp_path / "toy.jsonl"
    )
    calls = []

    def fake(**kwargs: object) -> tuple[object, dict[str, object]]:
        calls.append(kwargs)
        return torch.zeros(1, 64), {"path": str(tmp_path / "entry.pt"), "hit": True}

    real = embeddings.cached_text_embeddings
    monkeypatch.setattr(embeddings, "cached_text_embeddings", fake)
    argv = [
        "embed",
        "--corpus",
        str(path),
        "--model_name",
        "alt-tiny",
        "--cache_dir",
        str(tmp_path),
        "--template",
        "{unit}: {description}",
    ]
    assert main(argv) == 0
    assert calls == [
        {
            "model_name": "alt-tiny",
            "pretrained": None,
            "texts": ["ball: A round ball."],
            "cache_dir": str(tmp_path),
            "return_info": True,
        }
    ]
    inspect.signature(real).bind(**calls[0])  # the real function accepts this call
    printed = capsys.readouterr().out
    assert "embeddings shape: (1, 64)" in printed and "entry.pt" in printed and "cache hit: True" in printed
    assert main([*argv, "--pretrained", "none"]) == 0  # the help's "none: random" spelling
    assert calls[-1]["pretrained"] is None


# ---------------------------------------------------------------------------------------------------------
# The shipped corpus


def _shipped_path() -> Path:
    path = C.shipped_corpus_path()
    if not path.is_file():
        pytest.fail(f"shipped corpus {path} missing: build it with `alt corpus build` from the repository root")
    return path


def test_shipped_corpus_covers_every_class_with_three_entities() -> None:
    _shipped_path()
    corpus = C.load_corpus(C.DEFAULT_CORPUS)
    lists = C.shipped_class_lists()
    assert set(lists) == set(C.SOURCE_DATASETS)
    cov = C.coverage(corpus, lists)
    thin = [(d, label, n) for d, counts in cov.items() for label, n in counts.items() if n < 3]
    assert thin == []
    assert sum(len(v) for v in cov.values()) == 400 + 600 + 700 + 101 + 51 + 174
    assert set(C.BODY_PARTS) <= set(corpus.units)


def test_shipped_corpus_rebuilds_byte_for_byte() -> None:
    path = _shipped_path()
    if not (ANSWERS_DIR / "_base.jsonl").is_file():
        pytest.skip("corpus/answers not present (installed package without the repository)")
    answers = default_answer_paths(ANSWERS_DIR)
    assert answers[0].name == "_base.jsonl"
    rebuilt = C.build_corpus(answers, C.shipped_class_lists())
    assert rebuilt.to_jsonl().encode("ascii") == path.read_bytes()
