"""ALTConfig: presets, the YAML model pieces that spell them, and ALTModule's flat arguments that mirror it."""

from __future__ import annotations

import inspect
from dataclasses import MISSING, fields, replace
from pathlib import Path

import pytest
import yaml

from alt_lightning.lightning.module import ALTModule
from alt_lightning.model.adapter import AdapterConfig
from alt_lightning.model.alt import EncoderConfig
from alt_lightning.model.config import PRESETS, ALTConfig

MODEL_PIECES = Path(__file__).resolve().parents[2] / "configs" / "model"

#: configs/model/<file> -> the presets it spells (frames are data settings: the B/16 piece serves 8 and 32 frames).
PIECE_PRESETS = {
    "alt_b16.yaml": ("alt-b16-8f", "alt-b16-32f"),
    "alt_l14.yaml": ("alt-l14",),
    "tiny.yaml": ("alt-tiny",),
}


def test_every_model_piece_equals_its_presets() -> None:
    assert sorted(p.name for p in MODEL_PIECES.glob("*.yaml")) == sorted(PIECE_PRESETS)
    assert sorted(n for names in PIECE_PRESETS.values() for n in names) == sorted(PRESETS)
    for piece, names in PIECE_PRESETS.items():
        init = yaml.safe_load((MODEL_PIECES / piece).read_text())["model"]["init_args"]
        assert "num_frames" not in init and "max_frames" not in init.get("adapter", {}), piece  # linked from data
        for name in names:
            preset = ALTConfig.preset(name)
            assert ALTConfig(**init, num_frames=preset.num_frames) == preset, (piece, name)


def test_presets_are_the_papers_models() -> None:
    b16, b16_32, l14 = (ALTConfig.preset(n) for n in ("alt-b16-8f", "alt-b16-32f", "alt-l14"))
    assert (b16.model_name, b16.pretrained, b16.encoder.r, b16.num_frames) == ("ViT-B-16", "openai", 8, 8)
    assert replace(b16_32, num_frames=8) == b16 and b16_32.num_frames == 32
    assert (l14.model_name, l14.adapter.heads, l14.num_frames) == ("ViT-L-14", 12, 32)
    assert ALTConfig.preset("alt-tiny").pretrained is None
    assert ALTConfig.for_backbone("ViT-L-14") == l14 and ALTConfig.for_backbone("ViT-B-32").model_name == "ViT-B-32"
    fresh = ALTConfig.preset("alt-b16-8f")
    fresh.encoder.r = 0
    assert ALTConfig.preset("alt-b16-8f").encoder.r == 8  # a preset is a copy: changing it changes no other
    with pytest.raises(ValueError, match="alt-b16-8f"):
        ALTConfig.preset("alt-b16")


def test_dicts_and_none_become_component_configs() -> None:
    config = ALTConfig(encoder={"r": 3}, adapter=None)
    assert config.encoder == EncoderConfig(r=3) and config.adapter == AdapterConfig()
    with pytest.raises(ValueError, match="num_frames"):
        ALTConfig(num_frames=0)


def test_altmodule_arguments_mirror_altconfig() -> None:
    """ALTModule's model arguments are ALTConfig's fields, with the same defaults (None: the component's defaults)."""
    params = inspect.signature(ALTModule.__init__).parameters
    model_args = [n for n in params if n != "self" and n not in ALTModule.NON_CONFIG_ARGS]
    assert model_args == [f.name for f in fields(ALTConfig)]
    for f in fields(ALTConfig):
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        module_default = params[f.name].default
        if module_default is None and f.name in ("encoder", "alignment", "adapter"):
            module_default = type(default)()
        assert module_default == default, f.name
