"""The ``features`` option: cached fit and test match decoding; invalidation; failed videos; DDP; resume; CLI."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import default_collate

from alt_lightning.cli import main as alt_main
from alt_lightning.data.feature_cache import CachedFeatureDataset, FeatureCacheError, collate_cached, list_caches
from alt_lightning.datamodules import FeatureCacheConfig, VideoListDataModule
from alt_lightning.lightning import ALTModule
from alt_lightning.model.backbone import load_clip


def _base(root: Path, tmp_path: Path, **kw: Any) -> VideoListDataModule:
    settings = {"num_frames": 4, "batch_size": 4, "num_workers": 0, "flip": 0.0, "pin_memory": False, **kw}
    return VideoListDataModule(
        root=str(root), classes="classes.txt", test_list="test.txt", bad_file_log=str(tmp_path / "bad.csv"), **settings
    )


def _cached(root: Path, tmp_path: Path, cache_dir: Path | str, splits=("test",), **kw: Any) -> VideoListDataModule:
    """The list DataModule with the feature cache on for ``splits`` (``kw``: data settings and cache fields)."""
    fields = {k: kw.pop(k) for k in ("build", "batch_size", "store_source") if k in kw}
    return _base(root, tmp_path, features=FeatureCacheConfig(dir=str(cache_dir), splits=tuple(splits), **fields), **kw)


def _trainer(tmp_path: Path, **kw: Any) -> pl.Trainer:
    settings = {"max_epochs": 1, **kw}
    return pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        **settings,
    )


class BatchKeys(pl.Callback):
    """Remembers the keys of the training batches."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: dict, batch_idx: int) -> None:
        self.keys |= set(batch)


def test_fit_and_test_from_the_cache_match_decoding(synthetic_root: Path, module_kwargs: dict, tmp_path: Path) -> None:
    pl.seed_everything(0)
    base = _base(synthetic_root, tmp_path, test_clips=2)
    dm = _cached(synthetic_root, tmp_path, tmp_path / "cache", ("train", "val", "test"), test_clips=2, batch_size=8)
    assert dm.cfg.batch_size == 4 and dm.features.batch_size == 8  # decoding and cache-reading batches differ
    model = ALTModule(class_names=dm.class_names, **module_kwargs)
    before = {k: v.clone() for k, v in model.named_parameters() if v.requires_grad}
    keys = BatchKeys()
    trainer = _trainer(tmp_path, max_epochs=2, callbacks=[keys])
    trainer.fit(model, dm)
    assert keys.keys == {"tokens", "label", "index", "view", "ok", "video_id"}
    assert any(not torch.equal(before[k], v) for k, v in model.named_parameters() if v.requires_grad)
    assert torch.isfinite(trainer.callback_metrics["train/loss"]) and "val/top1" in trainer.callback_metrics
    assert sorted(c.split for c in list_caches(tmp_path / "cache")) == ["train", "val"]  # test not built yet
    assert len(dm.dataset("train")) == 24 and len(trainer.train_dataloader) == 3  # 24 videos, batches of 8

    trainer.test(model, dm)
    cached, cached_metrics = model.last_eval, dict(trainer.callback_metrics)
    # The cache is read, the encoder not run: a broken encoder changes nothing.
    model.model.encoder.forward = None
    trainer.test(model, dm)
    assert torch.equal(model.last_eval["probs"], cached["probs"])
    del model.model.encoder.forward

    trainer.test(model, base)
    decoded, decoded_metrics = model.last_eval, dict(trainer.callback_metrics)
    assert cached["views"] == decoded["views"] == 2 and cached["num_videos"] == decoded["num_videos"] == 12
    assert torch.equal(cached["index"], decoded["index"]) and torch.equal(cached["label"], decoded["label"])
    assert torch.allclose(cached["probs"], decoded["probs"], atol=1e-4, rtol=0)  # float16 storage
    for k in ("test/top1", "test/top5", "test/mean_class", "test/videos_evaluated", "test/videos_failed"):
        assert float(cached_metrics[k]) == float(decoded_metrics[k]), k


