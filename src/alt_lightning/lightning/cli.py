"""``ALTCLI``: LightningCLI with ALT's links, defaults and checkpoint-restored settings; the one config reader.

``alt fit --config model/alt_b16 --config data/k400 --config trainer/ddp --config experiments/supervised_k400``
trains (``--config`` takes files or shipped preset names, :mod:`~alt_lightning.lightning.presets`; ``--ckpt_path
last`` resumes the newest run of that config in its own folder, :mod:`~alt_lightning.lightning.resume`); ``alt test
--config ... --ckpt_path X.ckpt`` tests with the model and data settings restored from the checkpoint
(:mod:`~alt_lightning.lightning.checkpoints`: explicit arguments win; the checkpoint's model class wins over config
files), its backbone checked before anything expensive is built. ``alt test`` without a checkpoint is refused unless
``--zero_shot_from_clip`` asks for CLIP's own zero-shot classifier.

Every subcommand reads configs and checkpoints through this parser: :func:`run_cli` runs it (``alt fit``, ``alt
cache``, the protocol runner's units) and :func:`parse_config` parses only (``alt flops``, ``alt predict VIDEO``,
``alt check-data``, ``alt loader-bench``, the protocol planner).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentParser, DefaultHelpFormatter
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger

from alt_lightning.datamodules.base import VideoDataModule
from alt_lightning.errors import PlainHelpMixin, normalize_options
from alt_lightning.lightning.callbacks import PredictionWriter
from alt_lightning.lightning.checkpoints import (
    LINKED_MODEL_ARGS,
    RUN_SUBCOMMANDS,
    HeadFolderCheckpointIO,
    SavedRun,
    checkpoint_arguments,
    is_checkpoint_path,
    read_checkpoint,
    read_checkpoint_argument,
)
from alt_lightning.lightning.config_errors import check_config_files, parse_error
from alt_lightning.lightning.console import quiet_console
from alt_lightning.lightning.loggers import check_logger_extras
from alt_lightning.lightning.module import VIDEO_COUNTS, ALTModule, expect_checkpoint
from alt_lightning.lightning.presets import resolve_config_args
from alt_lightning.lightning.resume import continue_csv_log, resolve_resume, same_path
from alt_lightning.lightning.runs import VERSION_ENV, place_run

#: What :func:`parse_config` assumes when the arguments name no model or no DataModule (a model-only or data-only
#: config still parses). The base DataModule lists no records: :func:`data_given` tells it apart.
PLACEHOLDER_MODEL = f"{ALTModule.__module__}.ALTModule"
PLACEHOLDER_DATA = f"{VideoDataModule.__module__}.VideoDataModule"


def trainer_defaults(save_dir: str = "runs") -> dict[str, Any]:
    """Trainer defaults: TensorBoard + CSV logs in one run folder, rich progress and summary, best/last checkpoints.

    The loggers' ``name`` and ``version`` are set per run by :func:`~alt_lightning.lightning.runs.place_run`
    (``--run_name``, ``<subcommand>-<timestamp>``). TensorBoard's ``hp_metric`` placeholder (a constant -1 at step 0)
    is off: the hyper-parameters are in ``config.yaml`` and ``hparams.yaml``.
    """
    logger_args = {"save_dir": save_dir}
    return {
        "logger": [
            {
                "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                "init_args": {**logger_args, "default_hp_metric": False},
            },
            {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": logger_args},
        ],
        "callbacks": [
            {"class_path": "alt_lightning.lightning.callbacks.ProgressBar"},
            {"class_path": "alt_lightning.lightning.callbacks.ModelSummary", "init_args": {"max_depth": 2}},
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


class HelpFormatter(PlainHelpMixin, DefaultHelpFormatter):
    """jsonargparse's help formatter, with descriptions and option help free of reST markup (ours and Lightning's)."""


class ALTArgumentParser(LightningArgumentParser):
    """Lightning's parser with :class:`HelpFormatter` by default (the ``--model.help X`` parsers are made of it too)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs.setdefault("prog", "alt")
        super().__init__(*args, **kwargs)


