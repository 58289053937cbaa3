"""The paper's evaluation protocols: zero-shot splits, few-shot K x seed, base-to-novel; reports and class subsets."""

from alt_lightning.protocols.report import harmonic_mean, mean_std, summarize
from alt_lightning.protocols.subsets import ClassSubsetDataModule

__all__ = ["ClassSubsetDataModule", "harmonic_mean", "mean_std", "summarize"]
