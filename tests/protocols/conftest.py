"""A tiny UCF-101 in its official layout (4 classes, splits 1-3) and the overrides that run ALT-tiny on it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

UCF_CLASSES = ("ApplyEyeMakeup", "Archery", "Basketball", "YoYo")


@pytest.fixture(scope="session")
def ucf_layout(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``classInd.txt``, ``trainlist0k.txt``, ``testlist0k.txt``; 3 videos per class (links to synthetic videos)."""
    videos = iter(sorted((synthetic_root / "videos").rglob("*.mp4")))
    root = tmp_path_factory.mktemp("ucf_layout")
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(UCF_CLASSES, 1)))
    for cls in UCF_CLASSES:
        (root / cls).mkdir()
        for g in (1, 2, 3):
            os.symlink(next(videos), root / cls / f"v_{cls}_g{g:02d}_c01.avi")
    for split in (1, 2, 3):
        train = [
            f"{c}/v_{c}_g{g:02d}_c01.avi {i}" for i, c in enumerate(UCF_CLASSES, 1) for g in (1, 2, 3) if g != split
        ]
        (lists / f"trainlist0{split}.txt").write_text("\n".join(train) + "\n")
        (lists / f"testlist0{split}.txt").write_text("".join(f"{c}/v_{c}_g{split:02d}_c01.avi\n" for c in UCF_CLASSES))
    return root


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
