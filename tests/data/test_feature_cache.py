"""Frozen-feature cache: round trip equals on-the-fly features; keys change with sampling, backbone and records."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from alt_lightning.data.dataset import BadFileLog, SamplingConfig, VideoDataset
from alt_lightning.data.feature_cache import (
    CachedFeatureDataset,
    FeatureCache,
    FeatureCacheError,
    build_feature_cache,
    cache_name,
    cache_spec,
    open_cache,
    spec_key,
)
from alt_lightning.data.parsers import parse_path_label_list
from alt_lightning.data.records import VideoRecord
from alt_lightning.data.transforms import ClipTransform
from alt_lightning.lightning import ALTModule
from alt_lightning.model.backbone import load_clip


def _model(root: Path, module_kwargs: dict, **kw) -> ALTModule:
    names = (root / "classes.txt").read_text().splitlines()
    return ALTModule(class_names=names, **{**module_kwargs, **kw}).eval()


def _records(root: Path, split: str = "test") -> list[VideoRecord]:
    return parse_path_label_list(root / f"{split}.txt", root=root)


def _dataset(records: list[VideoRecord], model: ALTModule, frames: int = 4, clips: int = 2, **kw) -> VideoDataset:
    p = model.preprocess_config
    transform = ClipTransform(p.image_size, tuple(p.mean), tuple(p.std), interpolation="bicubic")
    return VideoDataset(records, transform, SamplingConfig(frames, num_clips=clips), train=False, split="test", **kw)


def test_round_trip_equals_on_the_fly_features(synthetic_root: Path, module_kwargs: dict, tmp_path: Path) -> None:
    model = _model(synthetic_root, module_kwargs)
    ds = _dataset(_records(synthetic_root)[:6], model)  # 6 videos x 2 clips = 12 items
    enc = model.model.encoder
    spec = cache_spec(enc, model.backbone_fingerprint, ds)
    item_bytes = 4 * enc.num_tokens() * enc.out_dim * 2
    with pytest.raises(FeatureCacheError, match="encode returned no source maps"):
        build_feature_cache(tmp_path / "c", ds, model.model.encode_frames, spec, store_source=True)
    assert not list(tmp_path.iterdir())  # nothing left behind
    enc.keep_source = True  # the caller switches source maps on (the DataModule does while building)
    # 5 rows per shard and batches of 4: batches cross shard boundaries.
    cache = build_feature_cache(
        tmp_path / "c", ds, model.model.encode_frames, spec, batch_size=4, shard_bytes=5 * item_bytes, store_source=True
    )
    enc.keep_source = False
    assert cache.num_items == 12 and [s["rows"] for s in cache.index["shards"]] == [5, 5, 2]
    assert cache.token_shape == (4, enc.num_tokens(), 64) and cache.num_failed_videos == 0
    assert not list(tmp_path.glob("*.tmp-*"))  # written under a temporary name, then renamed

    served = default_collate([CachedFeatureDataset(cache, return_source=True)[i] for i in range(12)])
    ref = default_collate([ds[i] for i in range(12)])
    for k in ("label", "index", "view", "ok", "video_id"):
        assert served[k] == ref[k] if isinstance(ref[k], list) else torch.equal(served[k], ref[k]), k
    enc.keep_source = True
    with torch.no_grad():
        tokens, sizes, source = model.model.encode_frames(ref["video"])  # [12, 4, 1+R, C]
        online = model(ref["video"])
        cached = model._forward_batch(served)
    enc.keep_source = False
    # float16 storage: relative rounding of at most 2^-11 per value.
    err = (served["tokens"] - tokens).abs()
    assert float(err.max()) > 0  # really rounded to float16
    assert bool((err <= tokens.abs() * 2**-11 + 1e-7).all())
    assert torch.equal(served["sizes"], sizes) and torch.equal(served["source"], source)
    # The head on cached tokens gives what the full forward pass gives on decoded clips.
    assert torch.allclose(cached.logits, online.logits, atol=2e-3, rtol=0)
    assert float((cached.entity_ids == online.entity_ids).float().mean()) > 0.98
    assert torch.equal(cached.logits.argmax(-1), online.logits.argmax(-1))

    reopened = FeatureCache(tmp_path / "c")
    assert reopened.key == spec_key(spec) and [r.video_id for r in reopened.records] == [r.video_id for r in ds.records]


def test_key_changes_with_sampling_backbone_and_records(
    synthetic_root: Path, module_kwargs: dict, tmp_path: Path
) -> None:
    model = _model(synthetic_root, module_kwargs)
    records = _records(synthetic_root)[:2]
    ds = _dataset(records, model, clips=1)
    spec = cache_spec(model.model.encoder, model.backbone_fingerprint, ds)
    path = tmp_path / cache_name("syn", "test", spec_key(spec))
    cache = build_feature_cache(path, ds, model.model.encode_frames, spec, batch_size=2)
    assert open_cache(path, spec) is not None
    # The same weights file in a fresh module: the same key (the key is stable, not per instance).
    again = _model(synthetic_root, module_kwargs)
    assert spec_key(cache_spec(again.model.encoder, again.backbone_fingerprint, ds)) == spec_key(spec)

    fewer = cache_spec(model.model.encoder, model.backbone_fingerprint, _dataset(records, model, frames=3, clips=1))
    assert cache_name("syn", "test", spec_key(fewer)) != path.name
    assert open_cache(path, fewer) is None
    bf16 = cache_spec(model.model.encoder, model.backbone_fingerprint, ds, precision="bf16-mixed")
    assert spec_key(bf16) != spec_key(spec) and open_cache(path, bf16) is None  # tokens computed in another precision
    with pytest.raises(FeatureCacheError, match=r"stale: sampling.num_frames: 4 in the cache, 3 now"):
        cache.check(fewer)

    torch.manual_seed(1)
    other_weights = tmp_path / "other.pt"
    torch.save(load_clip("alt-tiny", seed=5).state_dict(), other_weights)
    other = _model(synthetic_root, module_kwargs, pretrained=str(other_weights))
    other_spec = cache_spec(other.model.encoder, other.backbone_fingerprint, ds)
    assert open_cache(path, other_spec) is None
    with pytest.raises(
        FeatureCacheError, match=r"backbone.fingerprint: '[0-9a-f]{16}' in the cache, '[0-9a-f]{16}' now"
    ):
        cache.check(other_spec)

    relabelled = [VideoRecord(records[0].path, 3, records[0].video_id), records[1]]
    new_records = cache_spec(model.model.encoder, model.backbone_fingerprint, _dataset(relabelled, model, clips=1))
    with pytest.raises(FeatureCacheError, match=r"records.sha256"):
        cache.check(new_records)
    merged = _model(synthetic_root, module_kwargs, encoder={"r": 1})
    with pytest.raises(FeatureCacheError, match=r"backbone.r_schedule: \[2, 2\] in the cache, \[1, 1\] now"):
        cache.check(cache_spec(merged.model.encoder, merged.backbone_fingerprint, ds))


def test_bad_videos_are_stored_as_failed(synthetic_root: Path, module_kwargs: dict, tmp_path: Path) -> None:
    model = _model(synthetic_root, module_kwargs)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video" * 10)
    good = _records(synthetic_root)[:2]
    records = [good[0], VideoRecord(str(broken), 1, "broken"), good[1]]
    bad_log = BadFileLog(tmp_path / "bad.csv")
    ds = _dataset(records, model, clips=2, bad_file_log=bad_log)
    spec = cache_spec(model.model.encoder, model.backbone_fingerprint, ds)
    cache = build_feature_cache(tmp_path / "c", ds, model.model.encode_frames, spec, batch_size=4)
    assert cache.ok.tolist() == [True, True, False, False, True, True]
    assert cache.index["failed_items"] == [2, 3] and cache.num_failed_videos == 1
    assert not np.asarray(cache.tokens(2)).any()  # zeros, never the encoding of a placeholder
    assert {r["video_id"] for r in bad_log.rows()} == {"broken"}

    evaluation = CachedFeatureDataset(cache)
    assert len(evaluation) == 6 and evaluation[3]["ok"] is False and evaluation[3]["video_id"] == "broken"
    training = CachedFeatureDataset(cache, train=True)
    assert len(training) == 4 and "broken" not in {training[i]["video_id"] for i in range(4)}


def test_uncacheable_settings_are_refused(synthetic_root: Path, module_kwargs: dict, monkeypatch) -> None:
    model = _model(synthetic_root, module_kwargs)
    records = _records(synthetic_root)[:1]
    p = model.preprocess_config
    augmented = VideoDataset(
        records, ClipTransform(p.image_size, p.mean, p.std, train=True), SamplingConfig(4), train=True
    )
    with pytest.raises(FeatureCacheError, match="cannot be cached"):
        cache_spec(model.model.encoder, model.backbone_fingerprint, augmented)
    monkeypatch.setattr(model.model.encoder, "trainable_blocks", 1)
    with pytest.raises(FeatureCacheError, match="trainable_blocks=1"):
        cache_spec(model.model.encoder, model.backbone_fingerprint, _dataset(records, model))


def test_memory_maps_are_not_pickled_into_workers(synthetic_root: Path, module_kwargs: dict, tmp_path: Path) -> None:
    model = _model(synthetic_root, module_kwargs)
    ds = _dataset(_records(synthetic_root)[:4], model, clips=1)
    spec = cache_spec(model.model.encoder, model.backbone_fingerprint, ds)
    cache = build_feature_cache(tmp_path / "c", ds, model.model.encode_frames, spec, batch_size=4)
    first = np.array(cache.tokens(3))  # opens the shard's memory map
    assert cache._arrays
    blob = pickle.dumps(cache)
    assert len(blob) < first.nbytes * 4 + 20_000  # metadata only, not the shard
    assert np.array_equal(pickle.loads(blob).tokens(3), first)


def test_interrupted_build_leaves_nothing(synthetic_root: Path, module_kwargs: dict, tmp_path: Path) -> None:
    model = _model(synthetic_root, module_kwargs)

    class Failing(VideoDataset):
        def __getitem__(self, index: int) -> dict:
            if index == 3:
                raise KeyboardInterrupt
            return super().__getitem__(index)

    records = _records(synthetic_root)[:4]
    p = model.preprocess_config
    ds = Failing(records, ClipTransform(p.image_size, p.mean, p.std), SamplingConfig(4), train=False)
    spec = cache_spec(model.model.encoder, model.backbone_fingerprint, ds)
    with pytest.raises(KeyboardInterrupt):
        build_feature_cache(tmp_path / "c", ds, model.model.encode_frames, spec, batch_size=2)
    assert list(tmp_path.iterdir()) == []


def _assert_same_batch(got: dict, want: dict) -> None:
    assert list(got) == list(want)  # the same keys in the same order
    for key, value in want.items():
        if isinstance(value, torch.Tensor):
            assert got[key].dtype == value.dtype and torch.equal(got[key], value), key
        else:
            assert got[key] == value, key


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_batch_reading_equals_the_collated_items(
    synthetic_root: Path, module_kwargs: dict, tmp_path: Path, dtype: str
) -> None:
    """One read per batch (slices or per-shard gathers, one conversion) gives exactly the per-item path's batches."""
    from torch.utils.data import DataLoader

    from alt_lightning.data.feature_cache import CachedBatch, collate_cached

    model = _model(synthetic_root, module_kwargs)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video" * 10)
    good = _records(synthetic_root)[:5]
    records = [*good[:2], VideoRecord(str(broken), 1, "broken"), *good[2:]]  # 6 videos x 2 views = 12 items
    ds = _dataset(records, model, bad_file_log=BadFileLog(tmp_path / "bad.csv"))
    enc = model.model.encoder
    spec = cache_spec(enc, model.backbone_fingerprint, ds)
    item_bytes = 4 * enc.num_tokens() * enc.out_dim * (2 if dtype == "float16" else 4)
    enc.keep_source = True
    cache = build_feature_cache(
        tmp_path / "c", ds, model.model.encode_frames, spec, shard_bytes=5 * item_bytes, store_source=True, dtype=dtype
    )
    enc.keep_source = False
    assert [s["rows"] for s in cache.index["shards"]] == [5, 5, 2] and cache.index["failed_items"] == [4, 5]

    for train in (False, True):
        served = CachedFeatureDataset(cache, train=train, return_source=True)
        n = len(served)
        orders = [list(range(n)), [1, 2, 3], [4, 5, 6], [9, 3, 0, 7, 3], list(reversed(range(n)))]
        for order in orders:  # whole, inside one shard, across a shard boundary, shuffled with a repeat, reversed
            _assert_same_batch(served.read_batch(order), default_collate([served[i] for i in order]))
        batch = served.__getitems__([6, 2])
        assert isinstance(batch, CachedBatch) and len(batch) == 2
        _assert_same_batch(default_collate(list(batch)), default_collate([served[6], served[2]]))  # items on access
        assert collate_cached(batch) is batch.collated
    evaluation = CachedFeatureDataset(cache)
    loaded = list(DataLoader(evaluation, batch_size=5, num_workers=2, collate_fn=collate_cached))
    per_item = [default_collate([evaluation[i] for i in range(a, min(a + 5, 12))]) for a in range(0, 12, 5)]
    for got, want in zip(loaded, per_item, strict=True):
        _assert_same_batch(got, want)
    # The batch owns its memory: writing into it never reaches the cache.
    batch = evaluation.read_batch([0, 1])
    before = np.array(cache.tokens(0))
    batch["tokens"].add_(1.0)
    assert np.array_equal(np.array(cache.tokens(0)), before)
