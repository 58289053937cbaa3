"""The ``class_subset`` option: base-to-novel halves, the published K600 subsets, seeded draws saved as manifests."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

import pytest

from alt_lightning.data.manifests import draw_classes, read_manifest
from alt_lightning.data.parsers import AnnotationError
from alt_lightning.data.records import VideoRecord
from alt_lightning.datamodules import ClassSubset, FewShot, KineticsDataModule, UCFHMDBDataModule
from alt_lightning.text.classes import class_names, k600_novel_classes


def _ucf(root: Path, tmp_path: Path, **kw) -> UCFHMDBDataModule:
    return UCFHMDBDataModule("ucf101", 1, str(root), num_workers=0, bad_file_log=str(tmp_path / "bad.csv"), **kw)


def _subset(root: Path, tmp_path: Path, **kw) -> UCFHMDBDataModule:
    return _ucf(root, tmp_path, class_subset=ClassSubset(**kw))


def test_base_and_novel_halves_relabel_records(ucf_layout: Path, tmp_path: Path, caplog) -> None:
    base = _subset(ucf_layout, tmp_path, subset="base")
    novel = _subset(ucf_layout, tmp_path, subset="novel")
    assert base.class_names == ["ApplyEyeMakeup", "Archery"] and novel.class_names == ["Basketball", "YoYo"]
    assert novel.dataset_classes == ["ApplyEyeMakeup", "Archery", "Basketball", "YoYo"]
    with caplog.at_level(logging.INFO, logger="alt_lightning.datamodules.base"):
        recs = novel.split_records("train")
    assert len(recs) == 4 and sorted({r.label for r in recs}) == [0, 1]  # 2 classes x 2 training groups
    assert all(novel.class_names[r.label] in r.path for r in recs)
    assert {r.meta["parent_label"] for r in recs} == {2, 3}
    # The other classes' videos are counted and logged, never dropped unseen.
    assert "train: kept 4 of 8 videos in the 2 classes of the subset" in caplog.text
    assert len(novel.video_dataset("test").records) == 2  # split-1 test videos of the novel classes, none missing
    assert novel.hparams["class_subset"]["subset"] == "novel"  # plain data for checkpoints


def test_explicit_classes_follow_the_dataset_label_order(ucf_layout: Path, tmp_path: Path) -> None:
    dm = _subset(ucf_layout, tmp_path, classes=["YoYo", "Archery"])
    assert dm.class_names == ["Archery", "YoYo"]
    assert sorted({r.meta["parent_label"] for r in dm.split_records("test")}) == [1, 3]
    with pytest.raises(ValueError, match="not classes of the dataset"):
        _ = _subset(ucf_layout, tmp_path, classes=["Archery", "Juggling"]).class_names
    with pytest.raises(ValueError, match="at least 2"):
        _ = _subset(ucf_layout, tmp_path, classes=["Archery", "YoYo"], subset="novel").class_names
    with pytest.raises(ValueError, match="subset must be one of"):
        ClassSubset(subset="half")


def test_drawn_subset_is_saved_and_read_back(ucf_layout: Path, tmp_path: Path) -> None:
    out = tmp_path / "classes.txt"
    dm = _subset(ucf_layout, tmp_path, draw=2, draw_seed=3, manifest_out=str(out))
    dm.split_records("test")
    manifest = read_manifest(out)
    assert [e.item for e in manifest.entries] == dm.class_names and dm.class_subset_manifest == str(out)
    assert manifest.header["kind"] == "class-subset" and manifest.header["seed"] == "3"
    assert dm.class_names == draw_classes(_ucf(ucf_layout, tmp_path).class_names, 2, 3)
    again = _subset(ucf_layout, tmp_path, classes=str(out))
    assert again.class_names == dm.class_names and again.subset_manifest().sha256 == manifest.sha256
    assert again.class_subset_manifest == str(out)  # the manifest it was given


def test_k600_published_and_drawn_zero_shot_subsets(tmp_path: Path) -> None:
    # sha256 of each subset's canonical class manifest, as data/README.md quotes them (protocol results record it).
    pinned = {1: "848813ba31ed72c7", 2: "0880e0463e3e3e86", 3: "ed4f32ece1e4b199"}
    for k in (1, 2, 3):
        dm = KineticsDataModule(root=str(tmp_path), version=600, class_subset=ClassSubset(f"k600_zs_split{k}"))
        assert dm.class_names == class_names(f"k600_zs_split{k}") and len(dm.class_names) == 160
        assert dm.subset_manifest().sha256.startswith(pinned[k])
    drawn = KineticsDataModule(
        root=str(tmp_path), version=600, class_subset=ClassSubset("k600_novel", draw=160, draw_seed=1)
    )
    assert drawn.class_names == draw_classes(k600_novel_classes(), 160, 1)
    assert set(drawn.class_names) <= set(k600_novel_classes())
    with pytest.raises(ValueError, match="not classes of the dataset"):
        _ = KineticsDataModule(root=str(tmp_path), version=400, class_subset=ClassSubset("k600_zs_split1")).class_names


class _Listed(UCFHMDBDataModule):
    """The tiny UCF-101 whose test split holds extra records (unlabelled, or with a label no class has)."""

    extra: ClassVar[list[VideoRecord]] = []

    def records(self, split: str) -> list[VideoRecord]:
        return super().records(split) + (self.extra if split == "test" else [])


def test_unlabelled_and_bad_labels_are_never_dropped_by_the_subset(ucf_layout: Path, tmp_path: Path) -> None:
    unlabelled = VideoRecord(str(ucf_layout / "x.avi"), -1, "x", {"source": "testlist01.txt:9"})
    _Listed.extra = [unlabelled]
    dm = _Listed("ucf101", 1, str(ucf_layout), num_workers=0, class_subset=ClassSubset(subset="base"))
    # Predicting keeps it (its class is unknown, so it may be of the subset); testing names it.
    assert [r.video_id for r in dm.split_records("test", unlabelled_ok=True)][-1] == "x"
    with pytest.raises(AnnotationError, match=r"testlist01.txt:9: video x has no label"):
        dm.split_records("test")
    _Listed.extra = [VideoRecord(str(ucf_layout / "y.avi"), 7, "y", {"source": "testlist01.txt:10"})]
    bad = _Listed("ucf101", 1, str(ucf_layout), num_workers=0, class_subset=ClassSubset(subset="base"))
    # Label 7 is in no class of the dataset: an error, not a record "of another class" left out of the subset.
    with pytest.raises(AnnotationError, match=r"testlist01.txt:10: label 7 is outside the 4 classes"):
        bad.split_records("test")


def test_few_shot_draws_from_the_subset_and_missing_files_are_those_kept(ucf_layout: Path, tmp_path: Path) -> None:
    dm = _ucf(
        ucf_layout,
        tmp_path,
        class_subset=ClassSubset(subset="novel"),
        few_shot=FewShot(1, manifest_out=str(tmp_path / "fs.txt")),
    )
    drawn = dm.split_records("train")
    assert [r.label for r in drawn] == [0, 1] and [r.meta["parent_label"] for r in drawn] == [2, 3]
    manifest = read_manifest(tmp_path / "fs.txt")
    assert manifest.header["classes"] == "2" and [e.label for e in manifest.entries] == [0, 1]
    assert all(e.item.startswith(("Basketball/", "YoYo/")) for e in manifest.entries)


class _WholeListMissing(UCFHMDBDataModule):
    """A parser that reports every absent file it saw, as Kinetics' CSV parser does."""

    def missing_records(self, split: str, records: list[VideoRecord]) -> list[VideoRecord]:
        return [r for r in self.records(split) if "g02" in r.path]  # pretend: the g02 videos of every class are absent


def test_missing_report_counts_only_the_kept_records(ucf_layout: Path, tmp_path: Path) -> None:
    dm = _WholeListMissing(
        "ucf101", 1, str(ucf_layout), num_workers=0, bad_file_log=str(tmp_path / "bad.csv"),
        class_subset=ClassSubset(subset="base"),
    )  # fmt: skip
    usable = dm.usable_records("train")
    assert [(r.video_id, r.label) for r in usable] == [("v_ApplyEyeMakeup_g03_c01", 0), ("v_Archery_g03_c01", 1)]
    # The parser also reports the novel classes' g02 videos: not this run's, so not counted.
    assert sorted(r.video_id for r in dm.missing["train"]) == ["v_ApplyEyeMakeup_g02_c01", "v_Archery_g02_c01"]
    assert dm.split_accounting("train") == (4, 2, set())
