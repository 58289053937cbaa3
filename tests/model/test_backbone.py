"""Backbone loading through the real `pretrained` path, and fingerprints."""

from __future__ import annotations

from pathlib import Path

import open_clip
import pytest
import torch

from alt_lightning.model.backbone import fingerprint, load_clip, preprocess_config, register_model_configs


def test_tiny_config_is_registered() -> None:
    register_model_configs()
    assert "alt-tiny" in open_clip.list_models()
    model = load_clip("alt-tiny")
    assert model.visual.image_size == (64, 64)
    assert preprocess_config(model).image_size == 64


def test_pretrained_file_loads_saved_weights(tmp_path: Path) -> None:
    torch.manual_seed(1)
    src = load_clip("alt-tiny", seed=1)
    path = tmp_path / "tiny.pt"
    torch.save(src.state_dict(), path)
    other = load_clip("alt-tiny", seed=2)
    assert fingerprint(other) != fingerprint(src)
    loaded = load_clip("alt-tiny", str(path))
    assert fingerprint(loaded) == fingerprint(src)
    for (k, a), (_, b) in zip(src.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_unknown_backbone_and_tag_fail_clearly() -> None:
    with pytest.raises(ValueError, match=r"unknown backbone model_name=.ViT-Z-99."):
        load_clip("ViT-Z-99")
    with pytest.raises(ValueError, match="neither a file nor a known tag"):
        load_clip("alt-tiny", "no-such-tag")


def test_random_backbone_is_reproducible_and_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = load_clip("alt-tiny")
    assert torch.equal(torch.rand(3), expected_next)
    b = load_clip("alt-tiny")
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(load_clip("alt-tiny", seed=None)) != fingerprint(a)
