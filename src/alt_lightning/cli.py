"""The ``alt`` command: LightningCLI (fit / validate / test / predict) plus ALT's own subcommands.

``alt fit --config configs/model/alt_b16_8f.yaml --config configs/data/k400.yaml --config configs/trainer/ddp.yaml
--config configs/experiments/supervised_k400.yaml`` trains (``--ckpt_path last`` resumes the newest run of that
config in its own folder, see :func:`resolve_resume`); ``alt test --config ... --ckpt_path X.ckpt`` tests with the
model and data settings restored from the checkpoint (explicit arguments win; the checkpoint's model class wins
over config files), its backbone checked before anything expensive is built. ``alt test`` without a checkpoint is
refused unless ``--zero_shot_from_clip`` asks for CLIP's own zero-shot classifier. Extra subcommands (``alt corpus``,
``alt flops``, ...) are plain functions registered in :data:`EXTRA_COMMANDS`.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger

from alt_lightning.datamodules.base import VideoDataModule
from alt_lightning.datamodules.legacy import upgrade_data_hparams
from alt_lightning.lightning.module import ALTModule, CheckpointMismatchError, expect_checkpoint
from alt_lightning.protocols.report import VIDEO_COUNTS

#: ``alt <name> ...`` -> ``"module:function"`` taking ``argv`` and returning an exit code.
EXTRA_COMMANDS: dict[str, tuple[str, str]] = {
    "corpus": (
        "alt_lightning.commands.corpus:main",
        "inspect, validate, build, merge and embed entity corpora",
    ),
    "check-data": (
        "alt_lightning.commands.check_data:main",
        "decode-check a DataModule's videos in parallel: report CSV (ok/bad, reason, frames, fps, size), clean lists",
    ),
    "loader-bench": (
        "alt_lightning.commands.loader_bench:main",
        "clips/s of the training and evaluation data path (decode + sample + transform) per worker count",
    ),
    "flops": (
        "alt_lightning.commands.flops:main",
        "FLOPs (multiply-adds, attention included) per component and view, and parameters, of a configuration",
    ),
    "protocol": (
        "alt_lightning.commands.protocol:main",
        "run a paper protocol (zero-shot splits, few-shot K x seed, base-to-novel) into one table + JSON",
    ),
    "bench": (
        "alt_lightning.commands.bench:main",
        "throughput, memory, FLOPs and parameters on this device (--baseline: vs the bare tower)",
    ),
    "cache": (
        "alt_lightning.commands.cache:main",
        "build, list (info) and remove (clear) frozen-feature caches of a configuration's videos",
    ),
    "prepare": (
        "alt_lightning.commands.prepare:main",
        "re-encode a dataset tree for fast decoding (short side 256, keyframe every 12 frames), same relative paths",
    ),
}

#: Model arguments filled by links from the DataModule; never restored from a checkpoint.
LINKED_MODEL_ARGS = ("class_names", "num_frames")


def _run_version() -> str:
    """One run name shared by DDP ranks (children inherit the environment of the launching process)."""
    return os.environ.setdefault("ALT_RUN_VERSION", time.strftime("%Y%m%d-%H%M%S"))


def trainer_defaults(save_dir: str = "runs", name: str = "alt") -> dict[str, Any]:
    """Trainer defaults: TensorBoard + CSV logs in one folder, rich progress and summary, best/last checkpoints."""
    version = _run_version()
    logger_args = {"save_dir": save_dir, "name": name, "version": version}
    return {
        "logger": [
            {"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": logger_args},
            {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": logger_args},
        ],
        "callbacks": [
            {"class_path": "lightning.pytorch.callbacks.RichProgressBar"},
            {"class_path": "lightning.pytorch.callbacks.RichModelSummary", "init_args": {"max_depth": 2}},
            {
                "class_path": "lightning.pytorch.callbacks.LearningRateMonitor",
                "init_args": {"logging_interval": "step"},
            },
            {"class_path": "alt_lightning.lightning.callbacks.ThroughputMonitor"},
            {"class_path": "alt_lightning.lightning.callbacks.StepSeed"},
            {"class_path": "alt_lightning.lightning.callbacks.PredictionWriter", "init_args": {"top_k": 5}},
            {
                "class_path": "alt_lightning.lightning.callbacks.AlignmentHeatmapLogger",
                "init_args": {"every_n_epochs": 5},
            },
            {
                "class_path": "alt_lightning.lightning.callbacks.BestAndLastCheckpoint",
                "init_args": {
                    "monitor": "val/top1",
                    "mode": "max",
                    "filename": "best",
                    "save_last": True,
                    "auto_insert_metric_name": False,
                },
            },
        ],
    }


class ALTCLI(LightningCLI):
    """LightningCLI with ALT's links, defaults and checkpoint-restored settings."""

    def add_arguments_to_parser(self, parser: Any) -> None:
        """Class names and the frame count flow from the DataModule to the model, so configs never repeat them."""
        for linked in LINKED_MODEL_ARGS:
            parser.link_arguments(f"data.{linked}", f"model.init_args.{linked}", apply_on="instantiate")
        parser.set_defaults({f"trainer.{k}": v for k, v in trainer_defaults().items()})
        parser.add_argument(
            "--zero_shot_from_clip",
            action="store_true",
            help="validate/test/predict without trained weights: the adapter's residual weight is set to 0, so the "
            "video vector is CLIP's mean frame embedding (CLIP's own zero-shot classifier). Without it, validate and "
            "test need --ckpt_path (or model.init_args.init_weights) and refuse to score an untrained adapter.",
        )

    def parse_arguments(self, parser: Any, args: Any) -> None:
        """Parse, with a checkpoint's model and data settings as defaults under the user's own arguments.

        ``main`` always passes the argument list, so Lightning's warning about ``args`` beside ``sys.argv`` (meant for
        notebooks) does not apply and is not raised.
        """
        if isinstance(args, dict) or (args is not None and not isinstance(args, (list, tuple))):
            self.config = parser.parse_object(args)
            return
        self.config = parser.parse_args(_with_checkpoint_defaults(list(sys.argv[1:] if args is None else args)))

    def before_instantiate_classes(self) -> None:
        """Check where the weights come from; resolve a resume (``fit --ckpt_path``); drop ruled-out callbacks."""
        cfg = self.config.get(self.subcommand) if self.subcommand else self.config
        if self.subcommand and cfg is not None:
            _check_weights_source(self.subcommand, cfg)
        trainer = cfg.get("trainer") if cfg is not None else None
        self.resume = resolve_resume(cfg) if self.subcommand == "fit" and cfg is not None else None
        if trainer is None or not trainer.get("callbacks"):
            return
        drop = []
        if trainer.get("enable_progress_bar") is False:
            drop.append("ProgressBar")
        if trainer.get("logger") is False:
            drop.append("LearningRateMonitor")
        trainer.callbacks = [
            c for c in trainer.callbacks if not any(d in str(getattr(c, "class_path", c)) for d in drop)
        ]

    def _parse_ckpt_path(self) -> None:
        """Done in :meth:`parse_arguments` instead (Lightning's version lets the checkpoint override the user)."""

    def before_fit(self) -> None:
        """A run resumed into its own folder keeps its CSV curves up to the checkpoint (see :func:`resolve_resume`)."""
        resume = getattr(self, "resume", None)
        if resume is None or not resume.same_folder:
            return
        # Lightning warns that the folder of the resumed run is not empty: that is the point of resuming into it.
        warnings.filterwarnings("ignore", message=f"Checkpoint directory {re.escape(str(resume.checkpoints))}")
        if self.trainer.is_global_zero:
            for logger in self.trainer.loggers:
                if isinstance(logger, CSVLogger) and _same_path(logger.log_dir, resume.run):
                    _continue_csv_log(logger, resume.step)

    def instantiate_classes(self) -> None:
        """Instantiate, checking the backbone against the checkpoint's before the corpus and prompts are embedded."""
        cfg = self.config.get(self.subcommand) if self.subcommand else self.config
        ckpt = cfg.get("ckpt_path") if cfg is not None else None
        meta = _checkpoint_meta(ckpt) if ckpt else None
        if not meta:
            super().instantiate_classes()
            return
        with expect_checkpoint(str(ckpt), meta) as expected:
            try:
                super().instantiate_classes()
            except Exception:
                if expected.error is not None:  # jsonargparse wraps what the constructor raised: raise it as is
                    raise expected.error from None
                raise

    def _zero_shot_from_clip(self) -> bool:
        cfg = self.config.get(self.subcommand) if self.subcommand else self.config
        return bool(cfg is not None and cfg.get("zero_shot_from_clip"))

    def _weights_note(self) -> str:
        return "  (CLIP zero-shot: no trained weights)" if self._zero_shot_from_clip() else ""

    def before_validate(self) -> None:
        """``--zero_shot_from_clip``: CLIP's own classifier (see :meth:`ALTModule.use_clip_zero_shot`)."""
        if self._zero_shot_from_clip():
            try:
                self.model.use_clip_zero_shot()
            except ValueError as err:
                raise SystemExit(f"alt {self.subcommand}: --zero_shot_from_clip: {err}") from None

    before_test = before_validate
    before_predict = before_validate

    def after_fit(self) -> None:
        """Point ``<save_dir>/<name>/latest`` at this run and print where the best checkpoint is."""
        cb = self.trainer.checkpoint_callback
        best = getattr(cb, "best_model_path", "") if cb is not None else ""
        log_dir = self.trainer.log_dir  # a broadcast under DDP: every rank must ask, not only rank 0
        if self.trainer.is_global_zero and log_dir:
            run = Path(log_dir)
            latest = run.parent / "latest"
            if latest.is_symlink() or latest.exists():
                latest.unlink()
            latest.symlink_to(run.name, target_is_directory=True)
            if best:
                (run / "best_checkpoint.txt").write_text(best + "\n")
                self.trainer.print(f"best checkpoint: {best}")

    def after_test(self) -> None:
        """Print the headline numbers, what became of every listed video, and the corpus the checkpoint used."""
        self._print_eval("test")

    def after_validate(self) -> None:
        """The same line as ``alt test`` prints, for the validation split."""
        self._print_eval("val")

    def _print_eval(self, stage: str) -> None:
        m = self.trainer.callback_metrics
        if not self.trainer.is_global_zero or f"{stage}/top1" not in m:
            return
        corpus = getattr(self.model, "corpus_info", {})
        line = (
            f"{'test' if stage == 'test' else 'validation'} top-1: {100 * float(m[f'{stage}/top1']):.2f}%  "
            f"top-5: {100 * float(m[f'{stage}/top5']):.2f}%  mean-class: {100 * float(m[f'{stage}/mean_class']):.2f}%"
        )
        counts = {k: int(m[f"{stage}/videos_{k}"]) for k in VIDEO_COUNTS if f"{stage}/videos_{k}" in m}
        if counts:
            line += "  videos " + "  ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items() if k != "not_run")
            if counts.get("not_run"):
                line += f"  not run: {counts['not_run']} (limit_{stage}_batches)"
        line += self._weights_note()
        if corpus:
            line += f"  corpus: {corpus.get('name')} {corpus.get('version')} ({str(corpus.get('hash'))[:12]})"
        self.trainer.print(line)


