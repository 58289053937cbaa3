"""Time one few-shot training epoch from decoding vs from the frozen-feature cache (CPU figure of issue 7).

Writes a synthetic dataset (8 classes x ``--videos`` training videos, h264), then fits the same tiny ALT model
for ``--epochs`` epochs twice: on decoded, augmented clips (:class:`VideoListDataModule`) and on cached tokens (the
same DataModule with ``features`` on the training split, cache built once beforehand and timed apart). Prints the
per-epoch wall-clock times (the first epoch, which warms up, is left out of the median), the build time, and the
ratio::

    python scripts/cache_speed.py [--videos 16] [--frames 8] [--size 128] [--epochs 3] [--workers 0]
                                  [--model_name alt-tiny|ViT-B-16] [--threads N]

Not a test: the figure depends on the machine (run it on an otherwise idle one).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from alt_lightning.data.synthetic import DEFAULT_CLASSES, write_synthetic_dataset
from alt_lightning.datamodules import FeatureCacheConfig, VideoListDataModule
from alt_lightning.lightning import ALTModule


class EpochTimer(pl.Callback):
    """Wall-clock time of every training epoch (data loading included)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        self.times.append(time.perf_counter() - self._start)


def _model(class_names: list[str], model_name: str) -> ALTModule:
    torch.manual_seed(0)  # random weights, the same for both runs
    tiny = model_name == "alt-tiny"
    return ALTModule(
        class_names=class_names,
        model_name=model_name,
        pretrained=None,
        encoder={"r": 2 if tiny else 8},
        adapter={"layers": 1, "heads": 4} if tiny else None,  # else the paper's adapter (AdapterConfig defaults)
    )


def _fit(model: ALTModule, dm: pl.LightningDataModule, epochs: int, root: Path) -> list[float]:
    timer = EpochTimer()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=epochs,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        default_root_dir=root,
    )
    trainer.fit(model, dm)
    return timer.times


def _steady(times: list[float]) -> float:
    return statistics.median(times[1:] if len(times) > 1 else times)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print the figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, default=16, help="training videos per class (8 classes)")
    p.add_argument("--frames", type=int, default=8, help="frames per clip T")
    p.add_argument("--video_frames", type=int, default=48, help="frames per synthetic video")
    p.add_argument("--size", type=int, default=128, help="side of the synthetic videos in pixels")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers of the decoding path")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    p.add_argument("--model_name", default="alt-tiny", help="backbone architecture, random weights (e.g. ViT-B-16)")
    a = p.parse_args(argv)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    if a.threads:
        torch.set_num_threads(a.threads)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synthetic"
        t0 = time.perf_counter()
        write_synthetic_dataset(
            root,
            videos_per_class={"train": a.videos, "val": 1},
            num_frames=a.video_frames,
            height=a.size,
            width=a.size,
        )
        print(f"wrote {8 * a.videos} training videos ({a.size}x{a.size}, {a.video_frames} frames) in "
              f"{time.perf_counter() - t0:.1f} s")  # fmt: skip

        def base(**options: Any) -> VideoListDataModule:
            return VideoListDataModule(
                root=str(root),
                classes="classes.txt",
                num_frames=a.frames,
                batch_size=a.batch_size,
                num_workers=a.workers,
                flip=0.0,  # direction-of-motion classes
                pin_memory=False,
                bad_file_log=str(Path(tmp) / "bad.csv"),
                **options,
            )

        names = [" ".join((c, s, "moving", d)) for c, s, d in DEFAULT_CLASSES]
        decoded = _fit(_model(names, a.model_name), base(), a.epochs, Path(tmp))

        cached_dm = base(features=FeatureCacheConfig(dir=str(Path(tmp) / "cache"), splits=("train",)))
        model = _model(names, a.model_name)
        t0 = time.perf_counter()
        cached_dm.prepare_caches(model)
        build = time.perf_counter() - t0
        cached = _fit(model, cached_dm, a.epochs, Path(tmp))

    results: dict[str, Any] = {
        "decoding_epoch_s": _steady(decoded),
        "cache_epoch_s": _steady(cached),
        "cache_build_s": build,
    }
    ratio = results["decoding_epoch_s"] / results["cache_epoch_s"]
    print(f"torch threads: {torch.get_num_threads()}, decoding workers: {a.workers}, batch size: {a.batch_size}, "
          f"T = {a.frames}, {8 * a.videos} training videos, backbone {a.model_name} (random weights)")  # fmt: skip
    print("decoding epochs (s): " + ", ".join(f"{t:.3f}" for t in decoded))
    print("cache epochs (s):    " + ", ".join(f"{t:.3f}" for t in cached))
    print(f"one training epoch from decoding: {results['decoding_epoch_s']:.3f} s")
    print(f"one training epoch from the cache: {results['cache_epoch_s']:.3f} s")
    print(f"cache build (once): {build:.3f} s")
    print(f"ratio (decoding / cache): {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
