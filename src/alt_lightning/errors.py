"""What the user reads: :class:`UserError`, printed by the ``alt`` command as one line and a hint, no traceback.

Raise a :class:`UserError` (or a subclass) wherever a wrong path, name, key or file given by the user is found; the
``alt`` entry point (:func:`alt_lightning.cli.main`) prints ``error: <cause>`` and ``hint: <fix>`` and exits with 1.
``alt --debug ...`` or ``ALT_DEBUG=1`` shows the traceback instead. It derives from ``ValueError``, so code that
catches ``ValueError`` around a user's input keeps doing so. Config parsers (jsonargparse) wrap what a constructor
raises into their own errors; :func:`find_user_error` finds the user's error inside such a chain. Help text made
from docstrings goes through :func:`plain_text` (no reST markup in ``--help``), and option names typed with ``-`` or
``_`` are one option (:func:`normalize_options`). Log records the user should not read (a dependency's lines that
say nothing about the run) are dropped by :class:`DropMessages`.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import re
from collections.abc import Iterable


class DropMessages(logging.Filter):
    """A logging filter that drops records whose message starts with one of ``prefixes``."""

    def __init__(self, *prefixes: str) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep the record unless its message starts with one of the prefixes."""
        return not str(record.getMessage()).startswith(self.prefixes)


#: Set to ``1`` to see tracebacks of user errors (as ``alt --debug``).
DEBUG_ENV = "ALT_DEBUG"


class UserError(ValueError):
    """A mistake in what the user gave: printed as one line (the cause) and an optional hint line (the fix).

    Attributes:
        cause: What is wrong, naming the file, path, key or name.
        hint: How to fix it (``None``: no hint line).
    """

    def __init__(self, cause: str, hint: str | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.hint = hint

    def lines(self, where: str | None = None) -> list[str]:
        """``error: <cause>`` and, with a hint, ``hint: <fix>`` (each on one line).

        Args:
            where: What raised it, put before the cause (``"alt test"`` gives ``error: alt test: <cause>``).
        """
        out = [f"error: {where + ': ' if where else ''}{_one_line(self.cause)}"]
        if self.hint:
            out.append(f"hint: {_one_line(self.hint)}")
        return out


class MissingExtraError(UserError, ModuleNotFoundError):
    """An optional package (``wandb``, ``mlflow``) is not installed; the hint names the extra that installs it."""

    def __init__(self, cause: str, hint: str | None = None, name: str | None = None) -> None:
        UserError.__init__(self, cause, hint)
        self.name = name
        self.msg = cause


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def find_user_error(err: BaseException) -> UserError | None:
    """The :class:`UserError` that ``err`` is or was raised from (``__cause__``/``__context__`` chain), or ``None``."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, UserError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def closest(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The ``n`` choices closest to ``name`` (``difflib``; case-insensitive), best first; may be empty."""
    by_lower: dict[str, str] = {}
    for c in choices:
        by_lower.setdefault(c.lower(), c)
    found = difflib.get_close_matches(name.lower(), list(by_lower), n=n, cutoff=0.6)
    return [by_lower[f] for f in found]


def did_you_mean(name: str, choices: Iterable[str], n: int = 3) -> str:
    """``"did you mean 'x'?"`` (or ``"'x' or 'y'?"``) for the closest choices; ``""`` when none is close."""
    found = closest(name, choices, n)
    return f"did you mean {' or '.join(repr(f) for f in found)}?" if found else ""


_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`(~?)([^`<]*?)\s*(?:<[^>`]*>)?`")
_LINK = re.compile(r"`([^`<]+?)\s*<([^>`]+)>`_+")


def plain_text(text: str) -> str:
    """Docstring text without reST markup, as help shows it (ours and Lightning's docstrings feed ``--help``).

    ````x```` -> ``x``; ``:class:`~a.b.C``` -> ``C``; ``:func:`a.b``` -> ``a.b``; ```text <url>`_`` -> ``text (url)``.
    """
    text = _ROLE.sub(lambda m: m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2), text)
    text = _LINK.sub(lambda m: f"{m.group(1)} ({m.group(2)})", text)
    return text.replace("``", "")


def normalize_options(argv: list[str], known: set[str] | None = None) -> list[str]:
    """``argv`` with option names in the spelling the parser knows: ``--png-dir`` and ``--png_dir`` are one option.

    Args:
        argv: Arguments; only option names change (the part before ``=``), never values, nor anything after ``--``.
        known: The parser's option strings: a name it does not know becomes the other spelling when it knows that
            one. ``None``: every ``-`` in a long option's name becomes ``_`` (jsonargparse / LightningCLI parsers,
            whose options are Python names).
    """
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--":
            break
        if not arg.startswith("--") or len(arg) < 3:
            continue
        name, eq, value = arg.partition("=")
        if known is None:
            alt = "--" + name[2:].replace("-", "_")
        elif name in known:
            continue
        else:
            swapped = [("--" + name[2:].replace("-", "_")), ("--" + name[2:].replace("_", "-"))]
            alt = next((c for c in swapped if c in known), name)
        out[i] = alt + eq + value
    return out


class PlainHelpMixin:
    """A help formatter mixin: descriptions and option help without reST markup (:func:`plain_text`)."""

    def _format_text(self, text: str) -> str:
        return super()._format_text(plain_text(text))  # type: ignore[misc]

    def _expand_help(self, action: argparse.Action) -> str:
        return plain_text(super()._expand_help(action))  # type: ignore[misc]

    def start_section(self, heading: str | None) -> None:
        """Section titles (argument groups named by docstrings) without reST markup too."""
        super().start_section(plain_text(heading) if heading else heading)  # type: ignore[misc]
