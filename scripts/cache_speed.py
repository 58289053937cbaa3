"""Time training and evaluation from the frozen-feature cache against their floor: the head's own work.

Writes a synthetic dataset (8 classes x ``--videos`` training and ``--test_videos`` test videos, h264), builds the
feature cache of the training and test splits once with a random-weight ALT (``--model_name``), then, in one run and
alternating within each of ``--rounds`` rounds (a shared machine loads every variant alike):

- **cached epoch**: ``Trainer.fit`` on the cached training split, read the previous way (``per-item``: one memory-map
  read and float32 conversion per item, then ``default_collate``) and the current way (``batch``:
  ``CachedFeatureDataset.__getitems__``, one read and one conversion per batch); the first epoch of every fit is
  left out (warm-up);
- **floor (training)**: the head's own forward + loss + backward (+ the AdamW step) on the same batches, held in
  memory, in a bare loop: what a cached epoch cannot go below;
- **cached evaluation**: ``Trainer.test`` on the cached test split (``--test_clips`` views per video), both ways, from
  the start of the test epoch to the end of the test (aggregation and metrics included);
- **floor (evaluation)**: the head's forward on the same batches (inference mode).

It prints the median (and fastest) times and the ratios cached / floor (issue 14, item 4: at most 1.15x), each by the
wall clock and by this process's CPU time: on a machine shared with other jobs, run it with ``--threads 1`` and read
the CPU-time ratios (other jobs add to the wall clock, and with several torch threads to the CPU time of threads
waiting for a core). With ``--decoding true`` it also times a training epoch that decodes the videos (the issue-7
comparison)::

    python scripts/cache_speed.py [--videos 16] [--frames 8] [--batch_size 8] [--epochs 3] [--rounds 3]
                                  [--model_name alt-tiny|ViT-B-16] [--threads 1] [--decoding false] [--json out.json]

Not a test: the figures depend on the machine (``tests/data/test_feature_cache.py`` checks that both ways give the same
batches).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from machine import cpu_name, load

from alt_lightning.data.feature_cache import CachedFeatureDataset
from alt_lightning.data.synthetic import DEFAULT_CLASSES, write_synthetic_dataset
from alt_lightning.datamodules import FeatureCacheConfig, VideoListDataModule
from alt_lightning.lightning import ALTModule


class PerItemCachedDataset(CachedFeatureDataset):
    """The previous reading path: no batch read, so the DataLoader takes items one by one and collates them."""

    __getitems__ = None  # type: ignore[assignment]  # torch's fetcher then calls __getitem__ per index


class ReadingDataModule(VideoListDataModule):
    """The list DataModule whose cached splits are read per item (``per_item=True``) or per batch (default)."""

    per_item = False

    def cached_dataset(self, split: str) -> CachedFeatureDataset:  # noqa: D102
        ds = super().cached_dataset(split)
        if self.per_item:
            return PerItemCachedDataset(ds.cache, train=ds.train, return_source=ds.return_source)
        return ds


def _now() -> np.ndarray:
    """Both clocks at once: ``[wall, cpu]`` seconds (``perf_counter``, this process's CPU time over all threads).

    On a machine shared with other jobs the wall clock counts their time too; the process's CPU time counts only the
    work done here (run with ``--threads 1`` so that no thread spins waiting for another), so ratios are read from both.
    """
    return np.array([time.perf_counter(), time.process_time()])


class Timer(pl.Callback):
    """Time (:func:`_now`: wall and CPU) of every training epoch and of the test epoch.

    A training epoch lasts until the next one starts (or the fit ends), so the module's epoch end is in; the test
    epoch until the end of the test (aggregation and metrics included).
    """

    def __init__(self) -> None:
        self.train: list[np.ndarray] = []
        self.steps: list[np.ndarray] = []  # per epoch: the time inside its training steps (batch start to batch end)
        self.test: list[np.ndarray] = []
        self._start: np.ndarray | None = None
        self._step = np.zeros(2)

    def _close(self) -> None:
        if self._start is not None:
            self.train.append(_now() - self._start)
            self._start = None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:  # noqa: D102
        self._step = _now()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:  # noqa: D102
        if len(self.steps) < len(self.train) + 1:
            self.steps.append(np.zeros(2))
        self.steps[-1] += _now() - self._step

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        self._close()
        self._start = _now()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        self._close()

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        self._start = _now()

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:  # noqa: D102
        assert self._start is not None
        self.test.append(_now() - self._start)
        self._start = None


def _model(class_names: list[str], model_name: str) -> ALTModule:
    torch.manual_seed(0)  # random weights, the same for every run
    tiny = model_name == "alt-tiny"
    return ALTModule(
        class_names=class_names,
        model_name=model_name,
        pretrained=None,
        encoder={"r": 2 if tiny else 8},
        adapter={"layers": 1, "heads": 4} if tiny else None,  # else the paper's adapter (AdapterConfig defaults)
    )


def _trainer(root: Path, callbacks: list[pl.Callback], epochs: int = 1) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=epochs,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        default_root_dir=root,
    )


def _fit_epochs(
    model: ALTModule, dm: pl.LightningDataModule, epochs: int, root: Path
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Epoch times of one fit and the time inside their steps, the first epoch (warm-up) left out."""
    timer = Timer()
    _trainer(root, [timer], epochs).fit(model, dm)
    skip = 1 if len(timer.train) > 1 else 0
    return timer.train[skip:], timer.steps[skip:]


def _test_time(model: ALTModule, dm: pl.LightningDataModule, root: Path) -> np.ndarray:
    timer = Timer()
    _trainer(root, [timer]).test(model, dm, verbose=False)
    return timer.test[0]


def _modes(model: torch.nn.Module) -> dict[str, bool]:
    """Which submodules are in training mode (a fit starts with the modes the module has: Lightning keeps them)."""
    return {name: m.training for name, m in model.named_modules()}


def _set_modes(model: torch.nn.Module, modes: dict[str, bool]) -> None:
    for name, m in model.named_modules():
        m.training = modes[name]


def _head_train(model: ALTModule, batches: list[dict[str, Any]], step: bool, modes: dict[str, bool]) -> np.ndarray:
    """The head's forward + loss + backward (+ AdamW step) over ``batches``, in a bare loop, in the fit's modes."""
    _set_modes(model, modes)
    opt = torch.optim.AdamW(model.parameter_groups(), lr=1e-3, weight_decay=0.05)  # ALTModule's default optimizer
    t0 = _now()
    for batch in batches:
        out = model._forward_batch(batch)
        loss = model.loss_fn(out.logits, batch["label"])
        loss.backward()
        if step:
            opt.step()
        opt.zero_grad(set_to_none=True)
    return _now() - t0


def _head_eval(model: ALTModule, batches: list[dict[str, Any]]) -> np.ndarray:
    """The head's forward (class probabilities) over ``batches``, in inference mode."""
    model.eval()
    t0 = _now()
    with torch.inference_mode():
        for batch in batches:
            model._forward_batch(batch).logits.float().softmax(-1)
    return _now() - t0


def _read_only(loader: torch.utils.data.DataLoader) -> np.ndarray:
    t0 = _now()
    for _ in loader:
        pass
    return _now() - t0


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print the figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--videos", type=int, default=16, help="training videos per class (8 classes)")
    p.add_argument("--test_videos", type=int, default=4, help="test videos per class")
    p.add_argument("--test_clips", type=int, default=3, help="views per test video")
    p.add_argument("--frames", type=int, default=8, help="frames per clip T")
    p.add_argument("--video_frames", type=int, default=48, help="frames per synthetic video")
    p.add_argument("--size", type=int, default=128, help="side of the synthetic videos in pixels")
    p.add_argument("--epochs", type=int, default=3, help="epochs per fit (the first is left out)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds of every variant")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers of the decoding path")
    p.add_argument("--threads", type=int, default=0, help="torch threads while timing (0: leave as is)")
    p.add_argument("--build_threads", type=int, default=0, help="torch threads while building (0: as --threads)")
    p.add_argument("--model_name", default="alt-tiny", help="backbone architecture, random weights (e.g. ViT-B-16)")
    p.add_argument("--decoding", type=lambda s: s.lower() in ("1", "true", "yes"), default=False)
    p.add_argument("--json", default=None, help="write the figures here")
    p.add_argument("--workdir", default=None, help="keep videos and caches here, reused (default: temporary)")
    a = p.parse_args(argv)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    if a.build_threads or a.threads:
        torch.set_num_threads(a.build_threads or a.threads)

    names = [" ".join((c, s, "moving", d)) for c, s, d in DEFAULT_CLASSES]
    results: dict[str, Any] = {  # the machine's name, date and settings go with every figure
        "date": time.strftime("%Y-%m-%d"),
        "machine": cpu_name(),
        "load_start": load(),
        "torch": torch.__version__,
        "settings": vars(a),
    }
    with tempfile.TemporaryDirectory() as scratch:
        tmp = a.workdir or scratch
        root = Path(tmp) / "synthetic"
        if not (root / "classes.txt").is_file():
            t0 = time.perf_counter()
            write_synthetic_dataset(
                root,
                videos_per_class={"train": a.videos, "val": 1, "test": a.test_videos},
                num_frames=a.video_frames,
                height=a.size,
                width=a.size,
            )
            print(f"wrote {8 * a.videos} training and {8 * a.test_videos} test videos ({a.size}x{a.size}, "
                  f"{a.video_frames} frames) in {time.perf_counter() - t0:.1f} s")  # fmt: skip

        def data(cls: type[VideoListDataModule] = ReadingDataModule, **options: Any) -> VideoListDataModule:
            return cls(
                root=str(root),
                classes="classes.txt",
                test_list="test.txt",
                num_frames=a.frames,
                batch_size=a.batch_size,
                num_workers=a.workers,
                test_clips=a.test_clips,
                flip=0.0,  # direction-of-motion classes
                pin_memory=False,
                bad_file_log=str(Path(tmp) / "bad.csv"),
                **options,
            )

        if a.decoding:
            decoded, _ = _fit_epochs(_model(names, a.model_name), data(VideoListDataModule), a.epochs, Path(tmp))
            results["decoding_epoch_s"] = statistics.median(float(t[0]) for t in decoded)  # wall clock

        dm = data(features=FeatureCacheConfig(dir=str(Path(tmp) / "cache"), splits=("train", "test")))
        model = _model(names, a.model_name)
        modes = _modes(model)  # as built: what every fit below starts from (the frozen backbone stays in eval mode)
        t0 = time.perf_counter()
        dm.prepare_caches(model)
        results["cache_build_s"] = time.perf_counter() - t0  # near 0 when --workdir held them already
        print(f"built (or opened) the training and test caches in {results['cache_build_s']:.1f} s")
        if a.threads:
            torch.set_num_threads(a.threads)

        # The batches both ways read (equal, tests/data/test_feature_cache.py), held in memory for the floors.
        train_loader, test_loader = dm.train_dataloader(), dm.test_dataloader()
        train_loader.sampler.set_epoch(1)
        train_batches, test_batches = list(train_loader), list(test_loader)
        times: dict[str, list[np.ndarray]] = {
            k: []
            for k in (
                "epoch_per_item",
                "epoch_batch",
                "steps_per_item",
                "steps_batch",
                "floor_fwd_bwd_step",
                "floor_fwd_bwd",
                "test_per_item",
                "test_batch",
                "floor_forward",
                "read_train_per_item",
                "read_train_batch",
                "read_test_per_item",
                "read_test_batch",
            )
        }
        for r in range(a.rounds):
            for per_item in (True, False) if r % 2 == 0 else (False, True):
                dm.per_item = per_item
                name = "per_item" if per_item else "batch"
                _set_modes(model, modes)
                epochs, steps = _fit_epochs(model, dm, a.epochs, Path(tmp))
                times[f"epoch_{name}"] += epochs
                times[f"steps_{name}"] += steps
                times[f"test_{name}"].append(_test_time(model, dm, Path(tmp)))
                times[f"read_train_{name}"].append(_read_only(dm.train_dataloader()))
                times[f"read_test_{name}"].append(_read_only(dm.test_dataloader()))
            for _ in range(max(1, a.epochs - 1)):
                times["floor_fwd_bwd_step"].append(_head_train(model, train_batches, True, modes))
                times["floor_fwd_bwd"].append(_head_train(model, train_batches, False, modes))
            times["floor_forward"].append(_head_eval(model, test_batches))
            print(f"round {r + 1}/{a.rounds} (wall/cpu s, load {load()}): "
                  + ", ".join(f"{k} {v[-1][0]:.3f}/{v[-1][1]:.3f}" for k, v in times.items()))  # fmt: skip

    results["load_end"] = load()
    results["seconds"] = {k: [[round(float(x), 4) for x in t] for t in v] for k, v in times.items()}  # [wall, cpu]
    print(f"\n{results['machine']}, {results['date']}, torch {results['torch']}, {torch.get_num_threads()} torch "
          f"threads; backbone {a.model_name} (random weights), batch {a.batch_size}, T = {a.frames}, "
          f"{len(train_batches)} training and {len(test_batches)} test batches "
          f"({a.test_clips} views a video); load {results['load_start']} -> {results['load_end']}")  # fmt: skip
    pairs = {
        "epoch_batch / floor (fwd+bwd+step)": ("epoch_batch", "floor_fwd_bwd_step"),
        "epoch_batch / floor (fwd+bwd)": ("epoch_batch", "floor_fwd_bwd"),
        "epoch_per_item / floor (fwd+bwd+step)": ("epoch_per_item", "floor_fwd_bwd_step"),
        "steps_batch / floor (fwd+bwd+step)": ("steps_batch", "floor_fwd_bwd_step"),
        "test_batch / floor (forward)": ("test_batch", "floor_forward"),
        "test_per_item / floor (forward)": ("test_per_item", "floor_forward"),
    }
    for c, clock in enumerate(("wall", "cpu")):
        med = {k: statistics.median(float(t[c]) for t in v) for k, v in times.items()}
        # The fastest of each: on a shared machine other jobs only ever add time, so minima are the steadier estimate.
        fast = {k: min(float(t[c]) for t in v) for k, v in times.items()}
        results[f"median_{clock}_s"], results[f"min_{clock}_s"] = med, fast
        results[f"ratios_{clock}"] = {k: med[n] / med[d] for k, (n, d) in pairs.items()}
        results[f"ratios_of_minima_{clock}"] = {k: fast[n] / fast[d] for k, (n, d) in pairs.items()}
        print(f"{clock} clock, median seconds: " + ", ".join(f"{k} {v:.3f}" for k, v in med.items()))
        for key in pairs:
            print(f"  {key}: {results[f'ratios_{clock}'][key]:.3f}x (medians), "
                  f"{results[f'ratios_of_minima_{clock}'][key]:.3f}x (fastest of each)")  # fmt: skip
    med = results["median_wall_s"]
    if "decoding_epoch_s" in results:
        print(f"one training epoch from decoding: {results['decoding_epoch_s']:.3f} s "
              f"({results['decoding_epoch_s'] / med['epoch_batch']:.1f}x the cached epoch)")  # fmt: skip
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
