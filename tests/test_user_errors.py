"""A user's mistake is one line naming the cause (and at most one hint line), no traceback, a non-zero exit status.

Each case runs the ``alt`` entry point (in-process, or in a subprocess where the environment matters) and asserts the
message text and its length. ``--debug`` / ``ALT_DEBUG=1`` bring the traceback back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from alt_lightning.cli import main
from alt_lightning.errors import UserError

REPO = Path(__file__).resolve().parents[1]
DEMO = str(REPO / "configs" / "demo.yaml")


def _lines(text: str) -> list[str]:
    """The lines a user reads, without Lightning's own log line about the seed (printed before any check)."""
    return [line for line in text.splitlines() if line.strip() and "Seed set to" not in line]


def _one_error(capsys: pytest.CaptureFixture[str], code: int) -> tuple[str, str | None]:
    """The error and hint lines of a failed command; asserts there is nothing else, no traceback, exit code 1."""
    out = capsys.readouterr()
    lines = _lines(out.err) + _lines(out.out)
    assert code == 1, (code, lines)
    assert "Traceback" not in out.err + out.out
    assert 1 <= len(lines) <= 2, lines
    assert lines[0].startswith("error: "), lines
    hint = lines[1] if len(lines) == 2 else None
    if hint is not None:
        assert hint.startswith("hint: "), lines
    return lines[0], hint


def _fit(*args: str, corpus: Path) -> list[str]:
    # No seeding: Lightning's "Seed set to 0" log line (before any check) is not ours to count.
    return ["fit", "--config", DEMO, f"--model.init_args.corpus={corpus}", "--trainer.logger=false",
            "--seed_everything=false", *args]  # fmt: skip


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from alt_lightning.data.synthetic import ClassSpec, render_clip, write_video

    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    return write_video(path, render_clip(ClassSpec("red", "square", "right"), np.random.default_rng(0), 8))


# ---------------------------------------------------------------------------------------------- data


def test_missing_data_root_names_the_root(tmp_path: Path, tiny_corpus: Path, capsys) -> None:
    root = tmp_path / "no_such_root"
    code = main(_fit(f"--data.init_args.root={root}", corpus=tiny_corpus))
    error, hint = _one_error(capsys, code)
    assert error == f"error: data root {root} does not exist (resolved: {root.resolve()})"
    assert hint == "hint: set data.init_args.root (or --data.init_args.root PATH) to the dataset folder."


def test_missing_classes_file_names_the_path(tmp_path: Path, tiny_corpus: Path, capsys) -> None:
    code = main(_fit(f"--data.init_args.root={tmp_path}", corpus=tiny_corpus))
    error, hint = _one_error(capsys, code)
    assert error == (
        f"error: classes file {tmp_path / 'classes.txt'} not found (classes='classes.txt', relative to the data root "
        f"{tmp_path})"
    )
    assert hint is not None and "shipped list (kinetics400, " in hint


# ---------------------------------------------------------------------------------------------- configs


