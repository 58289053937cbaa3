"""What a checkpoint says about its run, read in one place for every subcommand.

:func:`read_checkpoint` reads a checkpoint's settings (the ``alt`` entry: backbone, fingerprint, corpus and class
names; the model's class and arguments; the DataModule's class and arguments, those of 0.1.0's nested wrapper
DataModules translated by :func:`~alt_lightning.datamodules.legacy.upgrade_data_hparams`; the global step).
:func:`checkpoint_arguments` turns them into command-line defaults under the user's own arguments, which is how
``alt test --ckpt_path X``, ``alt fit --ckpt_path X``, the parse-only reader of the other subcommands
(:func:`alt_lightning.lightning.cli.parse_config`) and ``alt predict VIDEO --ckpt X`` restore a run's settings.

A checkpoint is a ``.ckpt`` file or a folder written by ``alt export`` (:data:`HEAD_WEIGHTS` with the trainable
weights as safetensors, :data:`HEAD_CONFIG` with the settings): :func:`load_checkpoint` reads either into the same
dictionary, so every reader (and Lightning, through :class:`HeadFolderCheckpointIO`) loads a folder as it loads a file.
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
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch import __version__ as LIGHTNING_VERSION

from alt_lightning.datamodules.legacy import upgrade_data_hparams
from alt_lightning.errors import UserError

#: LightningCLI's subcommands, which take ``--ckpt_path``.
RUN_SUBCOMMANDS = ("fit", "validate", "test", "predict")
#: Model arguments filled by links from the DataModule; never restored from a checkpoint.
LINKED_MODEL_ARGS = ("class_names", "num_frames")
#: The model class of a checkpoint that records none (one saved by a plain ``Trainer``, not by the ``alt`` command).
DEFAULT_MODEL_CLASS = "alt_lightning.lightning.module.ALTModule"
#: An exported head's weights (safetensors: tensors and a JSON header, no pickled code) and settings, as Hugging Face
#: model repositories name them.
HEAD_WEIGHTS = "model.safetensors"
HEAD_CONFIG = "config.json"
#: ``format`` of :data:`HEAD_CONFIG`, and the version of its layout.
HEAD_FORMAT = "alt-lightning-head"
HEAD_FORMAT_VERSION = 1


class CheckpointFormatError(UserError):
    """A checkpoint path that holds no readable checkpoint (an incomplete export folder, a run folder, ...)."""


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


def is_checkpoint_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a checkpoint to read: a file, or a folder (an exported head)."""
    return Path(path).is_file() or Path(path).is_dir()


def load_checkpoint(path: str | os.PathLike[str], weights: bool = True) -> dict[str, Any]:
    """A checkpoint as a dictionary: a ``.ckpt`` file, or an ``alt export`` folder in the same form.

    A folder gives the keys its settings restore (``state_dict``, ``hyper_parameters``, ``datamodule_hyper_parameters``,
    ``alt``, ``epoch``, ``global_step``, ``pytorch-lightning_version``), none of a resumable run's (optimizer,
    schedule, loops, callbacks).

    Args:
        path: A checkpoint file or an exported folder.
        weights: Read the weights too (``False``: the settings only, an empty ``state_dict`` for a folder).

    Raises:
        CheckpointFileError: If a file is missing, empty, truncated or not a checkpoint (one line).
        CheckpointFormatError: If a folder lacks :data:`HEAD_CONFIG` or :data:`HEAD_WEIGHTS`, or its config is not
            an exported head's.
    """
    if Path(path).expanduser().is_dir():
        return _load_head_folder(Path(path).expanduser(), weights)
    return load_checkpoint_file(path)


