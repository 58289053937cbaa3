"""Extra `alt` subcommands beside training (`alt corpus`, ...), each a module with `main(argv) -> int`."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console


def parse_or_exit_code(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace | int:
    """Parse ``argv``; on ``--help`` or a usage error (argparse has printed it) return the exit code instead."""
    try:
        return parser.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else int(e.code is not None)


def report_console() -> Console:
    """A console for command output; a fixed width off a terminal keeps piped tables from folding at 80 columns."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 140)
