"""Docs that match the code: data/README.md's example configs run on small trees, every DataModule argument is named,
and the commands, config files and source files that README.md and data/README.md name exist.

The YAML and command blocks are read from the Markdown itself (as tests/test_configs.py reads the experiments' headers),
so what a reader copies is what is tested. Each example config is parsed by ``alt fit``'s parser, a tree is written at
the paths it names (in the dataset's published format, every video a link to a synthetic test video), and
``alt check-data`` decodes every video of it; one example (others: slow) trains a batch of ALT-tiny on it.
"""

from __future__ import annotations

import csv
import inspect
import json
import os
import re
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from alt_lightning.cli import main
from alt_lightning.lightning.cli import parse_config
from alt_lightning.text.classes import class_names

REPO = Path(__file__).resolve().parents[1]
DATA_README = REPO / "data" / "README.md"
README = REPO / "README.md"


# ----------------------------------------------------------------------------------------------- reading Markdown
def sections(path: Path) -> dict[str, str]:
    """``## title`` -> the text up to the next ``## `` heading."""
    parts = re.split(r"^## (.+)$", path.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def code_blocks(text: str, lang: str) -> list[str]:
    """The fenced blocks of one language."""
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def alt_commands(text: str) -> list[list[str]]:
    """Every ``alt ...`` command of the text's bash blocks (``\\`` continues a line, ``#`` starts a comment)."""
    out = []
    for block in code_blocks(text, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["alt"]:
                out.append(words[1:])
    return out


def data_examples() -> list[tuple[str, int, dict[str, Any]]]:
    """``(section, index, config)`` of every YAML block of data/README.md with a ``data:`` class."""
    out = []
    for title, body in sections(DATA_README).items():
        configs = [yaml.safe_load(b) for b in code_blocks(body, "yaml")]
        out += [(title, i, c) for i, c in enumerate(c for c in configs if "class_path" in c.get("data", {}))]
    return out


EXAMPLES = data_examples()
#: The examples that also train (the others are slow): mmaction2's UCF-101 layout, where `splits_dir` is needed.
FIT_FAST = {("UCF-101", 1)}


# ----------------------------------------------------------------------------------------------- small trees
def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)


def write_tree(config: dict[str, Any], videos: list[Path]) -> Counter:
    """Write, under the working directory, the tree an example config names, in its dataset's published format.

    Two classes per dataset: 2 training and 1 validation video each (the test loader reads the validation list for
    every dataset here). Returns the videos each split lists.
    """
    cls, init = config["data"]["class_path"].rsplit(".", 1)[-1], config["data"]["init_args"]
    root = Path(init["root"])
    pick = iter(videos * 4)

    def at(name: str) -> Path:  # relative to root, or absolute: as VideoDataModule.resolve
        p = Path(name)
        return p if p.is_absolute() else root / p

    if cls == "KineticsDataModule":
        version, ext = init.get("version", 400), init.get("ext", ".mp4")
        dirs = {"train": "train", "val": "val", "test": "test", **init.get("video_dirs", {})}
        assert init.get("layout", "auto") in ("auto", "flat")  # flat files are written
        ann = at(init.get("annotations", "annotations"))
        ann.mkdir(parents=True)
        for split, name, n in (("train", "train.csv", 2), ("val", "validate.csv", 1)):
            with (ann / name).open("w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
                for c, label in enumerate(class_names(f"kinetics{version}")[:2]):
                    for k in range(n):
                        w.writerow([label, f"y{c}{k}{split}", 0, 10, split])
                        _link(next(pick), at(dirs[split]) / f"y{c}{k}{split}_000000_000010{ext}")
    elif cls == "UCFHMDBDataModule" and init.get("dataset", "ucf101") == "ucf101":
        split, lists = init.get("split", 1), at(init.get("splits_dir", "ucfTrainTestlist"))
        lists.mkdir(parents=True)
        names = class_names("ucf101")
        (lists / "classInd.txt").write_text("".join(f"{i} {c}\r\n" for i, c in enumerate(names, 1)))
        train, test = [], []
        for i, c in enumerate(names[:2], 1):
            for g in (1, 2, 3):
                _link(next(pick), root / c / f"v_{c}_g{g:02d}_c01.avi")
            train += [f"{c}/v_{c}_g{g:02d}_c01.avi {i}\r\n" for g in (1, 2)]
            test.append(f"{c}/v_{c}_g03_c01.avi\r\n")
        (lists / f"trainlist0{split}.txt").write_text("".join(train))
        (lists / f"testlist0{split}.txt").write_text("".join(test))
    elif cls == "UCFHMDBDataModule":
        split, folder = init.get("split", 1), at(init.get("splits_dir", "testTrainMulti_7030_splits"))
        folder.mkdir(parents=True)
        for i, c in enumerate(class_names("hmdb51")):
            lines = []
            if i < 2:
                for k, flag in enumerate((1, 1, 2)):
                    _link(next(pick), root / c / f"{c}_clip_{k}.avi")
                    lines.append(f"{c}_clip_{k}.avi {flag} \n")
            (folder / f"{c}_test_split{split}.txt").write_text("".join(lines))
    elif cls == "SSv2DataModule":
        templates = class_names("ssv2")[:2]
        at(init.get("labels", "labels.json")).parent.mkdir(parents=True, exist_ok=True)
        at(init.get("labels", "labels.json")).write_text(json.dumps({t: str(i) for i, t in enumerate(templates)}))
        for key, default, n in (("train_json", "train.json", 2), ("val_json", "validation.json", 1)):
            items = []
            for c, t in enumerate(templates):
                for k in range(n):
                    vid = f"{c}{k}{n}"
                    items.append({"id": vid, "label": t.lower(), "template": t.replace("something", "[something]")})
                    _link(next(pick), at(init.get("videos", "20bn-something-something-v2")) / f"{vid}.webm")
            at(init.get(key, default)).write_text(json.dumps(items))
    elif cls == "VideoListDataModule":
        at(init["classes"]).parent.mkdir(parents=True, exist_ok=True)
        at(init["classes"]).write_text("first class\nsecond class\n")
        for key, n in (("train_list", 2), ("val_list", 1), ("test_list", 1)):
            rows = []
            for label in (0, 1):
                for k in range(n):
                    rel = f"videos/{key}_{label}_{k}.mp4"
                    _link(next(pick), root / rel)
                    rows.append(f"{rel} {label}\n")
            at(init[key]).write_text("".join(rows))
    else:
        raise AssertionError(f"no tree writer for {cls}: add one when data/README.md documents a new DataModule")
    return Counter({"train": 4, "val": 2, "test": 2})


# ----------------------------------------------------------------------------------------------- data/README.md
def test_every_dataset_section_has_an_example_naming_every_argument() -> None:
    """Each dataset's own constructor arguments are named in its section (a YAML example or an inline `code`)."""
    from alt_lightning import datamodules

    covered = {title for title, _, _ in EXAMPLES}
    assert covered >= {
        "Kinetics-400 and Kinetics-600",
        "UCF-101",
        "HMDB-51",
        "Something-Something v2",
        "Path-label lists (any dataset)",
    }
    body = sections(DATA_README)
    for title in covered:
        text = body[title]
        code = " ".join(re.findall(r"`([^`\n]+)`", text) + code_blocks(text, "yaml"))
        for cls_path in {c["data"]["class_path"] for t, _, c in EXAMPLES if t == title}:
            cls = getattr(datamodules, cls_path.rsplit(".", 1)[-1])
            own = [
                n for n, p in inspect.signature(cls.__init__).parameters.items() if p.kind == p.POSITIONAL_OR_KEYWORD
            ]
            missing = [n for n in own[1:] if not re.search(rf"\b{n}\b", code)]
            assert not missing, f"data/README.md, {title}: {cls.__name__} arguments never named: {missing}"


def test_no_advice_to_rename_or_link_annotation_files() -> None:
    """The Kinetics reader finds validate.csv, val.csv and kinetics-400_val.csv itself."""
    from alt_lightning.datamodules.kinetics import CSV_NAMES

    text = DATA_README.read_text(encoding="utf-8")
    assert "ln -s val.csv" not in text and "link it as" not in text
    for names in CSV_NAMES.values():
        for name in names:
            assert f"`{name.format(version=400)}`" in text, name


@pytest.mark.parametrize(("title", "index"), [pytest.param(t, i, id=f"{t.split()[0]}-{i}") for t, i, _ in EXAMPLES])
def test_example_config_checks_every_video_of_its_tree(
    title: str, index: int, synthetic_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parsed by `alt fit`'s parser as written; `alt check-data` on the tree it names: every listed video ok."""
    config = next(c for t, i, c in EXAMPLES if (t, i) == (title, index))
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "example.yaml"
    path.write_text(yaml.safe_dump(config))
    parsed = parse_config(["fit", "--config", str(path)]).data
    assert parsed.class_path == config["data"]["class_path"]
    for key, value in config["data"]["init_args"].items():
        got = parsed.init_args[key]
        assert (got.as_dict() if hasattr(got, "as_dict") else got) == value, key
    expected = write_tree(config, sorted((synthetic_root / "videos").rglob("*.mp4")))
    report = tmp_path / "check.csv"
    assert main(["check-data", "--config", str(path), "--workers=0", f"--report={report}", "--progress=false"]) == 0
    with report.open() as f:
        rows = list(csv.DictReader(f))
    assert Counter(r["split"] for r in rows) == expected
    assert {r["status"] for r in rows} == {"ok"}


@pytest.mark.parametrize(
    ("title", "index"),
    [
        pytest.param(t, i, id=f"{t.split()[0]}-{i}", marks=() if (t, i) in FIT_FAST else pytest.mark.slow)
        for t, i, _ in EXAMPLES
    ],
)
def test_example_config_trains_alt_tiny(
    title: str,
    index: int,
    synthetic_root: Path,
    tiny_weights: Path,
    tiny_corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One batch of `alt fit` with the example as its data config (model: alt-tiny, 4 frames)."""
    config = next(c for t, i, c in EXAMPLES if (t, i) == (title, index))
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "example.yaml"
    path.write_text(yaml.safe_dump(config))
    write_tree(config, sorted((synthetic_root / "videos").rglob("*.mp4")))
    overrides = [
        "--model=alt_lightning.lightning.ALTModule",
        "--model.init_args.model_name=alt-tiny",
        f"--model.init_args.pretrained={tiny_weights}",
        f"--model.init_args.corpus={tiny_corpus}",
        "--model.init_args.encoder.r=2",
        "--model.init_args.adapter.heads=4",
        "--data.init_args.num_frames=4",
        "--data.init_args.batch_size=2",
        "--data.init_args.num_workers=0",
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=1",
        "--trainer.limit_val_batches=1",
        "--trainer.num_sanity_val_steps=0",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.logger=false",
        f"--trainer.default_root_dir={tmp_path}",
    ]
    assert main(["fit", "--config", str(path), *overrides]) == 0
    assert (tmp_path / "checkpoints" / "last.ckpt").stat().st_size > 0


# ----------------------------------------------------------------------------------------------- README.md
def test_paper_table_names_files_that_exist() -> None:
    """Every path in the "Where each part of the paper lives" table exists under src/alt_lightning/."""
    table = sections(README)["Where each part of the paper lives"]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| paper component")]
    assert len(rows) >= 20
    src = REPO / "src" / "alt_lightning"
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        for name in re.findall(r"`([^`]+)`", cells[-1]):
            if name.startswith("alt "):
                continue  # commands: test_documented_commands_exist
            assert list(src.glob(name)), f"README.md paper table: {name} does not exist under src/alt_lightning/"


def test_documented_commands_exist(capsys: pytest.CaptureFixture) -> None:
    """Each `alt <command>` of README.md and data/README.md answers --help; each --config file it names exists."""
    texts = [README.read_text(encoding="utf-8"), DATA_README.read_text(encoding="utf-8")]
    commands = [c for t in texts for c in alt_commands(t)]
    assert len(commands) >= 30
    for cmd in commands:
        for i, word in enumerate(cmd[:-1]):
            if word == "--config":
                spec = cmd[i + 1]  # a file, or a preset's name under configs/ (``demo``, ``model/alt_b16``)
                found = (REPO / spec).is_file() or (REPO / "configs" / f"{spec}.yaml").is_file()
                assert found, f"{' '.join(cmd)}: {spec} is neither a file nor a preset"
    table_commands = re.findall(r"`alt ([a-z-]+)`", sections(README)["Where each part of the paper lives"])
    for sub in sorted({c[0] for c in commands} | set(table_commands)):
        try:
            code = main([sub, "--help"])
        except SystemExit as exit_:  # argparse and LightningCLI exit after the help
            code = exit_.code
        assert code in (0, None), sub
        assert "usage" in capsys.readouterr().out.lower(), sub
