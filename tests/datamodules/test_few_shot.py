"""Few-shot lists (the ``few_shot`` option): drawn by seed into a manifest that reproduces byte for byte, read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alt_lightning.data.manifests import (
    Manifest,
    ManifestEntry,
    draw_classes,
    draw_per_class,
    read_manifest,
    relative_path,
    write_manifest,
)
from alt_lightning.data.parsers import AnnotationError
from alt_lightning.data.records import VideoRecord
from alt_lightning.datamodules import FewShot, UCFHMDBDataModule
from alt_lightning.text.classes import k600_novel_classes

COMMON = {"num_workers": 0, "num_frames": 4, "batch_size": 4, "image_size": 32, "pin_memory": False}

#: sha256 of the canonical 2-shot, seed-0 list of the `ucf_root` fixture: pinned, so that a change of the draw
#: (which would silently change published few-shot results) fails here.
UCF_2SHOT_SEED0_SHA = "1c7cb336561aac7fc329601f654634e32e882719ffbbd86958e2447b75d13cec"


def _base(ucf_root: Path, tmp_path: Path, **kw) -> UCFHMDBDataModule:
    return UCFHMDBDataModule("ucf101", 1, str(ucf_root), bad_file_log=str(tmp_path / "bad.csv"), **COMMON, **kw)


def _few(ucf_root: Path, tmp_path: Path, shots: int = 2, **kw) -> UCFHMDBDataModule:
    """UCF-101 split 1 with the few-shot option (``kw``: its fields)."""
    return _base(ucf_root, tmp_path, few_shot=FewShot(shots, **kw))


def test_draw_is_hash_ranked_nested_and_order_free() -> None:
    recs = [VideoRecord(f"/d/C{c}/v{g}.avi", c, f"v_C{c}_g{g:02d}") for c in range(3) for g in range(1, 8)]
    two = draw_per_class(recs, 2, seed=0)
    assert [r.video_id for r in two] == ["v_C0_g05", "v_C0_g06", "v_C1_g03", "v_C1_g06", "v_C2_g02", "v_C2_g05"]
    assert [r.video_id for r in draw_per_class(list(reversed(recs)), 2, seed=0)] == [r.video_id for r in two]
    four = {r.video_id for r in draw_per_class(recs, 4, seed=0)}
    assert {r.video_id for r in two} <= four  # more shots keep the fewer-shot draw
    assert [r.video_id for r in draw_per_class(recs, 2, seed=1)] != [r.video_id for r in two]
    with pytest.raises(ValueError, match="only 7 videos, fewer than shots=8"):
        draw_per_class(recs, 8, seed=0)
    assert len(draw_per_class(recs, 8, seed=0, allow_fewer=True)) == 21
    unlabelled = VideoRecord("/d/x.avi", -1, "x", {"source": "train.csv:9"})
    with pytest.raises(ValueError, match=r"train\.csv:9: video 'x' has no label"):  # never skipped unseen
        draw_per_class([*recs, unlabelled], 2, seed=0)


def test_class_subsets_drawn_by_seed() -> None:
    novel = k600_novel_classes()
    subset = draw_classes(novel, 160, seed=1)
    assert len(subset) == 160 and subset == [c for c in novel if c in set(subset)]  # original order
    assert draw_classes(novel, 160, seed=1) == subset and draw_classes(novel, 160, seed=2) != subset


def test_manifest_text_round_trip_and_hash_check(tmp_path: Path) -> None:
    m = Manifest([ManifestEntry("b dir/x 1.avi", 1), ManifestEntry("a/y.avi", 0)], {"kind": "few-shot", "shots": "1"})
    path = write_manifest(tmp_path / "m.txt", m)
    text = path.read_text()
    assert text.splitlines()[:3] == ["# alt-lightning manifest v1", "# kind: few-shot", "# shots: 1"]
    assert text.endswith("# sha256: " + m.sha256 + "\na/y.avi 0\nb dir/x 1.avi 1\n")
    back = read_manifest(path)
    assert [(e.item, e.label, e.line) for e in back.entries] == [("a/y.avi", 0, 5), ("b dir/x 1.avi", 1, 6)]
    assert back.header["shots"] == "1" and back.sha256 == m.sha256
    path.write_text(text.replace("a/y.avi 0", "a/z.avi 0"))
    with pytest.raises(AnnotationError, match="edited after it was written"):
        read_manifest(path)
    (tmp_path / "bad.txt").write_text("ok.avi 0\nno_label.avi\n")
    with pytest.raises(AnnotationError, match=r"bad.txt:2: expected '<path> <integer label>'"):
        read_manifest(tmp_path / "bad.txt")
    assert relative_path(tmp_path / "a" / "b.avi", tmp_path) == "a/b.avi"
    assert relative_path("/elsewhere/c.avi", tmp_path) == "/elsewhere/c.avi"


def test_few_shot_manifest_reproduces_byte_for_byte(ucf_root: Path, tmp_path: Path) -> None:
    dm = _few(ucf_root, tmp_path, seed=0, manifest_out=str(tmp_path / "a.txt"))
    train = dm.split_records("train")
    assert len(train) == 6 and [r.label for r in train] == [0, 0, 1, 1, 2, 2]
    assert dm.class_names == ["ApplyEyeMakeup", "Archery", "YoYo"]
    assert dm.few_shot_manifest == tmp_path / "a.txt"
    again = _few(ucf_root, tmp_path, seed=0, manifest_out=str(tmp_path / "b.txt"))
    again.split_records("train")
    a, b = (tmp_path / "a.txt").read_bytes(), (tmp_path / "b.txt").read_bytes()
    assert a == b
    m = read_manifest(tmp_path / "a.txt")
    assert m.sha256 == UCF_2SHOT_SEED0_SHA
    assert m.header | {"sha256": ""} == {
        "kind": "few-shot",
        "dataset": "ucf101",
        "split": "1",
        "subset": "train",
        "shots": "2",
        "seed": "0",
        "draw": 'per class, the 2 videos with the smallest sha256("<seed>|<video_id>")',
        "classes": "3",
        "entries": "6",
        "sha256": "",
    }
    assert all(e.item.startswith(("ApplyEyeMakeup/", "Archery/", "YoYo/")) for e in m.entries)  # relative paths
    other = _few(ucf_root, tmp_path, seed=1, manifest_out=str(tmp_path / "c.txt"))
    other.split_records("train")
    assert (tmp_path / "c.txt").read_bytes() != a
    # Validation and test are the dataset's own.
    assert [r.video_id for r in dm.split_records("test")] == [r.video_id for r in dm.records("test")]
    # The training dataset serves exactly the drawn videos.
    assert [r.video_id for r in dm.video_dataset("train").records] == [r.video_id for r in train]


def test_few_shot_reads_back_our_manifest_and_published_lists(ucf_root: Path, tmp_path: Path) -> None:
    drawn = _few(ucf_root, tmp_path, seed=0, manifest_out=str(tmp_path / "m.txt"))
    ids = [r.video_id for r in drawn.split_records("train")]
    back = _few(ucf_root, tmp_path, manifest=str(tmp_path / "m.txt"))
    assert [r.video_id for r in back.split_records("train")] == ids
    assert back.few_shot_manifest == tmp_path / "m.txt"
    with pytest.raises(ValueError, match="holds 2 shots but shots=4"):
        _few(ucf_root, tmp_path, 4, manifest=str(tmp_path / "m.txt")).split_records("train")
    # ViFi-CLIP style: bare file names, our class order.
    (tmp_path / "vifi.txt").write_text(
        "v_ApplyEyeMakeup_g03_c01.avi 0\nv_Archery_g07_c01.avi 1\nv_YoYo_g04_c01.avi 2\n"
    )
    vifi = _few(ucf_root, tmp_path, 1, manifest=str(tmp_path / "vifi.txt"))
    assert [r.video_id for r in vifi.split_records("train")] == [
        "v_ApplyEyeMakeup_g03_c01",
        "v_Archery_g07_c01",
        "v_YoYo_g04_c01",
    ]
    # A test video in a training list would leak: refused.
    (tmp_path / "leak.txt").write_text("v_ApplyEyeMakeup_g03_c01.avi 0\nv_ApplyEyeMakeup_g01_c01.avi 0\n")
    with pytest.raises(AnnotationError, match=r"1 of 2 listed videos are not training videos.*g01_c01.avi \(line 2\)"):
        _few(ucf_root, tmp_path, manifest=str(tmp_path / "leak.txt")).split_records("train")
    (tmp_path / "order.txt").write_text("v_Archery_g07_c01.avi 0\n")
    with pytest.raises(AnnotationError, match=r"order.txt:1: .* has label 0 but the dataset gives 1 \(Archery\)"):
        _few(ucf_root, tmp_path, manifest=str(tmp_path / "order.txt")).split_records("train")
    # A relative manifest path is found under root.
    (ucf_root / "lists").mkdir(exist_ok=True)
    (ucf_root / "lists" / "vifi.txt").write_text((tmp_path / "vifi.txt").read_text())
    rooted = _few(ucf_root, tmp_path, 1, manifest="lists/vifi.txt")
    assert len(rooted.split_records("train")) == 3 and rooted.few_shot_manifest == ucf_root / "lists" / "vifi.txt"


def test_few_shot_hparams_are_plain_data(ucf_root: Path, tmp_path: Path) -> None:
    dm = _base(ucf_root, tmp_path, val_clips=2, few_shot={"shots": 2, "seed": 1})  # a dict works as well
    assert dm.few_shot == FewShot(2, seed=1)
    assert dm.cfg.num_frames == 4 and dm.cfg.val_clips == 2 and dm.cfg.batch_size == 4
    assert dm.hparams["few_shot"] == {
        "shots": 2,
        "seed": 1,
        "manifest": None,
        "manifest_out": None,
        "allow_fewer": False,
    }
    assert dm.hparams["dataset"] == "ucf101" and dm.hparams["class_subset"] is None and dm.hparams["features"] is None
    json.dumps(dict(dm.hparams))  # no objects: checkpoints load with weights_only=True
    as_object = _few(ucf_root, tmp_path)
    assert as_object.hparams["few_shot"]["shots"] == 2  # a dataclass is stored as a dict too
    with pytest.raises(ValueError, match="shots must be >= 1"):
        FewShot(0)


def test_cli_sets_few_shot_options_on_any_data_config(
    ucf_root: Path, tmp_path: Path, model_config: dict, monkeypatch
) -> None:
    from alt_lightning.datamodules import VideoDataModule
    from alt_lightning.lightning import ALTModule
    from alt_lightning.lightning.cli import ALTCLI

    monkeypatch.chdir(tmp_path)
    data = {
        "class_path": "alt_lightning.datamodules.UCFHMDBDataModule",
        "init_args": {"dataset": "ucf101", "split": 1, "root": str(ucf_root), **COMMON},
    }
    cli = ALTCLI(
        ALTModule,
        VideoDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        run=False,
        args=[
            f"--data={json.dumps(data)}",
            "--data.init_args.few_shot.shots=2",  # a nested option of a DataModule that had none
            f"--data.init_args.few_shot.manifest_out={tmp_path / 'fs.txt'}",
            f"--model={json.dumps(model_config)}",
            "--trainer.logger=false",
        ],
        auto_configure_optimizers=False,
    )
    dm = cli.datamodule
    assert isinstance(dm, UCFHMDBDataModule) and dm.few_shot == FewShot(2, manifest_out=str(tmp_path / "fs.txt"))
    assert cli.model.class_names == dm.class_names == ["ApplyEyeMakeup", "Archery", "YoYo"]
    assert dm.cfg.num_frames == 4
    assert dm.hparams["few_shot"]["shots"] == 2 and json.dumps(dict(dm.hparams))
    dm.setup("fit")
    assert (tmp_path / "fs.txt").is_file() and read_manifest(tmp_path / "fs.txt").sha256 == UCF_2SHOT_SEED0_SHA
    assert len(dm.video_dataset("train").records) == 6
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape == (4, 4, 3, 32, 32)
