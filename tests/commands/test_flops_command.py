"""`alt flops`: a preset, explicit arguments or alt fit's configs; JSON and table; the analytic cross-check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alt_lightning.commands.flops import main

REPO = Path(__file__).resolve().parents[2]
TINY = ["--preset", "alt-tiny", "--frames", "4", "--corpus_size", "12", "--num_classes", "4"]


def test_flops_command_json_and_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*TINY, "--views", "2x1", "--json", "--check"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["gflops_total"] == pytest.approx(2 * out["gflops_per_view"])
    assert out["analytic_macs"] == out["per_view_macs"]
    assert out["views"] == [2, 1] and out["frames"] == 4 and out["tokens_per_frame"] == 13
    assert out["config"]["model_name"] == "alt-tiny" and out["config"]["encoder"]["r"] == 2
    assert main([*TINY, "--adapter_layers", "2"]) == 0
    table = capsys.readouterr().out
    assert "encoder per frame" in table and "trainable" in table and "328 GFLOPs" in table


def test_the_b16_preset_counts_330_gflops(capsys: pytest.CaptureFixture[str]) -> None:
    """ALT-B/16 8 x 224, 3x1 views, r = 8, the shipped corpus (2,270 entities), 400 classes: docs/benchmarks.md."""
    for args in ([], ["--preset", "alt-b16-8f"], ["--model_name", "ViT-B-16"]):
        assert main([*args, "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert (out["frames"], out["views"], out["corpus_size"]) == (8, [3, 1], 2270), args
        assert round(out["gflops_total"], 1) == 330.4, args
    # The supervised K400 experiment, read as alt fit reads it, is that model and that input.
    configs = ["model/alt_b16.yaml", "data/k400.yaml", "trainer/ddp.yaml", "experiments/supervised_k400.yaml"]
    assert main([*(a for c in configs for a in ("--config", str(REPO / "configs" / c))), "--json"]) == 0
    assert round(json.loads(capsys.readouterr().out)["gflops_total"], 1) == 330.4


def test_flops_command_reads_fit_configs_and_arguments_win(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model, data = tmp_path / "model.yaml", tmp_path / "data.yaml"
    model.write_text(
        "model:\n  class_path: alt_lightning.lightning.ALTModule\n  init_args:\n    model_name: alt-tiny\n"
        "    pretrained: null\n    encoder: {r: 1}\n    adapter: {layers: 2, heads: 4}\n    region: false\n"
    )
    data.write_text(
        "data:\n  class_path: alt_lightning.datamodules.VideoListDataModule\n"
        "  init_args: {root: nowhere, classes: c.txt, num_frames: 6, test_clips: 2, test_crops: 3}\n"
    )
    assert main(["--config", str(model), "--config", str(data), "--corpus_size", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["config"]["model_name"], out["config"]["encoder"]["r"], out["frames"], out["views"]) == (
        "alt-tiny", 1, 6, [2, 3]
    )  # fmt: skip
    assert (out["config"]["adapter"]["layers"], out["config"]["region"], out["corpus_size"]) == (2, False, 5)
    args = ["--config", str(model), "--config", str(data), "--frames", "3", "--views", "1x1", "--r", "0", "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["frames"], out["views"], out["config"]["encoder"]["r"], out["corpus_size"]) == (3, [1, 1], 0, 2270)
    assert main(["--config", str(tmp_path / "missing.yaml")]) == 1
