"""A data config of the tiny UCF-101 (``ucf_layout``, tests/conftest.py) and the overrides that run ALT-tiny on it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch


@pytest.fixture
def ucf_config(tmp_path: Path, ucf_layout: Path) -> Path:
    """A data config of the tiny UCF-101 (split 1)."""
    path = tmp_path / "ucf_tiny.yaml"
    path.write_text(
        "data:\n"
        "  class_path: alt_lightning.datamodules.UCFHMDBDataModule\n"
        "  init_args:\n"
        f"    {{dataset: ucf101, split: 1, root: {ucf_layout}, num_frames: 4, batch_size: 4, num_workers: 0}}\n"
    )
    return path


@pytest.fixture
def tiny_model_args(tiny_weights: Path, tiny_corpus: Path) -> list[str]:
    """ALT-tiny with saved weights, on the CPU, quietly."""
    return [
        "--model=alt_lightning.lightning.ALTModule",
        "--model.init_args.model_name=alt-tiny",
        f"--model.init_args.pretrained={tiny_weights}",
        f"--model.init_args.corpus={tiny_corpus}",
        "--model.init_args.encoder.r=2",
        "--model.init_args.adapter.heads=4",
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.num_sanity_val_steps=0",
    ]


@pytest.fixture
def fake_cli() -> Callable[[float], SimpleNamespace]:
    """Makes what the protocol runner reads from a finished ``alt test`` (its ``run_fn``'s result), for a top-1.

    The metrics are those the runner reports: top-1 as given, top-5 1.0, mean class accuracy half the top-1.
    """

    def make(top1: float) -> SimpleNamespace:
        metrics = {"test/top1": torch.tensor(top1), "test/top5": torch.tensor(1.0), "test/mean_class": top1 / 2}
        trainer = SimpleNamespace(callback_metrics={**metrics, "test/videos_evaluated": 4.0}, callbacks=[])
        return SimpleNamespace(trainer=trainer, datamodule=None)

    return make