class ALTCLI(LightningCLI):
    """LightningCLI with ALT's links, defaults and checkpoint-restored settings.

    Attributes:
        leading_args: Arguments placed right after the subcommand, before the checkpoint's settings and the user's
            arguments (the placeholders of :func:`parse_config`).
        checkpoint: The settings of the checkpoint ``--ckpt_path`` names (read once), or ``None``.
    """

    leading_args: tuple[str, ...] = ()
    checkpoint: SavedRun | None = None

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        """Lightning's parser, whose refusals :meth:`parse_arguments` turns into one line, with reST-free help."""
        kwargs.setdefault("exit_on_error", False)
        self.parser_class = ALTArgumentParser if self.parser_class is LightningArgumentParser else self.parser_class
        return super().init_parser(**kwargs)

    def add_arguments_to_parser(self, parser: Any) -> None:
        """Class names and the frame count flow from the DataModule to the model, so configs never repeat them."""
        for linked in LINKED_MODEL_ARGS:
            parser.link_arguments(f"data.{linked}", f"model.init_args.{linked}", apply_on="instantiate")
        parser.set_defaults({f"trainer.{k}": v for k, v in trainer_defaults().items()})
        parser.add_argument(
            "--run_name",
            type=str | None,
            default=None,
            help="name of the run: TensorBoard, CSV logs, checkpoints and config.yaml go to "
            "runs/<run_name>/<subcommand>-<timestamp>/ (a test of a checkpoint in a run folder writes under that run). "
            "Default: the config's logger name, else 'alt'.",
        )
        parser.add_argument(
            "--zero_shot_from_clip",
            action="store_true",
            help="validate/test/predict without trained weights: the adapter's residual weight is set to 0, so the "
            "video vector is CLIP's mean frame embedding (CLIP's own zero-shot classifier). Without it, validate and "
            "test need --ckpt_path (or model.init_args.init_weights) and refuse to score an untrained adapter.",
        )

    def parse_arguments(self, parser: Any, args: Any) -> None:
        """Parse, with config preset names resolved and a checkpoint's settings as defaults under the user's own.

        ``alt`` always passes the argument list, so Lightning's warning about ``args`` beside ``sys.argv`` (meant for
        notebooks) does not apply and is not raised.
        """
        if isinstance(args, dict) or (args is not None and not isinstance(args, (list, tuple))):
            self.config = parser.parse_object(args)
            return
        argv = resolve_config_args(normalize_options(list(sys.argv[1:] if args is None else args)))
        check_config_files(argv)
        start = 1
        if self.leading_args and argv and argv[0] in RUN_SUBCOMMANDS:
            argv = [argv[0], *self.leading_args, *argv[1:]]
            start += len(self.leading_args)
        self.checkpoint = read_checkpoint_argument([argv[0], *argv[start:]]) if argv else None
        try:
            self.config = parser.parse_args(checkpoint_arguments(argv, self.checkpoint, insert_at=start))
        except argparse.ArgumentError as err:
            sub = argv[0] if argv and argv[0] in RUN_SUBCOMMANDS else "fit"
            raise parse_error(str(err), argv, sub, _option_keys(parser, sub)) from err

    def _parse_ckpt_path(self) -> None:
        """Done in :meth:`parse_arguments` instead.

        A private hook, overridden because LightningCLI calls it unconditionally right after parsing, and its version
        re-reads the checkpoint and lays its model settings *over* the parsed config (the user's explicit arguments
        lose, data settings never come back); there is no public switch to turn it off.
        """

    def saved_run(self, path: str | os.PathLike[str]) -> SavedRun:
        """The settings of the checkpoint at ``path``, read once per CLI."""
        if self.checkpoint is None or not same_path(self.checkpoint.path, path):
            self.checkpoint = read_checkpoint(path)
        return self.checkpoint

    def _subcommand_config(self) -> Any:
        return self.config.get(self.subcommand) if self.subcommand else self.config

    def before_instantiate_classes(self) -> None:
        """Check where the weights come from; resolve a resume (``fit --ckpt_path``); drop ruled-out callbacks."""
        cfg = self._subcommand_config()
        if self.subcommand and cfg is not None:
            check_weights_source(self.subcommand, cfg)
        trainer = cfg.get("trainer") if cfg is not None else None
        loggers = trainer.get("logger") if trainer is not None else None
        if isinstance(loggers, list) or hasattr(loggers, "class_path"):
            check_logger_extras(
                [getattr(lg, "class_path", "") for lg in (loggers if isinstance(loggers, list) else [loggers])]
            )
        self.run_folder = place_run(cfg, self.subcommand) if self.subcommand and cfg is not None else None
        self.resume = resolve_resume(cfg, self.saved_run) if self.subcommand == "fit" and cfg is not None else None
        if self.run_folder is not None and os.environ.get(VERSION_ENV) is None:
            # Processes launched by the trainer (DDP) take the same folder; run_cli restores the variable afterwards.
            os.environ[VERSION_ENV] = self.run_folder.name
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

    def before_fit(self) -> None:
        """Open the CSV logs; a run resumed into its own folder keeps its CSV curves up to the checkpoint."""
        resume = getattr(self, "resume", None)
        if resume is not None and resume.same_folder:
            # Lightning warns that the folder of the resumed run is not empty: that is the point of resuming into it.
            warnings.filterwarnings("ignore", message=f"Checkpoint directory {re.escape(str(resume.checkpoints))}")
            if self.trainer.is_global_zero:
                for logger in self.trainer.loggers:
                    if isinstance(logger, CSVLogger) and same_path(logger.log_dir, resume.run):
                        continue_csv_log(logger, resume.step)
        self._open_csv_logs()

    def _open_csv_logs(self) -> None:
        """Create the CSV loggers' writers now, before anything else writes into the run folder.

        Lightning's CSV logger opens its folder lazily and warns that "previous log files will be deleted" when it
        finds it not empty, which it always would: ``config.yaml`` and TensorBoard's events are written there first.
        Opened first, it warns only about a folder that held files before this run.
        """
        for logger in self.trainer.loggers:
            if isinstance(logger, CSVLogger):
                _ = logger.experiment  # rank 0 only (a dummy elsewhere); a writer already open is returned as is

    def instantiate_classes(self) -> None:
        """Instantiate, checking the backbone against the checkpoint's before the corpus and prompts are embedded."""
        cfg = self._subcommand_config()
        ckpt = cfg.get("ckpt_path") if cfg is not None else None
        meta = self.saved_run(ckpt).meta if ckpt and is_checkpoint_path(ckpt) else None
        if not meta:
            super().instantiate_classes()
        else:
            with expect_checkpoint(str(ckpt), meta) as expected:
                try:
                    super().instantiate_classes()
                except Exception:
                    if expected.error is not None:  # jsonargparse wraps what the constructor raised: raise it as is
                        raise expected.error from None
                    raise
        strategy = getattr(getattr(self, "trainer", None), "strategy", None)
        if strategy is not None and type(strategy.checkpoint_io) is TorchCheckpointIO:
            # --ckpt_path may name an `alt export` folder: Lightning restores it as it restores a .ckpt file.
            strategy.checkpoint_io = HeadFolderCheckpointIO()

    def _zero_shot_from_clip(self) -> bool:
        cfg = self._subcommand_config()
        return bool(cfg is not None and cfg.get("zero_shot_from_clip"))

    def _weights_note(self) -> str:
        return "  (CLIP zero-shot: no trained weights)" if self._zero_shot_from_clip() else ""

    def before_validate(self) -> None:
        """``--zero_shot_from_clip``: CLIP's own classifier (see :meth:`ALTModule.use_clip_zero_shot`)."""
        self._open_csv_logs()
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
        """Print the headline numbers, what became of every listed video, the corpus, and where the results went."""
        self._print_eval("test")
        self._write_results("test")

    def after_validate(self) -> None:
        """The same lines as ``alt test`` prints, for the validation split."""
        self._print_eval("val")
        self._write_results("val")

    def _write_results(self, stage: str) -> None:
        """``<log_dir>/<stage>_results.json``: the resolved checkpoint, the metrics and the files written."""
        log_dir = self.trainer.log_dir  # a broadcast under DDP: every rank must ask, not only rank 0
        m = self.trainer.callback_metrics
        if not self.trainer.is_global_zero or not log_dir or f"{stage}/top1" not in m:
            return
        folder = Path(log_dir)
        cfg = self._subcommand_config()
        ckpt = cfg.get("ckpt_path") if cfg is not None else None
        files = {}
        for cb in getattr(self.trainer, "callbacks", []):  # set by the Trainer at run time, not declared
            path = getattr(cb, "last_path", None) if isinstance(cb, PredictionWriter) else None
            if path is not None and Path(path).name.endswith(f"_{stage}.csv"):
                files["predictions"] = str(Path(path).resolve())
        for logger in self.trainer.loggers:
            if isinstance(logger, CSVLogger):
                files["metrics_csv"] = str((Path(logger.log_dir) / "metrics.csv").resolve())
        results = {
            "stage": stage,
            "checkpoint": str(Path(ckpt).resolve()) if ckpt and Path(ckpt).is_file() else ckpt,
            "zero_shot_from_clip": self._zero_shot_from_clip(),
            "metrics": {k: float(v) for k, v in sorted(m.items()) if k.startswith(f"{stage}/")},
            "files": files,
        }
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / f"{stage}_results.json"
        out.write_text(json.dumps(results, indent=2) + "\n")
        if "predictions" in files:
            self.trainer.print(f"per-video predictions: {files['predictions']}")
        self.trainer.print(f"metrics and checkpoint used: {out.resolve()}")

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


