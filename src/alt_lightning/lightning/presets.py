"""The config presets shipped in the package, and ``--config NAME`` resolution.

The configs of the repository's ``configs/`` folder are package data (``alt_lightning/configs``, a link to that
folder in a checkout, a copy in a wheel), so they work after ``pip install`` too. A preset's name is its path under
``configs/`` without ``.yaml``::

    demo  model/alt_b16  model/alt_l14  model/tiny  data/k400  trainer/gpu  experiments/few_shot_ucf101  ...

``--config`` takes a file or a name: a value that is an existing file is that file; otherwise a preset name is the
packaged file, and so is a repository path of one (``configs/model/alt_b16.yaml``), so the documented commands run
from any folder. Anything else is left as it is, for the parser's own "file does not exist" error.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

#: Options that take a config file (LightningCLI's ``--config`` and its short form).
CONFIG_OPTIONS = ("--config", "-c")


def config_dir() -> Path:
    """The folder of the shipped config presets."""
    return Path(str(resources.files("alt_lightning") / "configs"))


def config_presets() -> dict[str, Path]:
    """Every shipped preset: name (``model/alt_b16``) -> its file, sorted by name."""
    root = config_dir()
    found = {p.relative_to(root).with_suffix("").as_posix(): p for p in root.rglob("*.yaml")}
    return dict(sorted(found.items()))


def preset_name(spec: str) -> str:
    """The preset name a ``--config`` value stands for: ``configs/model/alt_b16.yaml`` -> ``model/alt_b16``."""
    name = spec.replace(os.sep, "/").removeprefix("./").removeprefix("configs/")
    return name.removesuffix(".yaml")


def resolve_config(spec: str) -> str:
    """A ``--config`` value as a file path: an existing file as given, else the shipped preset it names.

    Returns:
        ``spec`` when it is a file or names no preset (the parser then reports it), else the preset's file.
    """
    if Path(spec).expanduser().exists():
        return spec
    found = config_presets().get(preset_name(spec))
    return str(found) if found is not None else spec


def resolve_config_args(argv: list[str]) -> list[str]:
    """``argv`` with the value of every ``--config`` / ``-c`` resolved by :func:`resolve_config`."""
    out = list(argv)
    for i, arg in enumerate(out):
        option, eq, value = arg.partition("=")
        if option not in CONFIG_OPTIONS:
            continue
        if eq:
            out[i] = f"{option}={resolve_config(value)}"
        elif i + 1 < len(out):
            out[i + 1] = resolve_config(out[i + 1])
    return out
