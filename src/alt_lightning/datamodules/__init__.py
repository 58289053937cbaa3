"""LightningDataModules: one thin class per dataset family over :class:`VideoDataModule`."""

from alt_lightning.datamodules.base import VideoDataModule
from alt_lightning.datamodules.lists import VideoListDataModule

__all__ = ["VideoDataModule", "VideoListDataModule"]
