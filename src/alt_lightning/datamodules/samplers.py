"""Samplers that make training reproducible and evaluation exact under DDP."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from torch.utils.data import Dataset, DistributedSampler


class ShardSampler(DistributedSampler):
    """Rank-aware sampler used for every split, with or without DDP.

    Training (``shuffle=True``): a permutation seeded by ``(seed, epoch)``, padded to equal length per rank as DDP
    training needs. Evaluation (``shuffle=False``): rank ``r`` of ``W`` takes indices ``r, r+W, ...`` with **no
    padding and no drop**, so every (video, view) item is scored exactly once across ranks; ranks may then run one
    batch more or less, which evaluation tolerates because metrics are gathered once at epoch end.

    Being a ``DistributedSampler`` subclass, Lightning keeps it instead of injecting its own (which pads).
    ``set_epoch`` also forwards the epoch to the dataset, whose augmentation RNG depends on it.

    Resuming mid-epoch: Lightning restarts a plain (non-stateful) training loader from the start of the epoch and runs
    only the batches that are left, so without help the epoch's first batches would be trained twice and its last
    ones never. ``resume_skip`` (see :func:`resume_skip_from`) says how many of this rank's items the restored loop
    has already consumed; the first iteration of a restarted epoch skips them.

    Args:
        dataset: The dataset (its ``set_epoch`` is called when present).
        num_replicas: World size.
        rank: This process's rank.
        shuffle: Training order (seeded permutation, padded) or evaluation order (strided, unpadded).
        seed: Seed of the permutation.
        resume_skip: Callable giving the number of items to skip when an epoch is restarted mid-way.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = False,
        seed: int = 0,
        resume_skip: Callable[[], int] | None = None,
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.resume_skip = resume_skip
        n = len(dataset)  # type: ignore[arg-type]
        if shuffle:
            self.num_samples = math.ceil(n / num_replicas)
        else:
            self.num_samples = len(range(rank, n, num_replicas))
        self.total_size = self.num_samples * num_replicas if shuffle else n

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)  # type: ignore[arg-type]
        if not self.shuffle:
            return iter(range(self.rank, n, self.num_replicas))
        order = np.random.default_rng([self.seed, self.epoch]).permutation(n).tolist()
        # Pad by wrapping (training only); repeat whole permutations when there are fewer items than ranks.
        order = (order * math.ceil(self.total_size / n))[: self.total_size]
        mine = order[self.rank : self.total_size : self.num_replicas]
        skip = self.resume_skip() if self.resume_skip is not None else 0
        return iter(mine[skip:])

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch for the permutation and for the dataset's augmentation randomness."""
        super().set_epoch(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


def resume_skip_from(trainer: Any, batch_size: int) -> Callable[[], int]:
    """A ``resume_skip`` for :class:`ShardSampler`: the items this rank consumed before a mid-epoch checkpoint.

    Non-zero only while Lightning's fit loop is restarting an epoch from a checkpoint, and only once per restart.
    """
    done: set[int] = set()

    def skip() -> int:
        loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
        if loop is None or not getattr(loop, "restarting", False) or not trainer.training:
            return 0
        epoch = trainer.fit_loop.epoch_progress.current.processed
        if epoch in done:
            return 0
        done.add(epoch)
        return int(loop.batch_progress.current.ready) * batch_size

    return skip