def _option_keys(parser: Any, subcommand: str) -> list[str]:
    """The keys (``trainer.max_epochs``, ``model``, ...) of a subcommand's parser, for suggestions."""
    action = getattr(parser, "_subcommands_action", None)
    sub = action.choices.get(subcommand) if action is not None else None
    return [a.dest for a in getattr(sub or parser, "_actions", []) if a.dest and a.dest != "help"]


def check_weights_source(subcommand: str, cfg: Any) -> None:
    """Refuse to validate or test an untrained adapter unless ``--zero_shot_from_clip`` asks for CLIP alone.

    Raises:
        SystemExit: With one line naming the cause and the fix.
    """
    zero_shot = bool(cfg.get("zero_shot_from_clip"))
    init_weights = cfg.get("model.init_args.init_weights") if cfg.get("model") is not None else None
    trained = cfg.get("ckpt_path") or init_weights
    ckpt = cfg.get("ckpt_path")
    if subcommand == "fit" and ckpt and Path(ckpt).is_dir():
        raise SystemExit(
            f"alt fit: --ckpt_path {ckpt} is a folder (an `alt export` head: weights only, no optimizer state or "
            f"epoch to resume): start a new run from its weights with --model.init_args.init_weights={ckpt}."
        )
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


def run_cli(argv: list[str], cli_class: type[ALTCLI] = ALTCLI, **kwargs: Any) -> ALTCLI:
    """Build and run ``ALTCLI`` on ``argv`` (subcommand first) and return it (the protocol runner reads its trainer).

    Args:
        argv: Arguments without the program name, e.g. ``["test", "--config", "x.yaml"]``.
        cli_class: ``ALTCLI`` or a subclass of it.
        **kwargs: Further ``LightningCLI`` arguments (e.g. ``run=False`` with ``argv`` lacking the subcommand).
    """
    quiet_console()
    version = os.environ.get(VERSION_ENV)
    # Lightning's default (True) seeds 0 as well, with a "No seed found" warning on every run that names no seed
    # (an `alt test --ckpt_path X` without a config): the same seed, said once in the config instead.
    kwargs.setdefault("seed_everything_default", 0)
    try:
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
    finally:  # the run's own folder name must not name the next run of this process (in-process tests, notebooks)
        if version is None:
            os.environ.pop(VERSION_ENV, None)
        else:
            os.environ[VERSION_ENV] = version


