"""`alt bench` times the model build_alt builds (random weights and texts) and prints its FLOPs and parameters."""

from __future__ import annotations

import argparse

import open_clip
import pytest

from alt_lightning.commands.bench import bench_config, run_bench
from alt_lightning.model.backbone import register_model_configs


def _args(**kw) -> argparse.Namespace:
    base = {
        "preset": None, "model_name": None, "frames": None, "r": None, "adapter_layers": None, "batch": 2,
        "train_batch": None, "views": 3, "corpus_size": 12, "num_classes": 4, "precision": "fp32", "device": "cpu",
        "attention": "mask", "compile": "none", "variants": ["mask:none"], "count_ops": False, "no_train": False,
        "frozen_cast": False, "baseline": False, "steps": 1, "warmup": 0, "json": None,
    }  # fmt: skip
    return argparse.Namespace(**{**base, **kw})


def test_bench_config_is_the_preset_with_the_arguments_applied() -> None:
    config = bench_config(_args(model_name="ViT-B-16", r=0, frames=4))
    assert (config.model_name, config.pretrained, config.encoder.r, config.num_frames) == ("ViT-B-16", None, 0, 4)
    assert config.adapter.heads == 8  # the alt-b16-8f preset's
    config = bench_config(_args())
    assert (config.model_name, config.encoder.r, config.adapter.heads, config.num_frames) == ("alt-tiny", 2, 4, 8)


def test_bench_counts_flops_and_parameters_of_the_timed_model() -> None:
    res = run_bench(_args(frames=4, r=2))
    # alt-tiny, width 64, 4 frames, 12 regions: the hand count of tests/model/test_flops.py::test_tiny_hand_count
    w, m = 64, 256
    frame = 16 * 768 * w + 4 * 17 * w * w + 2 * 17 * 17 * w + 9 * 8 * 32 + 2 * 15 * w * m
    frame += 4 * 15 * w * w + 2 * 15 * 15 * w + 8 * 7 * 32 + 2 * 13 * w * m + 13 * w * 64
    q, kv, c = 4 * 12, 4 * 13, 64
    adapter = 2 * q * c * c + 2 * kv * c * c + (q * c * c + kv * 2 * c * c + 2 * q * kv * c + q * c * c + 8 * q * c * c)
    view = 4 * frame + 4 * 12 * 12 * 64 + adapter + c * c + 4 * 64
    assert res["gflops_total"] == pytest.approx(3 * view / 1e9, rel=1e-12)
    # Trainable: the adapter (MLPs, 4-row position tables, one decoder layer, output norm + projection, gamma).
    linear = c * c + c
    layer = 4 * c + 2 * linear + (2 * c * c + 2 * c) + 2 * c + (c * m + m) + (m * c + c)
    trainable = 4 * linear + 2 * 4 * c + layer + 2 * c + linear + 1
    assert res["params_trainable_m"] == pytest.approx(trainable / 1e6, rel=1e-12)
    register_model_configs()
    visual = sum(p.numel() for p in open_clip.create_model("alt-tiny").visual.parameters())
    assert res["params_total_m"] == pytest.approx((visual + trainable) / 1e6, rel=1e-12)
    assert res["infer_frames_s"] > 0 and res["train_clips_s"] > 0