def _check_weights_source(subcommand: str, cfg: Any) -> None:
    """Refuse to validate or test an untrained adapter unless ``--zero_shot_from_clip`` asks for CLIP alone.

    Raises:
        SystemExit: With one line naming the cause and the fix.
    """
    zero_shot = bool(cfg.get("zero_shot_from_clip"))
    init_weights = cfg.get("model.init_args.init_weights") if cfg.get("model") is not None else None
    trained = cfg.get("ckpt_path") or init_weights
    if zero_shot and subcommand == "fit":
        raise SystemExit("alt fit: --zero_shot_from_clip belongs to test, validate or predict (nothing is trained).")
    if zero_shot and trained:
        what = "--ckpt_path" if cfg.get("ckpt_path") else "model.init_args.init_weights"
        raise SystemExit(
            f"alt {subcommand}: --zero_shot_from_clip tests CLIP without trained weights, {what} loads trained "
            "weights: give one of them, not both."
        )
    if subcommand in ("validate", "test") and not trained and not zero_shot:
        raise SystemExit(
            f"alt {subcommand}: no --ckpt_path: this would score an untrained adapter. Pass --ckpt_path <checkpoint> "
            "(e.g. runs/<name>/latest/checkpoints/best.ckpt), or --zero_shot_from_clip to evaluate CLIP's own "
            "zero-shot classifier."
        )