class _ParseOnly(ALTCLI):
    """``ALTCLI`` that parses (configs, checkpoint defaults, links declared) and stops: nothing seeded or built.

    ``LightningCLI(run=False)`` would skip the subcommand, but it parses without one, so a subcommand's own arguments
    (``--ckpt_path``) and config keys would not be read as the run reads them; hence ``run=True`` with the running
    and seeding hooks emptied.
    """

    leading_args = (f"--model={PLACEHOLDER_MODEL}", f"--data={PLACEHOLDER_DATA}")
    #: Adds a command's own arguments to the subcommand's parser (see :func:`parse_config`).
    extra_arguments: Callable[[Any], None] | None = None

    def add_arguments_to_parser(self, parser: Any) -> None:
        """ALT's arguments, then the command's own."""
        super().add_arguments_to_parser(parser)
        if self.extra_arguments is not None:
            self.extra_arguments(parser)

    def _set_seed(self) -> None:
        """Parsing only: the global RNGs stay as they are (``alt fit`` seeds them when it runs).

        A private hook, overridden because LightningCLI seeds in ``__init__`` between parsing and instantiation, and
        a config's ``seed_everything: 0`` would reseed the reading process (a protocol runner between units).
        """

    def before_instantiate_classes(self) -> None:
        """Nothing to check: nothing runs."""

    def instantiate_classes(self) -> None:
        """Nothing is instantiated: no backbone loaded or downloaded, no DataModule reading its files."""

    def _run_subcommand(self, subcommand: str) -> None:
        """Nothing runs (a private hook: LightningCLI with a subcommand runs it at the end of ``__init__``)."""


