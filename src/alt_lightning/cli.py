"""The ``alt`` command: the subcommand named first runs with the arguments after it.

``alt fit / validate / test / predict`` are LightningCLI (``alt_lightning.lightning.cli``); the others are ALT's
own (``alt corpus``, ``alt flops``, ``alt list``, ...). Every subcommand is a module of ``alt_lightning.commands``,
listed in its registry (``COMMANDS``), which ``alt --help`` prints.

A user's mistake (:class:`~alt_lightning.errors.UserError`, also when a config parser wrapped it) is printed as
``error: <cause>`` and ``hint: <fix>`` with exit status 1; ``--debug`` anywhere on the command line, or
``ALT_DEBUG=1``, shows its traceback instead.
"""

from __future__ import annotations

import os
import sys

from alt_lightning.commands import dispatch, print_commands
from alt_lightning.errors import DEBUG_ENV, find_user_error


def main(args: list[str] | None = None) -> int:
    """Entry point of the ``alt`` command.

    Args:
        args: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        The exit code.
    """
    argv = list(sys.argv[1:] if args is None else args)
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "").lower() not in ("", "0", "false", "no")
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in ("-h", "--help"):
        print_commands()
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from alt_lightning import __version__

        print(f"alt-lightning {__version__}")
        return 0
    try:
        return dispatch(argv)
    except Exception as err:
        user = find_user_error(err)
        if user is None or debug:
            raise
        for line in user.lines():
            print(line, file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
