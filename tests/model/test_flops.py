"""FLOP counting: the FlopCounterMode measurement equals the analytic count; ALT-B/16 comes to the paper's 328."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from alt_lightning.commands.flops import main
from alt_lightning.model.adapter import AdapterConfig
from alt_lightning.model.flops import (
    FlopSpec,
    alt_flops,
    analytic_flops,
    build_random_alt,
    measure_flops,
    parse_views,
)

TINY = {"model_name": "alt-tiny", "frames": 4, "r": 2, "corpus_size": 12, "num_classes": 4}


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"r": 0},
        {"r": 3, "frames": 2},
        {"align": False},
        {"region": False},
        {"align": False, "region": False},
        {"adapter": AdapterConfig(layers=2, top_m=10, temporal_conv=True)},
        {"adapter": AdapterConfig(learnable_queries=3), "align": False},
    ],
    ids=["default", "r0", "r3-2f", "no-align", "no-region", "neither", "2l-top10-tconv", "learn3"],
)
def test_tiny_measured_equals_analytic(changes: dict) -> None:
    spec = FlopSpec(**{**TINY, **changes})
    assert measure_flops(spec).per_view == analytic_flops(spec)


def test_tiny_hand_count() -> None:
    """alt-tiny: width 64, 2 blocks, MLP 256, 16 patches of 16x16, embed 64, 2 heads (head dim 32)."""
    w, m = 64, 256
    n0, n1, n2 = 17, 15, 13  # tokens entering block 1, block 2, and leaving (r = 2)
    frame = 16 * 768 * w  # patch embedding
    frame += 4 * n0 * w * w + 2 * n0 * n0 * w + 9 * 8 * 32 + 2 * n1 * w * m  # block 1 (ToMe sets 9 x 8)
    frame += 4 * n1 * w * w + 2 * n1 * n1 * w + 8 * 7 * 32 + 2 * n2 * w * m  # block 2 (sets 8 x 7)
    frame += n2 * w * 64  # ln_post + proj
    report = measure_flops(FlopSpec(**TINY))
    assert report.per_view["encoder"] == 4 * frame
    assert report.per_view["alignment"] == 4 * 12 * 12 * 64  # T R K C
    assert report.per_view["classifier"] == 4 * 64
    q, kv, c = 4 * 12, 4 * 13, 64  # queries T R, keys T (1 + R)
    layer = q * c * c + kv * 2 * c * c + 2 * q * kv * c + q * c * c + 2 * q * c * 4 * c  # q, kv, QK^T+AV, out, FFN
    assert report.per_view["adapter"] == 2 * q * c * c + 2 * kv * c * c + layer + c * c  # MLPs, layer, projection
    assert report.total == 3 * report.view_total and report.tokens_per_frame == 13


def test_real_cpu_run_counts_attention_like_meta() -> None:
    spec = FlopSpec(**TINY)
    assert measure_flops(spec, device="cpu").per_view == measure_flops(spec, device="meta").per_view
    # Without our formula the fused CPU attention kernel would be missed: the count would be lower.
    model, _ = build_random_alt(spec.resolved(), "cpu")
    with torch.no_grad(), FlopCounterMode(display=False) as plain:
        model(torch.zeros(1, 4, 3, 64, 64))
    assert plain.get_total_flops() // 2 < measure_flops(spec).view_total


def test_alt_b16_matches_the_paper() -> None:
    """ViT-B/16, 8 x 224, r = 8, 3x1 views, ~2,000 entities, 1 adapter layer of width 512: 328 GFLOPs +- 5 %."""
    report = measure_flops(FlopSpec(corpus_size=2000))
    assert report.tokens_per_frame == 101  # 197 - 12 * 8
    assert report.encoder_per_frame / 1e9 == pytest.approx(13.15, abs=0.01)
    assert report.total / 1e9 == pytest.approx(328, rel=0.05)
    assert report.per_view == analytic_flops(report.spec)
    assert report.params_total - report.params_trainable == pytest.approx(86.19e6, rel=1e-3)  # ViT-B/16 image tower
    bare = measure_flops(FlopSpec(r=0, corpus_size=2000))
    assert bare.encoder_per_frame / 1e9 == pytest.approx(17.6, rel=0.01)  # the field's bare ViT-B/16 per frame


@pytest.mark.slow
def test_alt_b16_real_cpu_run_equals_meta() -> None:
    spec = FlopSpec(corpus_size=2000)
    assert measure_flops(spec, device="cpu").per_view == measure_flops(spec).per_view


def test_alt_flops_wrapper_and_views() -> None:
    out = alt_flops("alt-tiny", frames=4, r=2, corpus_size=12, num_classes=4, views=3)
    assert out["total"] == 3 * out["per_view"] == 3 * sum(out["breakdown"].values())
    assert parse_views("3x1") == (3, 1) and parse_views("2X3") == (2, 3) and parse_views(4) == (4, 1)
    with pytest.raises(ValueError, match="3x1"):
        parse_views("three")


def test_flops_command_json_and_check(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--model_name", "alt-tiny", "--frames", "4", "--r", "2", "--corpus_size", "12", "--num_classes", "4"]
    assert main([*args, "--views", "2x1", "--json", "--check"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["gflops_total"] == pytest.approx(2 * out["gflops_per_view"])
    assert out["analytic_macs"] == out["per_view_macs"]
    assert out["spec"]["views"] == [2, 1] and out["tokens_per_frame"] == 13
    assert main([*args, "--adapter_layers", "2"]) == 0
    table = capsys.readouterr().out
    assert "encoder per frame" in table and "trainable" in table and "328 GFLOPs" in table


def test_flops_command_reads_a_fit_config(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "fit.yaml"
    cfg.write_text(
        "model:\n  class_path: alt_lightning.lightning.ALTModule\n  init_args:\n    model_name: alt-tiny\n"
        "    encoder: {r: 1}\n    adapter: {layers: 2, heads: 4}\n    region: false\n"
        "data:\n  init_args: {num_frames: 6, test_clips: 2, test_crops: 3}\n"
    )
    assert main(["--config", str(cfg), "--corpus_size", "5", "--json"]) == 0
    spec = json.loads(capsys.readouterr().out)["spec"]
    assert (spec["model_name"], spec["r"], spec["frames"], spec["views"]) == ("alt-tiny", 1, 6, [2, 3])
    assert (spec["adapter"]["layers"], spec["region"], spec["corpus_size"]) == (2, False, 5)
    assert main(["--config", str(tmp_path / "missing.yaml")]) == 1


def test_counts_the_models_math_not_the_folded_padding() -> None:
    # The folded attention pads the head dim (32 -> 40 for alt-tiny): a counter run on it sees more products. The
    # reported count is the model's (mask form), whatever form a configuration runs.
    from alt_lightning.model.region_encoder import RegionEncoder

    spec = FlopSpec(**TINY)
    model, _ = build_random_alt(spec.resolved())
    assert model.encoder.attention == "mask"
    video = torch.zeros(1, spec.frames, 3, *model.encoder.image_size, device="meta")
    counts = {}
    for form in ("mask", "folded"):
        model.encoder = RegionEncoder(model.encoder.visual, r=spec.r, attention=form)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.encoder(video.flatten(0, 1))
        counts[form] = counter.get_total_flops() // 2
    assert counts["mask"] == analytic_flops(spec)["encoder"] == measure_flops(spec).per_view["encoder"]
    assert counts["folded"] > counts["mask"]