def test_config_key_typo_names_the_file_line_and_the_closest_key(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("model:\n  init_args:\n    adaptr:\n      layers: 2\n")
    code = main(["fit", "--config", DEMO, "--config", str(cfg)])
    error, hint = _one_error(capsys, code)
    assert error == f"error: {cfg}:3: unknown config key 'model.adaptr' (ALTModule accepts no such argument)"
    assert hint == "hint: did you mean 'adapter'?"


@pytest.mark.parametrize(
    ("text", "key", "line", "owner", "guess"),
    [
        ("trainer:\n  max_epoch: 3\n", "trainer.max_epoch", 2, "Trainer", "max_epochs"),
        ("model:\n  init_args:\n    adapter: {layer: 2}\n", "model.adapter.layer", 3, "AdapterConfig", "layers"),
        ("data:\n  init_args:\n    batchsize: 2\n", "data.batchsize", 3, "VideoListDataModule", "batch_size"),
    ],
)
def test_nested_key_typos(tmp_path: Path, capsys, text: str, key: str, line: int, owner: str, guess: str) -> None:
    cfg = tmp_path / "typo.yaml"
    cfg.write_text(text)
    code = main(["fit", "--config", DEMO, "--config", str(cfg)])
    error, hint = _one_error(capsys, code)
    assert error == f"error: {cfg}:{line}: unknown config key '{key}' ({owner} accepts no such argument)"
    assert hint == f"hint: did you mean '{guess}'?"


def test_yaml_syntax_error_names_the_file_line_and_column(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "broken.yaml"
    cfg.write_text("model:\n  init_args:\n    adapter: {layers: 2\n  corpus: x\n")
    code = main(["fit", "--config", DEMO, "--config", str(cfg)])
    error, hint = _one_error(capsys, code)
    assert error.startswith(f"error: {cfg}:4:9: YAML syntax error: ")
    assert "<unicode string>" not in error and hint is not None


def test_missing_config_file_is_named(tmp_path: Path, capsys) -> None:
    code = main(["fit", "--config", str(tmp_path / "nope.yaml")])
    error, hint = _one_error(capsys, code)
    assert error == f"error: config {tmp_path / 'nope.yaml'} is neither a file nor a shipped preset name"
    assert hint is not None and "alt list" in hint


def test_unknown_option_is_one_line(capsys) -> None:
    code = main(["fit", "--config", DEMO, "--bogus_option", "1"])
    error, hint = _one_error(capsys, code)
    assert error == "error: alt fit: unrecognized arguments: --bogus_option 1"
    assert hint == "hint: `alt fit --help` lists the options; `--print_config` shows the whole configuration."


# ---------------------------------------------------------------------------------------------- models and weights


def test_unknown_model_name_lists_close_names(clip: Path, capsys) -> None:
    code = main(["predict", str(clip), "--labels", "a,b", "--model_name", "ViT-B-61", "--pretrained", ""])
    error, hint = _one_error(capsys, code)
    assert error.startswith("error: unknown backbone model_name='ViT-B-61'; close names: ViT-B-16")
    assert hint is not None and hint.startswith("hint: `alt list` shows the supported backbones")


def _checkpoints(tmp: Path) -> dict[str, tuple[Path, str]]:
    """Unreadable checkpoints and what the error must say about each."""
    good = tmp / "good.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2000)}, "alt": {}}, good)
    data = good.read_bytes()
    cases = {
        "missing": (tmp / "missing.ckpt", "does not exist"),
        "empty": (tmp / "empty.ckpt", "is empty (0 bytes): its save or copy did not finish"),
        "truncated": (
            tmp / "truncated.ckpt",
            f"is truncated ({len(data) // 2:,} bytes; its zip archive is incomplete): its save or copy did not finish",
        ),
        "random": (tmp / "random.ckpt", "is not a PyTorch checkpoint (neither a zip archive nor a pickle of tensors)"),
    }
    cases["empty"][0].write_bytes(b"")
    cases["truncated"][0].write_bytes(data[: len(data) // 2])
    cases["random"][0].write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return cases


@pytest.mark.parametrize("case", ["missing", "empty", "truncated", "random"])
def test_unreadable_checkpoint_is_one_line_never_suggesting_weights_only_false(
    tmp_path: Path, clip: Path, capsys, case: str
) -> None:
    path, what = _checkpoints(tmp_path)[case]
    for argv in (
        ["test", "--config", DEMO, "--ckpt_path", str(path)],
        ["predict", str(clip), "--ckpt_path", str(path)],
    ):
        code = main(argv)
        out = capsys.readouterr()
        assert "weights_only" not in out.err + out.out
        lines = _lines(out.err)
        assert code == 1 and "Traceback" not in out.err
        assert lines == [
            f"error: checkpoint {path} {what}",
            "hint: point it at a complete checkpoint of `alt fit`, e.g. runs/<name>/latest/checkpoints/best.ckpt "
            "(or last.ckpt).",
        ]


def test_offline_pretrained_tag_says_it_needs_a_download_and_how_to_pass_weights(clip: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),  # an empty cache: the weights of the tag cannot be there
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p),
    }
    res = subprocess.run(
        [sys.executable, "-m", "alt_lightning", "predict", str(clip), "--labels", "a,b"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert _lines(res.stderr) == [
        "error: pretrained='openai' needs a download of the ViT-B-16 weights, which failed (HF_HUB_OFFLINE is set); "
        "they are not in the local cache",
        "hint: download them once with a connection, or pass a local weights file: --pretrained /path/to/weights.pt "
        "(alt predict), model.init_args.pretrained: /path/to/weights.pt (configs).",
    ]


def test_missing_logger_package_is_one_line_naming_the_extra(
    synthetic_root: Path, tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed, whatever this environment holds
    monkeypatch.chdir(tmp_path)
    argv = _fit(f"--data.init_args.root={synthetic_root}", "--data.init_args.num_workers=0", corpus=tiny_corpus)
    argv = [a for a in argv if a != "--trainer.logger=false"] + ["--config", "trainer/wandb"]
    code = main(argv)
    error, hint = _one_error(capsys, code)
    assert error == (
        "error: The Weights & Biases logger (trainer.logger: WandbLogger) needs the 'wandb' package, which is not "
        "installed"
    )
    assert hint == "hint: pip install 'alt-lightning[wandb]' (or leave configs/trainer/wandb.yaml out of the command)."


# ---------------------------------------------------------------------------------------------- the switches


def test_debug_flag_and_env_show_the_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    argv = ["test", "--config", DEMO, "--ckpt_path", str(tmp_path / "missing.ckpt")]
    with pytest.raises(UserError, match="does not exist"):
        main(["--debug", *argv])
    with pytest.raises(UserError, match="does not exist"):
        main([*argv, "--debug"])  # anywhere on the command line
    monkeypatch.setenv("ALT_DEBUG", "1")
    with pytest.raises(UserError, match="does not exist"):
        main(argv)
    monkeypatch.setenv("ALT_DEBUG", "0")
    assert main(argv) == 1
    capsys.readouterr()


def test_unknown_subcommand_names_the_closest(capsys) -> None:
    assert main(["fitt"]) == 2
    assert capsys.readouterr().err.splitlines() == ["error: unknown subcommand 'fitt'; did you mean 'fit'?"]
    assert main(["zzzz"]) == 2
    assert capsys.readouterr().err.splitlines() == ["error: unknown subcommand 'zzzz'; alt --help lists them."]


def test_version(capsys) -> None:
    import re

    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"alt-lightning {version}\n"


# ------------------------------------------------------------------------------------ model piece vs checkpoint


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"mlp_ratio": 2.0}, "adapter.mlp_ratio: checkpoint 4.0, this model 2.0"),
        ({"layers": 2}, "adapter.layers: checkpoint 1, this model 2"),
    ],
)
def test_model_settings_that_do_not_fit_a_checkpoint_are_named(
    module_kwargs: dict, tmp_path: Path, change: dict, named: str
) -> None:
    from alt_lightning.lightning.module import ALTModule, CheckpointMismatchError

    trained = ALTModule(class_names=["a", "b"], **module_kwargs)
    ckpt = {"state_dict": trained.state_dict(), "hyper_parameters": dict(trained.hparams)}
    trained.on_save_checkpoint(ckpt)
    path = tmp_path / "trained.ckpt"
    torch.save(ckpt, path)
    other = {**module_kwargs, "adapter": {**module_kwargs["adapter"], **change}}
    with pytest.raises(CheckpointMismatchError) as err:
        ALTModule(class_names=["a", "b"], init_weights=str(path), **other)
    assert str(err.value) == f"init_weights={path}: the model settings differ from the checkpoint's: {named}"
    assert "size mismatch" not in str(err.value) and "shape" not in str(err.value)
