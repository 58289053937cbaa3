"""Run folders: one run name for every logger, checkpoints and config; tests under their checkpoint's run, from any
working folder; ``latest`` moves only when a fit completes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from alt_lightning.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_one_run_folder_and_a_test_under_it_from_another_folder(
    synthetic_root: Path, tiny_corpus: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    shutil.copytree(synthetic_root, work / "data", symlinks=True)
    monkeypatch.chdir(work)
    monkeypatch.delenv("ALT_RUN_VERSION", raising=False)
    fit = [
        "fit", "--config", str(REPO / "configs" / "demo.yaml"), "--data.init_args.root=data",  # relative to work/
        f"--model.init_args.corpus={tiny_corpus}", "--data.init_args.num_workers=0", "--data.init_args.batch_size=8",
        "--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.enable_progress_bar=false",
        "--run_name", "exp1",
        # A logger renamed on its own no longer splits the run: the run name wins for every logger.
        '--trainer.logger=[{"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": '
        '{"save_dir": "runs"}}, {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": '
        '{"save_dir": "runs", "name": "other"}}]',
    ]  # fmt: skip
    assert main(fit) == 0
    assert sorted(p.name for p in (work / "runs").iterdir()) == ["exp1"]
    runs = work / "runs" / "exp1"
    (run,) = [p for p in runs.iterdir() if not p.is_symlink()]
    assert run.name.startswith("fit-") and (runs / "latest").resolve() == run.resolve()
    assert {"config.yaml", "metrics.csv", "hparams.yaml", "checkpoints"} <= {p.name for p in run.iterdir()}
    assert list(run.glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert yaml.safe_load((run / "config.yaml").read_text())["run_name"] == "exp1"
    capsys.readouterr()

    # From another folder, a path through the `latest` link: the data root stored absolute, results under the run.
    monkeypatch.chdir(elsewhere)
    ckpt = runs / "latest" / "checkpoints" / "best.ckpt"
    assert main(["test", "--ckpt_path", str(ckpt), "--trainer.enable_progress_bar=false"]) == 0
    out = capsys.readouterr().out
    assert "evaluated: 12" in out
    assert not (elsewhere / "runs").exists()
    (test,) = [p for p in run.iterdir() if p.name.startswith("test-")]
    results = json.loads((test / "test_results.json").read_text())
    assert results["checkpoint"] == str((run / "checkpoints" / "best.ckpt").resolve())
    assert results["files"]["predictions"] == str((test / "predictions_test.csv").resolve())
    assert results["files"]["metrics_csv"] == str((test / "metrics.csv").resolve())
    assert len((test / "predictions_test.csv").read_text().splitlines()) == 1 + 12
    assert abs(results["metrics"]["test/top1"] * 100 - float(out.split("top-1:")[1].split("%")[0])) < 0.01
    assert f"per-video predictions: {(test / 'predictions_test.csv').resolve()}" in out
    assert f"metrics and checkpoint used: {(test / 'test_results.json').resolve()}" in out
    assert (test / "config.yaml").is_file()
    assert (runs / "latest").resolve() == run.resolve()  # a test does not move it


def test_latest_moves_only_when_a_fit_completes(
    synthetic_root: Path, tiny_corpus: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    fit = [
        "fit", "--config", str(REPO / "configs" / "demo.yaml"), f"--data.init_args.root={synthetic_root}",
        f"--model.init_args.corpus={tiny_corpus}", "--data.init_args.num_workers=0", "--data.init_args.batch_size=8",
        "--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
    ]  # fmt: skip
    monkeypatch.setenv("ALT_RUN_VERSION", "fit-done")
    assert main(fit) == 0
    latest = tmp_path / "runs" / "demo" / "latest"
    assert latest.resolve() == (tmp_path / "runs" / "demo" / "fit-done").resolve()
    monkeypatch.setenv("ALT_RUN_VERSION", "fit-crashed")
    crash = '--trainer.callbacks+={"class_path": "tests.test_cli.CrashAtStep", "init_args": {"step": 1}}'
    with pytest.raises(RuntimeError, match="crashed after step 1"):
        main([*fit, crash])
    assert (tmp_path / "runs" / "demo" / "fit-crashed").is_dir()
    assert latest.resolve() == (tmp_path / "runs" / "demo" / "fit-done").resolve()
