"""Samplers and the DataLoader that make training reproducible (resumes included) and evaluation exact under DDP.

How a training item's randomness stays a function of ``(seed, epoch, index)``, with or without worker processes and
across resumes:

* The epoch comes from Lightning's ``set_epoch`` on the sampler (the fit loop's epoch counter).
* :class:`DeferredDataLoader` creates its real iterator at the first batch request, not at ``iter()``. Lightning's
  fit loop calls ``iter()`` on the training loader before it restores the epoch of a resumed run and calls
  ``set_epoch``; a plain multi-worker iterator would then draw the first indices from the sampler and start its
  workers right away, so the first epoch after a resume had epoch 0's order and no mid-epoch skip.
* :class:`ShardSampler` yields each training index as an :class:`EpochIndex`, an ``int`` that carries its epoch, so
  the dataset's per-item RNG never depends on the epoch of a dataset copy pickled into a worker earlier.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class EpochIndex(int):
    """A dataset index that carries the training epoch it was drawn for.

    It is a plain ``int`` to any dataset that ignores it; :class:`~alt_lightning.data.dataset.VideoDataset` seeds the
    item's augmentation from ``(seed, epoch, index)`` with this epoch instead of its own ``epoch`` attribute, which
    in a DataLoader worker is whatever it was when the dataset was pickled there.

    Args:
        index: The dataset index.
        epoch: The epoch of the permutation it comes from.
    """

    epoch: int

    def __new__(cls, index: int, epoch: int) -> EpochIndex:  # noqa: D102
        self = super().__new__(cls, index)
        self.epoch = int(epoch)
        return self

    def __reduce__(self) -> tuple[Any, tuple[int, int]]:
        return (EpochIndex, (int(self), self.epoch))


class DeferredDataLoader(DataLoader):
    """A ``DataLoader`` whose iterator (sampler order, worker processes) starts at the first batch, not at ``iter()``.

    Lightning 2.6's fit loop calls ``iter()`` on the training loader in ``setup_data``, before a resumed run's loop
    state is final and before ``set_epoch``; its training-epoch loop then uses that iterator for the first epoch of
    a resumed run. With ``num_workers > 0`` PyTorch's iterator prefetches indices from the sampler and pickles the
    dataset to the workers when it is created, i.e. with the wrong epoch and before the mid-epoch skip is known.
    Deferring the creation to the first ``next()`` (inside the epoch loop, after every reset and ``set_epoch``) makes
    the order the same with any worker count. Anything else is plain ``DataLoader``.
    """

    def __iter__(self) -> _DeferredIterator:  # type: ignore[override]
        return _DeferredIterator(self)


class _DeferredIterator:
    """The iterator of a :class:`DeferredDataLoader`: creates the real one on the first ``next()``."""

    def __init__(self, loader: DeferredDataLoader) -> None:
        self._loader = loader
        self._iterator: Iterator[Any] | None = None

    def __iter__(self) -> _DeferredIterator:
        return self

    def __next__(self) -> Any:
        if self._iterator is None:
            self._iterator = DataLoader.__iter__(self._loader)
        return next(self._iterator)

    def __len__(self) -> int:
        return len(self._loader)

    def __getstate__(self) -> dict[str, Any]:
        # A started DataLoader iterator cannot be pickled; a copy starts afresh.
        return {"_loader": self._loader, "_iterator": None}


class ShardSampler(DistributedSampler):
    """Rank-aware sampler used for every split, with or without DDP.

    Training (``shuffle=True``): a permutation seeded by ``(seed, epoch)``, padded to equal length per rank as DDP
    training needs. Evaluation (``shuffle=False``): rank ``r`` of ``W`` takes videos ``r, r+W, ...``, each with all
    its views in order (items ``v * V .. v * V + V - 1`` for a dataset whose ``num_views`` is ``V``; 1 item per
    video for others), with **no padding and no drop**, so every (video, view) item is scored exactly once across
    ranks and a video's views stay together for one-pass decoding; ranks may then run one batch more or less, which
    evaluation tolerates because metrics are gathered once at epoch end.

    Being a ``DistributedSampler`` subclass, Lightning keeps it instead of injecting its own (which pads).
    ``set_epoch`` also forwards the epoch to the dataset, whose augmentation RNG depends on it, and training indices
    are yielded as :class:`EpochIndex` (carrying the epoch into worker processes). The order is computed when
    ``__iter__`` runs; use it with :class:`DeferredDataLoader` so that this happens after Lightning's ``set_epoch``.

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
            self.num_samples = len(self._evaluation_items(n))
        self.total_size = self.num_samples * num_replicas if shuffle else n

    def _evaluation_items(self, n: int) -> list[int]:
        """This rank's evaluation items: whole videos ``rank, rank + W, ...``, each video's views in order."""
        views = max(1, int(getattr(self.dataset, "num_views", 1)))
        videos = range(self.rank, math.ceil(n / views), self.num_replicas)
        return [i for v in videos for i in range(v * views, min(n, (v + 1) * views))]

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)  # type: ignore[arg-type]
        if not self.shuffle:
            return iter(self._evaluation_items(n))
        epoch = int(self.epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(n).tolist()
        # Pad by wrapping (training only); repeat whole permutations when there are fewer items than ranks.
        order = (order * math.ceil(self.total_size / n))[: self.total_size]
        mine = order[self.rank : self.total_size : self.num_replicas]
        skip = self.resume_skip() if self.resume_skip is not None else 0
        return iter([EpochIndex(i, epoch) for i in mine[skip:]])

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch for the permutation and for the dataset's augmentation randomness."""
        super().set_epoch(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


def resume_skip_from(trainer: Any, batch_size: int) -> Callable[[], int]:
    """A ``resume_skip`` for :class:`ShardSampler`: the items this rank consumed before a mid-epoch checkpoint.

    Non-zero only while Lightning's fit loop is restarting an epoch from a checkpoint, and only once per restart. It
    reads the loop's progress when the sampler's ``__iter__`` runs, which :class:`DeferredDataLoader` places at the
    first batch of the epoch, after Lightning has restored and reset its loops.
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


def whole_video_batch_size(batch_size: int, num_views: int) -> int:
    """Evaluation batch size that holds whole videos: ``batch_size`` rounded down to a multiple of ``num_views``.

    Every video of a batch is then decoded once for all its views (one open, one pass). With ``batch_size`` below
    ``num_views`` it is kept: a video's views then span batches, each batch decoding its share in one pass (rounding
    up would exceed the memory the batch size was chosen for).
    """
    if num_views <= 1 or batch_size < num_views:
        return batch_size
    return batch_size - batch_size % num_views