def _load_head_folder(folder: Path, weights: bool) -> dict[str, Any]:
    """An ``alt export`` folder as the checkpoint dictionary it was exported from (see :func:`load_checkpoint`)."""
    missing = [name for name in (HEAD_CONFIG, HEAD_WEIGHTS) if not (folder / name).is_file()]
    if missing:
        hint = " (a run folder? pass its checkpoints/best.ckpt)" if (folder / "checkpoints").is_dir() else ""
        raise CheckpointFormatError(
            f"{folder} is a folder without {' and '.join(missing)}, so not a head written by `alt export CKPT "
            f"{folder}`{hint}."
        )
    try:
        config = json.loads((folder / HEAD_CONFIG).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointFormatError(
            f"{folder / HEAD_CONFIG} is not readable JSON ({err}): export the head again."
        ) from None
    if not isinstance(config, dict) or config.get("format") != HEAD_FORMAT:
        raise CheckpointFormatError(
            f'{folder / HEAD_CONFIG} is not an alt export config (no "format": "{HEAD_FORMAT}"): export the head '
            "with `alt export CKPT OUT/`."
        )
    if int(config.get("format_version", 0)) > HEAD_FORMAT_VERSION:
        raise CheckpointFormatError(
            f"{folder / HEAD_CONFIG} has format_version {config.get('format_version')}, newer than this alt_lightning "
            f"reads ({HEAD_FORMAT_VERSION}): upgrade alt_lightning."
        )
    state: dict[str, torch.Tensor] = {}
    if weights:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(folder / HEAD_WEIGHTS, device="cpu")
        except (SafetensorError, OSError) as err:
            raise CheckpointFormatError(
                f"{folder / HEAD_WEIGHTS} is not a readable safetensors file ({err})."
            ) from None
    backbone, model, data = config.get("backbone") or {}, config.get("model") or {}, config.get("data")
    class_names = list(config.get("class_names") or [])
    checkpoint: dict[str, Any] = {
        "state_dict": state,
        "hyper_parameters": {
            "_class_path": model.get("class_path"),
            **model.get("init_args", {}),
            "class_names": class_names,
        },
        "alt": {
            "package_version": config.get("package_version"),
            "model_name": backbone.get("model_name"),
            "pretrained": backbone.get("pretrained"),
            "backbone_fingerprint": backbone.get("fingerprint"),
            "corpus": dict(config.get("corpus") or {}),
            "class_names": class_names,
        },
        "epoch": int(config.get("epoch", 0)),
        "global_step": int(config.get("global_step", 0)),
        # Built here in today's layout: nothing for Lightning's migrations of older checkpoints to change.
        "pytorch-lightning_version": LIGHTNING_VERSION,
    }
    if data:
        checkpoint["datamodule_hyper_parameters"] = {"_class_path": data.get("class_path"), **data.get("init_args", {})}
    return checkpoint


class HeadFolderCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint reader, which also reads ``alt export`` folders (:func:`load_checkpoint`).

    ``alt test/validate/predict --ckpt_path OUT/`` then load a folder through Lightning's own restore (the module's
    ``on_load_checkpoint`` checks, a strict ``load_state_dict``), exactly as they load a ``.ckpt`` file.
    """

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        """A folder through :func:`load_checkpoint`; a file as Lightning reads it."""
        if isinstance(path, (str, os.PathLike)) and Path(path).is_dir():
            return load_checkpoint(path)
        if map_location is None:
            return super().load_checkpoint(path, weights_only=weights_only)
        return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)


def saved_run(checkpoint: dict[str, Any], path: str | os.PathLike[str]) -> SavedRun:
    """The settings (:class:`SavedRun`) of a checkpoint dictionary read from ``path``."""
    model_class, model_args = _split(checkpoint.get("hyper_parameters"))
    data_class, data_args = _split(upgrade_data_hparams(dict(checkpoint.get("datamodule_hyper_parameters") or {})))
    return SavedRun(
        path=str(path),
        meta=dict(checkpoint.get("alt") or {}),
        model_class=model_class,
        model_args=model_args,
        data_class=data_class,
        data_args=data_args,
        global_step=int(checkpoint.get("global_step", 0)),
    )


def read_checkpoint(path: str | os.PathLike[str]) -> SavedRun:
    """Read a checkpoint's settings (:class:`SavedRun`); its weights are loaded by the module, not here.

    Raises:
        CheckpointFileError: If a file is missing or cannot be read (:func:`load_checkpoint_file`).
        CheckpointFormatError: If ``path`` is a folder but not an exported head.
    """
    return saved_run(load_checkpoint(path, weights=False), path)


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
