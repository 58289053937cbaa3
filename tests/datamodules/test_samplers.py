"""ShardSampler: exact evaluation shards (no padding, no drop), equal-length seeded training shards."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from alt_lightning.datamodules import VideoDataModule
from alt_lightning.datamodules.samplers import DeferredDataLoader, EpochIndex, ShardSampler
from alt_lightning.model.backbone import PreprocessConfig


class _Items:
    def __init__(self, n: int) -> None:
        self.n, self.epoch = n, -1

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


@given(n=st.integers(1, 60), world=st.integers(1, 5))
def test_evaluation_shards_partition_the_items(n: int, world: int) -> None:
    shards = [list(ShardSampler(_Items(n), num_replicas=world, rank=r)) for r in range(world)]
    assert sorted(i for s in shards for i in s) == list(range(n))  # each item exactly once
    assert [len(ShardSampler(_Items(n), num_replicas=world, rank=r)) for r in range(world)] == list(map(len, shards))


class _Views(_Items):
    """Evaluation items of ``videos`` videos with ``num_views`` consecutive items each."""

    def __init__(self, videos: int, num_views: int) -> None:
        super().__init__(videos * num_views)
        self.num_views = num_views


@given(videos=st.integers(1, 25), views=st.integers(1, 4), world=st.integers(1, 5))
def test_evaluation_shards_keep_each_videos_views_together_on_one_rank(videos: int, views: int, world: int) -> None:
    shards = [list(ShardSampler(_Views(videos, views), num_replicas=world, rank=r)) for r in range(world)]
    assert sorted(i for s in shards for i in s) == list(range(videos * views))  # each item exactly once
    for r, shard in enumerate(shards):
        mine = list(range(r, videos, world))  # videos r, r + W, ...
        assert shard == [v * views + k for v in mine for k in range(views)]  # whole videos, views in order
        assert len(ShardSampler(_Views(videos, views), num_replicas=world, rank=r)) == len(shard)


def test_whole_video_batch_size() -> None:
    from alt_lightning.datamodules.samplers import whole_video_batch_size

    assert [whole_video_batch_size(b, 3) for b in (1, 2, 3, 4, 8, 9, 32)] == [1, 2, 3, 3, 6, 9, 30]
    assert whole_video_batch_size(8, 1) == 8 and whole_video_batch_size(8, 9) == 8


@given(n=st.integers(1, 60), world=st.integers(1, 5), seed=st.integers(0, 3))
def test_training_shards_are_equal_seeded_and_cover_everything(n: int, world: int, seed: int) -> None:
    samplers = [ShardSampler(_Items(n), num_replicas=world, rank=r, shuffle=True, seed=seed) for r in range(world)]
    shards = [list(s) for s in samplers]
    assert len({len(s) for s in shards}) == 1  # DDP training needs the same number of steps on every rank
    assert set(i for s in shards for i in s) == set(range(n))
    assert shards == [list(s) for s in samplers]  # deterministic for (seed, epoch)


def test_set_epoch_reshuffles_and_reaches_the_dataset() -> None:
    items = _Items(20)
    s = ShardSampler(items, shuffle=True, seed=0)
    first = list(s)
    s.set_epoch(1)
    assert items.epoch == 1 and list(s) != first and sorted(s) == sorted(first)


class _EpochEcho(_Items):
    """Items that say which epoch they were drawn for: the index's own, else the (pickled) dataset's."""

    def __getitem__(self, index: int) -> tuple[int, int, int]:
        return int(index), getattr(index, "epoch", -1), self.epoch


def test_training_indices_carry_their_epoch_through_pickling() -> None:
    s = ShardSampler(_Items(10), shuffle=True, seed=0)
    s.set_epoch(3)
    drawn = list(s)
    assert all(isinstance(i, EpochIndex) and i.epoch == 3 for i in drawn)
    back = pickle.loads(pickle.dumps(drawn))
    assert back == drawn and [i.epoch for i in back] == [3] * 10
    assert not any(isinstance(i, EpochIndex) for i in ShardSampler(_Items(10)))  # evaluation: plain indices


def test_deferred_loader_draws_after_set_epoch_with_workers() -> None:
    """Lightning calls iter() on a resumed run's loader before set_epoch; the epoch set later must still apply.

    A plain DataLoader with workers draws its first indices and pickles the dataset when iter() is called: epoch 0's
    order, and items seeded with epoch 0.
    """
    items = _EpochEcho(12)
    sampler = ShardSampler(items, shuffle=True, seed=0)
    expected = ShardSampler(_Items(12), shuffle=True, seed=0)
    expected.set_epoch(2)
    loader = DeferredDataLoader(items, batch_size=4, sampler=sampler, num_workers=2)
    iterator = iter(loader)  # as Lightning's fit loop does before restoring the epoch
    sampler.set_epoch(2)
    batches = list(iterator)
    assert len(loader) == 3 and len(batches) == 3
    index, index_epoch, dataset_epoch = (torch.cat([b[k] for b in batches]).tolist() for k in range(3))
    assert index == [int(i) for i in expected]
    assert index_epoch == [2] * 12 and dataset_epoch == [2] * 12


def test_transform_follows_the_attached_backbone() -> None:
    dm = VideoDataModule()
    cfg = PreprocessConfig(64, (0.1, 0.2, 0.3), (0.4, 0.5, 0.6), "bilinear")
    dm.trainer = SimpleNamespace(lightning_module=SimpleNamespace(preprocess_config=cfg))
    tf = dm.transform("val")
    assert (tf.size, tf.mean, tf.std, tf.interpolation) == (64, (0.1, 0.2, 0.3), (0.4, 0.5, 0.6), "bilinear")
    dm2 = VideoDataModule(image_size=32)
    dm2.trainer = dm.trainer
    with pytest.raises(ValueError, match="differs from the backbone's 64"):
        dm2.transform("train")


@pytest.mark.timeout(120)
def test_evaluation_loader_decodes_each_video_once_per_epoch(synthetic_root, tmp_path, monkeypatch) -> None:
    """The DataModule's test loader: batches of whole videos, one open per video, under 1 and 2 ranks."""
    import alt_lightning.data.dataset as dataset_module
    from alt_lightning.datamodules import VideoListDataModule

    opens: list[str] = []
    real = dataset_module.open_video
    monkeypatch.setattr(dataset_module, "open_video", lambda p, *a, **k: opens.append(p) or real(p, *a, **k))
    dm = VideoListDataModule(
        root=str(synthetic_root), classes="classes.txt", test_list="test.txt", num_frames=4, batch_size=8,
        num_workers=0, test_clips=3, pin_memory=False, bad_file_log=str(tmp_path / "bad.csv"),
    )  # fmt: skip
    for world in (1, 2):
        pairs, opens[:] = [], []
        for rank in range(world):
            dm.trainer = SimpleNamespace(world_size=world, global_rank=rank)
            loader = dm.test_dataloader()
            assert loader.batch_size == 6  # 8 rounded down to whole videos of 3 views
            for batch in loader:
                index = batch["index"].tolist()
                assert all(index.count(v) == 3 for v in index)  # whole videos in every batch
                pairs += list(zip(index, batch["view"].tolist(), strict=True))
        assert sorted(pairs) == [(v, c) for v in range(12) for c in range(3)]
        assert sorted(opens) == sorted(r.path for r in dm.video_dataset("test").records)  # one open per video
