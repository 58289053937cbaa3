"""Help and consistency of the ``alt`` subcommands: every option explained, no reST markup, one checkpoint option,
``-`` and ``_`` alike, ``alt predict --help`` with the per-video options, and ``alt list`` against the files on disk."""

from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

import pytest

from alt_lightning.cli import main
from alt_lightning.commands import COMMANDS

REPO = Path(__file__).resolve().parents[1]
#: reST markup that must never reach a help screen.
REST = re.compile(r"``|:(mod|class|func|meth|data|attr|paramref|obj|ref):`")
#: The subcommands that are LightningCLI's (their parser is Lightning's, built from docstrings).
LIGHTNING = ("fit", "validate", "test")


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """Each of our own subcommands' parser (``build_parser()`` of its module), subparsers included."""
    out = {}
    for name, command in COMMANDS.items():
        if name in LIGHTNING:
            continue
        module = importlib.import_module(command.target.partition(":")[0])
        out[name] = module.build_parser()
    return out


def _walk(parser: argparse.ArgumentParser, prog: str):
    for action in parser._actions:
        yield prog, action
        if isinstance(action, argparse._SubParsersAction):
            for sub, subparser in action.choices.items():
                yield from _walk(subparser, f"{prog} {sub}")


def test_every_option_of_every_subcommand_has_help() -> None:
    missing = []
    for name, parser in _parsers().items():
        for prog, action in _walk(parser, f"alt {name}"):
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            if not (action.help or "").strip():
                missing.append(f"{prog} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_has_no_rest_markup_and_exits_0(name: str, capsys) -> None:
    try:
        code = main([name, "--help"])
    except SystemExit as exit_:  # argparse's help exits; some commands return its code instead
        code = exit_.code or 0
    assert code == 0
    out = capsys.readouterr().out
    assert out.strip() and not REST.search(out), REST.search(out)


@pytest.mark.parametrize("option", ["--model.help=ALTModule", "--data.help=VideoListDataModule"])
def test_help_of_our_classes_has_no_rest_markup(option: str, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["fit", option])
    out = capsys.readouterr().out
    assert "ALT" in out or "Videos listed" in out
    assert not REST.search(out), REST.search(out)


def test_alt_corpus_help_exits_0(capsys) -> None:
    assert main(["corpus", "--help"]) == 0
    assert "stats" in capsys.readouterr().out


def test_predict_help_shows_the_per_video_options(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["predict", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for option in ("--labels", "--ckpt_path", "--png-dir", "--topk", "--entities", "--clips", "--json"):
        assert re.search(rf"^\s+{re.escape(option)}\b", out, re.M), option
    assert not re.search(r"--ckpt\b(?!_)", out)  # the old spelling works but is not shown
    assert "alt predict --config CONFIG --help" in out  # where LightningCLI's predict options are


def test_one_checkpoint_option_across_subcommands(tmp_path: Path) -> None:
    """``--ckpt_path`` is shown everywhere a checkpoint is taken; ``--ckpt`` still parses to the same place."""
    shown = []
    for name, parser in _parsers().items():
        for prog, action in _walk(parser, f"alt {name}"):
            visible = action.help != argparse.SUPPRESS
            for option in action.option_strings:
                if option.startswith("--ckpt") and visible:
                    shown.append((prog, option))
    assert shown and {o for _, o in shown} == {"--ckpt_path"}, shown
    predict = _parsers()["predict"]
    assert predict.parse_args(["v.mp4", "--ckpt", "x.ckpt"]).ckpt == "x.ckpt"
    assert predict.parse_args(["v.mp4", "--ckpt_path", "x.ckpt"]).ckpt == "x.ckpt"
    protocol = _parsers()["protocol"]
    assert protocol.parse_args(["zero-shot", "--config", "c", "--ckpt", "y"]).ckpt == "y"
    assert protocol.parse_args(["zero-shot", "--config", "c", "--ckpt-path", "y"]).ckpt == "y"


def test_hyphen_and_underscore_are_one_option() -> None:
    parsers = _parsers()
    predict = parsers["predict"]
    for spelling in ("--png-dir", "--png_dir"):
        assert predict.parse_args(["v.mp4", spelling, "out"]).png_dir == "out"
    for spelling in ("--num_frames", "--num-frames"):
        assert predict.parse_args(["v.mp4", spelling, "4"]).num_frames == 4
    corpus = parsers["corpus"]
    for spelling in ("--model_name", "--model-name"):
        assert corpus.parse_args(["embed", spelling, "ViT-B-16"]).model_name == "ViT-B-16"
    protocol = parsers["protocol"]
    for spelling in ("--test-on", "--test_on"):
        assert protocol.parse_args(["few-shot", "--config", "c", spelling, "best"]).test_on == "best"
    # Every long option of every parser, in its other spelling, reaches the same action.
    for name, parser in parsers.items():
        for prog, action in _walk(parser, f"alt {name}"):
            if isinstance(action, argparse._SubParsersAction):
                continue
            container = next(p for p in _containers(parser) if action in p._actions)
            for option in action.option_strings:
                other = "--" + (option[2:].replace("-", "_") if "-" in option[2:] else option[2:].replace("_", "-"))
                if option.startswith("--") and other != option and other not in container._option_string_actions:
                    from alt_lightning.errors import normalize_options

                    assert normalize_options([other], set(container._option_string_actions)) == [option], prog


def _containers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _containers(sub)


def test_lightning_subcommands_take_both_spellings() -> None:
    from alt_lightning.lightning.cli import parse_config

    demo = str(REPO / "configs" / "demo.yaml")
    cfg = parse_config(["fit", "--config", demo, "--trainer.max-epochs=3", "--seed-everything", "7"])
    assert cfg.trainer.max_epochs == 3 and cfg.seed_everything == 7


def test_alt_help_lists_every_subcommand_once(capsys) -> None:
    assert main(["--help"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert listed == list(COMMANDS) and "list" in listed


# ---------------------------------------------------------------------------------------------- alt list


def _section(out: str, title: str) -> list[str]:
    block = out.split(f"{title}:\n", 1)[1].split("\n\n", 1)[0]
    return [line for line in block.splitlines() if line.startswith("  ")]


def test_alt_list_matches_the_files_on_disk(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    res = REPO / "src" / "alt_lightning" / "resources"
    # Class lists: every shipped file, with its count of non-blank lines.
    classes = {line.split()[0]: int(line.split()[1]) for line in _section(out, "class lists (classes, --labels)")}
    on_disk = {p.stem: sum(1 for x in p.read_text().splitlines() if x.strip()) for p in res.glob("classes/*.txt")}
    assert classes == on_disk
    # Corpora: every shipped file, with its records (lines after the header line).
    corpora = {line.split()[0]: int(line.split()[1]) for line in _section(out, "entity corpora (corpus)")}
    files = res.glob("corpus/*.jsonl")
    assert corpora == {p.stem: sum(1 for x in p.read_text().splitlines()[1:] if x.strip()) for p in files}
    # Presets: every YAML under configs/, by its path without .yaml.
    presets = [line.split()[0] for line in _section(out, "config presets (--config NAME)")]
    assert presets == sorted(
        p.relative_to(REPO / "configs").with_suffix("").as_posix() for p in (REPO / "configs").rglob("*.yaml")
    )
    # Backbones: our model configs and the paper's backbones.
    backbones = out.split("backbones (model_name):\n", 1)[1].split("\n\n", 1)[0]
    names = {line.split()[0] for line in backbones.splitlines() if line.startswith("  ")}
    assert {p.stem for p in res.glob("model_configs/*.json")} <= names
    assert {"ViT-B-16", "ViT-L-14", "ViT-B-32", "alt-b16-8f", "alt-l14"} <= names
    assert main(["list", "presets"]) == 0
    assert capsys.readouterr().out.startswith("config presets (--config NAME):\n")
