"""ALTModule: checkpoints hold only trainable weights and round-trip to identical predictions."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from alt_lightning.datamodules import VideoListDataModule
from alt_lightning.lightning import ALTModule
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
