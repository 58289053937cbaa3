"""The base DataModule: records from a parser, one generic dataset, one dataloader factory.

A subclass only says where its class names and records come from (``class_names`` and :meth:`records`); sampling,
transforms, multi-view evaluation, DDP sharding and bad-video handling live here once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from torch.utils.data import DataLoader

from alt_lightning.data.dataset import BadFileLog, SamplingConfig, VideoDataset, worker_init
from alt_lightning.data.records import VideoRecord
from alt_lightning.data.transforms import ClipTransform
from alt_lightning.model.backbone import PreprocessConfig

log = logging.getLogger(__name__)

#: CLIP's own preprocessing, used only when no model is attached (standalone data checks, benchmarks).
CLIP_DEFAULT_PREPROCESS = PreprocessConfig(
    224, (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
)


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
    ) -> None:
        super().__init__()
        if sampling not in ("segment", "dense"):
            raise ValueError(f"sampling must be 'segment' or 'dense', got {sampling!r}.")
        if test_crops not in (1, 3):
            raise ValueError(f"test_crops must be 1 or 3, got {test_crops}.")
        self.save_hyperparameters()
        self.root = Path(root).expanduser()
        self.datasets: dict[str, VideoDataset] = {}
        self._bad_log: BadFileLog | None = None

    # ----------------------------------------------------------------- what subclasses provide
    @property
    def class_names(self) -> list[str]:
        """Class names in label-id order; handed to the model by the CLI."""
        raise NotImplementedError

    def records(self, split: str) -> list[VideoRecord]:
        """Records of ``split`` (``"train"``, ``"val"`` or ``"test"``)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- shared machinery
    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def preprocess(self) -> PreprocessConfig:
        """The backbone's preprocessing: from the attached model when there is one."""
        model = getattr(getattr(self, "trainer", None), "lightning_module", None)
        cfg = getattr(model, "preprocess_config", None) or CLIP_DEFAULT_PREPROCESS
        if self.hparams.image_size is not None and self.hparams.image_size != cfg.image_size:
            raise ValueError(
                f"data.image_size={self.hparams.image_size} differs from the backbone's {cfg.image_size}; "
                "leave it unset to follow the backbone."
            )
        return cfg

    def sampling_config(self, split: str) -> SamplingConfig:
        """Sampling of a split: one view in training, ``val_clips`` in validation, ``test_clips x test_crops``."""
        h = self.hparams
        clips, crops = {"train": (1, 1), "val": (h.val_clips, 1)}.get(split, (h.test_clips, h.test_crops))
        return SamplingConfig(h.num_frames, h.sampling, h.stride, clips, crops)

    def transform(self, split: str) -> ClipTransform:
        """The clip transform of a split."""
        h, p = self.hparams, self.preprocess()
        crops = h.test_crops if split in ("test", "predict") else 1
        return ClipTransform(
            p.image_size, p.mean, p.std, train=split == "train", scale=tuple(h.scale), flip=h.flip,
            color_jitter=h.color_jitter, grayscale=h.grayscale, num_crops=crops,
        )

    def bad_file_log(self) -> BadFileLog:
        """The CSV every split reports bad videos to."""
        if self._bad_log is None:
            path = self.hparams.bad_file_log
            if path is None:
                log_dir = getattr(getattr(self, "trainer", None), "log_dir", None)
                path = Path(log_dir or ".") / "bad_videos.csv"
            self._bad_log = BadFileLog(path)
        return self._bad_log

    def dataset(self, split: str) -> VideoDataset:
        """The (cached) dataset of a split."""
        if split not in self.datasets:
            source = "test" if split == "predict" else split
            self.datasets[split] = VideoDataset(
                self.records(source),
                self.transform(split),
                self.sampling_config(split),
                train=split == "train",
                split=split,
                seed=self.hparams.seed,
                bad_file_log=self.bad_file_log(),
                decode_timeout_s=self.hparams.decode_timeout_s,
            )
        return self.datasets[split]

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets the stage needs (parsing annotations, checking files)."""
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}
        for split in splits.get(stage or "fit", ("train", "val", "test")):
            ds = self.dataset(split)
            log.info("%s: %d videos x %d views", split, len(ds.records), ds.num_views)

    def _loader(self, split: str) -> DataLoader:
        ds = self.dataset(split)
        trainer = getattr(self, "trainer", None)
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        from alt_lightning.datamodules.samplers import ShardSampler

        sampler = ShardSampler(ds, num_replicas=world, rank=rank, shuffle=split == "train", seed=self.hparams.seed)
        workers = self.hparams.num_workers
        return DataLoader(
            ds,
            batch_size=self.hparams.batch_size,
            sampler=sampler,
            num_workers=workers,
            pin_memory=self.hparams.pin_memory and _cuda_available(),
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


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
