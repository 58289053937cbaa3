"""``alt corpus`` (``commands/corpus.py``): build, validate, stats, merge, template and embed."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from alt_lightning.commands.corpus import main
from alt_lightning.text import corpus as C
from alt_lightning.text import corpus_authoring as A


def dump(obj: object) -> str:
    return json.dumps(obj)


def write_lines(path: Path, lines: list[str], newline: str = "\n") -> Path:
    path.write_bytes((newline.join(lines) + newline).encode("utf-8"))
    return path


def answer(label: str | None, *entities: tuple[str, str, str]) -> str:
    return dump({"label": label, "entities": [{"unit": u, "kind": k, "description": d} for u, k, d in entities]})


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
    assert printed.count(A.PROMPT_SEPARATOR) == 1 and '"knitting socks"' in printed and '{"label": "nap"' in printed
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
    clip = calls[0].pop("clip_model")  # the command loads CLIP (text/ never imports model/)
    assert isinstance(clip, torch.nn.Module) and hasattr(clip, "encode_text")
    assert calls == [
        {
            "model_name": "alt-tiny",
            "pretrained": None,
            "texts": ["ball: A round ball."],
            "cache_dir": str(tmp_path),
            "return_info": True,
        }
    ]
    inspect.signature(real).bind(**calls[0], clip_model=clip)  # the real function accepts this call
    printed = capsys.readouterr().out
    assert "embeddings shape: (1, 64)" in printed and "entry.pt" in printed and "cache hit: True" in printed
    assert main([*argv, "--pretrained", "none"]) == 0  # the help's "none: random" spelling
    assert calls[-1]["pretrained"] is None
