"""Training and evaluation from the frozen-feature cache instead of decoding videos.

:class:`CachedFeatureDataModule` wraps any :class:`VideoDataModule` (as :class:`FewShotDataModule` does). For each
cached split it serves the region encoder's output, stored once per (video, view) by
:mod:`alt_lightning.data.feature_cache`; batches carry ``"tokens"`` ``[B, T, 1+R, C]`` instead of ``"video"`` and
:class:`~alt_lightning.lightning.ALTModule` skips the encoder. Splits that are not cached are the base's own.

When it is valid: augmentation-free settings, where a video's views are the same at every epoch: zero-shot and
few-shot evaluation, linear probes, repeated evaluation of checkpoints, and training where one fixed view per video
is acceptable (e.g. few-shot sweeps). The training split is cached through the **evaluation** path: the centre
clip of the evaluation sampling and the centre crop, no flip, no colour jitter, so every epoch sees the same view.
It is **not** valid for training that relies on augmentation (random resized crops, flips, colour jitter, random
temporal offsets: the supervised Kinetics recipe): leave ``"train"`` out of ``splits`` there, to train on decoded,
augmented clips and still evaluate from the cache. It needs a frozen backbone (``encoder.trainable_blocks=0``).

A config (the base is the usual data section)::

    data:
      class_path: alt_lightning.datamodules.CachedFeatureDataModule
      init_args:
        feature_dir: cache/features
        splits: [train, test]
        base: {class_path: alt_lightning.datamodules.FewShotDataModule, init_args: {shots: 2, base: {...}}}

Building: with ``build="auto"`` a missing cache is built when its dataloader is first requested, by the attached
model's region encoder on the trainer's device and precision. Under DDP (world size > 1) caches are not built:
run ``alt cache build --config ...`` once first (one process), then every rank reads them. A cache is keyed by the
backbone fingerprint, the merge schedule, the sampling, the evaluation transform and the records; when any of these
changes another cache is built (``build="auto"``) or the run stops naming what changed (``build="never"``).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from torch.utils.data import DataLoader

from alt_lightning.data.dataset import VideoDataset, worker_init
from alt_lightning.data.feature_cache import (
    CachedFeatureDataset,
    FeatureCache,
    FeatureCacheError,
    build_feature_cache,
    cache_name,
    cache_spec,
    open_cache,
    spec_key,
    stale_message,
)
from alt_lightning.data.records import VideoRecord
from alt_lightning.datamodules.base import SPLITS, VideoDataModule, _cuda_available, plain_base_hparams

log = logging.getLogger(__name__)


class CachedFeatureDataModule(VideoDataModule):
    """Serve ``splits`` of ``base`` from the frozen-feature cache in ``feature_dir``.

    Args:
        base: The dataset whose videos are cached; its records, sampling, evaluation transform and (for building)
            loader settings are used; it serves the splits that are not cached.
        feature_dir: Folder of the caches (one sub-folder per dataset, split and key). Not ``cache_dir``: that is
            ALTModule's text-embedding cache, and Lightning refuses one hparam name with two values.
        splits: Splits served from the cache (``"predict"`` reads the ``"test"`` cache).
        build: ``"auto"`` builds a missing or stale cache (single process only); ``"never"`` stops with what
            differs from the caches present.
        batch_size: Items per batch from the cache; ``None`` is the base's.
        num_workers: DataLoader workers reading the cache. Our choice: 0 (reading a memory-mapped row costs less
            than a worker's start-up per epoch); raise it for caches larger than memory on slow disks.
        build_batch_size: Clips per encoder call when building; ``None`` is the base's batch size.
        build_workers: Decoding workers when building; ``None`` is the base's ``num_workers``.
        store_source: Also store patch-to-token assignments, served as ``"sizes"``/``"source"`` (region heatmaps).
        dtype: Token storage: ``"float16"`` (our choice: half the disk; relative rounding 2^-11) or ``"float32"``.
        shard_size_mb: Upper bound of one shard file (our choice: 1024).
    """

    def __init__(
        self,
        base: VideoDataModule,
        feature_dir: str = "cache/features",
        splits: Sequence[str] | None = None,
        build: str = "auto",
        batch_size: int | None = None,
        num_workers: int = 0,
        build_batch_size: int | None = None,
        build_workers: int | None = None,
        store_source: bool = False,
        dtype: str = "float16",
        shard_size_mb: int = 1024,
    ) -> None:
        super().__init__(**base.cfg)
        splits = tuple(splits) if splits is not None else SPLITS
        unknown = [s for s in splits if s not in SPLITS]
        if unknown:
            raise ValueError(f"splits must be among {SPLITS}, got {unknown}.")
        if build not in ("auto", "never"):
            raise ValueError(f"build must be 'auto' or 'never', got {build!r}.")
        if dtype not in ("float16", "float32"):
            raise ValueError(f"dtype must be 'float16' or 'float32', got {dtype!r}.")
        self.base = base
        self.feature_dir = Path(feature_dir).expanduser()
        self.splits = splits
        self.build = build
        self.cached_batch_size = int(batch_size if batch_size is not None else base.cfg.batch_size)
        self.cached_num_workers = num_workers
        self.build_batch_size = build_batch_size
        self.build_workers = build_workers
        self.store_source = store_source
        self.dtype = dtype
        self.shard_bytes = int(shard_size_mb) << 20
        self.caches: dict[str, FeatureCache] = {}
        self.cached_datasets: dict[str, CachedFeatureDataset] = {}
        plain_base_hparams(self, base, set(inspect.signature(CachedFeatureDataModule.__init__).parameters))

    # ----------------------------------------------------------------- what the base provides
    @property
    def class_names(self) -> list[str]:
        """The base's class names."""
        return self.base.class_names

    @property
    def dataset_name(self) -> str:
        """The base's name."""
        return self.base.dataset_name

    def records(self, split: str) -> list[VideoRecord]:
        """The base's records."""
        return self.base.records(split)

    def missing_records(self, split: str, records: list[VideoRecord]) -> list[VideoRecord]:
        """The base's report."""
        return self.base.missing_records(split, records)

    @property
    def manifest_path(self) -> Path | None:
        """The base's few-shot manifest, if any (for run reports)."""
        return getattr(self.base, "manifest_path", None)

    def _attach_base(self) -> None:
        # The base reads the backbone's preprocessing, the world size and the log folder from its trainer.
        self.base.trainer = getattr(self, "trainer", None)

    # ----------------------------------------------------------------- caches
    def _model(self) -> pl.LightningModule:
        model = getattr(getattr(self, "trainer", None), "lightning_module", None)
        if model is None or not hasattr(getattr(model, "model", None), "encoder"):
            raise FeatureCacheError(
                "CachedFeatureDataModule needs the ALT model whose frozen backbone encodes the videos: use it "
                "through Trainer.fit/test, call prepare_caches(model), or run `alt cache build --config ...`."
            )
        return model

    def source_dataset(self, split: str) -> VideoDataset:
        """The evaluation-style decoding dataset whose items a split's cache stores.

        Validation and test are the base's own datasets. Training uses the training records with the evaluation
        path (deterministic centre clip, centre crop, one view): the only fixed view of a training video.
        """
        self._attach_base()
        if split != "train":
            return self.base.dataset(split)
        base = self.base
        return VideoDataset(
            base.dataset("train").records,
            base.transform("val"),
            base.sampling_config("train"),
            train=False,
            split="train",
            seed=base.cfg.seed,
            bad_file_log=base.bad_file_log(),
            decode_timeout_s=base.cfg.decode_timeout_s,
            decode_threads=base.decode_threads,
        )

    def cache_path(self, split: str, spec: dict[str, Any]) -> Path:
        """Folder of the cache of ``split`` for ``spec``."""
        return self.feature_dir / cache_name(self.dataset_name, split, spec_key(spec))

    def spec(self, split: str) -> dict[str, Any]:
        """The cache spec of ``split`` with the attached model (see :func:`cache_spec`)."""
        model = self._model()
        trainer = getattr(self, "trainer", None)
        precision = str(getattr(trainer, "precision", "32-true")) if trainer is not None else "32-true"
        return cache_spec(model.model.encoder, model.backbone_fingerprint, self.source_dataset(split), precision)

    def cache(self, split: str, *, force: bool = False) -> FeatureCache:
        """Open the cache of ``split``, building it when missing or stale (``build="auto"``) or ``force``.

        Raises:
            FeatureCacheError: No matching cache and ``build="never"``, or building under DDP.
        """
        if split in self.caches and not force:
            return self.caches[split]
        model = self._model()
        encoder = model.model.encoder
        dataset = self.source_dataset(split)
        spec = self.spec(split)
        path = self.cache_path(split, spec)
        cache = None if force else open_cache(path, spec, need_source=self.store_source)
        if cache is None:
            prefix = cache_name(self.dataset_name, split, "")
            if self.build == "never" and not force:
                raise FeatureCacheError(
                    f"No feature cache of {self.dataset_name} {split} matches this configuration "
                    f"({stale_message(self.feature_dir, prefix, split, spec)}). Run `alt cache build --config ...` "
                    "with this configuration, or set build: auto."
                )
            trainer = self.trainer
            if trainer.world_size > 1:
                raise FeatureCacheError(
                    f"The {split} feature cache is missing ({path}) and caches are not built under DDP "
                    f"(world size {trainer.world_size}). Run `alt cache build --config <the same configs>` once "
                    "first; every rank then reads it."
                )
            if path.parent.exists():
                log.info(
                    "building the %s feature cache: %s", split, stale_message(self.feature_dir, prefix, split, spec)
                )
            encoder.to(trainer.strategy.root_device)
            cache = build_feature_cache(
                path,
                dataset,
                encoder,
                spec,
                batch_size=self.build_batch_size or self.base.cfg.batch_size,
                num_workers=self.build_workers if self.build_workers is not None else self.base.cfg.num_workers,
                autocast=trainer.precision_plugin.forward_context,
                store_source=self.store_source,
                dtype=self.dtype,
                shard_bytes=self.shard_bytes,
                extra={"precision": str(trainer.precision), "dataset": self.dataset_name},
            )
        self.caches[split] = cache
        self.cached_datasets.pop(split, None)
        return cache

    def prepare_caches(
        self,
        model: pl.LightningModule,
        splits: Sequence[str] | None = None,
        *,
        trainer: pl.Trainer | None = None,
        force: bool = False,
    ) -> dict[str, FeatureCache]:
        """Open or build the caches of ``splits`` outside a fit (what ``alt cache build`` does).

        Args:
            model: The ALTModule whose encoder encodes the videos.
            splits: Default: this module's ``splits``.
            trainer: Gives the device and precision; default a one-device trainer on the best accelerator.
            force: Rebuild even when a matching cache exists.

        Returns:
            The caches by split.
        """
        self._connect(model, trainer)
        return {s: self.cache(s, force=force) for s in (splits or self.splits)}

    def current_paths(
        self, model: pl.LightningModule, splits: Sequence[str] | None = None, *, trainer: pl.Trainer | None = None
    ) -> dict[str, Path]:
        """Where the caches of ``splits`` that match ``model`` and the data settings are (built or not)."""
        self._connect(model, trainer)
        return {s: self.cache_path(s, self.spec(s)) for s in (splits or self.splits)}

    def _connect(self, model: pl.LightningModule, trainer: pl.Trainer | None) -> None:
        """Attach ``model`` through a (default: one-device) trainer, as a fit would."""
        if trainer is None:
            trainer = pl.Trainer(
                devices=1,
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
            )
        trainer.strategy.connect(model)
        self.trainer = trainer
        self.caches.clear()
        self.cached_datasets.clear()

    # ----------------------------------------------------------------- datasets and loaders
    def split_accounting(self, split: str) -> tuple[int, int, set[int]]:
        """The base's (a cache holds the base dataset's records in order)."""
        self._attach_base()
        return self.base.split_accounting(split)

    def dataset(self, split: str) -> CachedFeatureDataset | VideoDataset:
        """The cached dataset of a cached split (built or opened on first use), else the base's."""
        self._attach_base()
        source = "test" if split == "predict" else split
        if source not in self.splits:
            return self.base.dataset(split)
        if source not in self.cached_datasets:
            cache = self.cache(source)
            self.cached_datasets[source] = CachedFeatureDataset(
                cache, train=source == "train", return_source=self.store_source
            )
            ds = self.cached_datasets[source]
            if source == "train" and len(ds) < cache.num_items:
                log.warning(
                    "%d of %d training videos failed to decode when the cache was built and are left out of training",
                    cache.num_items - len(ds),
                    cache.num_items,
                )
        return self.cached_datasets[source]

    def setup(self, stage: str | None = None) -> None:
        """Attach the base to the trainer; caches are opened (or built) when their loader is first requested.

        Lazily, so that a split whose loop is disabled (``limit_val_batches: 0``) is never encoded.
        """
        self._attach_base()

    def _loader(self, split: str) -> DataLoader:
        ds = self.dataset(split)
        if not isinstance(ds, CachedFeatureDataset):
            return self.base._loader(split)
        trainer = getattr(self, "trainer", None)
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        from alt_lightning.datamodules.samplers import DeferredDataLoader, ShardSampler, resume_skip_from

        # The same sampler as decoding: shuffled by (seed, epoch) in training; every item exactly once in evaluation.
        train = split == "train"
        skip = resume_skip_from(trainer, self.cfg.batch_size) if train and trainer is not None else None
        sampler = ShardSampler(ds, num_replicas=world, rank=rank, shuffle=train, seed=self.cfg.seed, resume_skip=skip)
        workers = self.cached_num_workers
        return DeferredDataLoader(
            ds,
            batch_size=self.cached_batch_size,
            sampler=sampler,
            num_workers=workers,
            pin_memory=self.cfg.pin_memory and _cuda_available(),
            drop_last=False,
            worker_init_fn=worker_init if workers > 0 else None,
            persistent_workers=False,
        )
