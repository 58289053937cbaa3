"""Resuming an interrupted run (``alt fit --ckpt_path``) reaches the same final state as an uninterrupted run.

CPU, fixed seed, the tiny synthetic dataset: 24 training videos in 3 batches of 8, 2 epochs (6 steps). A callback
saves a checkpoint after a given step and raises (a crash or a pre-emption); the run is then resumed from it. The
uninterrupted reference runs without DataLoader workers; the interrupted runs with none or with 2.

* At an epoch boundary (after step 3) the resumed run is bit-identical: data order and augmentation are functions of
  ``(seed, epoch, index)`` and the :class:`~alt_lightning.lightning.callbacks.StepSeed` default callback makes the
  Gumbel noise a function of ``(seed, step, rank)``.
* Mid-epoch (after step 4) Lightning 2.6 restarts a DataLoader without ``state_dict``/``load_state_dict`` at the
  start of the epoch and runs only the remaining number of batches; the :class:`ShardSampler` skips the items the
  restored loop has consumed (``resume_skip_from``), so the resumed run is bit-identical there too.
* With workers, Lightning creates the first resumed epoch's iterator before it sets the epoch; the
  :class:`DeferredDataLoader` starts it at the first batch instead (before: epoch 0's order and no skip; the final
  weights differed by up to 2.6e-3 resumed at the epoch end, 1.1e-3 mid-epoch).
* ``last.ckpt`` (:class:`BestAndLastCheckpoint`) holds the state after every epoch, whatever the monitored score does,
  and a fit without validation resumes exactly from it.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from alt_lightning.lightning.cli import run_cli

REPO = Path(__file__).resolve().parents[2]


class SimulatedCrashError(RuntimeError):
    """Raised by :class:`StopAtStep`."""


class StopAtStep(pl.Callback):
    """Saves a checkpoint after optimizer step ``step`` (unless ``path`` is ``None``) and raises."""

    def __init__(self, step: int, path: str | None = None) -> None:
        self.step, self.path = step, path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            if self.path is not None:
                trainer.save_checkpoint(self.path)
            raise SimulatedCrashError(f"stopped after step {self.step}")


class BatchLog(pl.Callback):
    """Record the video indices of every training batch."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, list[int]]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batches.append((trainer.global_step, batch["index"].tolist()))


def _args(root: Path, corpus: Path, weights: Path, out: Path, workers: int = 0) -> list[str]:
    return [
        "fit",
        "--config",
        str(REPO / "configs" / "demo.yaml"),
        f"--data.init_args.root={root}",
        f"--data.init_args.num_workers={workers}",
        "--data.init_args.num_frames=4",
        "--data.init_args.batch_size=8",
        f"--model.init_args.corpus={corpus}",
        f"--model.init_args.pretrained={weights}",
        "--trainer.max_epochs=2",
        "--trainer.limit_val_batches=1",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        f"--trainer.default_root_dir={out}",
        f'--trainer.callbacks+={{"class_path": "{__name__}.BatchLog"}}',
    ]


def _state(cli) -> dict:
    log = next(cb for cb in cli.trainer.callbacks if isinstance(cb, BatchLog))
    return {
        "weights": {k: p.detach().clone() for k, p in cli.model.named_parameters() if p.requires_grad},
        "metrics": {k: v.clone() for k, v in cli.trainer.callback_metrics.items()},
        "batches": log.batches,
        "step": cli.trainer.global_step,
    }


