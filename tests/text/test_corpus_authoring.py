"""Entity corpus authoring: answer files, build, merge, coverage, prompts and the shipped corpus
(``text/corpus_authoring.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alt_lightning.commands.corpus import default_answer_paths
from alt_lightning.text import corpus as C
from alt_lightning.text import corpus_authoring as A

REPO = Path(__file__).resolve().parents[2]
ANSWERS_DIR = REPO / "corpus" / "answers"

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


def answer(label: str | None, *entities: tuple[str, str, str]) -> str:
    return dump({"label": label, "entities": [{"unit": u, "kind": k, "description": d} for u, k, d in entities]})


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
    corpus = A.build_corpus(answer_files, LISTS, name="toy", version="0.1.0", description="d", warnings_out=warnings)
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
    a = C.write_corpus(A.build_corpus(answer_files, LISTS), tmp_path / "a.jsonl")
    b = C.write_corpus(A.build_corpus(answer_files, LISTS), tmp_path / "b.jsonl")
    assert a.read_bytes() == b.read_bytes()
    assert b"\r" not in a.read_bytes()
    assert C.load_corpus(a).hash == C.load_corpus(b).hash == A.build_corpus(answer_files, LISTS).hash
    assert C.validate_corpus_file(a) == []
    # The file order matters only through "first occurrence wins".
    swapped = A.build_corpus([answer_files[0], answer_files[2], answer_files[1]], LISTS)
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
        A.build_corpus([*answer_files, extra], LISTS)
    assert [(i.path, i.line) for i in err.value.issues] == [(str(extra), 2)]
    assert "'Playing Tennis' is in no class list" in str(err.value)
    corpus = A.build_corpus([extra], LISTS, allow_unknown_labels=True, dataset="mine")
    assert {r.unit: r.sources for r in corpus.records} == {
        "net": {"mine": ("Playing Tennis",)},
        "rope": {"kinetics400": ("abseiling",), "kinetics700": ("abseiling",)},
    }
    with pytest.raises(ValueError, match="needs a dataset name"):
        A.build_corpus([extra], LISTS, allow_unknown_labels=True)


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
        A.read_answers(path)
    assert any(i.line == 2 and fragment in i.message for i in err.value.issues), str(err.value)
    assert f"{path}:2:" in str(err.value)


def test_read_answers_duplicate_label(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.jsonl", [answer("situp", ("mat", "object", "A mat."))] * 2)
    with pytest.raises(C.CorpusError, match=r"a\.jsonl:2: label 'situp' already answered at line 1"):
        A.read_answers(path)


def test_read_answers_normalises_units(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.jsonl", ["", answer("situp", ("  Exercise   Mat ", "object", "A mat."))])
    [a] = A.read_answers(path)
    assert (a.label, a.line, a.entities[0].unit) == ("situp", 2, "exercise mat")


# ---------------------------------------------------------------------------------------------------------
# Merge, coverage, stats, prompts


def test_merge_user_additions(tmp_path: Path, answer_files: list[Path]) -> None:
    base = A.build_corpus(answer_files, LISTS, name="toy", version="1.2.0")
    additions = write_lines(
        tmp_path / "mine.jsonl",
        [
            answer("Yo-yo trick", ("hand", "motion", "Conflicting kind."), ("string toy", "object", "A spool.")),
            answer("nap", ("sofa", "object", "A soft couch."), ("tennis ball", "object", "Ignored description.")),
        ],
    )
    warnings: list[str] = []
    merged = A.merge_corpus(base, [additions], "mydata", ["Yo-yo trick", "nap", "unused"], warnings_out=warnings)
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
    again = A.merge_corpus(
        C.load_corpus(C.write_corpus(merged, tmp_path / "m.jsonl")),
        [additions],
        "mydata",
        ["Yo-yo trick", "nap"],
    )
    assert again.hash == merged.hash and again.name == "toy+mydata" and again.version == merged.version
    with pytest.raises(C.CorpusError, match=r"mine\.jsonl:2: label 'nap' is in no class list \(mydata\)"):
        A.merge_corpus(base, [additions], "mydata", ["Yo-yo trick"])
    with pytest.raises(ValueError, match="letters, digits"):
        A.merge_corpus(base, [additions], "my data", ["nap"])


def test_coverage_and_stats(answer_files: list[Path]) -> None:
    corpus = A.build_corpus(answer_files, LISTS)
    cov = A.coverage(corpus, LISTS)
    assert cov == {
        "kinetics400": {"playing tennis": 3, "situp": 3, "abseiling": 0},
        "kinetics700": {"playing tennis": 3, "abseiling": 0},
        "hmdb51": {"situp": 3, "brush_hair": 2},
        "ucf101": {"ApplyEyeMakeup": 0},
    }
    stats = A.corpus_stats(corpus, LISTS, n_fewest=3)
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
    text = A.render_prompts(["ApplyEyeMakeup", 'say "hi"'])
    prompts = text.split(f"\n{A.PROMPT_SEPARATOR}\n")
    assert len(prompts) == 2
    assert 'of a "apply eye makeup" video action?' in prompts[0]
    assert '{"label": "ApplyEyeMakeup", "entities": [{"unit": "...", "kind": "...", "description": "..."}' in prompts[0]
    assert '{"label": "say \\"hi\\"", "entities"' in prompts[1]
    assert "hand, fingers, palm" in prompts[0] and "{" + "label}" not in text


def test_base_answers_cover_canonical_body_parts() -> None:
    [base] = A.read_answers(ANSWERS_DIR / "_base.jsonl")
    assert base.label is None
    assert [e.unit for e in base.entities] == list(A.BODY_PARTS)
    assert {e.kind for e in base.entities} == {"body part"}


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
    lists = A.shipped_class_lists()
    assert set(lists) == set(A.SOURCE_DATASETS)
    cov = A.coverage(corpus, lists)
    thin = [(d, label, n) for d, counts in cov.items() for label, n in counts.items() if n < 3]
    assert thin == []
    assert sum(len(v) for v in cov.values()) == 400 + 600 + 700 + 101 + 51 + 174
    assert set(A.BODY_PARTS) <= set(corpus.units)


def test_shipped_corpus_rebuilds_byte_for_byte() -> None:
    path = _shipped_path()
    if not (ANSWERS_DIR / "_base.jsonl").is_file():
        pytest.skip("corpus/answers not present (installed package without the repository)")
    answers = default_answer_paths(ANSWERS_DIR)
    assert answers[0].name == "_base.jsonl"
    rebuilt = A.build_corpus(answers, A.shipped_class_lists())
    assert rebuilt.to_jsonl().encode("ascii") == path.read_bytes()
