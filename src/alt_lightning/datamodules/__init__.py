"""LightningDataModules: one base with the record and cache options, one thin class per dataset family over it."""

from alt_lightning.data.feature_cache import FeatureCacheConfig
from alt_lightning.datamodules.base import VideoDataModule
from alt_lightning.datamodules.class_subset import ClassSubset
from alt_lightning.datamodules.few_shot import FewShot
from alt_lightning.datamodules.kinetics import KineticsDataModule
from alt_lightning.datamodules.lists import VideoListDataModule
from alt_lightning.datamodules.ssv2 import SSv2DataModule
from alt_lightning.datamodules.ucf_hmdb import UCFHMDBDataModule

__all__ = [
    "ClassSubset",
    "FeatureCacheConfig",
    "FewShot",
    "KineticsDataModule",
    "SSv2DataModule",
    "UCFHMDBDataModule",
    "VideoDataModule",
    "VideoListDataModule",
]