def parse_config(argv: list[str], add_arguments: Callable[[Any], None] | None = None) -> Any:
    """The configuration ``alt <subcommand> <args>`` would run with, parsed by the CLI's own parser, nothing built.

    Args:
        argv: Arguments with the subcommand first, e.g. ``["fit", "--config", "a.yaml", "--config", "b.yaml"]``.
            ``ALTModule`` and the base ``VideoDataModule`` with its defaults are assumed under the arguments (and
            under a ``--ckpt_path``'s settings), so that a model-only or data-only config parses.
        add_arguments: Adds a command's own options to the parser (``parser.add_argument(...)``), so that one parser
            reads them beside the configs (``alt check-data --config ... --workers 2``).

    Returns:
        The subcommand's namespace (``.data``, ``.model``, ``.trainer``, ... and the command's options), defaults
        filled in.

    Raises:
        ValueError: For arguments the subcommand would refuse (the parser's reason, one line).
    """
    cli_class: type[_ParseOnly] = _ParseOnly
    if add_arguments is not None:
        cli_class = type("_ParseOnly", (_ParseOnly,), {"extra_arguments": staticmethod(add_arguments)})
    no_exit = {"exit_on_error": False}
    try:
        cli = cli_class(
            ALTModule,
            VideoDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=argv,
            auto_configure_optimizers=False,
            parser_kwargs={**no_exit, argv[0]: no_exit},
        )
    except argparse.ArgumentError as err:
        raise ValueError(f"alt {argv[0]}'s parser refused {' '.join(argv[1:])}: {err}") from None
    return cli.config[cli.subcommand]


def data_given(cfg: Any) -> bool:
    """Whether a :func:`parse_config` result names a DataModule (not the placeholder assumed without one)."""
    return cfg.get("data") is not None and cfg.data.class_path != PLACEHOLDER_DATA


def instantiate_data(cfg: Any) -> VideoDataModule:
    """The DataModule of a :func:`parse_config` result, built as the run builds it; nothing else is instantiated.

    Raises:
        ValueError: If the configuration names no DataModule.
    """
    if not data_given(cfg):
        raise ValueError("no DataModule given: pass a config with a data: section, or --data.class_path ...")
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(VideoDataModule, "data", required=True)
    # `instantiate` since jsonargparse 4.49 (`instantiate_classes` before).
    parsed = parser.parse_object({"data": cfg.data})
    init = parser.instantiate(parsed) if hasattr(parser, "instantiate") else parser.instantiate_classes(parsed)
    return init.data
