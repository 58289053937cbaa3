"""The `alt` command end to end: help, fit + test in-process, the demo config, checkpoint-restored settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from lightning.pytorch import Callback

from alt_lightning.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_alt_help_lists_lightning_and_extra_subcommands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "alt_lightning", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert out.returncode == 0, out.stderr
    from alt_lightning.commands import COMMANDS

    listed = [line.split()[0] for line in out.stdout.splitlines() if line.startswith("  ")]
    assert listed == list(COMMANDS)  # every subcommand, one line each
    assert {"fit", "validate", "test", "predict", "corpus", "flops", "bench", "check-data", "loader-bench"} <= set(
        COMMANDS
    )
    assert {"protocol", "cache", "prepare"} <= set(COMMANDS)


def test_every_registered_command_loads_and_unknown_ones_are_named(capsys) -> None:
    from alt_lightning.commands import COMMANDS

    for name, command in COMMANDS.items():
        assert callable(command.load()), name
    assert main(["nope"]) == 2
    assert "unknown subcommand 'nope'" in capsys.readouterr().err


def _fit_args(root: Path, corpus: Path, tmp: Path, epochs: int = 2) -> list[str]:
    return [
        "--config",
        str(REPO / "configs" / "demo.yaml"),
        f"--data.init_args.root={root}",
        "--data.init_args.num_workers=0",
        "--data.init_args.batch_size=8",
        f"--model.init_args.corpus={corpus}",
        f"--trainer.max_epochs={epochs}",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp}",
    ]


def test_fit_then_test_in_process(synthetic_root: Path, tiny_corpus: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["fit", *_fit_args(synthetic_root, tiny_corpus, tmp_path)]) == 0
    ckpts = sorted(tmp_path.rglob("best.ckpt"))
    assert len(ckpts) == 1, list(tmp_path.rglob("*.ckpt"))
    # Only trainable weights are stored: the tiny backbone's frozen tower is absent.
    import torch

    state = torch.load(ckpts[0], weights_only=True, map_location="cpu")
    assert not any(k.startswith("model.encoder.") for k in state["state_dict"])
    assert state["alt"]["class_names"][0] == "red square moving right"
    assert main(["test", *_fit_args(synthetic_root, tiny_corpus, tmp_path), f"--ckpt_path={ckpts[0]}"]) == 0
    out = capsys.readouterr().out
    assert "test top-1:" in out and "videos listed: 12  evaluated: 12  failed: 0  missing: 0" in out


def test_test_restores_model_and_data_settings_from_checkpoint(
    synthetic_root: Path, tiny_corpus: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """`alt test --ckpt_path` with no config: backbone, corpus, data root and sampling come from the checkpoint."""
    monkeypatch.chdir(tmp_path)
    args = _fit_args(synthetic_root, tiny_corpus, tmp_path, epochs=1)
    args += ["--data.init_args.num_frames=4", "--data.init_args.test_clips=3"]
    assert main(["fit", *args]) == 0
    ckpt = next(tmp_path.rglob("best.ckpt"))
    assert (
        main(
            [
                "test",
                f"--ckpt_path={ckpt}",
                "--trainer.logger=false",
                "--trainer.accelerator=cpu",
                "--trainer.enable_progress_bar=false",
                "--data.init_args.num_workers=0",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "evaluated: 12" in out
    cfg = yaml.safe_load((next(tmp_path.rglob("config.yaml"))).read_text())
    assert cfg["data"]["init_args"]["num_frames"] == 4


def test_frame_count_is_linked_from_the_data_and_checked_against_a_checkpoint(
    synthetic_root: Path, tiny_corpus: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """data.num_frames sizes the model's temporal tables; a test on fewer frames uses their first rows, more fail."""
    import torch

    monkeypatch.chdir(tmp_path)
    args = [*_fit_args(synthetic_root, tiny_corpus, tmp_path, epochs=1), "--data.init_args.num_frames=4"]
    limits = ["--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1"]
    assert main(["fit", *args, *limits]) == 0
    ckpt = next(tmp_path.rglob("best.ckpt"))
    saved = torch.load(ckpt, weights_only=True, map_location="cpu")
    assert saved["hyper_parameters"]["num_frames"] == 4
    assert saved["state_dict"]["model.adapter.frame_pos"].shape[0] == 4
    assert saved["state_dict"]["model.adapter.temporal_pos"].shape[0] == 4
    test = ["test", *_fit_args(synthetic_root, tiny_corpus, tmp_path), f"--ckpt_path={ckpt}"]
    assert main([*test, "--data.init_args.num_frames=2"]) == 0  # the checkpoint's num_frames is not restored
    assert "evaluated: 12" in capsys.readouterr().out
    with pytest.raises(SystemExit) as err:
        main([*test, "--data.init_args.num_frames=6"])
    message = str(err.value.code)
    assert "\n" not in message and "data.num_frames=6" in message and "hold 4 frames" in message, message


