"""Loading the frozen open_clip backbone: model configs as data, pretrained tags or files, fingerprints.

The backbone is described by ``(model_name, pretrained)`` and rebuilt from that description; its weights are never
stored in our checkpoints. A fingerprint of the weights is stored instead, so that a checkpoint trained on one set
of weights is not silently evaluated on another.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import open_clip
import torch
from torch import nn

from alt_lightning.errors import DropMessages, UserError, closest

# The weights hash lives beside the text-embedding cache it also keys (text/ never imports model/); stored in
# checkpoints as the backbone's fingerprint.
from alt_lightning.text.embeddings import ClipModel as ClipModel
from alt_lightning.text.embeddings import fingerprint as fingerprint

_REGISTERED = False


def model_config_dir() -> Path:
    """Folder of the model configs shipped with the package (``alt-tiny`` and friends)."""
    return Path(str(resources.files("alt_lightning") / "resources" / "model_configs"))


def register_model_configs(extra: str | Path | None = None) -> list[str]:
    """Register the package's JSON model configs (and optionally a user's file or folder) with open_clip.

    Args:
        extra: A JSON model config or a folder of them, registered under their file stems.

    Returns:
        The names now known to open_clip that came from these configs.
    """
    global _REGISTERED
    names = []
    if not _REGISTERED:
        open_clip.add_model_config(model_config_dir())
        _REGISTERED = True
    names += [p.stem for p in model_config_dir().glob("*.json")]
    if extra is not None:
        open_clip.add_model_config(Path(extra))
        names += [p.stem for p in Path(extra).glob("*.json")] if Path(extra).is_dir() else [Path(extra).stem]
    return names


@dataclass(frozen=True)
class PreprocessConfig:
    """What the backbone expects of its input images (taken from open_clip, never hard-coded)."""

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"


def preprocess_config(clip_model: nn.Module) -> PreprocessConfig:
    """Read the image size, mean and std the backbone was trained with."""
    cfg: dict[str, Any] = dict(getattr(clip_model.visual, "preprocess_cfg", {}) or {})
    size = cfg.get("size", getattr(clip_model.visual, "image_size", 224))
    if isinstance(size, (tuple, list)):
        if size[0] != size[1]:
            raise ValueError(f"Non-square backbone input {size} is not supported.")
        size = size[0]
    mean = tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN))
    std = tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD))
    return PreprocessConfig(int(size), mean, std, str(cfg.get("interpolation", "bicubic")))


def load_clip(
    model_name: str, pretrained: str | None = None, *, device: str | torch.device = "cpu", seed: int | None = 0
) -> ClipModel:
    """Build an open_clip CLIP model and load its weights.

    Args:
        model_name: An open_clip architecture name (``ViT-B-16``, ``ViT-L-14``) or one of ours (``alt-tiny``).
        pretrained: An open_clip pretrained tag (``openai``, ``laion2b_s34b_b88k``), a path to a checkpoint file
            (``.pt``, ``.bin``, ``.safetensors``, a state_dict or an open_clip checkpoint), or ``None``/``""`` for
            random weights (tests, FLOP counting).
        device: Where to build the model.
        seed: Seed of the random initialisation (used without ``pretrained``, and for any weights a checkpoint does
            not hold). Our choice: 0, so that a random-weight backbone (demo, tests) is the same in every process and
            its checkpoints can be evaluated later; ``None`` draws from the global RNG. The global RNG is untouched.

    Returns:
        The CLIP model in eval mode.
    """
    register_model_configs()
    if model_name not in open_clip.list_models():
        near = closest(model_name, open_clip.list_models(), n=3)
        raise UserError(
            f"unknown backbone model_name={model_name!r}" + (f"; close names: {', '.join(near)}" if near else ""),
            "`alt list` shows the supported backbones (ViT-B-32, ViT-B-16, ViT-L-14, alt-tiny, ...); a JSON config of "
            "your own is registered with alt_lightning.model.backbone.register_model_configs(path).",
        )
    if pretrained:
        is_file = Path(pretrained).expanduser().is_file()
        if not is_file and pretrained not in open_clip.list_pretrained_tags_by_model(model_name):
            raise UserError(
                f"pretrained={pretrained!r} is neither a file nor a known tag of {model_name}",
                f"known tags: {', '.join(open_clip.list_pretrained_tags_by_model(model_name)) or 'none'}; or give "
                "a local weights file (pretrained: /path/to/weights.pt).",
            )
        if is_file:
            pretrained = str(Path(pretrained).expanduser())
    with torch.random.fork_rng(devices=[]), _no_random_weights_warning(not pretrained):
        if seed is not None:
            torch.manual_seed(seed)
        # open_clip also logs a failed download on the root logger: the error below says it, in one line.
        quiet = DropMessages("Failed to download")
        logging.getLogger().addFilter(quiet)
        try:
            model = open_clip.create_model(model_name, pretrained=pretrained or None, device=device)
        except (RuntimeError, OSError) as err:  # FileNotFoundError, huggingface_hub's errors
            if not pretrained or Path(pretrained).is_file() or "download" not in str(err).lower():
                raise
            raise download_error(model_name, pretrained, err) from err
        finally:
            logging.getLogger().removeFilter(quiet)
    return model.eval()


@contextlib.contextmanager
def _no_random_weights_warning(asked: bool) -> Iterator[None]:
    """Without weights asked for, open_clip's "No pretrained weights loaded" (root logger) states the request."""
    if not asked:
        yield
        return
    drop = DropMessages("No pretrained weights loaded for model")
    logging.root.addFilter(drop)
    try:
        yield
    finally:
        logging.root.removeFilter(drop)


def download_error(model_name: str, tag: str, err: BaseException) -> UserError:
    """The one-line error of a pretrained tag whose weights could not be downloaded (offline, no cache)."""
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    why = "HF_HUB_OFFLINE is set" if offline else " ".join(str(err).split())[:160]
    return UserError(
        f"pretrained={tag!r} needs a download of the {model_name} weights, which failed ({why}); they are not in the "
        "local cache",
        "download them once with a connection, or pass a local weights file: --pretrained /path/to/weights.pt "
        "(alt predict), model.init_args.pretrained: /path/to/weights.pt (configs).",
    )
