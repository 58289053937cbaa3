"""The base DataModule: records from a parser, record options, one generic dataset, one dataloader factory.

A subclass only says where its class names and records come from (:attr:`~VideoDataModule.dataset_classes` and
:meth:`~VideoDataModule.records`). Everything else lives here once: the record options (``class_subset``,
``few_shot``), the label check, the missing-file policy, sampling, transforms, multi-view evaluation, DDP sharding,
bad-video handling and the frozen-feature cache (``features``). The records of a split go through::

    records(split) -> label check (dataset's classes) -> class subset + relabel -> few-shot draw (train)
                   -> missing policy -> VideoDataset, or the feature cache built from it
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.fabric.utilities.data import AttributeDict
from torch.utils.data import DataLoader

from alt_lightning.data.dataset import BadFileLog, SamplingConfig, VideoDataset, worker_init
from alt_lightning.data.feature_cache import (
    SPLITS,
    CachedFeatureDataset,
    EncodeFn,
    FeatureCache,
    FeatureCacheConfig,
    FeatureCacheError,
    build_feature_cache,
    cache_path,
    cache_spec,
    collate_cached,
    open_or_build,
)
from alt_lightning.data.manifests import Manifest, read_manifest, write_manifest
from alt_lightning.data.parsers import AnnotationError, check_missing, missing_reason
from alt_lightning.data.records import VideoRecord
from alt_lightning.data.transforms import ClipTransform
from alt_lightning.datamodules.class_subset import ClassSubset
from alt_lightning.datamodules.few_shot import FewShot
from alt_lightning.datamodules.samplers import (
    DeferredDataLoader,
    ShardSampler,
    resume_skip_from,
    whole_video_batch_size,
)
from alt_lightning.errors import UserError

log = logging.getLogger(__name__)

#: CLIP's own preprocessing, used only when no model is attached (standalone data checks, benchmarks); an attached
#: model's ``preprocess_config`` (read by duck typing: data modules never import the model) always wins.
CLIP_DEFAULT_PREPROCESS = {
    "image_size": 224,
    "mean": (0.48145466, 0.4578275, 0.40821073),
    "std": (0.26862954, 0.26130258, 0.27577711),
    "interpolation": "bicubic",
}

#: The record and cache options, dataclasses in the API and plain dicts in ``hparams`` (checkpoints).
OPTIONS = {"few_shot": FewShot, "class_subset": ClassSubset, "features": FeatureCacheConfig}


def missing_summary(
    split: str, missing: list[VideoRecord], total: int, max_items: int = 5, reasons: list[str] | None = None
) -> str:
    """One line: how many videos of a split are missing and the first few (with their annotation line).

    ``reasons`` (one per record, :func:`~alt_lightning.data.parsers.common.missing_reason`) are counted when some
    file is there but unreadable, so that ``Permission denied`` does not read as "re-download everything".
    """
    first = ", ".join(f"{os.path.basename(r.path)} ({r.meta.get('source', r.video_id)})" for r in missing[:max_items])
    more = f" and {len(missing) - max_items} more" if len(missing) > max_items else ""
    counts = Counter(reasons or ())
    what = "missing"
    if set(counts) - {"missing file"}:
        what = "missing or unreadable (" + ", ".join(f"{n} {r}" for r, n in counts.most_common()) + ")"
    return f"{split}: {len(missing)} of {total} videos are {what}: {first}{more}"


class VideoDataModule(pl.LightningDataModule):
    """Base of all video DataModules.

    Args:
        root: Dataset root folder; annotation paths are resolved against it.
        batch_size: Clips per batch and per device. Evaluation batches hold whole videos: with ``V`` views per video
            the batch size is rounded down to a multiple of ``V`` (kept when smaller than ``V``), so each video is
            decoded once for all its views.
        num_workers: DataLoader worker processes per device.
        num_frames: Frames per clip ``T`` (ALT-B/16: 8; the zero-/few-shot protocols: 32 in the peers).
        sampling: ``"segment"`` (TSN, default) or ``"dense"``.
        stride: Frame stride of dense sampling.
        test_clips: Temporal clips per video at test (ALT-B/16 protocol: 3).
        test_crops: Spatial crops per clip at test (1 or 3).
        val_clips: Temporal clips per video in validation (our choice: 1, for speed).
        flip: Horizontal-flip probability in training (0 for direction-sensitive labels).
        scale: Area range of the training random resized crop.
        color_jitter: Probability of colour jitter in training.
        grayscale: Probability of grayscale in training.
        seed: Seed of shuffling and augmentation (reproducible for any worker count).
        decode_timeout_s: Per-video decoding time limit.
        bad_file_log: CSV of bad videos; default ``<log_dir>/bad_videos.csv`` of the trainer.
        pin_memory: Pin batches for faster host-to-GPU copies.
        image_size: Input side; ``None`` takes the backbone's (attached model), never a hard-coded value.
        decode_threads: FFmpeg threads per decoder. ``None`` (our choice, paper silent): 1 inside DataLoader
            workers (``num_workers > 0``: the workers already use the cores, more threads only oversubscribe
            them), FFmpeg's own choice (0 = one per core) when decoding in the main process.
        missing: Videos listed in the annotations but absent on disk: ``"report"`` (default: log a summary with
            the count and the first few, write each to the bad-file CSV, train and evaluate without them),
            ``"error"`` (stop with that summary) or ``"keep"`` (keep them; training redraws them, evaluation
            counts them as failed videos).
        class_subset: Keep only some classes, relabelled in the dataset's order (:class:`ClassSubset`: K600's
            zero-shot subsets, base-to-novel halves); ``None`` keeps every class.
        few_shot: Train on ``shots`` videos per class (:class:`FewShot`, drawn by seed into a manifest or read
            back); ``None`` trains on every training video.
        features: Read these splits from the frozen-feature cache instead of decoding and encoding them every time
            (:class:`~alt_lightning.data.feature_cache.FeatureCacheConfig`, built on first use by the attached
            model); ``None`` (default) always decodes.
        decoder: ``"pyav"`` (default, CPU) or ``"torchcodec"`` (optional extra; ``"torchcodec:cuda"`` decodes on the
            GPU in the main process, ``num_workers=0``); see :mod:`alt_lightning.data.torchcodec_reader`.
    """

    def __init__(
        self,
        root: str = ".",
        batch_size: int = 8,
        num_workers: int = 4,
        num_frames: int = 8,
        sampling: str = "segment",
        stride: int = 8,
        test_clips: int = 1,
        test_crops: int = 1,
        val_clips: int = 1,
        flip: float = 0.5,
        scale: tuple[float, float] = (0.4, 1.0),
        color_jitter: float = 0.0,
        grayscale: float = 0.0,
        seed: int = 0,
        decode_timeout_s: float = 30.0,
        bad_file_log: str | None = None,
        pin_memory: bool = True,
        image_size: int | None = None,
        decode_threads: int | None = None,
        missing: str = "report",
        class_subset: ClassSubset | None = None,
        few_shot: FewShot | None = None,
        features: FeatureCacheConfig | None = None,
        decoder: str = "pyav",
    ) -> None:
        super().__init__()
        if sampling not in ("segment", "dense"):
            raise ValueError(f"sampling must be 'segment' or 'dense', got {sampling!r}.")
        if test_crops not in (1, 3):
            raise ValueError(f"test_crops must be 1 or 3, got {test_crops}.")
        if missing not in ("report", "error", "keep"):
            raise ValueError(f"missing must be 'report', 'error' or 'keep', got {missing!r}.")
        # Plain dicts (a checkpoint's hparams, Python callers) become the option dataclasses, which check themselves.
        self.class_subset: ClassSubset | None = _option(ClassSubset, class_subset)
        self.few_shot: FewShot | None = _option(FewShot, few_shot)
        self.features: FeatureCacheConfig | None = _option(FeatureCacheConfig, features)
        names = inspect.signature(VideoDataModule.__init__).parameters
        values = locals()
        self.cfg = AttributeDict({k: values[k] for k in names if k != "self" and k not in OPTIONS})
        self.save_hyperparameters()
        for key in OPTIONS:  # every field, as plain data: checkpoints load with weights_only=True
            if key in self.hparams:
                option = getattr(self, key)
                self.hparams[key] = None if option is None else asdict(option)
        # Absolute, in the checkpoint too: `alt test --ckpt_path` from another working folder finds the data.
        self.root = Path(os.path.abspath(Path(root).expanduser()))
        if not self.root.is_dir():
            what = "is not a folder" if self.root.exists() else "does not exist"
            raise UserError(
                f"data root {root} {what} (resolved: {self.root})",
                "set data.init_args.root (or --data.init_args.root PATH) to the dataset folder.",
            )
        if "root" in self.hparams:
            self.hparams["root"] = str(self.root)
        self.datasets: dict[str, VideoDataset] = {}
        self.missing: dict[str, list[VideoRecord]] = {}
        self.caches: dict[str, FeatureCache] = {}
        self.cached_datasets: dict[str, CachedFeatureDataset] = {}
        self.few_shot_manifest: Path | None = None  # the few-shot list read or written by the latest draw
        self.class_subset_manifest: str | None = None  # the class manifest given, or written for a drawn subset
        self._subset: tuple[list[str], list[str]] | None = None  # kept class names, the names they came from
        self._bad_log: BadFileLog | None = None
        f = self.features
        if f is not None and "train" in f.splits and (flip > 0 or tuple(scale) != (1.0, 1.0) or color_jitter > 0):
            log.warning(
                "features.splits includes 'train': training reads fixed cached views (centre clip and crop), so flip, "
                "random crops and colour jitter are not applied."
            )

    # ----------------------------------------------------------------- what subclasses provide
    #: The dataset's own class names in label-id order (what the labels of :meth:`records` index): set by subclasses.
    dataset_classes: list[str]

    def records(self, split: str) -> list[VideoRecord]:
        """All records of ``split`` (``"train"``, ``"val"`` or ``"test"``), missing files included."""
        raise NotImplementedError

    def missing_records(self, split: str, records: list[VideoRecord]) -> list[VideoRecord]:
        """The records of ``split`` whose video file is absent (one ``stat`` each; parsers may know better).

        An override may return more than ``records`` (e.g. every absent file its parser saw); only those among
        ``records`` count.
        """
        return check_missing(records)

    @property
    def dataset_name(self) -> str:
        """Short name of the dataset (manifests, reports)."""
        return type(self).__name__.removesuffix("DataModule").lower()

    # ----------------------------------------------------------------- classes and record options
    @property
    def class_names(self) -> list[str]:
        """Class names in label-id order (the class subset's when there is one); handed to the model by the CLI."""
        if self.class_subset is None:
            return self.dataset_classes
        return self._subset_classes()[0]

    @property
    def num_frames(self) -> int:
        """Frames per clip ``T`` (the CLI links it to the model's ``num_frames``)."""
        return int(self.cfg.num_frames)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def _subset_classes(self) -> tuple[list[str], list[str]]:
        """The class subset's kept names and the names they were chosen from (resolved once)."""
        if self._subset is None:
            assert self.class_subset is not None
            kept, source, self.class_subset_manifest = self.class_subset.select(list(self.dataset_classes))
            self._subset = (kept, source)
        return self._subset

    def subset_manifest(self) -> Manifest:
        """The class subset as a manifest (what a drawn subset is saved as; its sha256 goes into protocol results)."""
        assert self.class_subset is not None
        kept, source = self._subset_classes()
        return self.class_subset.manifest(kept, list(self.dataset_classes), self.dataset_name, len(source))

    def _in_subset(self, split: str, records: list[VideoRecord]) -> list[VideoRecord]:
        """The records of the subset's classes, relabelled ``0..n-1``; others counted and logged, unlabelled kept."""
        kept_names, source = self._subset_classes()
        sub = self.class_subset
        assert sub is not None
        if sub.draw is not None and self.class_subset_manifest is None:
            name = sub.manifest_out or self._log_dir() / sub.file_name(self.dataset_name, len(source))
            self.class_subset_manifest = str(write_manifest(name, self.subset_manifest()))
            log.info("class subset (%d classes) written to %s", len(kept_names), self.class_subset_manifest)
        parent = {n: i for i, n in enumerate(self.dataset_classes)}
        relabel = {parent[n]: i for i, n in enumerate(kept_names)}
        out = [
            r if r.label == -1 else replace(r, label=relabel[r.label], meta={**r.meta, "parent_label": r.label})
            for r in records
            if r.label == -1 or r.label in relabel
        ]
        unlabelled = sum(r.label == -1 for r in records)
        extra = f" ({unlabelled} unlabelled kept: their class is unknown)" if unlabelled else ""
        log.info(
            "%s: kept %d of %d videos in the %d classes of the subset%s",
            split,
            len(out),
            len(records),
            len(kept_names),
            extra,
        )
        return out

    def _few_shot_draw(self, records: list[VideoRecord]) -> list[VideoRecord]:
        """The drawn (or listed) training videos; the manifest read or written is :attr:`few_shot_manifest`."""
        fs = self.few_shot
        assert fs is not None
        split = getattr(self, "split", None)  # the official split of datasets that have one (UCF-101, HMDB-51)
        if fs.manifest is not None:
            path = Path(fs.manifest) if os.path.isfile(fs.manifest) else self.resolve(fs.manifest)
            self.few_shot_manifest = path
            return fs.listed(read_manifest(path), records, self.root, self.class_names, self.dataset_name)
        drawn, manifest = fs.draw(records, self.root, self.dataset_name, split, self.num_classes)
        out = fs.manifest_out or self._log_dir() / fs.file_name(self.dataset_name, split)
        self.few_shot_manifest = write_manifest(out, manifest)
        sha = manifest.sha256[:12]
        log.info("few-shot list (%d videos, sha256 %s) written to %s", len(drawn), sha, self.few_shot_manifest)
        return drawn

    def split_records(self, split: str, *, unlabelled_ok: bool = False) -> list[VideoRecord]:
        """The records a split serves, before the missing policy: labels checked, class subset, few-shot draw.

        Labels are checked against the dataset's own classes first (:meth:`check_labels`), so that a bad label is
        named instead of being taken for a record of another class.
        """
        records = self.records(split)
        self.check_labels("predict" if unlabelled_ok else split, records, self.dataset_classes)
        if self.class_subset is not None:
            records = self._in_subset(split, records)
        if split == "train" and self.few_shot is not None:
            records = self._few_shot_draw(records)
        return records

    # ----------------------------------------------------------------- shared machinery
    def preprocess(self) -> dict[str, Any]:
        """The backbone's ``image_size``, ``mean``, ``std`` and ``interpolation``: the attached model's when any."""
        model = getattr(getattr(self, "trainer", None), "lightning_module", None)
        given = getattr(model, "preprocess_config", None)
        p = dict(CLIP_DEFAULT_PREPROCESS) if given is None else {k: getattr(given, k) for k in CLIP_DEFAULT_PREPROCESS}
        size = self.cfg.image_size
        if size is not None and size != p["image_size"]:
            if model is None:  # standalone use (benchmarks, checks): the requested size wins
                return {**p, "image_size": size}
            raise ValueError(
                f"data.image_size={size} differs from the backbone's {p['image_size']}; leave it unset to follow the "
                "backbone."
            )
        return p

    def sampling_config(self, split: str) -> SamplingConfig:
        """Sampling of a split: one view in training, ``val_clips`` in validation, ``test_clips x test_crops``."""
        c = self.cfg
        clips, crops = {"train": (1, 1), "val": (c.val_clips, 1)}.get(split, (c.test_clips, c.test_crops))
        return SamplingConfig(c.num_frames, c.sampling, c.stride, clips, crops)

    def transform(self, split: str) -> ClipTransform:
        """The clip transform of a split (size, mean, std and interpolation from the backbone)."""
        c, p = self.cfg, self.preprocess()
        crops = c.test_crops if split in ("test", "predict") else 1
        return ClipTransform(
            p["image_size"],
            tuple(p["mean"]),
            tuple(p["std"]),
            train=split == "train",
            scale=tuple(c.scale),
            flip=c.flip,
            color_jitter=c.color_jitter,
            grayscale=c.grayscale,
            num_crops=crops,
            # open_clip may say "random" (training-time choice of filter); evaluate and train with bicubic then.
            interpolation=p["interpolation"] if p["interpolation"] in ("bilinear", "bicubic") else "bicubic",
        )

    @property
    def decode_threads(self) -> int:
        """Decoder threads actually used (see the ``decode_threads`` argument)."""
        if self.cfg.decode_threads is not None:
            return int(self.cfg.decode_threads)
        return 1 if self.cfg.num_workers > 0 else 0

    def _log_dir(self) -> Path:
        """The trainer's log folder (the working folder without a trainer)."""
        return Path(getattr(getattr(self, "trainer", None), "log_dir", None) or ".")

    def bad_file_log(self) -> BadFileLog:
        """The CSV every split reports bad videos to."""
        if self._bad_log is None:
            path = self.cfg.bad_file_log
            self._bad_log = BadFileLog(path if path is not None else self._log_dir() / "bad_videos.csv")
        return self._bad_log

    def usable_records(self, split: str, *, unlabelled_ok: bool = False) -> list[VideoRecord]:
        """Records of ``split`` (:meth:`split_records`) after the ``missing`` policy; missing files are reported."""
        records = self.split_records(split, unlabelled_ok=unlabelled_ok)
        absent = {r.path for r in self.missing_records(split, records)}
        missing = [r for r in records if r.path in absent]
        self.missing[split] = missing
        if not missing:
            return records
        reasons = [missing_reason(r.path) for r in missing]  # one more stat per absent file: which OS error
        summary = missing_summary(split, missing, len(records), reasons=reasons)
        if self.cfg.missing == "error":
            raise AnnotationError(
                f"{summary}. Check root and the layout, run `alt check-data`, or set data.missing='report' "
                "to go on without them."
            )
        action = "kept (missing)" if self.cfg.missing == "keep" else "dropped (missing)"
        bad_log = self.bad_file_log()
        trainer = getattr(self, "trainer", None)
        if trainer is None or trainer.global_rank == 0:  # every rank parses the same lists: report once
            for r, reason in zip(missing, reasons, strict=True):
                bad_log.add(split, r, reason, action)
            log.warning("%s; %s, listed in %s", summary, action.split()[0], bad_log.path)
        if self.cfg.missing == "keep":
            return records
        return [r for r in records if r.path not in absent]

    def check_labels(self, split: str, records: list[VideoRecord], classes: Sequence[str] | None = None) -> None:
        """The one label check of every DataModule: each label indexes ``classes`` (default :attr:`class_names`).

        Parsers return ``-1`` only for files without any ground truth (a Kinetics ``test.csv`` without labels,
        SSv2's ``test.json``); such records can be predicted but not trained or evaluated on, so ``-1`` passes only
        for ``split == "predict"``. Checked before anything is decoded, so a bad label stops the run at once instead
        of hours into an epoch (``Target -1 is out of bounds``) or after a whole evaluation.

        Raises:
            AnnotationError: One line naming the annotation ``file:line`` of the first bad record and the fix.
        """
        k = len(self.class_names if classes is None else classes)
        bad = [r for r in records if not -1 <= r.label < k]
        unlabelled = [r for r in records if r.label == -1] if split != "predict" else []
        if not bad and not unlabelled:
            return
        first = (bad or unlabelled)[0]
        where = first.meta.get("source") or first.path
        others = len(bad or unlabelled) - 1
        more = f" (and {others} more in the {split} split)" if others else ""
        if bad:
            raise AnnotationError(
                f"{where}: label {first.label} is outside the {k} classes (0..{k - 1}) of {self.dataset_name}{more}. "
                "Pass the class list these annotations were written for (e.g. the matching version or classes)."
            )
        raise AnnotationError(
            f"{where}: video {first.video_id} has no label{more}, and the {split} split needs ground truth. "
            "Train and evaluate on labelled annotations (Kinetics: test_split 'val' reads validate.csv; SSv2: the "
            "validation JSON); files without labels serve the predict stage only."
        )

    # ----------------------------------------------------------------- datasets
    def video_dataset(self, split: str) -> VideoDataset:
        """The decoding dataset of a split (``"predict"``: the test records, which may be unlabelled)."""
        if split not in self.datasets:
            source = "test" if split == "predict" else split
            records = self.usable_records(source, unlabelled_ok=split == "predict")
            self.datasets[split] = self._decoding_dataset(records, split, transform=split, train=split == "train")
        return self.datasets[split]

    def _decoding_dataset(self, records: list[VideoRecord], split: str, *, transform: str, train: bool) -> VideoDataset:
        """A :class:`VideoDataset` of ``records`` with this module's sampling of ``split`` and decoder settings."""
        return VideoDataset(
            records,
            self.transform(transform),
            self.sampling_config(split),
            train=train,
            split=split,
            seed=self.cfg.seed,
            bad_file_log=self.bad_file_log(),
            decode_timeout_s=self.cfg.decode_timeout_s,
            decode_threads=self.decode_threads,
            decoder=self.cfg.decoder,
        )

    def dataset(self, split: str) -> VideoDataset | CachedFeatureDataset:
        """The dataset a split's loader reads: from the feature cache for ``features.splits``, else decoding."""
        if self.features is not None and self.features.serves(split):
            return self.cached_dataset(split)
        return self.video_dataset(split)

    def split_accounting(self, split: str) -> tuple[int, int, set[int]]:
        """What the annotations of ``split`` list and how many of their files are absent, for evaluation's counts.

        A cached split holds the decoding dataset's records in the same order, so the counts are the same.

        Returns:
            ``listed`` (records the annotations list, before the ``missing`` policy), ``missing`` (of those, files
            absent on disk) and the dataset indices of missing records kept in the dataset (``missing="keep"``), which
            evaluation counts as missing rather than as failed.
        """
        records = self.video_dataset(split).records
        missing = self.missing.get(split, [])
        absent = {(r.path, r.video_id) for r in missing}
        kept = {i for i, r in enumerate(records) if (r.path, r.video_id) in absent}
        return len(records) + len(missing) - len(kept), len(missing), kept

    def setup(self, stage: str | None = None) -> None:
        """Build the decoding datasets the stage needs (parsing annotations, checking files).

        Caches are opened (or built) when their loader is first requested, so that a split whose loop is disabled
        (``limit_val_batches: 0``) is never encoded.
        """
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}
        for split in splits.get(stage or "fit", SPLITS):
            ds = self.video_dataset(split)
            log.info("%s: %d videos x %d views", split, len(ds.records), ds.num_views)

    # ----------------------------------------------------------------- the feature cache
    def _feature_model(self) -> Any:
        """The attached ALT module: its ``model.encode_frames`` encodes, its ``model.encoder`` keys the cache."""
        model = getattr(getattr(self, "trainer", None), "lightning_module", None)
        alt = getattr(model, "model", None)
        if not callable(getattr(alt, "encode_frames", None)) or not hasattr(alt, "encoder"):
            raise FeatureCacheError(
                "The feature cache (data.features) needs the ALT model whose frozen backbone encodes the videos: use "
                "it through Trainer.fit/test, call prepare_caches(model), or run `alt cache build --config ...`."
            )
        return model

    def cache_source(self, split: str) -> VideoDataset:
        """The evaluation-style decoding dataset whose items a split's cache stores.

        Validation and test are their own datasets. Training uses the training records with the evaluation path
        (deterministic centre clip, centre crop, one view): the only fixed view of a training video.
        """
        if split != "train":
            return self.video_dataset(split)
        return self._decoding_dataset(self.video_dataset("train").records, "train", transform="val", train=False)

    def cache_spec(self, split: str) -> dict[str, Any]:
        """What the cached tokens of ``split`` depend on, with the attached model (see :func:`cache_spec`)."""
        model = self._feature_model()
        precision = str(getattr(self.trainer, "precision", "32-true"))
        return cache_spec(model.model.encoder, model.backbone_fingerprint, self.cache_source(split), precision)

    def feature_cache(self, split: str, *, force: bool = False) -> FeatureCache:
        """Open the cache of ``split``, building it when missing or stale (``features.build="auto"``) or ``force``.

        Raises:
            FeatureCacheError: No matching cache and ``build="never"``, or a missing cache under DDP.
        """
        if split in self.caches and not force:
            return self.caches[split]
        f = self.features
        if f is None:
            raise FeatureCacheError("data.features is not set: no split is read from the feature cache.")
        model = self._feature_model()
        dataset, spec, trainer = self.cache_source(split), self.cache_spec(split), self.trainer
        if trainer is None:
            raise FeatureCacheError("The feature cache is built by a Trainer: attach the DataModule to one first.")

        def build(path: Path) -> FeatureCache:
            device = trainer.strategy.root_device
            model.model.encoder.to(device)
            with _frozen_encoding(model, f.store_source) as encode:
                return build_feature_cache(
                    path,
                    dataset,
                    encode,
                    spec,
                    device=device,
                    # Whole videos per encoder batch: each opened and decoded once for all its views.
                    batch_size=whole_video_batch_size(f.build_batch_size or self.cfg.batch_size, dataset.num_views),
                    num_workers=f.build_workers if f.build_workers is not None else self.cfg.num_workers,
                    autocast=trainer.precision_plugin.forward_context,
                    store_source=f.store_source,
                    dtype=f.dtype,
                    shard_bytes=int(f.shard_size_mb) << 20,
                    extra={"precision": str(trainer.precision), "dataset": self.dataset_name},
                )

        world = int(getattr(trainer, "world_size", 1))
        self.caches[split] = open_or_build(f, self.dataset_name, split, spec, build, world_size=world, force=force)
        self.cached_datasets.pop(split, None)
        return self.caches[split]

    def cached_dataset(self, split: str) -> CachedFeatureDataset:
        """The dataset of a cached split (``"predict"`` reads the test cache), opened or built on first use."""
        source = "test" if split == "predict" else split
        if source not in self.cached_datasets:
            cache = self.feature_cache(source)
            store_source = self.features is not None and self.features.store_source
            ds = CachedFeatureDataset(cache, train=source == "train", return_source=store_source)
            if source == "train" and len(ds) < cache.num_items:
                log.warning(
                    "%d of %d training videos failed to decode when the cache was built and are left out of training",
                    cache.num_items - len(ds),
                    cache.num_items,
                )
            self.cached_datasets[source] = ds
        return self.cached_datasets[source]

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
            model: The ALTModule whose frozen backbone encodes the videos.
            splits: Default: ``features.splits``.
            trainer: Gives the device and precision; default a one-device trainer on the best accelerator.
            force: Rebuild even when a matching cache exists.

        Returns:
            The caches by split.
        """
        self._connect(model, trainer)
        return {s: self.feature_cache(s, force=force) for s in (splits or self._cached_splits())}

    def current_paths(
        self, model: pl.LightningModule, splits: Sequence[str] | None = None, *, trainer: pl.Trainer | None = None
    ) -> dict[str, Path]:
        """Where the caches of ``splits`` that match ``model`` and the data settings are (built or not)."""
        self._connect(model, trainer)
        assert self.features is not None
        return {
            s: cache_path(self.features, self.dataset_name, s, self.cache_spec(s))
            for s in (splits or self._cached_splits())
        }

    def _cached_splits(self) -> tuple[str, ...]:
        if self.features is None:
            raise FeatureCacheError("data.features is not set: give it (e.g. features: {dir: cache/features}).")
        return self.features.splits

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

    # ----------------------------------------------------------------- loaders
    def _loader(self, split: str) -> DataLoader:
        ds = self.dataset(split)
        cached = isinstance(ds, CachedFeatureDataset)
        f = self.features
        batch_size = int((f.batch_size if cached and f is not None else None) or self.cfg.batch_size)
        if not cached and split != "train":
            # Whole videos per batch: each is opened and decoded once for all its views (VideoDataset.__getitems__).
            batch_size = whole_video_batch_size(batch_size, ds.num_views)
        workers = f.num_workers if cached and f is not None else self.cfg.num_workers
        trainer = getattr(self, "trainer", None)
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        # The same sampler for decoded and cached items: shuffled by (seed, epoch) in training, skipping what a
        # resumed epoch already consumed (counted in this loader's batches); every item exactly once in evaluation.
        train = split == "train"
        skip = resume_skip_from(trainer, batch_size) if train and trainer is not None else None
        sampler = ShardSampler(ds, num_replicas=world, rank=rank, shuffle=train, seed=self.cfg.seed, resume_skip=skip)
        return DeferredDataLoader(
            ds,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=workers,
            pin_memory=self.cfg.pin_memory and _cuda_available(),
            drop_last=False,
            worker_init_fn=worker_init if workers > 0 else None,
            persistent_workers=False,  # workers re-read the dataset's epoch at each epoch
            # Cached batches are read and converted at once (CachedFeatureDataset.__getitems__), not item by item.
            collate_fn=collate_cached if cached else None,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled, augmented clips (or fixed cached views)."""
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        """Every validation video, ``val_clips`` views each."""
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        """Every test video, ``test_clips x test_crops`` views each, each exactly once across ranks."""
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        """The test split, as in testing."""
        return self._loader("predict")

    def state_dict(self) -> dict[str, Any]:
        """Nothing to save: data order is a function of ``(seed, epoch)``."""
        return {}

    # ----------------------------------------------------------------- helpers for subclasses
    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """``path`` itself when absolute, else relative to ``root``."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.root / p


def _option(cls: type, value: Any) -> Any:
    """``value`` as the option dataclass ``cls`` (from a dict or jsonargparse's namespace), or ``None``."""
    if value is None or isinstance(value, cls):
        return value
    return cls(**(vars(value) if hasattr(value, "__dict__") and not isinstance(value, dict) else value))


@contextlib.contextmanager
def _frozen_encoding(model: Any, store_source: bool) -> Iterator[EncodeFn]:
    """The attached model's ``encode_frames``, its encoder in eval mode and keeping source maps when they are stored.

    Both are restored afterwards (the encoder may be mid-fit).
    """
    encoder = model.model.encoder
    was_training, keep = encoder.training, encoder.keep_source
    encoder.eval()
    encoder.keep_source = keep or store_source
    try:
        yield model.model.encode_frames
    finally:
        encoder.train(was_training)
        encoder.keep_source = keep


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
