"""Samplers that make training reproducible and evaluation exact under DDP."""

from __future__ import annotations

import math
from collections.abc import Iterator

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
    """

    def __init__(
        self, dataset: Dataset, *, num_replicas: int = 1, rank: int = 0, shuffle: bool = False, seed: int = 0
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
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
        return iter(order[self.rank : self.total_size : self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch for the permutation and for the dataset's augmentation randomness."""
        super().set_epoch(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
