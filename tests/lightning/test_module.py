"""ALTModule: checkpoints hold only trainable weights and round-trip to identical predictions."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch

from alt_lightning.datamodules import VideoListDataModule
from alt_lightning.lightning import ALTModule
from alt_lightning.lightning.module import CheckpointMismatchError
from alt_lightning.model.backbone import load_clip


def _datamodule(root: Path) -> VideoListDataModule:
    return VideoListDataModule(
        root=str(root),
        classes="classes.txt",
        test_list="test.txt",
        num_frames=4,
        batch_size=4,
        num_workers=0,
        flip=0.0,
    )


def _trainer(tmp_path: Path, **kw) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        **kw,
    )


def test_checkpoint_round_trip_gives_identical_predictions(
    synthetic_root: Path, module_kwargs: dict, tmp_path: Path
) -> None:
    pl.seed_everything(0)
    dm = _datamodule(synthetic_root)
    model = ALTModule(class_names=dm.class_names, **module_kwargs)
    trainer = _trainer(tmp_path, limit_train_batches=3, limit_val_batches=1)
    trainer.fit(model, dm)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)

    raw = torch.load(path, weights_only=True, map_location="cpu")
    assert set(raw["state_dict"]) == {k for k, p in model.named_parameters() if p.requires_grad}
    assert raw["alt"]["backbone_fingerprint"] == model.backbone_fingerprint

    restored = ALTModule.load_from_checkpoint(path, weights_only=True)
    batch = next(iter(dm.test_dataloader()))
    model.eval()
    restored.eval()
    with torch.no_grad():
        a, b = model(batch["video"]), restored(batch["video"])
    assert torch.equal(a.logits, b.logits)
    assert torch.equal(a.entity_ids, b.entity_ids)

    # Fewer frames than the checkpoint's tables (4 rows: num_frames): their first rows, same scores.
    fewer = ALTModule.load_from_checkpoint(path, weights_only=True, num_frames=2).eval()
    assert fewer.model.adapter.frame_pos.shape[0] == 2
    with torch.no_grad():
        assert torch.equal(fewer(batch["video"][:, :2]).logits, restored(batch["video"][:, :2]).logits)
    with pytest.raises(CheckpointMismatchError, match=r"hold 4 frames .* data.num_frames=16"):
        ALTModule.load_from_checkpoint(path, weights_only=True, num_frames=16)


def test_checkpoint_with_other_backbone_weights_is_refused(
    synthetic_root: Path, module_kwargs: dict, tmp_path: Path
) -> None:
    dm = _datamodule(synthetic_root)
    torch.manual_seed(0)
    model = ALTModule(class_names=dm.class_names, **module_kwargs)
    trainer = _trainer(tmp_path, limit_train_batches=1, limit_val_batches=0)
    trainer.fit(model, dm)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    torch.manual_seed(1)
    other = tmp_path / "other.pt"
    torch.save(load_clip("alt-tiny", seed=1).state_dict(), other)
    with pytest.raises(RuntimeError, match="fingerprint"):
        ALTModule.load_from_checkpoint(path, weights_only=True, pretrained=str(other))


def test_checkpoint_records_corpus_and_warns_when_loaded_with_another(
    synthetic_root: Path, module_kwargs: dict, tmp_path: Path
) -> None:
    from alt_lightning.text.corpus import Corpus, EntityRecord, load_corpus, write_corpus

    dm = _datamodule(synthetic_root)
    model = ALTModule(class_names=dm.class_names, **module_kwargs)
    trainer = _trainer(tmp_path, limit_train_batches=1, limit_val_batches=0)
    trainer.fit(model, dm)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    saved = torch.load(path, weights_only=True, map_location="cpu")["alt"]["corpus"]
    corpus = load_corpus(module_kwargs["corpus"])
    assert saved == {"name": corpus.name, "version": corpus.version, "hash": corpus.hash, "size": len(corpus)}

    extra = EntityRecord("yellow star", "object", "A five-pointed star shape coloured yellow.", {})
    other = write_corpus(Corpus("tiny-test", "0.0.2", (*corpus.records, extra), "Test corpus."), tmp_path / "o.jsonl")
    with pytest.warns(UserWarning, match=r"Checkpoint corpus tiny-test 0\.0\.1 .* differs .* tiny-test 0\.0\.2"):
        ALTModule.load_from_checkpoint(path, weights_only=True, corpus=str(other))


def test_init_weights_copies_trainable_weights_only(synthetic_root: Path, module_kwargs: dict, tmp_path: Path) -> None:
    dm = _datamodule(synthetic_root)
    model = ALTModule(class_names=dm.class_names, **module_kwargs)
    trainer = _trainer(tmp_path, limit_train_batches=2, limit_val_batches=0)
    trainer.fit(model, dm)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    # Another label space (few-shot on a new dataset): trainable weights come over, class embeddings are new.
    fresh = ALTModule(class_names=["a", "b", "c", "d"], **module_kwargs)
    started = ALTModule(class_names=["a", "b", "c", "d"], init_weights=str(path), **module_kwargs)
    trained = dict(model.named_parameters())
    for name, p in started.named_parameters():
        if p.requires_grad:
            assert torch.equal(p, trained[name]), name
    assert not torch.equal(dict(fresh.named_parameters())["model.adapter.gamma"], trained["model.adapter.gamma"])
    assert started.model.classifier.num_classes == 4
    # Its own checkpoint loads without the file it was initialised from.
    trainer = _trainer(tmp_path, limit_train_batches=1, limit_val_batches=0)
    trainer.fit(started, _datamodule(synthetic_root))
    trainer.save_checkpoint(tmp_path / "started.ckpt")
    path.unlink()
    assert ALTModule.load_from_checkpoint(tmp_path / "started.ckpt", weights_only=True).hparams.init_weights is None


# ----------------------------------------------------------------------------------------------- metrics
class _FixedScores(ALTModule):
    """ALTModule whose scores come from a table by video index, so the metrics see chosen predictions."""

    scores: torch.Tensor

    def _forward_batch(self, batch: dict) -> SimpleNamespace:
        return SimpleNamespace(logits=self.scores[batch["index"]])


def _evaluate(model: _FixedScores, labels: list[int], predicted: list[int], stage: str = "test") -> dict[str, float]:
    """Run ``trainer.test``/``validate`` on videos with these labels whose top class is ``predicted``."""
    n = len(model.class_names)
    scores = torch.full((len(labels), n), -5.0)
    for i, p in enumerate(predicted):
        scores[i, p] = 5.0
        scores[i, (p + 1) % n] = 1.0  # second choice: the next class
    model.scores = scores
    items = [{"index": i, "label": y, "ok": True, "view": 0} for i, y in enumerate(labels)]
    loader = torch.utils.data.DataLoader(items, batch_size=3)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    getattr(trainer, "test" if stage == "test" else "validate")(model, dataloaders=loader, verbose=False)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def test_top1_is_the_share_of_videos_right_and_mean_class_averages_the_classes_present(module_kwargs: dict) -> None:
    """Labels [0, 0, 0, 1] all predicted 0: top-1 0.75 (a class average would say 0.50), mean-class 0.50."""
    model = _FixedScores(class_names=["a", "b", "c"], **module_kwargs)
    got = _evaluate(model, [0, 0, 0, 1], [0, 0, 0, 0])
    assert got["test/top1"] == pytest.approx(0.75)
    assert got["test/top5"] == pytest.approx(1.0)  # top-3 of 3 classes
    assert got["test/mean_class"] == pytest.approx(0.5)
    assert got["test/videos_evaluated"] == got["test/videos_listed"] == 4
    # Class c has no video but is predicted once: it does not enter mean-class as a class with recall 0 (1/3).
    got = _evaluate(model, [0, 0, 0, 1], [0, 0, 0, 2])
    assert got["test/top1"] == pytest.approx(0.75) and got["test/mean_class"] == pytest.approx(0.5)
    # Top-2: the label is the first or the second choice (the class after the first) for 3 of 4 videos.
    model.set_class_names(["a", "b", "c", "d", "e", "f"])
    got = _evaluate(model, [0, 0, 1, 4], [0, 5, 0, 4])
    assert got["test/top1"] == pytest.approx(0.5) and got["test/top5"] == pytest.approx(1.0)
    # Checkpoint selection monitors val/top1: the same definition.
    got = _evaluate(model, [0, 0, 0, 1], [0, 0, 0, 0], stage="val")
    assert got["val/top1"] == pytest.approx(0.75) and got["val/mean_class"] == pytest.approx(0.5)


def test_base_to_novel_top1_is_the_share_of_videos_right_on_an_unequal_split(module_kwargs: dict) -> None:
    """Base: 1 of 5 videos right (classes of 1, 2 and 2 videos); novel: 1 of 4 (classes of 1 and 3 videos).

    Class averages would report base 33.33, novel 50.00, HM 40.00.
    """
    from alt_lightning.protocols.report import base_to_novel_metrics, eval_metrics

    model = _FixedScores(class_names=["b0", "b1", "b2"], **module_kwargs)
    base = eval_metrics(_evaluate(model, [0, 1, 1, 2, 2], [0, 0, 0, 0, 0]))
    model.set_class_names(["n0", "n1"])
    novel = eval_metrics(_evaluate(model, [0, 1, 1, 1], [0, 0, 0, 0]))
    got = base_to_novel_metrics(base, novel)
    assert got["base_top1"] == pytest.approx(20.0) and got["novel_top1"] == pytest.approx(25.0)
    assert got["hm"] == pytest.approx(2 * 20 * 25 / 45)  # 22.22
    assert got["base_mean_class"] == pytest.approx(100 / 3) and got["novel_mean_class"] == pytest.approx(50.0)
    assert got["base_videos_evaluated"] == 5 and got["novel_videos_evaluated"] == 4


def test_clips_with_other_frames_are_refused_in_one_line(
    synthetic_root: Path, module_kwargs: dict, tmp_path: Path
) -> None:
    """Clips of another frame count than the model's (given once, so a mistake), or more frames than an older
    checkpoint's tables hold: one line, before the first batch."""
    dm = _datamodule(synthetic_root)  # 4 frames
    model = ALTModule(class_names=dm.class_names, **{**module_kwargs, "num_frames": 8})
    with pytest.raises(
        ValueError, match=r"4-frame clips \(data.num_frames\) but ALTModule was built with num_frames=8"
    ):
        _trainer(tmp_path).test(model, dm)
    # An older checkpoint's tables (adapter.max_frames) shorter than the clips: refused before the first batch.
    model = ALTModule(class_names=dm.class_names, **{**module_kwargs, "adapter": {"heads": 4, "max_frames": 2}})
    with pytest.raises(ValueError, match=r"hold 2 frames \(adapter.max_frames.*data.num_frames=4"):
        _trainer(tmp_path).test(model, dm)