def test_demo_config_parses_and_runs_one_step(
    synthetic_root: Path, tiny_corpus: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = _fit_args(synthetic_root, tiny_corpus, tmp_path, epochs=1)
    assert main(["fit", *args, "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1"]) == 0


@pytest.mark.slow
def test_demo_is_learnable(tmp_path: Path, monkeypatch, capsys) -> None:
    """The demo as `make demo` runs it (shipped corpus, default data): test top-1 at least 2x chance (8 classes)."""
    from alt_lightning.data.synthetic import write_synthetic_dataset

    monkeypatch.chdir(tmp_path)
    write_synthetic_dataset(tmp_path / "demo_data", seed=0)
    cfg = str(REPO / "configs" / "demo.yaml")
    assert main(["fit", "--config", cfg, "--trainer.enable_progress_bar=false"]) == 0
    capsys.readouterr()
    ckpt = tmp_path / "runs" / "demo" / "latest" / "checkpoints" / "best.ckpt"
    assert main(["test", "--config", cfg, f"--ckpt_path={ckpt}", "--trainer.enable_progress_bar=false"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("test top-1:"))
    top1 = float(line.split("top-1:")[1].split("%")[0])
    assert top1 >= 2 * 100 / 8, line


@pytest.mark.slow
def test_alt_fit_and_test_under_torchrun_ddp(synthetic_root: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    """`torchrun --nproc_per_node 2 -m alt_lightning fit/test` (gloo on CPU), as the README's scale-out commands."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ALT_RUN_VERSION": "ddp-test"}
    common = [
        "--config", str(REPO / "configs" / "demo.yaml"),
        f"--data.init_args.root={synthetic_root}", "--data.init_args.num_workers=0",
        f"--model.init_args.corpus={tiny_corpus}", "--trainer.enable_progress_bar=false",
        "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu",
    ]  # fmt: skip
    run = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "alt_lightning"]
    fit = subprocess.run([*run, "fit", *common, "--trainer.max_epochs=1"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert fit.returncode == 0, fit.stderr[-3000:]
    ckpt = tmp_path / "runs" / "demo" / "latest" / "checkpoints" / "best.ckpt"
    assert ckpt.is_file()
    env["ALT_RUN_VERSION"] = "ddp-test-eval"
    test = subprocess.run([*run, "test", *common, f"--ckpt_path={ckpt}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert test.returncode == 0, test.stderr[-3000:]
    assert "videos listed: 12  evaluated: 12  failed: 0  missing: 0" in test.stdout
    rows = (tmp_path / "runs" / "demo" / "ddp-test-eval" / "predictions_test.csv").read_text().splitlines()
    assert len(rows) == 1 + 12  # every test video once, gathered from both ranks


def test_checkpoint_data_settings_come_back_only_without_user_data(tmp_path: Path) -> None:
    """Zero-shot: `alt test --ckpt_path k400.ckpt --config ucf.yaml` must not inherit the K400 data settings."""
    import torch

    from alt_lightning.lightning.checkpoints import checkpoint_arguments

    ckpt = tmp_path / "k400.ckpt"
    torch.save(
        {
            "hyper_parameters": {"_class_path": "alt_lightning.lightning.ALTModule", "model_name": "alt-tiny"},
            "datamodule_hyper_parameters": {
                "_class_path": "alt_lightning.datamodules.KineticsDataModule",
                "num_frames": 32,
                "feature_dir": "cache/k400",
            },
        },
        ckpt,
    )
    data_cfg = tmp_path / "ucf.yaml"
    data_cfg.write_text("data:\n  class_path: alt_lightning.datamodules.UCFHMDBDataModule\n")
    model_cfg = tmp_path / "trainer.yaml"
    model_cfg.write_text("trainer:\n  max_epochs: 1\n")

    alone = checkpoint_arguments(["test", f"--ckpt_path={ckpt}"])
    assert any(a.startswith("--model=") for a in alone) and any(a.startswith("--data=") for a in alone)
    assert '"num_frames": 32' in next(a for a in alone if a.startswith("--data="))
    for user in (["--config", str(data_cfg)], [f"--config={data_cfg}"], ["--data.class_path=x.Y"]):
        got = checkpoint_arguments(["test", *user, f"--ckpt_path={ckpt}"])
        assert any(a.startswith("--model=") for a in got)
        assert not any(a.startswith("--data=") for a in got), user
    # A config without a data class, or init_args overrides, adjust the checkpoint's own data.
    for user in (["--config", str(model_cfg)], ["--data.init_args.num_workers=0"]):
        kept = checkpoint_arguments(["test", *user, f"--ckpt_path={ckpt}"])
        assert any(a.startswith("--data=") for a in kept), user


class CrashAtStep(Callback):
    """Raises after optimizer step ``step`` (a crash or a pre-emption part way through an epoch)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"crashed after step {self.step}")


def _logged_fit_args(root: Path, corpus: Path) -> list[str]:
    """The demo config with its TensorBoard + CSV loggers under runs/demo/<ALT_RUN_VERSION>, 3 steps per epoch."""
    return [
        "fit",
        "--config", str(REPO / "configs" / "demo.yaml"),
        f"--data.init_args.root={root}", "--data.init_args.num_workers=0", "--data.init_args.batch_size=8",
        "--data.init_args.num_frames=4", f"--model.init_args.corpus={corpus}", "--trainer.max_epochs=2",
        "--trainer.limit_val_batches=1", "--trainer.log_every_n_steps=1", "--trainer.enable_progress_bar=false",
    ]  # fmt: skip


def _csv_rows(run: Path) -> list[dict[str, str]]:
    """metrics.csv without the wall-clock throughput columns."""
    import csv

    with (run / "metrics.csv").open(newline="") as f:
        return [{k: v for k, v in row.items() if not k.startswith("perf/")} for row in csv.DictReader(f)]


def _tb_scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """TensorBoard scalars as TensorBoard shows them (events purged by a restart are hidden)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run))
    acc.Reload()
    tags = [t for t in acc.Tags()["scalars"] if not t.startswith("perf/")]
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in tags}


def test_fit_ckpt_path_last_resumes_the_newest_run_into_its_folder(
    synthetic_root: Path, tiny_corpus: Path, tmp_path: Path, monkeypatch
) -> None:
    """A run crashed in epoch 1, resumed with `--ckpt_path last`, ends as the uninterrupted run: same folder, same
    curves (CSV and TensorBoard, the crashed tail hidden), same best and last checkpoints."""
    import warnings

    import torch

    monkeypatch.chdir(tmp_path)
    args = _logged_fit_args(synthetic_root, tiny_corpus)
    monkeypatch.setenv("ALT_RUN_VERSION", "straight")
    assert main(args) == 0
    monkeypatch.setenv("ALT_RUN_VERSION", "cut")
    crash = '--trainer.callbacks+={"class_path": "' + __name__ + '.CrashAtStep", "init_args": {"step": 4}}'
    with pytest.raises(RuntimeError, match="crashed after step 4"):
        main([*args, crash])
    runs = tmp_path / "runs" / "demo"
    assert torch.load(runs / "cut" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 3
    monkeypatch.setenv("ALT_RUN_VERSION", "fresh")  # what a new run would be called
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([*args, "--ckpt_path", "last"]) == 0
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "dirpath has changed" in m or "not empty" in m or "last checkpoint" in m]
    assert sorted(p.name for p in runs.iterdir()) == ["cut", "latest", "straight"]
    assert (runs / "latest").resolve() == (runs / "cut").resolve()
    assert sorted(p.name for p in (runs / "cut" / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    for name in ("last.ckpt", "best.ckpt"):
        a = torch.load(runs / "straight" / "checkpoints" / name, weights_only=True)
        b = torch.load(runs / "cut" / "checkpoints" / name, weights_only=True)
        assert a["global_step"] == b["global_step"] == (6 if name == "last.ckpt" else a["global_step"])
        assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"]), name
        score = [v["best_model_score"] for k, v in b["callbacks"].items() if "BestAndLastCheckpoint" in k]
        assert score == [v["best_model_score"] for k, v in a["callbacks"].items() if "BestAndLastCheckpoint" in k]
    straight, cut = _csv_rows(runs / "straight"), _csv_rows(runs / "cut")
    assert [r["step"] for r in cut if r.get("val/top1")] == ["2", "5"]  # validation after each epoch, once
    assert cut == straight
    assert _tb_scalars(runs / "cut") == _tb_scalars(runs / "straight")


def test_fit_ckpt_path_last_without_a_run_is_a_one_line_error(
    synthetic_root: Path, tiny_corpus: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALT_RUN_VERSION", "fresh")
    with pytest.raises(SystemExit, match=r"no run to resume \(no runs/demo/\*/checkpoints/last.ckpt\)") as err:
        main([*_logged_fit_args(synthetic_root, tiny_corpus), "--ckpt_path=last"])
    assert "\n" not in str(err.value)
    assert not (tmp_path / "runs" / "demo" / "fresh").exists()


def test_resolve_resume_picks_the_run_folder(tmp_path: Path, monkeypatch) -> None:
    """Which run a `fit --ckpt_path` continues in: the newest last.ckpt for `last`, a run's own last.ckpt named
    explicitly, a new folder for any other checkpoint; a version-less logger (protocol units) has one run."""
    import torch
    from jsonargparse import Namespace

    from alt_lightning.lightning.resume import resolve_resume

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALT_RUN_VERSION", "new")
    for version, step, age in (("a", 7, 0), ("b", 5, 100)):
        folder = tmp_path / "runs" / "demo" / version / "checkpoints"
        folder.mkdir(parents=True)
        for name in ("last.ckpt", "best.ckpt"):
            torch.save({"global_step": step}, folder / name)
            os.utime(folder / name, (1e9 - age, 1e9 - age))
    (tmp_path / "runs" / "demo" / "latest").symlink_to("b")  # a finished earlier; a crashed after it

    def cfg(ckpt: str, version: str = "new", save_dir: str = "runs", name: str = "demo") -> Namespace:
        loggers = [
            Namespace(class_path=f"lightning.pytorch.loggers.{cls}",
                      init_args=Namespace(save_dir=save_dir, name=name, version=version))
            for cls in ("TensorBoardLogger", "CSVLogger")
        ]  # fmt: skip
        return Namespace(ckpt_path=ckpt, trainer=Namespace(logger=loggers, default_root_dir=None))

    c = cfg("last")
    r = resolve_resume(c)
    assert r is not None and r.same_folder and r.step == 7 and r.run == Path("runs/demo/a")
    assert c.ckpt_path == "runs/demo/a/checkpoints/last.ckpt" and os.environ["ALT_RUN_VERSION"] == "a"
    assert [lg.init_args.version for lg in c.trainer.logger] == ["a", "a"]
    assert c.trainer.logger[0].init_args.purge_step == 7 and "purge_step" not in c.trainer.logger[1].init_args

    c = cfg(str(tmp_path / "runs/demo/b/checkpoints/last.ckpt"))  # named explicitly (absolute path)
    assert resolve_resume(c).same_folder and [lg.init_args.version for lg in c.trainer.logger] == ["b", "b"]

    monkeypatch.setenv("ALT_RUN_VERSION", "new")
    for other in ("runs/demo/a/checkpoints/best.ckpt", "elsewhere/last.ckpt"):
        (tmp_path / other).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"global_step": 1}, tmp_path / other)
        c = cfg(other)
        assert not resolve_resume(c).same_folder, other
        assert [lg.init_args.version for lg in c.trainer.logger] == ["new", "new"], other
    assert os.environ["ALT_RUN_VERSION"] == "new"

    # A logger without a version level writes into <save_dir>/<name> itself (`alt protocol` units).
    c = cfg("last", version="", save_dir="runs/demo/b", name="")
    r = resolve_resume(c)
    assert r.same_folder and r.run == Path("runs/demo/b") and c.trainer.logger[0].init_args.version == ""

    assert resolve_resume(cfg(None)) is None
    with pytest.raises(SystemExit, match="no run to resume"):
        resolve_resume(cfg("last", name="other"))


# ----------------------------------------------------------------------------------------------- checkpoint checks
@pytest.fixture(scope="module")
def demo_checkpoint(synthetic_root: Path, tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch (1 batch) of the demo config on the synthetic data: its best.ckpt."""
    tmp = tmp_path_factory.mktemp("demo_fit")
    args = _fit_args(synthetic_root, tiny_corpus, tmp, epochs=1)
    old = Path.cwd()
    os.chdir(tmp)
    try:
        assert main(["fit", *args, "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1"]) == 0
    finally:
        os.chdir(old)
    return next(tmp.rglob("best.ckpt"))


def _test_args(root: Path, corpus: Path, tmp: Path) -> list[str]:
    return [a for a in _fit_args(root, corpus, tmp) if not a.startswith("--trainer.max_epochs")]


@pytest.mark.parametrize("subcommand", ["test", "validate"])
def test_evaluating_without_a_checkpoint_is_refused(
    subcommand: str, synthetic_root: Path, tiny_corpus: Path, tmp_path: Path, monkeypatch
) -> None:
    """No --ckpt_path would score an untrained adapter: refused in one line, before anything is built."""
    import alt_lightning.model.build as module

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(module, "load_clip", lambda *a, **k: pytest.fail("a model was built"))
    with pytest.raises(SystemExit) as err:
        main([subcommand, *_test_args(synthetic_root, tiny_corpus, tmp_path)])
    message = str(err.value.code)
    assert "\n" not in message and "--ckpt_path" in message and "--zero_shot_from_clip" in message, message


def test_init_weights_count_as_trained_weights() -> None:
    """`model.init_args.init_weights` loads trained weights without --ckpt_path: not refused."""
    from jsonargparse import Namespace

    from alt_lightning.lightning.cli import check_weights_source

    model = Namespace(class_path="alt_lightning.lightning.ALTModule", init_args=Namespace(init_weights="k400.ckpt"))
    check_weights_source("test", Namespace(ckpt_path=None, zero_shot_from_clip=False, model=model))
    with pytest.raises(SystemExit, match="not both"):
        check_weights_source("test", Namespace(ckpt_path=None, zero_shot_from_clip=True, model=model))
    model.init_args.init_weights = None
    with pytest.raises(SystemExit, match="untrained adapter"):
        check_weights_source("validate", Namespace(ckpt_path=None, zero_shot_from_clip=False, model=model))


def test_zero_shot_from_clip_tests_clip_alone_and_says_so(
    synthetic_root: Path, tiny_corpus: Path, demo_checkpoint: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    from alt_lightning.lightning.cli import run_cli

    monkeypatch.chdir(tmp_path)
    args = _test_args(synthetic_root, tiny_corpus, tmp_path)
    cli = run_cli(["test", *args, "--zero_shot_from_clip"])
    assert float(cli.model.model.adapter.gamma) == 0.0  # z = mean frame cls embedding: CLIP's own classifier
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("test top-1:"))
    assert "CLIP zero-shot" in line and "no trained weights" in line, line
    with pytest.raises(SystemExit, match="not both"):
        main(["test", *args, "--zero_shot_from_clip", f"--ckpt_path={demo_checkpoint}"])
    with pytest.raises(SystemExit, match="test, validate or predict"):
        main(["fit", *args, "--zero_shot_from_clip"])


def test_backbone_mismatch_is_found_before_texts_are_embedded(
    synthetic_root: Path, tiny_corpus: Path, demo_checkpoint: Path, tmp_path: Path, monkeypatch
) -> None:
    """Other backbone weights or architecture than the checkpoint's: one line, before the corpus is embedded."""
    import torch

    import alt_lightning.model.build as module

    monkeypatch.chdir(tmp_path)
    other = tmp_path / "other_weights.pt"
    torch.save(module.load_clip("alt-tiny", seed=1).state_dict(), other)
    built: list[str] = []
    real_load_clip = module.load_clip
    monkeypatch.setattr(module, "load_clip", lambda name, *a, **k: built.append(name) or real_load_clip(name, *a, **k))
    embedded: list[int] = []
    monkeypatch.setattr(module, "cached_text_embeddings", lambda *a, **k: embedded.append(1) or pytest.fail("embedded"))
    monkeypatch.setattr(module, "class_text_embeddings", lambda *a, **k: embedded.append(1) or pytest.fail("embedded"))
    args = [*_test_args(synthetic_root, tiny_corpus, tmp_path), f"--ckpt_path={demo_checkpoint}"]
    with pytest.raises(SystemExit) as err:
        main(["test", *args, f"--model.init_args.pretrained={other}"])
    message = str(err.value.code)
    assert "\n" not in message and "fingerprint" in message and "pretrained" in message, message
    assert built == ["alt-tiny"] and embedded == []  # the backbone was built and checked, nothing embedded
    built.clear()
    with pytest.raises(SystemExit, match="model_name"):
        main(["test", *args, "--model.init_args.model_name=ViT-L-14"])
    assert built == [] and embedded == []  # another architecture: refused before the backbone is even built


SUBCLASS = '''
import torch
from alt_lightning.lightning import ALTModule


class BiasedALT(ALTModule):
    """ALT with one extra trainable parameter (a per-class logit bias)."""

    def configure_classifier(self):
        classifier = super().configure_classifier()
        self.class_bias = torch.nn.Parameter(torch.zeros(len(self.class_names)))
        return classifier
'''


def test_checkpoint_of_a_subclass_is_tested_with_its_class(
    synthetic_root: Path, tiny_corpus: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """The checkpoint records its class: `alt test --config <ALTModule config> --ckpt_path <subclass ckpt>` uses it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_alt_subclass.py").write_text(SUBCLASS)
    monkeypatch.syspath_prepend(str(tmp_path))
    fit = _fit_args(synthetic_root, tiny_corpus, tmp_path, epochs=1)
    limits = ["--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1"]
    assert main(["fit", *fit, *limits, "--model.class_path=my_alt_subclass.BiasedALT"]) == 0
    ckpt = next(tmp_path.rglob("best.ckpt"))
    args = [*_test_args(synthetic_root, tiny_corpus, tmp_path), f"--ckpt_path={ckpt}"]
    assert main(["test", *args]) == 0  # demo.yaml names ALTModule; the checkpoint's class wins over config files
    assert "test top-1:" in capsys.readouterr().out
    # A class named on the command line wins, and one whose weights do not fit is refused in one line.
    with pytest.raises(SystemExit) as err:
        main(["test", *args, "--model.class_path=alt_lightning.lightning.ALTModule"])
    message = str(err.value.code)
    assert "\n" not in message and "--model.class_path my_alt_subclass.BiasedALT" in message, message


def test_summary_line_accounts_for_every_listed_video(
    synthetic_root: Path, tiny_corpus: Path, demo_checkpoint: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """listed = evaluated + failed + missing on a test list with a missing and an undecodable file."""
    monkeypatch.chdir(tmp_path)
    lines = (synthetic_root / "test.txt").read_text().splitlines()
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(4000))
    lines += [f"{garbage} 1", f"{tmp_path / 'gone.mp4'} 2"]
    test_list = tmp_path / "test_bad.txt"
    test_list.write_text("\n".join(lines) + "\n")
    args = [*_test_args(synthetic_root, tiny_corpus, tmp_path), f"--ckpt_path={demo_checkpoint}"]
    for policy in ("report", "keep"):  # keep: the missing file reaches the loader and fails, still counted missing
        data = [f"--data.init_args.test_list={test_list}", f"--data.init_args.missing={policy}"]
        assert main(["test", *args, *data]) == 0
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("test top-1:"))
        assert "videos listed: 14  evaluated: 12  failed: 1  missing: 1" in line, (policy, line)
