r"""``alt cache``: build, list and remove frozen-feature caches (:mod:`alt_lightning.data.feature_cache`).

Usage::

    alt cache build --config fit.yaml [--config ...] [--splits train test] [--feature_dir DIR] [--force]
                    [--trainer.accelerator cpu ...]
    alt cache info  (--config fit.yaml ... | --dir DIR)
    alt cache clear (--config fit.yaml ... [--stale] | --dir DIR) [--splits train val test]

``--config`` takes the configs ``alt fit`` takes (model, data and trainer sections; further ``--model.*``,
``--data.*`` and ``--trainer.*`` arguments override them). The caches are those of the data section's ``features``
option (``data.init_args.features: {dir: cache/features, splits: [test]}``), or of every split under
``--feature_dir``. ``build`` encodes every video of the splits once, in one process on the trainer's first device
and precision (run it before a DDP fit: DDP ranks read caches but do not build them). ``info`` lists caches (with
``--config``: which ones the configuration would read). ``clear`` removes caches: those of the configuration's
dataset (``--stale``: only those it would no longer read), or every one under ``--dir``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alt_lightning.commands import ArgumentParser

SPLIT_CHOICES = ("train", "val", "test")


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``alt cache`` (the others go on to the LightningCLI parser)."""
    description = __doc__.split("\n\n")[0].split(": ", 1)[1]
    # No abbreviations: every unknown argument goes on to the LightningCLI parser (--data.*, --trainer.*).
    p = ArgumentParser(prog="alt cache", description=description, allow_abbrev=False)
    p.add_argument(
        "action", choices=("build", "info", "clear"), help="build the caches, list them (info) or remove them (clear)"
    )
    p.add_argument("--splits", nargs="+", choices=SPLIT_CHOICES, default=None, help="default: data.features.splits")
    p.add_argument("--feature_dir", "--feature-dir", default=None, help="cache folder (overrides the config's)")
    p.add_argument("--dir", default=None, help="info/clear: a cache folder, without a config")
    p.add_argument("--force", action="store_true", help="build: rebuild even when a matching cache exists")
    p.add_argument("--stale", action="store_true", help="clear: keep the caches the configuration reads")
    return p


def _load(rest: list[str], feature_dir: str | None) -> tuple[Any, Any, Any]:
    """Model, DataModule (its ``features`` option set) and a one-device trainer from ``alt fit``-style arguments."""
    from dataclasses import replace

    import lightning.pytorch as pl

    from alt_lightning.data.feature_cache import SPLITS, FeatureCacheConfig
    from alt_lightning.lightning.cli import run_cli

    cli = run_cli(rest, run=False)
    dm = cli.datamodule
    if feature_dir is not None:  # another folder for the configured splits; every split without `features`
        dm.features = (
            replace(dm.features, dir=feature_dir) if dm.features else FeatureCacheConfig(dir=feature_dir, splits=SPLITS)
        )
    elif dm.features is None:
        raise SystemExit(
            f"alt cache: the data section ({type(dm).__name__}) reads no split from the feature cache; set "
            "data.init_args.features (e.g. {dir: cache/features, splits: [test]}) or pass --feature_dir DIR."
        )
    # One process on the configured trainer's first device and precision, whatever its device count or strategy.
    device = cli.trainer.strategy.root_device
    trainer = pl.Trainer(
        accelerator=device.type,
        devices=[device.index] if device.type == "cuda" and device.index is not None else 1,
        precision=cli.trainer.precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return cli.model, dm, trainer


def _table(caches: list[Any], current: dict[str, Path] | None = None) -> Any:
    from rich.table import Table

    columns = ["name", "split", "videos", "views", "failed_videos", "tokens", "source", "size_mb", "frames"]
    columns += ["fingerprint", "device", "precision", "seconds", "created"]
    table = Table(*columns, *(["status"] if current is not None else []))
    wanted = {p.resolve() for p in (current or {}).values()}
    for c in caches:
        row = c.summary()
        cells = [str(row[k]) for k in columns]
        if current is not None:
            cells.append("current" if c.directory.resolve() in wanted else "not read")
        table.add_row(*cells)
    return table


def _remove(caches: list[Any], extra: Sequence[Path] = ()) -> float:
    """Delete caches (and extra folders); returns the MiB freed by the caches."""
    size = sum(c.nbytes() for c in caches) / 2**20
    for p in [*(c.directory for c in caches), *extra]:
        shutil.rmtree(p)
    return size


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``alt cache``."""
    from rich.console import Console

    from alt_lightning.data.feature_cache import list_caches

    args, rest = build_parser().parse_known_args(list(sys.argv[1:] if argv is None else argv))
    console = Console()
    if args.dir is not None:
        if args.action == "build":
            console.print("[red]alt cache build needs --config (the model encodes the videos), not --dir[/red]")
            return 2
        caches = [c for c in list_caches(args.dir) if args.splits is None or c.split in args.splits]
        if args.action == "info":
            console.print(_table(caches) if caches else f"no feature caches in {args.dir}")
            for c in caches:
                console.print(f"{c.split}: {c.directory}", soft_wrap=True)
            return 0
        leftovers = [p for p in Path(args.dir).glob("*.tmp-*") if p.is_dir()]  # interrupted builds
        console.print(f"removed {len(caches)} caches ({_remove(caches, leftovers):.1f} MiB) from {args.dir}")
        return 0
    if not rest:
        console.print("[red]give --config (the configs alt fit takes) or --dir DIR[/red]")
        return 2

    model, dm, trainer = _load(rest, args.feature_dir)
    splits = tuple(args.splits or dm.features.splits)
    folder = Path(dm.features.dir).expanduser()
    if args.action == "build":
        built = dm.prepare_caches(model, splits, trainer=trainer, force=args.force)
        console.print(_table(list(built.values())))
        for split, cache in built.items():
            console.print(f"{split}: {cache.directory}", soft_wrap=True)
        return 0
    current = dm.current_paths(model, splits, trainer=trainer)
    prefix = f"{folder / ''}"
    mine = [
        c
        for c in list_caches(folder)
        if c.split in splits and c.index.get("build", {}).get("dataset", dm.dataset_name) == dm.dataset_name
    ]
    if args.action == "info":
        console.print(_table(mine, current) if mine else f"no {dm.dataset_name} feature caches in {prefix}")
        for split, path in current.items():
            state = "built" if (path / "index.json").is_file() else "not built"
            console.print(f"{split}: {path} ({state}, read by this configuration)", soft_wrap=True)
        wanted = {p.resolve() for p in current.values()}
        for c in mine:
            if c.directory.resolve() not in wanted:
                console.print(f"{c.split}: {c.directory} (not read by this configuration)", soft_wrap=True)
        return 0
    wanted = {p.resolve() for p in current.values()}
    doomed = [c for c in mine if not (args.stale and c.directory.resolve() in wanted)]
    console.print(f"removed {len(doomed)} {dm.dataset_name} caches ({_remove(doomed):.1f} MiB) from {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
