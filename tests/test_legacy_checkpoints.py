"""Checkpoints written by earlier versions keep loading, with their data settings (tests/data/legacy/README.md).

The 0.1.0 checkpoint's DataModule hyper-parameters are the nested wrappers of that version (few-shot around class
subset around UCF-101, the feature cache set on the innermost); :func:`upgrade_data_hparams` turns them into the
options of the one DataModule base, wherever data settings are read back (``alt test --ckpt_path``,
``alt predict --ckpt``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from alt_lightning.cli import main
from alt_lightning.data.feature_cache import list_caches
from alt_lightning.datamodules.legacy import upgrade_data_hparams
from alt_lightning.lightning.cli import parse_config

LEGACY = Path(__file__).resolve().parent / "data" / "legacy" / "v0.1.0-fewshot-subset.ckpt"

#: Run on the CPU, quietly, without writing logs.
TRAINER = [
    "--trainer.accelerator=cpu",
    "--trainer.devices=1",
    "--trainer.logger=false",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
]


def test_nested_wrappers_become_options_of_the_dataset() -> None:
    saved = torch.load(LEGACY, weights_only=True, map_location="cpu")["datamodule_hyper_parameters"]
    flat = upgrade_data_hparams(saved)
    assert flat["_class_path"] == "alt_lightning.datamodules.UCFHMDBDataModule"
    assert flat["_instantiator"] == saved["_instantiator"]
    assert flat["few_shot"] == {"shots": 2, "seed": 0, "manifest": None, "manifest_out": None, "allow_fewer": False}
    assert flat["class_subset"] == {
        "classes": None,
        "subset": "base",
        "draw": None,
        "draw_seed": 0,
        "manifest_out": None,
    }
    assert flat["features"] == {"dir": "cache/features", "splits": ["test"]}
    assert not {"base", "feature_dir", "feature_splits", "shots"} & set(flat)
    assert (flat["dataset"], flat["root"], flat["num_frames"], flat["batch_size"]) == ("ucf101", "ucf101", 4, 2)
    assert flat["seed"] == 0  # the data seed of the dataset, not the draw seed (equal here, kept apart below)
    assert upgrade_data_hparams(flat) == flat  # already flat: unchanged


def test_other_layouts_of_that_version() -> None:
    inner = {"class_path": "alt_lightning.datamodules.VideoListDataModule", "init_args": {"root": "d", "seed": 5}}
    # A few-shot wrapper's own settings (batch_size) override its base's; its seed is the draw seed.
    few = {"_class_path": "alt_lightning.datamodules.FewShotDataModule", "base": inner, "shots": 4, "seed": 1}
    flat = upgrade_data_hparams({**few, "batch_size": 3})
    assert flat["few_shot"] == {"shots": 4, "seed": 1} and flat["seed"] == 5 and flat["batch_size"] == 3
    # The cache wrapper: its batch size and workers are the cache loader's; no splits meant every split.
    cached = {
        "_class_path": "alt_lightning.datamodules.CachedFeatureDataModule",
        "base": {"class_path": "alt_lightning.datamodules.FewShotDataModule", "init_args": {"base": inner, "shots": 2}},
        "feature_dir": "c",
        "splits": None,
        "batch_size": 64,
        "num_workers": 0,
    }
    flat = upgrade_data_hparams(cached)
    assert flat["_class_path"] == "alt_lightning.datamodules.VideoListDataModule" and "batch_size" not in flat
    assert flat["features"] == {"dir": "c", "splits": ["train", "val", "test"], "batch_size": 64, "num_workers": 0}
    assert flat["few_shot"] == {"shots": 2} and flat["root"] == "d"
    # A plain DataModule of that version without a cache: the unset options are dropped.
    plain = {"_class_path": "x.Y", "root": "r", "feature_dir": None, "feature_splits": ["test"]}
    assert upgrade_data_hparams(plain) == {"_class_path": "x.Y", "root": "r"}


def test_alt_test_restores_the_few_shot_base_subset_datamodule(
    ucf_layout: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """``alt test --ckpt_path <0.1.0 checkpoint>`` with only the data root: its DataModule comes back and runs."""
    monkeypatch.chdir(tmp_path)
    args = ["test", f"--ckpt_path={LEGACY}", f"--data.init_args.root={ucf_layout}", *TRAINER]
    data = parse_config(args).data  # what the command runs with, parsed as it parses
    assert data.class_path == "alt_lightning.datamodules.UCFHMDBDataModule"
    init = data.init_args
    assert (init.few_shot.shots, init.class_subset.subset, init.features.dir) == (2, "base", "cache/features")
    assert (init.num_frames, init.root) == (4, str(ucf_layout))
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "test top-1:" in out
    # The base half (ApplyEyeMakeup, Archery) of the split-1 test list: one video per class, through the cache.
    assert "videos listed: 2  evaluated: 2  failed: 0  missing: 0" in out
    (cache,) = list_caches(tmp_path / "cache" / "features")
    assert cache.split == "test" and cache.num_items == 2 and cache.spec["sampling"]["num_frames"] == 4
    assert [Path(r.path).parent.name for r in cache.records] == ["ApplyEyeMakeup", "Archery"]


def test_alt_predict_samples_the_frames_of_the_checkpoint(
    synthetic_root: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    video = sorted((synthetic_root / "videos").rglob("*.mp4"))[0]
    out = tmp_path / "p.json"
    assert main(["predict", "--videos", str(video), "--ckpt", str(LEGACY), "--topk", "2", "--json", str(out)]) == 0
    assert "2 labels, 4 frames" in capsys.readouterr().out  # num_frames of the innermost (nested) DataModule
    assert {p["label"] for p in json.loads(out.read_text())[0]["top"]} == {"ApplyEyeMakeup", "Archery"}
