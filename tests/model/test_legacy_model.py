"""A checkpoint written before the issue-12 redesign (0.1.0) still loads into ALTModule and gives the same logits."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from alt_lightning.lightning.module import ALTModule

LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy"


def test_v0_1_0_checkpoint_gives_its_recorded_logits() -> None:
    """tests/data/legacy/README.md: alt-tiny, random weights (seed 0), shipped corpus, 4 frames, 2 classes."""
    expected = json.loads((LEGACY / "v0.1.0-fewshot-subset.expected.json").read_text())
    model = ALTModule.load_from_checkpoint(LEGACY / "v0.1.0-fewshot-subset.ckpt", weights_only=True).eval()
    assert model.class_names == ["ApplyEyeMakeup", "Archery"]
    video = torch.randn(2, 4, 3, 64, 64, generator=torch.Generator().manual_seed(0))  # the input expected.json names
    with torch.no_grad():
        out = model(video)
    torch.testing.assert_close(out.logits, torch.tensor(expected["logits"]), atol=1e-5, rtol=0)
    assert out.entity_ids.tolist() == expected["entity_ids"]
