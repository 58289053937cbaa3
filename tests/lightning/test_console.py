"""A quiet console: ``alt fit`` / ``alt test`` of the demo print no warning caused by our code or config, the progress
bar fits 80 columns, and the model summary prints no FLOPs of zero."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from alt_lightning.cli import main
from alt_lightning.lightning.callbacks import ModelSummary, ProgressBar

REPO = Path(__file__).resolve().parents[2]

#: The lines `alt fit` / `alt test` print on stderr: Lightning's and ours, informational, none a warning.
INFO_LINES = (
    "Seed set to 0",
    "GPU available: False, used: False",
    "TPU available: False, using: 0 TPU cores",
    "Loading `train_dataloader` to estimate number of stepping batches.",
    "`Trainer.fit` stopped: `max_epochs=1` reached.",
)


def _demo_args(root: Path, corpus: Path) -> list[str]:
    """The demo config on the tiny data set: 1 epoch of 3 steps, loggers, progress bar and summary as in the demo."""
    return [
        "--config", str(REPO / "configs" / "demo.yaml"), f"--data.init_args.root={root}",
        f"--model.init_args.corpus={corpus}", "--data.init_args.num_workers=0", "--data.init_args.batch_size=8",
        "--trainer.max_epochs=1", "--trainer.log_every_n_steps=1",
    ]  # fmt: skip


def test_fit_of_the_demo_raises_no_warning_of_ours(
    synthetic_root: Path, tiny_corpus: Path, tmp_path: Path, monkeypatch, caplog
) -> None:
    """In process (fast): Python warnings and root-logger warnings (open_clip's) of a demo fit and its test."""
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["fit", *_demo_args(synthetic_root, tiny_corpus), "--trainer.enable_progress_bar=false"]) == 0
        ckpt = next((tmp_path / "runs" / "demo").glob("fit-*/checkpoints/best.ckpt"))
        assert main(["test", "--ckpt_path", str(ckpt), "--trainer.enable_progress_bar=false"]) == 0
    ours = [f"{w.filename}:{w.lineno}: {w.message}" for w in caught]
    assert ours == [], "\n".join(ours)
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []


@pytest.mark.slow
def test_alt_fit_and_test_of_the_demo_print_no_warning(synthetic_root: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    """As a user sees it (a subprocess, 80 columns): stderr holds only Lightning's info lines; no FLOPs of 0."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "80", "PYTHONWARNINGS": "default"}
    env.pop("ALT_RUN_VERSION", None)

    def alt(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "alt_lightning", *args]
        return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)

    fit = alt("fit", *_demo_args(synthetic_root, tiny_corpus))
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert [line for line in fit.stderr.splitlines() if line.strip() and line not in INFO_LINES] == []
    assert "Total FLOPs" not in fit.stdout and "v_num" not in fit.stdout and "(the frozen backbone's" in fit.stdout
    ckpt = next((tmp_path / "runs" / "demo").glob("fit-*/checkpoints/best.ckpt"))
    test = alt("test", "--ckpt_path", str(ckpt))
    assert test.returncode == 0, test.stderr[-3000:]
    restored = (
        f"Restoring states from the checkpoint path at {ckpt}",
        f"Loaded model weights from the checkpoint at {ckpt}",
    )
    assert [line for line in test.stderr.splitlines() if line.strip() and line not in (*INFO_LINES, *restored)] == []


def _render_bar(bar: ProgressBar, logged: dict[str, object], width: int = 80) -> str:
    """The training bar of the last demo epoch as Rich draws it on a terminal of ``width`` columns."""
    from lightning.pytorch.callbacks.progress.rich_progress import MetricsTextColumn
    from rich.console import Console
    from rich.progress import Progress

    trainer = SimpleNamespace(
        progress_bar_metrics=logged,
        training=True,
        sanity_checking=False,
        state=SimpleNamespace(fn="fit"),
        progress_bar_callback=bar,
    )
    theme = bar.theme
    metrics = MetricsTextColumn(trainer, theme.metrics, theme.metrics_text_delimiter, theme.metrics_format)
    out = io.StringIO()
    console = Console(width=width, file=out, color_system=None)
    progress = Progress(*bar.configure_columns(trainer), metrics, console=console, auto_refresh=False)
    bar.train_progress_bar_id = progress.add_task("Epoch 29/29", total=8)
    progress.update(bar.train_progress_bar_id, completed=8)
    metrics.update(bar.get_metrics(trainer, None))
    console.print(progress.get_renderable())
    return out.getvalue()


def test_progress_bar_shows_short_names_on_one_line_of_80_columns() -> None:
    # What the demo's module logs with prog_bar=True at the end of a fit (values of the before-capture).
    logged = {"train/loss": torch.tensor(0.740), "val/mean_class": 0.656, "val/top1": 0.656, "val/top5": 1.0}
    logged |= {f"val/videos_{k}": 32.0 for k in ("listed", "evaluated")} | {"val/videos_failed": 0.0}
    bar = ProgressBar()
    trainer = SimpleNamespace(progress_bar_metrics=logged)
    assert bar.get_metrics(trainer, None) == {"loss": logged["train/loss"], "top1": 0.656}
    lines = _render_bar(bar, logged).rstrip("\n").split("\n")
    assert len(lines) == 1 and len(lines[0].rstrip()) <= 80, lines
    assert lines[0].rstrip().endswith("loss: 0.740 top1: 0.656")
    # Every logged metric under its full name, as Lightning's bar shows them: 7 lines on 80 columns.
    everything = ProgressBar(metrics={k: k for k in logged})
    assert len(_render_bar(everything, logged).rstrip("\n").split("\n")) > 1


def test_model_summary_drops_flops_only_when_none_were_counted(capsys) -> None:
    data = [(" ", ["0"]), ("Name", ["model"]), ("Type", ["ALT"]), ("Params", ["226 K"]), ("Mode", ["train"])]
    data.append(("FLOPs", ["0"]))
    modes = {"train": 43, "eval": 29}
    ModelSummary.summarize(data, 226_000, 72_100, 0.907, modes, total_flops=0)
    out = capsys.readouterr().out
    assert "FLOPs" not in out and "Trainable params: 72.1 K" in out
    assert "Modules in eval mode: 29 (the frozen backbone's, on purpose)" in out
    data[-1] = ("FLOPs", ["1.2 M"])
    ModelSummary.summarize(data, 226_000, 72_100, 0.907, modes, total_flops=1_234_567)
    out = capsys.readouterr().out
    assert "1.2 M" in out and "Total FLOPs: 1.2 M" in out


def test_lightnings_mid_epoch_resume_warning_is_filtered_by_its_exact_text() -> None:
    """The filter matches the message as Lightning's source writes it (read from the installed file), nothing else."""
    import inspect
    import re

    from lightning.pytorch.loops import training_epoch_loop

    from alt_lightning.lightning.console import quiet_console

    source = inspect.getsource(training_epoch_loop)
    start = source.index("\"You're resuming from a checkpoint")
    parts = re.findall(r'"([^"]*)"', source[start : source.index(")", start)])
    message = "".join(parts)
    assert message.startswith("You're resuming from a checkpoint that ended before the epoch ended")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_console()
        warnings.warn(message, UserWarning, stacklevel=1)
        warnings.warn("You're resuming from somewhere else.", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["You're resuming from somewhere else."]
