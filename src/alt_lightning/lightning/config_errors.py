"""The config parser's refusals as one line: the file, the line, the key and the closest accepted key.

jsonargparse reports a config problem as a multi-line message about Union subtypes, without the file it came from,
and a YAML syntax error as ``<unicode string>``. :func:`check_config_files` reads every ``--config`` file before the
parser does (a missing file, a YAML syntax error with its line and column); :func:`parse_error` turns what the parser
refused into a :class:`~alt_lightning.errors.UserError` naming the config file and line that hold an unknown key, and
the accepted key closest to it.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from alt_lightning.errors import UserError, closest
from alt_lightning.lightning.presets import CONFIG_OPTIONS


def config_files(argv: list[str]) -> list[str]:
    """The values of ``--config`` / ``-c`` in ``argv``, in order."""
    out = []
    for i, arg in enumerate(argv):
        option, eq, value = arg.partition("=")
        if option in CONFIG_OPTIONS:
            if eq:
                out.append(value)
            elif i + 1 < len(argv):
                out.append(argv[i + 1])
    return out


def check_config_files(argv: list[str]) -> None:
    """Every ``--config`` file exists and is valid YAML (read before the parser, which names no file).

    Raises:
        UserError: Naming the file (and for a syntax error its line and column, 1-based).
    """
    for spec in config_files(argv):
        path = Path(spec).expanduser()
        if spec.lstrip().startswith(("{", "[")) or "\n" in spec:  # an inline config string, not a file
            continue
        if not path.is_file():
            raise UserError(
                f"config {spec} is neither a file nor a shipped preset name",
                "`alt list` shows the presets (demo, model/alt_b16, data/k400, ...); check the path.",
            )
        try:
            yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            where = f"{spec}:{mark.line + 1}:{mark.column + 1}" if mark is not None else spec
            what = " ".join(str(err.problem or err.context or "invalid YAML").split())
            context = f" ({' '.join(err.context.split())})" if err.context and err.problem else ""
            raise UserError(
                f"{where}: YAML syntax error: {what}{context}",
                "fix the file at that line (a missing ',', ']' or '}', or an indentation that does not match).",
            ) from None
        except yaml.YAMLError as err:
            raise UserError(f"{spec}: not valid YAML: {' '.join(str(err).split())}") from None


_PARSER_KEY = re.compile(r'Parser key "([^"]+)"')
_CLASS_PATH = re.compile(r"class_path '([^']+)'")
_NOT_ACCEPTED = re.compile(r"Option '([^']+)' is not accepted")
_NOT_ACCEPTED_FULL = re.compile(r"does not accept option '([^']+)'")


def parse_error(message: str, argv: list[str], subcommand: str, options: Iterable[str] = ()) -> UserError:
    """What the parser refused as a :class:`UserError`: an unknown key with its file and line and the closest key.

    Args:
        message: The parser's message (jsonargparse's ``ArgumentError``).
        argv: The arguments parsed (the ``--config`` files are searched for the key).
        subcommand: ``fit``, ``test``, ... (for the hint).
        options: The subcommand parser's keys (``trainer.max_epochs``, ``model``, ...): what a top-level typo is
            compared with.
    """
    help_hint = f"`alt {subcommand} --help` lists the options; `--print_config` shows the whole configuration."
    key, accepted, owner = _unknown_key(message, list(options))
    if key is None:
        return UserError(f"alt {subcommand}: {_first_problem(message)}", help_hint)
    leaf = key[-1]
    where = _find_in_configs(config_files(argv), key)
    place = f"{where}: " if where else ""
    dotted = ".".join(key)
    under = f" ({owner} accepts no such argument)" if owner else ""
    guess = closest(leaf, accepted, n=1) if accepted else []
    hint = f"did you mean '{guess[0]}'?" if guess else help_hint
    return UserError(f"{place}unknown config key '{dotted}'{under}", hint)


def _unknown_key(message: str, options: list[str]) -> tuple[list[str] | None, list[str], str | None]:
    """(the unknown key's path, the names accepted beside it, the class it was given to) found in the message."""
    full = _NOT_ACCEPTED_FULL.search(message)
    if full:
        key = full.group(1).split(".")
        parent = ".".join(key[:-1])
        if key[0] == "trainer":
            from lightning.pytorch import Trainer

            return key, _arguments_of(Trainer), "Trainer"
        prefix = f"{parent}." if parent else ""
        siblings = [o[len(prefix) :] for o in options if o.startswith(prefix) and "." not in o[len(prefix) :]]
        return key, siblings, None
    found = list(_NOT_ACCEPTED.finditer(message))
    if not found:
        return None, [], None
    last = found[-1]
    before = message[: last.start()]
    # The indentation says which "Parser key" lines enclose the innermost error (jsonargparse nests them).
    chain = _enclosing_keys(before)
    classes = _CLASS_PATH.findall(before)
    owner_path = classes[-1] if classes else None
    cls = _import(owner_path) if owner_path else None
    accepted = _arguments_of(cls) if cls is not None else []
    parts = last.group(1).split(".")
    if accepted and parts[0] not in accepted:  # `adaptr: {layers: 2}` is reported as 'adaptr.layers'
        parts = parts[:1]
    return [*chain, *parts], accepted, owner_path.rsplit(".", 1)[-1] if owner_path else None


def _enclosing_keys(text: str) -> list[str]:
    """The ``Parser key "x"`` names that enclose the end of ``text`` (each deeper one more indented)."""
    keys: list[tuple[int, str]] = []
    for line in text.splitlines():
        m = _PARSER_KEY.search(line)
        if not m:
            continue
        indent = len(line) - len(line.lstrip())
        while keys and keys[-1][0] >= indent:
            keys.pop()
        keys.append((indent, m.group(1)))
    return [k for _, k in keys]


def _import(class_path: str) -> Any:
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


def _arguments_of(cls: Any) -> list[str]:
    """The arguments a class takes: a dataclass's fields, else ``__init__``'s (its bases' too, through ``**kwargs``)."""
    if dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls)]
    names: list[str] = []
    for klass in getattr(cls, "__mro__", ()):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            continue
        names += [p.name for p in params if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return list(dict.fromkeys(names))


def _find_in_configs(files: list[str], key: list[str]) -> str | None:
    """``file:line`` of the last config file that holds ``key`` (``init_args`` levels may sit between its parts)."""
    found = None
    for spec in files:
        path = Path(spec).expanduser()
        if not path.is_file():
            continue
        try:
            node = yaml.compose(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            continue
        line = _find_key(node, key)
        if line is not None:
            found = f"{spec}:{line}"
    return found


def _find_key(node: Any, key: list[str]) -> int | None:
    """The 1-based line of ``key``'s last part under ``node`` (a composed YAML node), or ``None``."""
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        name = getattr(k, "value", None)
        if name == key[0]:
            if len(key) == 1:
                return k.start_mark.line + 1
            line = _find_key(v, key[1:])
            if line is not None:
                return line
        elif name == "init_args":
            line = _find_key(v, key)
            if line is not None:
                return line
    return None


def _first_problem(message: str) -> str:
    """One line of a parser message: its first line, and the first reason listed under it that is not ``None``'s."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines:
        return "the arguments were refused"
    reasons = [
        line.lstrip("- ").strip()
        for line in lines[1:]
        if line.startswith("- ") and "Expected a <class 'NoneType'>" not in line
    ]
    head = lines[0].rstrip(":")
    return f"{head}: {reasons[0]}" if reasons and reasons[0] not in head else head
