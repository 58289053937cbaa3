"""The protocol runner: planning, resuming after an interruption, and a small end-to-end zero-shot run."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from alt_lightning.cli import main
from alt_lightning.protocols.runner import (
    ProtocolRunner,
    ProtocolSpec,
    plan_base_to_novel,
    plan_few_shot,
    plan_zero_shot,
)


def _spec(tmp_path: Path, configs: list[Path], protocol: str = "zero-shot", **kw) -> ProtocolSpec:
    return ProtocolSpec(protocol=protocol, configs=[str(c) for c in configs], out=tmp_path / "out", name="t", **kw)


def test_plans_set_the_options_of_the_data(tmp_path: Path, ucf_config: Path) -> None:
    units = plan_zero_shot(_spec(tmp_path, [ucf_config]))
    assert [u.args for u in units] == [[f"--data.init_args.split={k}"] for k in (1, 2, 3)]
    k600 = tmp_path / "k600.yaml"
    k600.write_text(
        "data:\n  class_path: alt_lightning.datamodules.KineticsDataModule\n"
        "  init_args: {version: 600, class_subset: {classes: k600_zs_split1}}\n"
    )
    units = plan_zero_shot(_spec(tmp_path, [k600]))
    assert [u.args for u in units] == [[f"--data.init_args.class_subset.classes=k600_zs_split{k}"] for k in (1, 2, 3)]
    drawn = plan_zero_shot(_spec(tmp_path, [k600]), splits=["7"], draw=160)[0].args
    assert "--data.init_args.class_subset.draw=160" in drawn and "--data.init_args.class_subset.draw_seed=7" in drawn
    # A class subset given after `--` counts too: the planner reads the configs as the CLI composes them.
    extra = ["--data.init_args.class_subset.classes=k600_zs_split1"]
    ucf_subset = plan_zero_shot(_spec(tmp_path, [ucf_config], extra=extra), splits=["2"])
    assert ucf_subset[0].args == ["--data.init_args.class_subset.classes=k600_zs_split2"]
    few = plan_few_shot(_spec(tmp_path, [ucf_config], "few-shot"), [2, 4, 8, 16], [0, 1, 2])
    assert len(few) == 12 and [u.group for u in few[:4]] == ["K=2"] * 3 + ["K=4"]
    assert few[5].args == [
        "--data.init_args.few_shot.shots=4",
        "--data.init_args.few_shot.seed=2",
        "--seed_everything=2",
    ]
    listed = plan_few_shot(_spec(tmp_path, [ucf_config], "few-shot"), [2], [0], "lists/train1_{shots}.txt")
    assert listed[0].args[-1] == "--data.init_args.few_shot.manifest=lists/train1_2.txt"
    with pytest.raises(ValueError, match="needs a class subset"):
        plan_base_to_novel(_spec(tmp_path, [ucf_config], "base-to-novel"), [0])
    b2n = tmp_path / "b2n.yaml"
    b2n.write_text("data:\n  init_args:\n    few_shot: {shots: 2}\n    class_subset: {subset: base}\n")
    (unit,) = plan_base_to_novel(_spec(tmp_path, [ucf_config, b2n], "base-to-novel"), [3], shots=16)
    assert "--data.init_args.few_shot.shots=16" in unit.args and "--data.init_args.few_shot.seed=3" in unit.args
    assert "--data.init_args.class_subset.subset=base" in unit.args
    assert unit.novel_args == ["--data.init_args.class_subset.subset=novel"]


def test_results_name_the_few_shot_list_and_the_class_subset(ucf_layout: Path, tmp_path: Path) -> None:
    from alt_lightning.data.manifests import read_manifest
    from alt_lightning.datamodules import ClassSubset, FewShot, KineticsDataModule, UCFHMDBDataModule
    from alt_lightning.protocols.runner import _manifests

    dm = UCFHMDBDataModule(
        "ucf101", 1, str(ucf_layout), class_subset=ClassSubset(subset="base"),
        few_shot=FewShot(1, manifest_out=str(tmp_path / "fs.txt")),
    )  # fmt: skip
    dm.split_records("train")
    fs, sub = _manifests(dm)
    assert fs == {"kind": "few-shot", "path": str(tmp_path / "fs.txt"), "sha256": read_manifest(fs["path"]).sha256}
    assert sub == {"kind": "class-subset", "path": "", "sha256": dm.subset_manifest().sha256}
    assert [e.item for e in dm.subset_manifest().entries] == ["ApplyEyeMakeup", "Archery"]
    drawn = KineticsDataModule(
        root=str(tmp_path), version=600,
        class_subset=ClassSubset("k600_novel", draw=160, draw_seed=1, manifest_out=str(tmp_path / "k.txt")),
    )  # fmt: skip
    drawn._in_subset("test", [])  # the drawn subset is written when records are first read
    (only,) = _manifests(drawn)
    assert only == {
        "kind": "class-subset",
        "path": str(tmp_path / "k.txt"),
        "sha256": read_manifest(only["path"]).sha256,
    }
    assert _manifests(UCFHMDBDataModule("ucf101", 1, str(ucf_layout))) == []


def test_interrupted_runner_resumes_skipping_finished_units(tmp_path: Path, ucf_config: Path, fake_cli) -> None:
    top1 = {"1": 0.5, "2": 0.6, "3": 0.7}
    calls: list[str] = []
    fail_once = {"2"}

    def fake_run(argv: list[str]) -> SimpleNamespace:
        split = next(a.split("=")[1] for a in argv if a.startswith("--data.init_args.split="))
        calls.append(split)
        if split in fail_once:
            fail_once.clear()
            raise RuntimeError("node lost")
        return fake_cli(top1[split])

    spec = _spec(tmp_path, [ucf_config])
    with pytest.raises(RuntimeError, match="node lost"):
        ProtocolRunner(spec, plan_zero_shot(spec), run_fn=fake_run).run()
    state = json.loads((spec.out / "results.json").read_text())
    assert {k: v["status"] for k, v in state["units"].items()} == {"t/split1": "done", "t/split2": "failed"}
    assert "node lost" in state["units"]["t/split2"]["error"]

    results = ProtocolRunner(spec, plan_zero_shot(spec), run_fn=fake_run).run()
    assert calls == ["1", "2", "2", "3"]  # split 1 was not run again
    summary = results["summary"]["t"]
    assert summary["n"] == 3
    assert summary["top1"]["mean"] == pytest.approx(60.0)
    assert summary["top1"]["std"] == pytest.approx(math.sqrt(200 / 3))
    assert summary["mean_class"]["mean"] == pytest.approx(30.0)
    assert results["units"]["t/split3"]["metrics"]["videos_evaluated"] == 4.0
    assert json.loads((spec.out / "results.json").read_text())["summary"]["t"] == summary

    calls.clear()
    ProtocolRunner(spec, plan_zero_shot(spec), run_fn=fake_run).run()
    assert calls == []  # everything done: nothing runs
    ucf_config.write_text(ucf_config.read_text() + "# edited\n")
    with pytest.raises(RuntimeError, match="other settings"):
        ProtocolRunner(spec, plan_zero_shot(spec), run_fn=fake_run).run()


def test_zero_shot_end_to_end_from_the_backbone_alone(
    tmp_path: Path, ucf_config: Path, tiny_model_args: list[str], monkeypatch
) -> None:
    """`alt protocol zero-shot` without a checkpoint: 3 official splits; numbers agree with the prediction files."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "zs"
    argv = ["protocol", "zero-shot", "--config", str(ucf_config), "--out", str(out), "--", *tiny_model_args]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["configs"]["backbone_only"] is True
    units = results["units"]
    assert list(units) == ["ucf_tiny/split1", "ucf_tiny/split2", "ucf_tiny/split3"]
    top1 = []
    for unit in units.values():
        with open(unit["predictions"]) as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == 4 == unit["metrics"]["videos_evaluated"] == unit["metrics"]["videos_listed"]  # 1 per class
        hits = sum(int(r["correct_top1"]) for r in rows)
        assert unit["metrics"]["top1"] == pytest.approx(100 * hits / 4)
        assert Path(unit["config_file"]).is_file()
        # The backbone alone: asked for explicitly (the adapter's residual weight 0: CLIP's own classifier).
        assert "zero_shot_from_clip: true" in Path(unit["config_file"]).read_text()
        top1.append(unit["metrics"]["top1"])
    mean = sum(top1) / 3
    assert results["summary"]["ucf_tiny"]["top1"]["mean"] == pytest.approx(mean)
    assert results["summary"]["ucf_tiny"]["top1"]["std"] == pytest.approx(
        math.sqrt(sum((t - mean) ** 2 for t in top1) / 3)
    )
    assert main(["protocol", "show", str(out / "results.json")]) == 0