@pytest.fixture(scope="module")
def uninterrupted(synthetic_root: Path, tiny_corpus: Path, tiny_weights: Path, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("uninterrupted")
    return _state(run_cli(_args(synthetic_root, tiny_corpus, tiny_weights, out)))


def _interrupt_and_resume(step: int, root: Path, corpus: Path, weights: Path, tmp: Path, workers: int = 0) -> dict:
    ckpt = tmp / "interrupted.ckpt"
    stop = {"class_path": f"{__name__}.StopAtStep", "init_args": {"step": step, "path": str(ckpt)}}
    stop_arg = "--trainer.callbacks+=" + str(stop).replace("'", '"')
    with pytest.raises(SimulatedCrashError):
        run_cli([*_args(root, corpus, weights, tmp / "cut", workers), stop_arg])
    return _state(run_cli([*_args(root, corpus, weights, tmp / "resumed", workers), f"--ckpt_path={ckpt}"]))


def _assert_same(full: dict, resumed: dict, first_step: int) -> None:
    assert resumed["step"] == full["step"] == 6
    assert resumed["batches"] == full["batches"][first_step:]
    worst = max((full["weights"][k] - resumed["weights"][k]).abs().max().item() for k in full["weights"])
    assert worst == 0.0, f"largest weight difference {worst}"
    for key in ("val/top1", "val/top5", "val/mean_class", "train/loss", "train/top1"):
        assert torch.allclose(full["metrics"][key], resumed["metrics"][key], atol=0, rtol=0), key


@pytest.mark.parametrize("workers", [2, pytest.param(0, marks=pytest.mark.slow)])
@pytest.mark.parametrize("step", [3, 4], ids=["epoch-end", "mid-epoch"])
def test_resume_is_exact(
    step: int,
    workers: int,
    uninterrupted: dict,
    synthetic_root: Path,
    tiny_corpus: Path,
    tiny_weights: Path,
    tmp_path: Path,
    monkeypatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    resumed = _interrupt_and_resume(step, synthetic_root, tiny_corpus, tiny_weights, tmp_path, workers)
    _assert_same(uninterrupted, resumed, first_step=step)


class LastCheckpointProbe(pl.Callback):
    """At the start of every epoch after the first, the global step stored in ``last.ckpt`` (``None``: no file)."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int | None]] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch > 0:
            last = Path(trainer.checkpoint_callback.dirpath) / "last.ckpt"
            stored = torch.load(last, weights_only=True, map_location="cpu")["global_step"] if last.is_file() else None
            self.seen.append((trainer.global_step, stored))


@pytest.mark.parametrize(
    "case",
    [
        # lr 0: val/top1 never rises after epoch 0, so the best checkpoint is written once (Lightning 2.6 then left
        # last.ckpt at epoch 0's step too).
        ["--model.init_args.optimizer.init_args.lr=0", "--trainer.limit_val_batches=1"],
        # no validation (base-to-novel fits): Lightning wrote last.ckpt only at the end of fit.
        ["--trainer.limit_val_batches=0"],
    ],
    ids=["plateau", "no-validation"],
)
def test_last_checkpoint_holds_the_last_epoch(
    case: list[str], synthetic_root: Path, tiny_corpus: Path, tiny_weights: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = [a for a in _args(synthetic_root, tiny_corpus, tiny_weights, tmp_path) if "limit_val_batches" not in a]
    probe = f'--trainer.callbacks+={{"class_path": "{__name__}.LastCheckpointProbe"}}'
    cli = run_cli([*args, probe, *case])
    probe_cb = next(cb for cb in cli.trainer.callbacks if isinstance(cb, LastCheckpointProbe))
    assert probe_cb.seen == [(3, 3)]  # 3 steps per epoch: after epoch 0
    folder = Path(cli.trainer.checkpoint_callback.dirpath)
    assert torch.load(folder / "last.ckpt", weights_only=True, map_location="cpu")["global_step"] == 6  # after 1
    if "--trainer.limit_val_batches=1" in case:  # best.ckpt still tracks the best val/top1: the first epoch's
        best = torch.load(folder / "best.ckpt", weights_only=True, map_location="cpu")
        assert best["global_step"] == 3


def test_resume_from_last_checkpoint_without_validation_is_exact(
    uninterrupted: dict, synthetic_root: Path, tiny_corpus: Path, tiny_weights: Path, tmp_path: Path, monkeypatch
) -> None:
    """A fit without validation (base-to-novel) crashed in epoch 1 resumes from the ``last.ckpt`` of epoch 0's end.

    That checkpoint is written at the end of the training epoch (no validation, so no best one); 2 workers. Weights
    match the uninterrupted run's (validation does not touch training randomness: StepSeed reseeds every step).
    """
    monkeypatch.chdir(tmp_path)
    args = [*_args(synthetic_root, tiny_corpus, tiny_weights, tmp_path, workers=2), "--trainer.limit_val_batches=0"]
    stop = f'--trainer.callbacks+={{"class_path": "{__name__}.StopAtStep", "init_args": {{"step": 4}}}}'
    with pytest.raises(SimulatedCrashError):
        run_cli([*args, stop])
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True, map_location="cpu")["global_step"] == 3
    resumed = _state(run_cli([*args, "--ckpt_path=last"]))  # without a logger: <default_root_dir>/checkpoints
    assert resumed["step"] == 6 and resumed["batches"] == uninterrupted["batches"][3:]
    worst = max((uninterrupted["weights"][k] - w).abs().max().item() for k, w in resumed["weights"].items())
    assert worst == 0.0, f"largest weight difference {worst}"