def test_changed_sampling_or_backbone_is_rebuilt_or_refused(
    synthetic_root: Path, module_kwargs: dict, tmp_path: Path
) -> None:
    cache_dir = str(tmp_path / "cache")
    torch.manual_seed(0)
    model = ALTModule(class_names=_base(synthetic_root, tmp_path).class_names, **module_kwargs)
    first = _cached(synthetic_root, tmp_path, cache_dir)
    built = first.prepare_caches(model)["test"]
    same = _cached(synthetic_root, tmp_path, cache_dir, build="never")
    assert same.prepare_caches(model)["test"].directory == built.directory

    fewer = _cached(synthetic_root, tmp_path, cache_dir, num_frames=3, build="never")
    with pytest.raises(FeatureCacheError, match=r"sampling.num_frames: 4 in the cache, 3 now.*alt cache build"):
        fewer.prepare_caches(model)

    torch.manual_seed(1)
    weights = tmp_path / "other.pt"
    torch.save(load_clip("alt-tiny", seed=3).state_dict(), weights)
    other = ALTModule(class_names=model.class_names, **{**module_kwargs, "pretrained": str(weights)})
    with pytest.raises(FeatureCacheError, match=r"backbone.fingerprint"):
        same.prepare_caches(other)
    auto = _cached(synthetic_root, tmp_path, cache_dir)
    rebuilt = auto.prepare_caches(other)["test"]
    assert rebuilt.directory != built.directory
    assert rebuilt.spec["backbone"]["fingerprint"] == other.backbone_fingerprint != model.backbone_fingerprint
    assert len(list_caches(cache_dir)) == 2  # the other backbone's cache is kept for it