def test_resume_refuses_units_planned_with_other_arguments(tmp_path: Path, fake_cli) -> None:
    """Published K600 subsets, then seeded draws into the same --out: same unit ids, other classes."""
    cfg = tmp_path / "k600.yaml"
    cfg.write_text(
        "data:\n  class_path: alt_lightning.datamodules.KineticsDataModule\n"
        "  init_args: {version: 600, class_subset: {classes: k600_zs_split1}}\n"
    )
    spec = ProtocolSpec(protocol="zero-shot", configs=[str(cfg)], out=tmp_path / "out", name="k600")
    calls: list[list[str]] = []

    def fake_run(argv: list[str]) -> SimpleNamespace:
        calls.append(argv)
        return fake_cli(0.5 if any("draw=" in a for a in argv) else 0.25)

    ProtocolRunner(spec, plan_zero_shot(spec), run_fn=fake_run).run()
    assert len(calls) == 3
    drawn = plan_zero_shot(spec, ["1", "2", "3"], draw=160)
    assert [u.id for u in drawn] == ["k600/split1", "k600/split2", "k600/split3"]  # the ids collide
    with pytest.raises(RuntimeError, match="other arguments"):
        ProtocolRunner(spec, drawn, run_fn=fake_run).run()
    assert len(calls) == 3  # the published-subset results were not reported as the drawn ones
