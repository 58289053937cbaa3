"""The base DataModule: records from a parser, one generic dataset, one dataloader factory.

A subclass only says where its class names and records come from (``class_names`` and :meth:`records`); sampling,
transforms, multi-view evaluation, DDP sharding, missing-file reports and bad-video handling live here once.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.fabric.utilities.data import AttributeDict
from torch.utils.data import DataLoader

from alt_lightning.data.annotations import AnnotationError, check_missing, missing_reason
from alt_lightning.data.dataset import BadFileLog, SamplingConfig, VideoDataset, worker_init
from alt_lightning.data.records import VideoRecord
from alt_lightning.data.transforms import ClipTransform
from alt_lightning.model.backbone import PreprocessConfig

log = logging.getLogger(__name__)

#: CLIP's own preprocessing, used only when no model is attached (standalone data checks, benchmarks).
CLIP_DEFAULT_PREPROCESS = PreprocessConfig(
    224, (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
)

#: Splits a DataModule can serve.
SPLITS = ("train", "val", "test")


def missing_summary(
    split: str, missing: list[VideoRecord], total: int, max_items: int = 5, reasons: list[str] | None = None
) -> str:
    """One line: how many videos of a split are missing and the first few (with their annotation line).

    ``reasons`` (one per record, :func:`~alt_lightning.data.annotations.missing_reason`) are counted when some
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
        batch_size: Clips per batch and per device.
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
        feature_dir: Folder of frozen-feature caches. When set, the splits in ``feature_splits`` are read from the
            cache (built on first use by the attached model) instead of being decoded and encoded every time; see
            :class:`~alt_lightning.datamodules.cached.CachedFeatureDataModule`. ``None`` (default) always decodes.
        feature_splits: Splits served from the cache. Our default: ``("test",)``, always valid (evaluation is
            augmentation-free). Add ``"val"`` freely; add ``"train"`` only for augmentation-free training (few-shot
            linear probes, fixed views): the cache holds the centre clip and crop, so random crops, flips and temporal
            jitter are lost.
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
        feature_dir: str | None = None,
        feature_splits: tuple[str, ...] = ("test",),
        decoder: str = "pyav",
    ) -> None:
        super().__init__()
        if sampling not in ("segment", "dense"):
            raise ValueError(f"sampling must be 'segment' or 'dense', got {sampling!r}.")
        if test_crops not in (1, 3):
            raise ValueError(f"test_crops must be 1 or 3, got {test_crops}.")
        if missing not in ("report", "error", "keep"):
            raise ValueError(f"missing must be 'report', 'error' or 'keep', got {missing!r}.")
        # The settings this class uses, kept apart from `hparams`: under LightningCLI a nested DataModule (the base
        # of FewShotDataModule) is given the hparams of the outer one, so `hparams` is only for checkpoints.
        names = inspect.signature(VideoDataModule.__init__).parameters
        values = locals()
        self.cfg = AttributeDict({k: values[k] for k in names if k != "self"})
        self.save_hyperparameters()
        self.root = Path(root).expanduser()
        self.datasets: dict[str, VideoDataset] = {}
        self.missing: dict[str, list[VideoRecord]] = {}
        self._bad_log: BadFileLog | None = None
        self._features: VideoDataModule | None = None
        unknown = [s for s in feature_splits if s not in SPLITS]
        if unknown:
            raise ValueError(f"feature_splits must be among {SPLITS}, got {unknown}.")
        if feature_dir and "train" in feature_splits and (flip > 0 or tuple(scale) != (1.0, 1.0) or color_jitter > 0):
            log.warning(
                "feature_splits includes 'train': training reads fixed cached views (centre clip and crop), so flip, "
                "random crops and colour jitter are not applied."
            )

    # ----------------------------------------------------------------- what subclasses provide
    @property
    def class_names(self) -> list[str]:
        """Class names in label-id order; handed to the model by the CLI."""
        raise NotImplementedError

    def records(self, split: str) -> list[VideoRecord]:
        """All records of ``split`` (``"train"``, ``"val"`` or ``"test"``), missing files included."""
        raise NotImplementedError

    def missing_records(self, split: str, records: list[VideoRecord]) -> list[VideoRecord]:
        """The records of ``split`` whose video file is absent (one ``stat`` each; parsers may know better)."""
        return check_missing(records)

    @property
    def dataset_name(self) -> str:
        """Short name of the dataset (manifests, reports)."""
        return type(self).__name__.removesuffix("DataModule").lower()

    # ----------------------------------------------------------------- shared machinery
    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def preprocess(self) -> PreprocessConfig:
        """The backbone's preprocessing: from the attached model when there is one."""
        model = getattr(getattr(self, "trainer", None), "lightning_module", None)
        cfg = getattr(model, "preprocess_config", None) or CLIP_DEFAULT_PREPROCESS
        if self.cfg.image_size is not None and self.cfg.image_size != cfg.image_size:
            if model is None:  # standalone use (benchmarks, checks): the requested size wins
                return PreprocessConfig(self.cfg.image_size, cfg.mean, cfg.std, cfg.interpolation)
            raise ValueError(
                f"data.image_size={self.cfg.image_size} differs from the backbone's {cfg.image_size}; "
                "leave it unset to follow the backbone."
            )
        return cfg

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
            p.image_size,
            tuple(p.mean),
            tuple(p.std),
            train=split == "train",
            scale=tuple(c.scale),
            flip=c.flip,
            color_jitter=c.color_jitter,
            grayscale=c.grayscale,
            num_crops=crops,
            # open_clip may say "random" (training-time choice of filter); evaluate and train with bicubic then.
            interpolation=p.interpolation if p.interpolation in ("bilinear", "bicubic") else "bicubic",
        )

    @property
    def decode_threads(self) -> int:
        """Decoder threads actually used (see the ``decode_threads`` argument)."""
        if self.cfg.decode_threads is not None:
            return int(self.cfg.decode_threads)
        return 1 if self.cfg.num_workers > 0 else 0

    def bad_file_log(self) -> BadFileLog:
        """The CSV every split reports bad videos to."""
        if self._bad_log is None:
            path = self.cfg.bad_file_log
            if path is None:
                log_dir = getattr(getattr(self, "trainer", None), "log_dir", None)
                path = Path(log_dir or ".") / "bad_videos.csv"
            self._bad_log = BadFileLog(path)
        return self._bad_log

    def usable_records(self, split: str, *, unlabelled_ok: bool = False) -> list[VideoRecord]:
        """Records of ``split`` after the ``missing`` policy; missing files are reported, never silently lost.

        Every label is checked first (:meth:`check_labels`; unlabelled records pass only with ``unlabelled_ok``).
        """
        records = self.records(split)
        self.check_labels("predict" if unlabelled_ok else split, records)
        missing = self.missing_records(split, records)
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
        absent = {id(r) for r in missing}
        return [r for r in records if id(r) not in absent]

    def check_labels(self, split: str, records: list[VideoRecord]) -> None:
        """The one label check of every DataModule: each label indexes :attr:`class_names`.

        Parsers return ``-1`` only for files without any ground truth (a Kinetics ``test.csv`` without labels,
        SSv2's ``test.json``); such records can be predicted but not trained or evaluated on, so ``-1`` passes only
        for ``split == "predict"``. Checked before anything is decoded, so a bad label stops the run at once instead
        of hours into an epoch (``Target -1 is out of bounds``) or after a whole evaluation.

        Raises:
            AnnotationError: One line naming the annotation ``file:line`` of the first bad record and the fix.
        """
        k = self.num_classes
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

    def dataset(self, split: str) -> VideoDataset:
        """The (cached) dataset of a split (``"predict"``: the test records, which may be unlabelled)."""
        if split not in self.datasets:
            source = "test" if split == "predict" else split
            self.datasets[split] = VideoDataset(
                self.usable_records(source, unlabelled_ok=split == "predict"),
                self.transform(split),
                self.sampling_config(split),
                train=split == "train",
                split=split,
                seed=self.cfg.seed,
                bad_file_log=self.bad_file_log(),
                decode_timeout_s=self.cfg.decode_timeout_s,
                decode_threads=self.decode_threads,
                decoder=self.cfg.decoder,
            )
        return self.datasets[split]

    def split_accounting(self, split: str) -> tuple[int, int, set[int]]:
        """What the annotations of ``split`` list and how many of their files are absent, for evaluation's counts.

        Returns:
            ``listed`` (records the annotations list, before the ``missing`` policy), ``missing`` (of those, files
            absent on disk) and the dataset indices of missing records kept in the dataset (``missing="keep"``), which
            evaluation counts as missing rather than as failed.
        """
        records = self.dataset(split).records
        missing = self.missing.get(split, [])
        absent = {(r.path, r.video_id) for r in missing}
        kept = {i for i, r in enumerate(records) if (r.path, r.video_id) in absent}
        return len(records) + len(missing) - len(kept), len(missing), kept

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets the stage needs (parsing annotations, checking files)."""
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}
        for split in splits.get(stage or "fit", SPLITS):
            ds = self.dataset(split)
            log.info("%s: %d videos x %d views", split, len(ds.records), ds.num_views)

    def feature_module(self) -> VideoDataModule:
        """The cache wrapper serving ``feature_splits`` (created on first use, attached to this trainer)."""
        from alt_lightning.datamodules.cached import CachedFeatureDataModule

        if self._features is None:
            self._features = CachedFeatureDataModule(
                self, feature_dir=str(self.cfg.feature_dir), splits=tuple(self.cfg.feature_splits)
            )
        self._features.trainer = getattr(self, "trainer", None)
        return self._features

    def _uses_features(self, split: str) -> bool:
        source = "test" if split == "predict" else split
        return bool(self.cfg.feature_dir) and source in self.cfg.feature_splits

    def _loader(self, split: str) -> DataLoader:
        if self._uses_features(split):
            return self.feature_module()._loader(split)
        ds = self.dataset(split)
        trainer = getattr(self, "trainer", None)
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        from alt_lightning.datamodules.samplers import DeferredDataLoader, ShardSampler, resume_skip_from

        train = split == "train"
        skip = resume_skip_from(trainer, self.cfg.batch_size) if train and trainer is not None else None
        sampler = ShardSampler(ds, num_replicas=world, rank=rank, shuffle=train, seed=self.cfg.seed, resume_skip=skip)
        workers = self.cfg.num_workers
        return DeferredDataLoader(
            ds,
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            num_workers=workers,
            pin_memory=self.cfg.pin_memory and _cuda_available(),
            drop_last=False,
            worker_init_fn=worker_init if workers > 0 else None,
            persistent_workers=False,  # workers re-read the dataset's epoch at each epoch
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled, augmented clips."""
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


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def plain_base_hparams(module: VideoDataModule, base: VideoDataModule, keep: set[str]) -> None:
    """Store a wrapped DataModule (``base``) in ``module.hparams`` as plain data, for ``weights_only`` checkpoints.

    Outside the CLI ``save_hyperparameters`` keeps the base object itself and the base settings the wrapper copied;
    this writes the base as ``{"class_path", "init_args"}`` and drops the copied settings (the base entry holds them).
    Under the CLI the hparams are already plain and nothing changes.

    Args:
        module: The wrapper (few-shot draw, feature cache, class subset).
        base: The DataModule it wraps.
        keep: The wrapper's own hparam names.
    """
    if isinstance(module.hparams.get("base"), dict):
        return
    module.hparams["base"] = {
        "class_path": f"{type(base).__module__}.{type(base).__name__}",
        "init_args": {k: v for k, v in base.hparams.items() if not k.startswith("_")},
    }
    for key in set(module.hparams) - keep:
        del module.hparams[key]
