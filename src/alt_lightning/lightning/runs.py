"""Run folders: where ``alt fit / validate / test / predict`` write their logs, checkpoints, config and results.

::

    runs/<run_name>/fit-20261206-210438/      TensorBoard events, metrics.csv, config.yaml, checkpoints/
    runs/<run_name>/fit-20261206-210438/test-20261207-090112/   alt test --ckpt_path of that run's checkpoint
    runs/<run_name>/latest -> fit-20261206-210438                moved when a fit completes

``--run_name`` (or ``run_name:`` in a config) names the run; every TensorBoard and CSV logger writes into the one
folder (a config's logger ``name`` is used when no run name is given, else ``alt``). A test, validation or
prediction of a checkpoint that lies in a run folder (``<run>/checkpoints/*.ckpt``) writes under that run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from alt_lightning.lightning.resume import _loggers

#: The loggers whose folder is the run folder (``<save_dir>/<name>/<version>``); others keep their own settings.
RUN_LOGGERS = ("TensorBoardLogger", "CSVLogger")
#: The loggers' own default ``name``: read as "no name given".
LIGHTNING_DEFAULT_NAME = "lightning_logs"
#: The environment variable that names the run folder for every process of a run (DDP ranks, SLURM jobs).
VERSION_ENV = "ALT_RUN_VERSION"


def run_version(subcommand: str) -> str:
    """``$ALT_RUN_VERSION`` when set, else ``<subcommand>-<YYYYmmdd-HHMMSS>`` (the folder name says what ran)."""
    return os.environ.get(VERSION_ENV) or f"{subcommand}-{time.strftime('%Y%m%d-%H%M%S')}"


def checkpoint_run(ckpt: str | os.PathLike[str] | None) -> Path | None:
    """The run folder of a checkpoint saved in one (``<run>/checkpoints/<file>.ckpt``, links resolved), or ``None``."""
    if not ckpt or not Path(ckpt).is_file():
        return None
    path = Path(ckpt).resolve()
    return path.parent.parent if path.parent.name == "checkpoints" else None


def place_run(cfg: Any, subcommand: str) -> Path | None:
    """Point every TensorBoard and CSV logger of a parsed configuration at one run folder (modified in place).

    * ``run_name`` (``--run_name``) sets their ``name``; without it they take the first one's.
    * A logger without a ``version`` gets :func:`run_version`; one given (``""`` by the protocol runner, which
      writes straight into its folder) is kept.
    * ``validate`` / ``test`` / ``predict`` of a checkpoint in a run folder write under that run:
      ``<run>/<subcommand>-<timestamp>``.

    Args:
        cfg: The subcommand's parsed configuration.
        subcommand: ``fit``, ``validate``, ``test`` or ``predict``.

    Returns:
        The run folder the first such logger writes into (``trainer.log_dir``), or ``None`` without one.
    """
    loggers = [lg for lg in _loggers(cfg.get("trainer")) if str(lg.class_path).endswith(RUN_LOGGERS)]
    if not loggers:
        return None
    first = loggers[0].init_args
    name = cfg.get("run_name") or first.get("name")
    name = "alt" if name in (None, LIGHTNING_DEFAULT_NAME) else str(name)
    save_dir = str(first.save_dir)
    version = first.get("version")
    ckpt_run = checkpoint_run(cfg.get("ckpt_path")) if subcommand != "fit" else None
    if version is None:
        version = run_version(subcommand)
        if ckpt_run is not None:
            save_dir, name = str(ckpt_run), ""
    for logger in loggers:
        logger.init_args.save_dir, logger.init_args.name, logger.init_args.version = save_dir, name, str(version)
    return Path(save_dir, name, str(version))
