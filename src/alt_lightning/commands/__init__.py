"""The ``alt`` subcommands: one module each, registered in :data:`COMMANDS`, dispatched by :func:`dispatch`.

Every command is a function ``(argv) -> exit code`` (``argv`` without the subcommand), imported only when it runs,
so ``alt --help`` and the light commands never load torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from rich.console import Console

from alt_lightning.errors import PlainHelpMixin, normalize_options


@dataclass(frozen=True)
class Command:
    """A subcommand: where its function lives and its line in ``alt --help``.

    Attributes:
        target: ``"module:function"``; the function takes the arguments after the subcommand, returns the exit code.
        help: One line.
    """

    target: str
    help: str

    def load(self) -> Callable[[list[str]], int | None]:
        """Import the command's function."""
        module, _, func = self.target.partition(":")
        return getattr(importlib.import_module(module), func)


#: ``alt <name> ...`` -> its :class:`Command`, in the order ``alt --help`` lists them.
COMMANDS: dict[str, Command] = {
    "fit": Command("alt_lightning.commands.trainer:run_fit", "train (LightningCLI; --config files or preset names)"),
    "validate": Command("alt_lightning.commands.trainer:run_validate", "evaluate a checkpoint on the validation split"),
    "test": Command("alt_lightning.commands.trainer:run_test", "evaluate a checkpoint on the test split"),
    "predict": Command(
        "alt_lightning.commands.predict:main",
        "VIDEO... --labels FILE|a,b,c [--ckpt X.ckpt]: top-k classes and the entities that explain them (no VIDEO: "
        "LightningCLI's predict)",
    ),
    "export": Command(
        "alt_lightning.commands.export:main",
        "CKPT OUT/: the trainable head as safetensors + config + model card, a Hugging Face model-repo folder",
    ),
    "corpus": Command("alt_lightning.commands.corpus:main", "inspect, validate, build, merge and embed entity corpora"),
    "check-data": Command(
        "alt_lightning.commands.check_data:main",
        "decode-check a DataModule's videos in parallel: report CSV (ok/bad, reason, frames, fps, size), clean lists",
    ),
    "loader-bench": Command(
        "alt_lightning.commands.loader_bench:main",
        "clips/s of the training and evaluation data path (decode + sample + transform) per worker count",
    ),
    "flops": Command(
        "alt_lightning.commands.flops:main",
        "FLOPs (multiply-adds, attention included) per component and view, and parameters, of a configuration",
    ),
    "protocol": Command(
        "alt_lightning.commands.protocol:main",
        "run a paper protocol (zero-shot splits, few-shot K x seed, base-to-novel) into one table + JSON",
    ),
    "bench": Command(
        "alt_lightning.commands.bench:main",
        "throughput, memory, FLOPs and parameters on this device (--baseline: vs the bare tower)",
    ),
    "cache": Command(
        "alt_lightning.commands.cache:main",
        "build, list (info) and remove (clear) frozen-feature caches of a configuration's videos",
    ),
    "prepare": Command(
        "alt_lightning.commands.prepare:main",
        "re-encode a dataset tree for fast decoding (short side 256, keyframe every 12 frames), same relative paths",
    ),
    "list": Command(
        "alt_lightning.commands.listing:main",
        "what ships with the package: backbones, entity corpora, class lists and config presets",
    ),
}


def print_commands() -> None:
    """The lines of ``alt --help``: every subcommand with its one-line help."""
    print("usage: alt <subcommand> [options]   (alt <subcommand> --help: its options)\n\nsubcommands:")
    for name, command in COMMANDS.items():
        print(f"  {name:<13} {command.help}")
    print("\n--config takes a file or a shipped preset name: demo, model/alt_b16, data/k400, experiments/..., ...")
    print("options take - or _ alike (--png-dir = --png_dir); --debug (or ALT_DEBUG=1): tracebacks of errors;")
    print("--version: the version; alt list: the shipped backbones, corpora, class lists and presets.")


def dispatch(argv: list[str]) -> int:
    """Run ``alt <argv>``: the subcommand named first, with the arguments after it.

    Arguments that start with an option (``alt --config x.yaml fit``) go to LightningCLI as they are.
    """
    if argv and argv[0] in COMMANDS:
        return int(COMMANDS[argv[0]].load()(argv[1:]) or 0)
    if argv and argv[0].startswith("-"):
        from alt_lightning.commands.trainer import run

        return run(argv)
    from alt_lightning.errors import did_you_mean

    guess = did_you_mean(argv[0], COMMANDS, n=1)
    print(f"error: unknown subcommand {argv[0]!r}; {guess or 'alt --help lists them.'}", file=sys.stderr)
    return 2


class HelpFormatter(PlainHelpMixin, argparse.HelpFormatter):
    """argparse's formatter with :class:`PlainHelpMixin`."""


class RawHelpFormatter(PlainHelpMixin, argparse.RawTextHelpFormatter):
    """argparse's raw-text formatter (line breaks kept) with :class:`PlainHelpMixin`."""


class ArgumentParser(argparse.ArgumentParser):
    """The parser of ALT's own subcommands: ``-`` and ``_`` alike in option names, help without reST markup.

    Subparsers (``alt corpus stats``) are of this class too.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        if kwargs.get("formatter_class") in (None, argparse.HelpFormatter):
            kwargs["formatter_class"] = HelpFormatter
        elif kwargs.get("formatter_class") is argparse.RawTextHelpFormatter:
            kwargs["formatter_class"] = RawHelpFormatter
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        """A usage error in one line and a hint (argparse prints the whole usage first), exit status 2."""
        print(f"error: {self.prog}: {message}\nhint: `{self.prog} --help` lists the options.", file=sys.stderr)
        sys.exit(2)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """argparse's, with option names spelt as this parser spells them (:func:`normalize_options`)."""
        argv = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(normalize_options(argv, set(self._option_string_actions)), namespace)


def parse_or_exit_code(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace | int:
    """Parse ``argv``; on ``--help`` or a usage error (argparse has printed it) return the exit code instead."""
    try:
        return parser.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else int(e.code is not None)


def report_console() -> Console:
    """A console for command output; a fixed width off a terminal keeps piped tables from folding at 80 columns."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 140)
