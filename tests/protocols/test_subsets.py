"""Class subsets: halves for base-to-novel, the published K600 subsets, seeded draws saved as manifests."""

from __future__ import annotations

from pathlib import Path

import pytest

from alt_lightning.data.manifests import draw_classes, read_manifest
from alt_lightning.datamodules import KineticsDataModule, UCFHMDBDataModule
from alt_lightning.protocols import ClassSubsetDataModule
from alt_lightning.text.classes import class_names, k600_novel_classes


def _ucf(root: Path, tmp_path: Path) -> UCFHMDBDataModule:
    return UCFHMDBDataModule("ucf101", 1, str(root), num_workers=0, bad_file_log=str(tmp_path / "bad.csv"))


def test_base_and_novel_halves_relabel_records(ucf_layout: Path, tmp_path: Path) -> None:
    base = ClassSubsetDataModule(_ucf(ucf_layout, tmp_path), subset="base")
    novel = ClassSubsetDataModule(_ucf(ucf_layout, tmp_path), subset="novel")
    assert base.class_names == ["ApplyEyeMakeup", "Archery"] and novel.class_names == ["Basketball", "YoYo"]
    recs = novel.records("train")
    assert len(recs) == 4 and sorted({r.label for r in recs}) == [0, 1]  # 2 classes x 2 training groups
    assert all(novel.class_names[r.label] in r.path for r in recs)
    assert {r.meta["parent_label"] for r in recs} == {2, 3}
    assert len(novel.dataset("test").records) == 2  # split-1 test videos of the novel classes, none missing
    assert base.hparams["base"]["class_path"].endswith("UCFHMDBDataModule")  # plain data for checkpoints


def test_explicit_classes_follow_the_base_label_order(ucf_layout: Path, tmp_path: Path) -> None:
    dm = ClassSubsetDataModule(_ucf(ucf_layout, tmp_path), classes=["YoYo", "Archery"])
    assert dm.class_names == ["Archery", "YoYo"] and dm.parent_labels == [1, 3]
    with pytest.raises(ValueError, match="not classes of the base dataset"):
        ClassSubsetDataModule(_ucf(ucf_layout, tmp_path), classes=["Archery", "Juggling"])
    with pytest.raises(ValueError, match="at least 2"):
        ClassSubsetDataModule(_ucf(ucf_layout, tmp_path), classes=["Archery", "YoYo"], subset="novel")


def test_drawn_subset_is_saved_and_read_back(ucf_layout: Path, tmp_path: Path) -> None:
    out = tmp_path / "classes.txt"
    dm = ClassSubsetDataModule(_ucf(ucf_layout, tmp_path), draw=2, draw_seed=3, manifest_out=str(out))
    dm.records("test")
    manifest = read_manifest(out)
    assert [e.item for e in manifest.entries] == dm.class_names
    assert manifest.header["kind"] == "class-subset" and manifest.header["seed"] == "3"
    assert dm.class_names == draw_classes(_ucf(ucf_layout, tmp_path).class_names, 2, 3)
    again = ClassSubsetDataModule(_ucf(ucf_layout, tmp_path), classes=str(out))
    assert again.class_names == dm.class_names and again.manifest().sha256 == manifest.sha256


def test_k600_published_and_drawn_zero_shot_subsets(tmp_path: Path) -> None:
    k600 = KineticsDataModule(root=str(tmp_path), version=600)
    for k in (1, 2, 3):
        dm = ClassSubsetDataModule(k600, classes=f"k600_zs_split{k}")
        assert dm.class_names == class_names(f"k600_zs_split{k}") and len(dm.class_names) == 160
    drawn = ClassSubsetDataModule(k600, classes="k600_novel", draw=160, draw_seed=1)
    assert drawn.class_names == draw_classes(k600_novel_classes(), 160, 1)
    assert set(drawn.class_names) <= set(k600_novel_classes())
    with pytest.raises(ValueError, match="not classes of the base dataset"):
        ClassSubsetDataModule(KineticsDataModule(root=str(tmp_path), version=400), classes="k600_zs_split1")
