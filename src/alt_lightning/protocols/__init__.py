"""The paper's evaluation protocols: zero-shot splits, few-shot K x seed, base-to-novel; their reports."""

from alt_lightning.protocols.report import harmonic_mean, mean_std, summarize

__all__ = ["harmonic_mean", "mean_std", "summarize"]