def _checkpoint_meta(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``alt`` entry (backbone, corpus, classes) of an ALT checkpoint; ``None`` when there is none to read."""
    if not Path(path).is_file():
        return None
    return dict(torch.load(path, weights_only=True, map_location="cpu").get("alt") or {}) or None


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


def _same_path(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def find_last_checkpoint(runs: Path) -> Path | None:
    """The newest ``<runs>/<version>/checkpoints/last.ckpt`` (by modification time): the run to resume.

    Args:
        runs: ``<save_dir>/<name>`` of a configuration's logger.
    """
    found = [p for p in runs.glob("*/checkpoints/last.ckpt") if p.is_file() and not p.parent.parent.is_symlink()]
    return max(found, key=lambda p: (p.stat().st_mtime, p.parent.parent.name)) if found else None


def resolve_resume(cfg: Any) -> Resume | None:
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
    and :meth:`ALTCLI.before_fit` keeps the CSV rows before it, so the curves read as those of an uninterrupted run.

    Args:
        cfg: The parsed ``fit`` configuration (modified in place).

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
    step = int(torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("global_step", 0))
    run = path.parent.parent
    own = path.name == "last.ckpt" and path.parent.name == "checkpoints"
    same = own and _same_path(run.parent if versioned else run, root)
    if same and versioned:
        for logger in loggers:  # the run's version for every logger that shares the first one's folder
            if _same_path(_runs_dir(logger), root):
                logger.init_args.version = run.name
        os.environ["ALT_RUN_VERSION"] = run.name
    for logger in loggers:
        if same and str(logger.class_path).endswith("TensorBoardLogger") and _same_path(_log_dir(logger), run):
            logger.init_args.purge_step = step
            logger.init_args.default_hp_metric = False  # its placeholder at step 0 was logged by the first part
    return Resume(path, step, run, same)


def _continue_csv_log(logger: CSVLogger, step: int) -> None:
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


def _user_sets_data(argv: list[str]) -> bool:
    """Whether the arguments choose a DataModule themselves.

    That is ``--data``, ``--data.class_path``, or a ``--config`` whose ``data:`` names a ``class_path``;
    ``--data.init_args.*`` only adjusts the checkpoint's own DataModule.
    """
    for i, a in enumerate(argv):
        if a.split("=", 1)[0] in ("--data", "--data.class_path"):
            return True
        path = None
        if a.startswith("--config="):
            path = a.split("=", 1)[1]
        elif a in ("--config", "-c") and i + 1 < len(argv):
            path = argv[i + 1]
        if path and Path(path).is_file():
            loaded = yaml.safe_load(Path(path).read_text()) or {}
            data = loaded.get("data") if isinstance(loaded, dict) else None
            if isinstance(data, (str, dict)) and (isinstance(data, str) or "class_path" in data):
                return True
    return False


def _with_checkpoint_defaults(argv: list[str]) -> list[str]:
    """Insert a checkpoint's saved model/data settings right after the subcommand, so later arguments win.

    Model settings always come back. Data settings come back only when the arguments name no data at all
    (``alt test --ckpt_path X``): a zero-shot test under another dataset must not inherit the training data's
    frames, views, cache folder or root for whatever its own config leaves unset.
    """
    if not argv or argv[0] not in ("fit", "validate", "test", "predict"):
        return argv
    ckpt = None
    for i, a in enumerate(argv):
        if a.startswith("--ckpt_path="):
            ckpt = a.split("=", 1)[1]
        elif a == "--ckpt_path" and i + 1 < len(argv):
            ckpt = argv[i + 1]
    if not ckpt or not Path(ckpt).is_file():
        return argv
    saved = torch.load(ckpt, weights_only=True, map_location="cpu")
    injected, last = [], []
    sources = [("model", "hyper_parameters")]
    if not _user_sets_data(argv[1:]):
        sources.append(("data", "datamodule_hyper_parameters"))
    for key, hp_key in sources:
        hp = dict(saved.get(hp_key) or {})
        if key == "data":  # nested wrapper DataModules of 0.1.0 become options of the one DataModule
            hp = upgrade_data_hparams(hp)
        hp.pop("_instantiator", None)
        class_path = hp.pop("_class_path", None)
        if not hp or class_path is None:
            continue
        if key == "model":
            for linked in LINKED_MODEL_ARGS:
                hp.pop(linked, None)
            if not _user_sets_model_class(argv[1:]):
                # The weights fit only the class that saved them: it wins over a config's class_path (an ALTModule
                # config testing a subclass's checkpoint); a class named on the command line wins over it.
                _check_importable(class_path, ckpt)
                last.append(f"--model.class_path={class_path}")
        injected.append(f"--{key}={json.dumps({'class_path': class_path, 'init_args': hp})}")
    return [argv[0], *injected, *argv[1:], *last]


def _user_sets_model_class(argv: list[str]) -> bool:
    """Whether the command line (not a config file) names the model class: ``--model X`` or ``--model.class_path``."""
    return any(a.split("=", 1)[0] in ("--model", "--model.class_path") for a in argv)


def _check_importable(class_path: str, ckpt: str) -> None:
    """Stop in one line when a checkpoint's model class cannot be imported here."""
    module, _, name = class_path.rpartition(".")
    try:
        getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise SystemExit(
            f"{ckpt} was saved by the model class {class_path}, which cannot be imported here ({err}): put its module "
            "on PYTHONPATH, or name a class that holds the same weights with --model.class_path."
        ) from None


def _print_extra_help() -> None:
    print("ALT subcommands besides fit / validate / test / predict:")
    for name, (_, doc) in EXTRA_COMMANDS.items():
        print(f"  alt {name:<12} {doc}")
    print(f"  alt {'predict':<12} VIDEO [VIDEO...] --labels FILE|a,b,c [--ckpt X.ckpt]: top-k classes and the entities")
    print(f"  {'':<16} that explain them (alt predict --config ... without videos: LightningCLI's predict)")
    print()


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``alt`` command.

    Args:
        args: Arguments without the program name; ``None`` reads ``sys.argv``.
    """
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] in EXTRA_COMMANDS:
        module, func = EXTRA_COMMANDS[argv[0]][0].split(":")
        return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)
    if argv and argv[0] == "predict" and _is_video_predict(argv[1:]):
        from alt_lightning.commands.predict import main as predict_videos

        return int(predict_videos(argv[1:]) or 0)
    if not argv or argv[0] in ("-h", "--help"):
        _print_extra_help()
    try:
        run_cli(argv)
    except CheckpointMismatchError as err:
        raise SystemExit(f"alt {argv[0]}: {err}") from None
    finally:
        _close_process_group()
    return 0


def _close_process_group() -> None:
    """Tear down a process group that torchrun/SLURM launches leave open.

    Without it, interpreter exit can destroy gloo's threads while they run ("terminate called without an active
    exception", exit code -6) after a successful ``alt fit``.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def run_cli(argv: list[str], cli_class: type[ALTCLI] = ALTCLI, **kwargs: Any) -> ALTCLI:
    """Build and run ``ALTCLI`` on ``argv`` (subcommand first) and return it (the protocol runner reads its trainer).

    Args:
        argv: Arguments without the program name, e.g. ``["test", "--config", "x.yaml"]``.
        cli_class: ``ALTCLI`` or a subclass of it.
        **kwargs: Further ``LightningCLI`` arguments (e.g. ``run=False`` with ``argv`` lacking the subcommand).
    """
    return cli_class(
        ALTModule,
        VideoDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        args=argv,
        auto_configure_optimizers=False,
        **kwargs,
    )


class _ParseOnly(ALTCLI):
    """``ALTCLI`` that parses (configs, checkpoint defaults, links declared) and stops: nothing seeded or built."""

    def _set_seed(self) -> None:
        """Parsing only: the global RNGs stay as they are (``alt fit`` seeds them when it runs)."""

    def before_instantiate_classes(self) -> None:
        """Nothing to check: nothing runs."""

    def instantiate_classes(self) -> None:
        """Nothing is instantiated: no backbone loaded or downloaded, no DataModule reading its files."""

    def _run_subcommand(self, subcommand: str) -> None:
        """Nothing runs."""


def parse_config(argv: list[str]) -> Any:
    """The configuration ``alt <subcommand> <args>`` would run with, parsed by the CLI's own parser, nothing built.

    Args:
        argv: Arguments with the subcommand first, e.g. ``["fit", "--config", "a.yaml", "--config", "b.yaml"]``.
            Without ``--ckpt_path`` (whose model and data settings come first), ``ALTModule`` and the base
            ``VideoDataModule`` with its defaults are assumed under the arguments, so that a model-only or data-only
            config parses.

    Returns:
        The subcommand's namespace (``.data``, ``.model``, ``.trainer``, ...), defaults filled in.

    Raises:
        ValueError: For arguments the subcommand would refuse (the parser's reason, one line).
    """
    import argparse

    ckpt = any(a.split("=", 1)[0] == "--ckpt_path" for a in argv)
    defaults = [] if ckpt else ["--model=ALTModule", f"--data={VideoDataModule.__module__}.VideoDataModule"]
    no_exit = {"exit_on_error": False}
    try:
        cli = _ParseOnly(
            ALTModule,
            VideoDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=[argv[0], *defaults, *argv[1:]],
            auto_configure_optimizers=False,
            parser_kwargs={**no_exit, argv[0]: no_exit},
        )
    except argparse.ArgumentError as err:
        raise ValueError(f"alt {argv[0]}'s parser refused {' '.join(argv[1:])}: {err}") from None
    return cli.config[cli.subcommand]


def _is_video_predict(argv: list[str]) -> bool:
    """``alt predict VIDEO ...`` (or ``--videos``/``--labels``/``--ckpt``): per-video prediction; else LightningCLI's.

    ``--ckpt`` belongs only to the per-video command (LightningCLI's is ``--ckpt_path``), so ``alt predict --ckpt X.ckpt
    clip.mp4`` (class names from the checkpoint) is routed here too.
    """
    if any(a.split("=")[0] in ("--videos", "--labels", "--ckpt") for a in argv):
        return True
    return bool(argv) and not argv[0].startswith("-")


if __name__ == "__main__":
    raise SystemExit(main())
