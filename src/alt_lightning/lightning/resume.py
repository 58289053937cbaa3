"""``alt fit --ckpt_path``: which run a fit resumes, and its curves continued in that run's own folder."""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger

from alt_lightning.lightning.checkpoints import SavedRun, read_checkpoint


@dataclass(frozen=True)
class Resume:
    """Where ``alt fit --ckpt_path`` resumes from.

    Args:
        checkpoint: The checkpoint file.
        step: Its global step.
        run: The run folder it belongs to (``<save_dir>/<name>/<version>``).
        same_folder: Whether the resumed run logs into ``run`` again (curves and checkpoints continued).
    """

    checkpoint: Path
    step: int
    run: Path
    same_folder: bool

    @property
    def checkpoints(self) -> Path:
        """The run's checkpoint folder."""
        return self.run / "checkpoints"


def _loggers(trainer: Any) -> list[Any]:
    """The configured loggers (``class_path``/``init_args`` namespaces) of a parsed ``trainer`` section."""
    loggers = trainer.get("logger") if trainer is not None else None
    if loggers is None or isinstance(loggers, bool):
        return []
    loggers = loggers if isinstance(loggers, list) else [loggers]
    return [lg for lg in loggers if getattr(lg, "init_args", None) is not None and "save_dir" in lg.init_args]


def _runs_dir(logger: Any) -> Path:
    """``<save_dir>/<name>`` of a configured logger: the folder of its run versions."""
    a = logger.init_args
    return Path(str(a.save_dir), str(a.get("name") or ""))


def _log_dir(logger: Any) -> Path:
    """``<save_dir>/<name>/<version>`` of a configured logger, as Lightning's TensorBoard and CSV loggers place it."""
    return _runs_dir(logger) / str(logger.init_args.get("version") or "")


def same_path(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name the same file or folder."""
    return Path(a).resolve() == Path(b).resolve()


def find_last_checkpoint(runs: Path) -> Path | None:
    """The newest ``<runs>/<version>/checkpoints/last.ckpt`` (by modification time): the run to resume.

    Args:
        runs: ``<save_dir>/<name>`` of a configuration's logger.
    """
    found = [p for p in runs.glob("*/checkpoints/last.ckpt") if p.is_file() and not p.parent.parent.is_symlink()]
    return max(found, key=lambda p: (p.stat().st_mtime, p.parent.parent.name)) if found else None


def resolve_resume(cfg: Any, read: Callable[[Path], SavedRun] = read_checkpoint) -> Resume | None:
    """Resolve ``alt fit --ckpt_path`` and point the loggers of a resumed run at its own folder.

    * ``--ckpt_path last`` resumes the newest run of this configuration's logger: the ``<save_dir>/<name>/<version>``
      whose ``checkpoints/last.ckpt`` was written last (the ``latest`` link moves only when a fit ends, so it misses
      interrupted runs); without a logger, ``<default_root_dir>/checkpoints/last.ckpt``. None found: a one-line error.
    * ``--ckpt_path <save_dir>/<name>/<version>/checkpoints/last.ckpt`` of this configuration's logger (the same run,
      named explicitly) does the same.
    * Any other checkpoint (``best.ckpt``, one copied from elsewhere) starts a new run folder: the trainer state is
      restored, the resumed run's logs and ``best.ckpt`` are left as they are.

    Resuming into the run's folder sets every logger there to that version (and ``ALT_RUN_VERSION``, for DDP
    processes launched later), so ``ModelCheckpoint`` finds its own folder and restores its best score, ``last.ckpt``
    and ``best.ckpt`` are overwritten in place, TensorBoard hides events at or after the checkpoint's step
    (``purge_step``: those of the interrupted tail, which is trained again; Lightning logs step ``k`` at ``k - 1``)
    and :func:`continue_csv_log` keeps the CSV rows before it, so the curves read as those of an uninterrupted run.

    Args:
        cfg: The parsed ``fit`` configuration (modified in place).
        read: Reads a checkpoint's settings (its global step is used).

    Returns:
        The resume, or ``None`` when no checkpoint is given.
    """
    ckpt = cfg.get("ckpt_path")
    if not ckpt:
        return None
    trainer = cfg.get("trainer")
    loggers = _loggers(trainer)
    # A logger with version "" writes straight into <save_dir>/<name> (the protocol runner's units): one run there.
    versioned = bool(loggers) and loggers[0].init_args.get("version") != ""
    root = _runs_dir(loggers[0]) if loggers else Path(str(trainer.get("default_root_dir") or "."))
    if ckpt == "last":
        if versioned:
            found, where = find_last_checkpoint(root), f"{root}/*/checkpoints/last.ckpt"
        else:
            found = root / "checkpoints" / "last.ckpt"
            found, where = (found if found.is_file() else None), str(found)
        if found is None:
            raise SystemExit(
                f"alt fit --ckpt_path last: no run to resume (no {where}); start a new run without --ckpt_path, "
                "or pass a checkpoint file."
            )
        cfg.ckpt_path = ckpt = str(found)
    path = Path(str(ckpt))
    if not path.is_file():
        return None  # Lightning's own values ("hpc", "registry") and its error for a missing file
    step = read(path).global_step
    run = path.parent.parent
    own = path.name == "last.ckpt" and path.parent.name == "checkpoints"
    same = own and same_path(run.parent if versioned else run, root)
    if same and versioned:
        for logger in loggers:  # the run's version for every logger that shares the first one's folder
            if same_path(_runs_dir(logger), root):
                logger.init_args.version = run.name
        os.environ["ALT_RUN_VERSION"] = run.name
    for logger in loggers:
        if same and str(logger.class_path).endswith("TensorBoardLogger") and same_path(_log_dir(logger), run):
            logger.init_args.purge_step = step
            logger.init_args.default_hp_metric = False  # its placeholder at step 0 was logged by the first part
    return Resume(path, step, run, same)


def continue_csv_log(logger: CSVLogger, step: int) -> None:
    """Keep the rows of ``metrics.csv`` logged before ``step``; Lightning's CSV logger deletes the file when it opens.

    Rows at or after ``step`` come from the interrupted tail of the run, which the resumed run logs again.
    """
    path = Path(logger.log_dir) / "metrics.csv"
    header: list[str] = []
    rows: list[dict[str, str]] = []
    if path.is_file():
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            header = sorted(reader.fieldnames or [])
            rows = [r for r in reader if r.get("step") not in (None, "") and float(r["step"]) < step]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Experiment logs directory")
        writer = logger.experiment  # opening the writer removes metrics.csv
    if not header:
        return
    with path.open("w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=header)
        out.writeheader()
        out.writerows(rows)
    writer.metrics_keys = list(header)  # later rows are appended under this header (a new key rewrites it)
