"""What a checkpoint says about its run, read in one place for every subcommand.

:func:`read_checkpoint` reads a checkpoint's settings (the ``alt`` entry: backbone, fingerprint, corpus and class
names; the model's class and arguments; the DataModule's class and arguments, those of 0.1.0's nested wrapper
DataModules translated by :func:`~alt_lightning.datamodules.legacy.upgrade_data_hparams`; the global step).
:func:`checkpoint_arguments` turns them into command-line defaults under the user's own arguments, which is how
``alt test --ckpt_path X``, ``alt fit --ckpt_path X``, the parse-only reader of the other subcommands
(:func:`alt_lightning.lightning.cli.parse_config`) and ``alt predict VIDEO --ckpt X`` restore a run's settings.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from alt_lightning.datamodules.legacy import upgrade_data_hparams
from alt_lightning.errors import UserError

#: LightningCLI's subcommands, which take ``--ckpt_path``.
RUN_SUBCOMMANDS = ("fit", "validate", "test", "predict")
#: Model arguments filled by links from the DataModule; never restored from a checkpoint.
LINKED_MODEL_ARGS = ("class_names", "num_frames")
#: The model class of a checkpoint that records none (one saved by a plain ``Trainer``, not by the ``alt`` command).
DEFAULT_MODEL_CLASS = "alt_lightning.lightning.module.ALTModule"


@dataclass(frozen=True)
class SavedRun:
    """The settings a checkpoint holds (not its weights). Shared by its readers: copy before changing a dict.

    Attributes:
        path: The checkpoint file.
        meta: Its ``alt`` entry (``model_name``, ``pretrained``, ``backbone_fingerprint``, ``corpus``,
            ``class_names``); empty for checkpoints of other modules.
        model_class: The model's ``class_path`` (``None`` when not recorded).
        model_args: The model's init arguments.
        data_class: The DataModule's ``class_path`` (``None`` when not recorded).
        data_args: The DataModule's init arguments, in the form of the one DataModule base.
        global_step: The optimizer steps done when it was saved.
    """

    path: str
    meta: dict[str, Any] = field(default_factory=dict)
    model_class: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    data_class: str | None = None
    data_args: dict[str, Any] = field(default_factory=dict)
    global_step: int = 0

    @property
    def class_names(self) -> list[str]:
        """The class names it was trained on (its ``alt`` entry, else its model arguments; empty when unknown)."""
        return list(self.meta.get("class_names") or self.model_args.get("class_names") or [])


#: What a checkpoint that cannot be read needs; never "load it with weights_only=False" (that runs its code).
CHECKPOINT_HINT = (
    "point it at a complete checkpoint of `alt fit`, e.g. runs/<name>/latest/checkpoints/best.ckpt (or last.ckpt)."
)
#: ``--ckpt_path`` values that are not files (resolved by Lightning, or ``last`` by :mod:`.resume`).
SPECIAL_CKPT_PATHS = ("best", "last", "hpc", "registry")


class CheckpointFileError(UserError, FileNotFoundError):
    """A checkpoint file that cannot be read: missing, empty, truncated, or not a checkpoint."""

    def __init__(self, cause: str, hint: str | None = CHECKPOINT_HINT) -> None:
        UserError.__init__(self, cause, hint)


def load_checkpoint_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``torch.load`` of a checkpoint (tensors and plain data only), its failures named in one line.

    Raises:
        CheckpointFileError: Missing, a folder, empty, truncated, random bytes, or Python objects beyond plain data.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointFileError(f"checkpoint {path} does not exist")
    if not p.is_file():
        raise CheckpointFileError(f"checkpoint {path} is a folder, not a checkpoint file")
    size = p.stat().st_size
    if size == 0:
        raise CheckpointFileError(f"checkpoint {path} is empty (0 bytes): its save or copy did not finish")
    with open(p, "rb") as f:
        head = f.read(4)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            saved = torch.load(p, weights_only=True, map_location="cpu")
    except Exception as err:
        if head.startswith(b"PK"):
            state = "truncated" if not zipfile.is_zipfile(p) else "corrupted"
            why = f"is {state} ({size:,} bytes; its zip archive is incomplete): its save or copy did not finish"
        elif head[:1] == b"\x80" and isinstance(err, pickle.UnpicklingError):
            why = "holds Python objects beyond tensors and plain data: not a checkpoint of `alt fit`"
        else:
            why = "is not a PyTorch checkpoint (neither a zip archive nor a pickle of tensors)"
        raise CheckpointFileError(f"checkpoint {path} {why}") from err
    if not isinstance(saved, dict):
        raise CheckpointFileError(f"checkpoint {path} holds a {type(saved).__name__}, not a checkpoint's dict")
    return saved


def _split(hparams: dict[str, Any] | None) -> tuple[str | None, dict[str, Any]]:
    """``(class path, init arguments)`` of hyper-parameters as LightningCLI saves them (with ``_class_path``)."""
    hp = dict(hparams or {})
    hp.pop("_instantiator", None)
    return hp.pop("_class_path", None), hp


def read_checkpoint(path: str | os.PathLike[str]) -> SavedRun:
    """Read a checkpoint's settings (:class:`SavedRun`); its weights are loaded by the module, not here.

    Raises:
        CheckpointFileError: If ``path`` is missing, empty, truncated or not a checkpoint (one line).
    """
    saved = load_checkpoint_file(path)
    model_class, model_args = _split(saved.get("hyper_parameters"))
    data_class, data_args = _split(upgrade_data_hparams(dict(saved.get("datamodule_hyper_parameters") or {})))
    return SavedRun(
        path=str(path),
        meta=dict(saved.get("alt") or {}),
        model_class=model_class,
        model_args=model_args,
        data_class=data_class,
        data_args=data_args,
        global_step=int(saved.get("global_step", 0)),
    )


def ckpt_path_argument(argv: list[str]) -> str | None:
    """The value of ``--ckpt_path`` in ``argv`` (the last one wins, as in the parser), or ``None``."""
    found = None
    for i, a in enumerate(argv):
        if a.startswith("--ckpt_path="):
            found = a.split("=", 1)[1]
        elif a == "--ckpt_path" and i + 1 < len(argv):
            found = argv[i + 1]
    return found


def read_checkpoint_argument(argv: list[str]) -> SavedRun | None:
    """The settings of the checkpoint a LightningCLI subcommand's ``--ckpt_path`` names; ``None`` without a file.

    ``--ckpt_path last`` (resolved later, see :func:`alt_lightning.lightning.resume.resolve_resume`), Lightning's own
    values (``best``, ``hpc``, ``registry``) and remote paths give ``None``.

    Raises:
        CheckpointFileError: For a file that is missing or cannot be read (:func:`load_checkpoint_file`).
    """
    if not argv or argv[0] not in RUN_SUBCOMMANDS:
        return None
    ckpt = ckpt_path_argument(argv)
    if not ckpt or ckpt in SPECIAL_CKPT_PATHS or ckpt.startswith("registry:") or "://" in ckpt:
        return None
    return read_checkpoint(ckpt)


def user_sets_data(argv: list[str]) -> bool:
    """Whether the arguments choose a DataModule themselves.

    That is ``--data``, ``--data.class_path``, or a ``--config`` whose ``data:`` names a ``class_path``;
    ``--data.init_args.*`` only adjusts the checkpoint's own DataModule.
    """
    for i, a in enumerate(argv):
        if a.split("=", 1)[0] in ("--data", "--data.class_path"):
            return True
        path = None
        if a.startswith(("--config=", "-c=")):
            path = a.split("=", 1)[1]
        elif a in ("--config", "-c") and i + 1 < len(argv):
            path = argv[i + 1]
        if path and Path(path).is_file():
            loaded = yaml.safe_load(Path(path).read_text()) or {}
            data = loaded.get("data") if isinstance(loaded, dict) else None
            if isinstance(data, (str, dict)) and (isinstance(data, str) or "class_path" in data):
                return True
    return False


def user_sets_model_class(argv: list[str]) -> bool:
    """Whether the command line (not a config file) names the model class: ``--model X`` or ``--model.class_path``."""
    return any(a.split("=", 1)[0] in ("--model", "--model.class_path") for a in argv)


def check_importable(class_path: str, ckpt: str) -> None:
    """Stop in one line when a checkpoint's model class cannot be imported here.

    Raises:
        SystemExit: Naming the class, the reason and the fix.
    """
    module, _, name = class_path.rpartition(".")
    try:
        getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise SystemExit(
            f"{ckpt} was saved by the model class {class_path}, which cannot be imported here ({err}): put its module "
            "on PYTHONPATH, or name a class that holds the same weights with --model.class_path."
        ) from None


def checkpoint_arguments(argv: list[str], saved: SavedRun | None = None, insert_at: int = 1) -> list[str]:
    """Insert a checkpoint's saved model/data settings before the user's arguments, so the user's win.

    Model settings always come back (the class ``ALTModule`` when the checkpoint records none). Data settings come
    back only when the arguments name no data at all (``alt test --ckpt_path X``): a zero-shot test under another
    dataset must not inherit the training data's frames, views, cache folder or root for whatever its own config
    leaves unset. The weights fit only the class that saved them: a recorded model class wins over a config's
    ``class_path`` (an ``ALTModule`` config testing a subclass's checkpoint); one named on the command line wins over
    it.

    Args:
        argv: Arguments with the subcommand first.
        saved: The checkpoint's settings; ``None`` reads the one ``--ckpt_path`` names (none: ``argv`` unchanged).
        insert_at: Where the user's arguments start (after the subcommand and any defaults placed before them).

    Returns:
        ``argv[:insert_at]``, the checkpoint's settings, ``argv[insert_at:]`` and, last, its model class.
    """
    if saved is None:
        saved = read_checkpoint_argument(argv)
    if saved is None:
        return list(argv)
    user = argv[insert_at:]
    injected, last = [], []
    if saved.model_args or saved.model_class is not None:
        args = {k: v for k, v in saved.model_args.items() if k not in LINKED_MODEL_ARGS}
        class_path = saved.model_class or DEFAULT_MODEL_CLASS
        if saved.model_class is not None and not user_sets_model_class(user):
            check_importable(saved.model_class, saved.path)
            last.append(f"--model.class_path={saved.model_class}")
        injected.append(f"--model={json.dumps({'class_path': class_path, 'init_args': args})}")
    if saved.data_class is not None and saved.data_args and not user_sets_data(user):
        injected.append(f"--data={json.dumps({'class_path': saved.data_class, 'init_args': saved.data_args})}")
    return [*argv[:insert_at], *injected, *user, *last]
