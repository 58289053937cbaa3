"""LightningDataModules: one thin class per dataset family over :class:`VideoDataModule`."""

from alt_lightning.datamodules.base import VideoDataModule
from alt_lightning.datamodules.cached import CachedFeatureDataModule
from alt_lightning.datamodules.few_shot import FewShotDataModule
from alt_lightning.datamodules.kinetics import KineticsDataModule
from alt_lightning.datamodules.lists import VideoListDataModule
from alt_lightning.datamodules.ssv2 import SSv2DataModule
from alt_lightning.datamodules.ucf_hmdb import UCFHMDBDataModule

__all__ = [
    "CachedFeatureDataModule",
    "FewShotDataModule",
    "KineticsDataModule",
    "SSv2DataModule",
    "UCFHMDBDataModule",
    "VideoDataModule",
    "VideoListDataModule",
]
