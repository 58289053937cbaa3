"""FLOP counting: the FlopCounterMode measurement equals the analytic count; ALT-B/16 comes to the paper's 328."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from alt_lightning.model.adapter import AdapterConfig
from alt_lightning.model.config import ALTConfig
from alt_lightning.model.flops import analytic_flops, build_random_alt, measure_flops, parse_views

#: alt-tiny, 4 frames, r = 2, 12 entities, 4 classes.
TINY = replace(ALTConfig.preset("alt-tiny"), num_frames=4)
SIZES = {"num_classes": 4, "corpus_size": 12}


def _tiny(**changes) -> ALTConfig:
    config = replace(TINY, **{k: v for k, v in changes.items() if k != "r"})
    if "r" in changes:
        config.encoder = replace(config.encoder, r=changes["r"])
    return config


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"r": 0},
        {"r": 3, "num_frames": 2},
        {"align": False},
        {"region": False},
        {"align": False, "region": False},
        {"adapter": AdapterConfig(heads=4, layers=2, top_m=10, temporal_conv=True)},
        {"adapter": AdapterConfig(heads=4, learnable_queries=3), "align": False},
        {"adapter": AdapterConfig(heads=4, out_proj=False)},
    ],
    ids=["default", "r0", "r3-2f", "no-align", "no-region", "neither", "2l-top10-tconv", "learn3", "no-out-proj"],
)
def test_tiny_measured_equals_analytic(changes: dict) -> None:
    config = _tiny(**changes)
    assert measure_flops(config, **SIZES).per_view == analytic_flops(config, **SIZES)


def test_tiny_hand_count() -> None:
    """alt-tiny: width 64, 2 blocks, MLP 256, 16 patches of 16x16, embed 64, 2 heads (head dim 32)."""
    w, m = 64, 256
    n0, n1, n2 = 17, 15, 13  # tokens entering block 1, block 2, and leaving (r = 2)
    frame = 16 * 768 * w  # patch embedding
    frame += 4 * n0 * w * w + 2 * n0 * n0 * w + 9 * 8 * 32 + 2 * n1 * w * m  # block 1 (ToMe sets 9 x 8)
    frame += 4 * n1 * w * w + 2 * n1 * n1 * w + 8 * 7 * 32 + 2 * n2 * w * m  # block 2 (sets 8 x 7)
    frame += n2 * w * 64  # ln_post + proj
    report = measure_flops(TINY, **SIZES)
    assert report.per_view["encoder"] == 4 * frame
    assert report.per_view["alignment"] == 4 * 12 * 12 * 64  # T R K C
    assert report.per_view["classifier"] == 4 * 64
    q, kv, c = 4 * 12, 4 * 13, 64  # queries T R, keys T (1 + R)
    layer = q * c * c + kv * 2 * c * c + 2 * q * kv * c + q * c * c + 2 * q * c * 4 * c  # q, kv, QK^T+AV, out, FFN
    assert report.per_view["adapter"] == 2 * q * c * c + 2 * kv * c * c + layer + c * c  # MLPs, layer, projection
    assert report.total == 3 * report.view_total and report.tokens_per_frame == 13


def test_tiny_hand_count_cls_only() -> None:
    """The cls-only ablation: one query source and one key per frame, so the key/value MLP costs 2 T C^2."""
    report = measure_flops(_tiny(region=False), **SIZES)
    t, c = 4, 64
    q = kv = t  # queries: the entity aligned to each frame's cls token; keys: the T cls tokens
    layer = q * c * c + kv * 2 * c * c + 2 * q * kv * c + q * c * c + 2 * q * c * 4 * c
    assert report.per_view["adapter"] == 2 * q * c * c + 2 * kv * c * c + layer + c * c
    assert report.per_view["alignment"] == t * 1 * 12 * c


def test_real_cpu_run_counts_attention_like_meta() -> None:
    assert measure_flops(TINY, **SIZES, device="cpu").per_view == measure_flops(TINY, **SIZES).per_view
    # Without our formula the fused CPU attention kernel would be missed: the count would be lower.
    model, _ = build_random_alt(TINY, device="cpu", **SIZES)
    with torch.no_grad(), FlopCounterMode(display=False) as plain:
        model(torch.zeros(1, 4, 3, 64, 64))
    assert plain.get_total_flops() // 2 < measure_flops(TINY, **SIZES).view_total


def test_alt_b16_matches_the_paper() -> None:
    """ViT-B/16, 8 x 224, r = 8, 3x1 views, ~2,000 entities, 1 adapter layer of width 512: 328 GFLOPs +- 5 %."""
    config = ALTConfig.preset("alt-b16-8f")
    report = measure_flops(config, corpus_size=2000)
    assert report.tokens_per_frame == 101  # 197 - 12 * 8
    assert report.encoder_per_frame / 1e9 == pytest.approx(13.15, abs=0.01)
    assert report.total / 1e9 == pytest.approx(328, rel=0.05)
    assert report.per_view == analytic_flops(config, num_classes=400, corpus_size=2000)
    assert report.params_total - report.params_trainable == pytest.approx(86.19e6, rel=1e-3)  # ViT-B/16 image tower
    bare = measure_flops(replace(config, encoder=replace(config.encoder, r=0)), corpus_size=2000)
    assert bare.encoder_per_frame / 1e9 == pytest.approx(17.6, rel=0.01)  # the field's bare ViT-B/16 per frame


@pytest.mark.slow
def test_alt_b16_real_cpu_run_equals_meta() -> None:
    config = ALTConfig.preset("alt-b16-8f")
    assert (
        measure_flops(config, corpus_size=2000, device="cpu").per_view
        == measure_flops(config, corpus_size=2000).per_view
    )


def test_views_multiply_the_count() -> None:
    report = measure_flops(TINY, views=parse_views(3), **SIZES)
    assert report.total == 3 * report.view_total == 3 * sum(report.per_view.values())
    assert parse_views("3x1") == (3, 1) and parse_views("2X3") == (2, 3) and parse_views(4) == (4, 1)
    with pytest.raises(ValueError, match="3x1"):
        parse_views("three")


def test_counts_the_models_math_not_the_folded_padding() -> None:
    # The folded attention pads the head dim (32 -> 40 for alt-tiny): a counter run on it sees more products. The
    # reported count is the model's (mask form), whatever form a configuration runs.
    from alt_lightning.model.region_encoder import RegionEncoder

    folded = _tiny()
    folded.encoder = replace(folded.encoder, attention="folded")
    model, _ = build_random_alt(folded, **SIZES)
    assert model.encoder.attention == "mask"
    video = torch.zeros(1, folded.num_frames, 3, *model.encoder.image_size, device="meta")
    counts = {}
    for form in ("mask", "folded"):
        model.encoder = RegionEncoder(model.encoder.visual, r=folded.encoder.r, attention=form)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.encoder(video.flatten(0, 1))
        counts[form] = counter.get_total_flops() // 2
    assert (
        counts["mask"]
        == analytic_flops(_tiny(), **SIZES)["encoder"]
        == measure_flops(folded, **SIZES).per_view["encoder"]
    )
    assert counts["folded"] > counts["mask"]
