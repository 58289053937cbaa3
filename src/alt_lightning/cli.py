"""The ``alt`` command: the subcommand named first runs with the arguments after it.

``alt fit / validate / test / predict`` are LightningCLI (:mod:`alt_lightning.lightning.cli`); the others are ALT's
own (``alt corpus``, ``alt flops``, ...). Every subcommand is a module of :mod:`alt_lightning.commands`, listed in
its registry (:data:`alt_lightning.commands.COMMANDS`), which ``alt --help`` prints.
"""

from __future__ import annotations

import sys

from alt_lightning.commands import dispatch, print_commands


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``alt`` command.

    Args:
        args: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        The exit code.
    """
    argv = list(sys.argv[1:] if args is None else args)
    if not argv or argv[0] in ("-h", "--help"):
        print_commands()
        return 0 if argv else 2
    return dispatch(argv)


if __name__ == "__main__":
    raise SystemExit(main())