def _root_with_broken_video(synthetic_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    shutil.copy(synthetic_root / "classes.txt", root / "classes.txt")
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated" * 8)
    for split in ("train", "test"):
        lines = (synthetic_root / f"{split}.txt").read_text().splitlines()[::3]  # one of three videos
        lines = [f"{synthetic_root / line.rsplit(' ', 1)[0]} {line.rsplit(' ', 1)[1]}" for line in lines]
        (root / f"{split}.txt").write_text("\n".join([*lines, "broken.mp4 2"]) + "\n")
    (root / "val.txt").write_text((root / "test.txt").read_text())
    return root


def test_failed_videos_are_counted_from_the_cache(synthetic_root: Path, module_kwargs: dict, tmp_path: Path) -> None:
    root = _root_with_broken_video(synthetic_root, tmp_path)
    dm = _cached(root, tmp_path, tmp_path / "cache", ("train", "test"), test_clips=2)
    torch.manual_seed(0)
    model = ALTModule(class_names=dm.class_names, **module_kwargs)
    trainer = _trainer(tmp_path, limit_val_batches=0)
    with pytest.warns(UserWarning, match="test: 1 of 5 listed videos could not be decoded"):
        trainer.fit(model, dm)
        trainer.test(model, dm)
    assert float(trainer.callback_metrics["test/videos_failed"]) == 1.0
    assert float(trainer.callback_metrics["test/videos_evaluated"]) == 4.0
    assert float(trainer.callback_metrics["test/videos_listed"]) == 5.0
    train_cache = dm.caches["train"]
    assert train_cache.num_items == 9 and train_cache.num_failed_videos == 1 and len(dm.dataset("train")) == 8
    assert "val" not in dm.caches  # validation was disabled: never encoded
    rows = list(csv_rows(tmp_path / "bad.csv"))
    assert {(r["split"], r["video_id"]) for r in rows} == {("train", "broken.mp4"), ("test", "broken.mp4")}


def csv_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_ddp_ranks_read_every_item_once_and_never_build(
    synthetic_root: Path, module_kwargs: dict, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    dm = _cached(synthetic_root, tmp_path, tmp_path / "cache", test_clips=3, batch_size=5)
    model = ALTModule(class_names=dm.class_names, **module_kwargs)
    dm.prepare_caches(model)
    pairs = []
    for rank in range(2):
        dm.trainer = SimpleNamespace(world_size=2, global_rank=rank, lightning_module=model)
        for batch in dm.test_dataloader():
            pairs += list(zip(batch["index"].tolist(), batch["view"].tolist(), strict=True))
    assert sorted(pairs) == [(v, c) for v in range(12) for c in range(3)]  # 12 videos x 3 views, each once
    assert [p[0] for p in pairs[:6]] == [0, 0, 0, 2, 2, 2]  # rank 0: whole videos 0, 2, ... (as decoding shards)

    fresh = _cached(synthetic_root, tmp_path, tmp_path / "empty")
    fresh.trainer = SimpleNamespace(world_size=2, global_rank=0, lightning_module=model)
    with pytest.raises(FeatureCacheError, match=r"not built under DDP .*alt cache build"):
        fresh.test_dataloader()
    assert isinstance(dm.dataset("predict"), CachedFeatureDataset)  # predict reads the test cache
    assert dm.dataset("val") is dm.video_dataset("val")  # an uncached split is decoded


def _cli_config(model_config: dict, synthetic_root: Path, cache_dir: Path, splits: list[str], **trainer: Any) -> dict:
    """An `alt fit` config: the tiny model on the synthetic list data, ``splits`` served from the feature cache."""
    return {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "enable_progress_bar": False, **trainer},
        "model": model_config,
        "data": {
            "class_path": "alt_lightning.datamodules.VideoListDataModule",
            "init_args": {
                "root": str(synthetic_root),
                "classes": "classes.txt",
                "test_list": "test.txt",
                "num_frames": 4,
                "num_workers": 0,
                "features": {"dir": str(cache_dir), "splits": splits},
            },
        },
    }


def test_cache_command_builds_lists_and_clears(
    synthetic_root: Path, model_config: dict, tmp_path: Path, capsys
) -> None:
    cache_dir = tmp_path / "cache"
    config = _cli_config(model_config, synthetic_root, cache_dir, ["val", "test"], logger=False)
    config["data"]["init_args"]["bad_file_log"] = str(tmp_path / "bad.csv")
    path = tmp_path / "fit.yaml"
    path.write_text(yaml.safe_dump(config))
    assert alt_main(["cache", "build", "--config", str(path), "--splits", "test"]) == 0
    assert [c.split for c in list_caches(cache_dir)] == ["test"]
    frames3 = "--data.init_args.num_frames=3"
    assert alt_main(["cache", "build", "--config", str(path), "--splits", "test", frames3]) == 0
    assert sorted(c.spec["sampling"]["num_frames"] for c in list_caches(cache_dir)) == [3, 4]
    capsys.readouterr()

    four, three = sorted(list_caches(cache_dir), key=lambda c: -c.spec["sampling"]["num_frames"])
    assert alt_main(["cache", "info", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"test: {four.directory} (built, read by this configuration)" in out
    assert f"test: {three.directory} (not read by this configuration)" in out
    assert "val: " in out and "(not built, read by this configuration)" in out
    assert alt_main(["cache", "clear", "--config", str(path), "--stale"]) == 0
    assert [c.directory for c in list_caches(cache_dir)] == [four.directory]
    assert alt_main(["cache", "info", "--dir", str(cache_dir)]) == 0
    assert f"test: {four.directory}" in capsys.readouterr().out
    assert alt_main(["cache", "clear", "--dir", str(cache_dir)]) == 0
    assert list_caches(cache_dir) == [] and not any(cache_dir.iterdir())


def test_alt_fit_and_test_from_the_cache_with_default_callbacks(
    synthetic_root: Path, model_config: dict, tmp_path: Path, monkeypatch, capsys
) -> None:
    """The default callbacks (throughput, heatmaps, predictions, loggers) accept batches of cached tokens."""
    monkeypatch.chdir(tmp_path)
    splits = ["train", "val", "test"]
    config = _cli_config(model_config, synthetic_root, tmp_path / "cache", splits, max_epochs=1)
    path = tmp_path / "fit.yaml"
    path.write_text(yaml.safe_dump(config))
    assert (
        alt_main(
            [
                "fit",
                "--config",
                str(path),
                "--trainer.callbacks+=AlignmentHeatmapLogger",
                "--trainer.callbacks.every_n_epochs=1",
            ]
        )
        == 0
    )
    metrics = (next(tmp_path.rglob("metrics.csv"))).read_text()
    assert "perf/clips_per_s" in metrics
    ckpt = next(tmp_path.rglob("best.ckpt"))
    assert alt_main(["test", "--config", str(path), f"--ckpt_path={ckpt}"]) == 0
    assert "videos listed: 12  evaluated: 12  failed: 0  missing: 0" in capsys.readouterr().out
    assert len((next(tmp_path.rglob("predictions_test.csv"))).read_text().splitlines()) == 1 + 12


def test_datamodule_option_reads_the_test_split_from_the_cache(
    synthetic_root: Path, module_kwargs: dict, tmp_path: Path
) -> None:
    """`features` on any DataModule (default: the test split) is encoded once, then read from the cache."""
    pl.seed_everything(0)
    plain = _base(synthetic_root, tmp_path, test_clips=2)
    model = ALTModule(class_names=plain.class_names, **module_kwargs)
    want = _trainer(tmp_path).test(model, plain, verbose=False)[0]
    stamps = []
    for _ in range(2):
        dm = _base(synthetic_root, tmp_path, test_clips=2, features={"dir": str(tmp_path / "features")})
        got = _trainer(tmp_path).test(model, dm, verbose=False)[0]
        assert got["test/top1"] == pytest.approx(want["test/top1"], abs=1e-6)
        assert got["test/videos_evaluated"] == want["test/videos_evaluated"] == 12
        caches = list_caches(tmp_path / "features")
        assert len(caches) == 1 and caches[0].num_items == 12 * 2
        stamps.append((caches[0].directory / "index.json").stat().st_mtime_ns)
    assert stamps[0] == stamps[1]  # the second run read the cache instead of rebuilding it


def test_cache_is_built_by_the_models_own_encode_frames(
    synthetic_root: Path, module_kwargs: dict, tmp_path: Path
) -> None:
    """The cache calls the attached model's ``encode_frames`` (no copy of it), in eval mode, and restores the model."""
    dm = _cached(synthetic_root, tmp_path, tmp_path / "cache", store_source=True)
    torch.manual_seed(0)
    model = ALTModule(class_names=dm.class_names, **module_kwargs)
    calls: list[tuple[tuple[int, ...], bool, bool]] = []
    own = model.model.encode_frames

    def spy(video: torch.Tensor):
        encoder = model.model.encoder
        calls.append((tuple(video.shape), encoder.training, encoder.keep_source))
        return own(video)

    model.model.encode_frames = spy
    model.train()
    cache = dm.prepare_caches(model)["test"]
    assert calls == [((4, 4, 3, 64, 64), False, True)] * 3  # 12 test videos in batches of 4, eval mode, source on
    assert model.model.encoder.training and not model.model.encoder.keep_source  # restored
    assert cache.has_source and cache.num_items == 12


def test_cache_build_decodes_each_video_once_for_all_its_views(
    synthetic_root: Path, module_kwargs: dict, tmp_path: Path, video_opens: list[str]
) -> None:
    """The cache is built through the evaluation path: whole videos per encoder batch, each video opened once."""
    opens = video_opens
    dm = _cached(synthetic_root, tmp_path, tmp_path / "cache", test_clips=3)  # batch_size 4: not a multiple of 3
    torch.manual_seed(0)
    model = ALTModule(class_names=dm.class_names, **module_kwargs)
    shapes: list[int] = []
    own = model.model.encode_frames

    def spy(video: torch.Tensor):
        shapes.append(video.shape[0])
        return own(video)

    model.model.encode_frames = spy
    cache = dm.prepare_caches(model)["test"]
    assert cache.num_items == 36 and shapes == [3] * 12  # 12 test videos x 3 views, one video per batch of 4 -> 3
    assert len(opens) == 12 and len(set(opens)) == 12  # each video opened once for its 3 views
    # The stored rows are the views of one open per view (the per-item path), in item order.
    ds = dm.cache_source("test")
    with torch.no_grad():
        ref = own(torch.stack([ds[i]["video"] for i in range(3)]))[0]  # video 0's views, one open each
    stored = torch.from_numpy(np.stack([cache.tokens(i) for i in range(3)]).astype(np.float32))
    assert torch.allclose(stored, ref.float(), atol=1e-2)  # float16 storage


def test_resumed_epoch_skips_the_cached_batches_already_trained(
    synthetic_root: Path, module_kwargs: dict, tmp_path: Path
) -> None:
    """Mid-epoch resume from cached training items: the skip counts the cache loader's batches, not decoding's."""
    dm = _cached(synthetic_root, tmp_path, tmp_path / "cache", ("train",), batch_size=6)  # decoding batches: 4
    torch.manual_seed(0)
    model = ALTModule(class_names=dm.class_names, **module_kwargs)
    dm.prepare_caches(model)
    progress = SimpleNamespace(current=SimpleNamespace(ready=2, processed=0))
    dm.trainer = SimpleNamespace(
        world_size=1,
        global_rank=0,
        lightning_module=model,
        training=True,
        fit_loop=SimpleNamespace(
            epoch_loop=SimpleNamespace(restarting=True, batch_progress=progress), epoch_progress=progress
        ),
    )
    loader = dm.train_dataloader()
    assert loader.batch_size == 6 and len(loader.dataset) == 24
    loader.sampler.set_epoch(0)
    resumed = [int(i) for i in loader.sampler]
    full = np.random.default_rng([0, 0]).permutation(24).tolist()  # ShardSampler's order for (seed 0, epoch 0)
    assert resumed == full[12:]  # 2 batches of 6 cached items were consumed before the checkpoint
    # The loader reads each batch at once; its batches are the per-item path's, in the resumed order.
    progress.current.processed = 1  # a new restart: the skip applies once more
    batches = list(loader)
    ds = loader.dataset
    assert len(batches) == 2 and loader.collate_fn is collate_cached
    for k, batch in enumerate(batches):
        want = default_collate([ds[i] for i in full[12 + 6 * k : 18 + 6 * k]])
        assert list(batch) == list(want)
        for key, value in want.items():
            same = torch.equal(batch[key], value) if isinstance(value, torch.Tensor) else batch[key] == value
            assert same and (not isinstance(value, torch.Tensor) or batch[key].dtype == value.dtype), key
