"""Regression tests of defects found by the data/protocol review (each failed before its fix)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from alt_lightning.protocols.runner import ProtocolRunner, ProtocolSpec, plan_zero_shot


class _FakeCLI:
    def __init__(self, top1: float) -> None:
        metrics = {"test/top1": torch.tensor(top1), "test/top5": torch.tensor(1.0), "test/mean_class": top1}
        self.trainer = SimpleNamespace(callback_metrics={**metrics, "test/videos_evaluated": 4.0}, callbacks=[])
        self.datamodule = None


def test_resume_does_not_reuse_units_planned_with_other_arguments(tmp_path: Path) -> None:
    """Published K600 subsets, then seeded draws into the same --out: same unit ids, other classes."""
    cfg = tmp_path / "k600.yaml"
    cfg.write_text(
        "data:\n  class_path: alt_lightning.datamodules.KineticsDataModule\n"
        "  init_args: {version: 600, class_subset: {classes: k600_zs_split1}}\n"
    )
    spec = ProtocolSpec(protocol="zero-shot", configs=[str(cfg)], out=tmp_path / "out", name="k600")
    calls: list[list[str]] = []

    def fake_run(argv: list[str]) -> _FakeCLI:
        calls.append(argv)
        return _FakeCLI(0.5 if any("draw=" in a for a in argv) else 0.25)

    ProtocolRunner(spec, plan_zero_shot(spec), run_fn=fake_run).run()
    assert len(calls) == 3
    drawn = plan_zero_shot(spec, ["1", "2", "3"], draw=160)
    assert [u.id for u in drawn] == ["k600/split1", "k600/split2", "k600/split3"]  # the ids collide
    with pytest.raises(RuntimeError, match="other arguments"):
        ProtocolRunner(spec, drawn, run_fn=fake_run).run()
    assert len(calls) == 3  # the published-subset results were not reported as the drawn ones


def test_cache_command_serves_configs_that_set_feature_dir_on_the_datamodule(
    synthetic_root: Path, model_config: dict, tmp_path: Path, capsys
) -> None:
    """The shipped zero-/few-shot configs set the ``features`` option on the DataModule (default: the test split);
    ``alt cache info/build --config`` must then use those caches (and only ``features.splits``)."""
    import yaml

    from alt_lightning.cli import main as alt_main
    from alt_lightning.data.feature_cache import list_caches

    cache_dir = tmp_path / "cache"
    config = {
        "trainer": {"accelerator": "cpu", "devices": 1, "logger": False},
        "model": model_config,
        "data": {
            "class_path": "alt_lightning.datamodules.VideoListDataModule",
            "init_args": {
                "root": str(synthetic_root),
                "classes": "classes.txt",
                "test_list": "test.txt",
                "num_frames": 2,
                "num_workers": 0,
                "features": {"dir": str(cache_dir)},
                "bad_file_log": str(tmp_path / "bad.csv"),
            },
        },
    }
    path = tmp_path / "zs.yaml"
    path.write_text(yaml.safe_dump(config))
    assert alt_main(["cache", "build", "--config", str(path)]) == 0
    assert [c.split for c in list_caches(cache_dir)] == ["test"]  # features.splits, not every split
    capsys.readouterr()
    assert alt_main(["cache", "info", "--config", str(path)]) == 0
    assert "(built, read by this configuration)" in capsys.readouterr().out
