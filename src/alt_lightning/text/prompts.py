"""Turning class labels into text prompts for the CLIP text encoder."""

from __future__ import annotations

import re

#: Single template used by X-CLIP / ViFi-CLIP style video CLIP models.
DEFAULT_TEMPLATE = "a video of a person {}."

#: A small ensemble (our choice; CLIP's Kinetics prompts are in this spirit). Embeddings are averaged.
ENSEMBLE_TEMPLATES = (
    "a photo of a person {}.",
    "a video of a person {}.",
    "a example of a person {}.",
    "a demonstration of a person {}.",
    "a photo of {}.",
    "a video of {}.",
    "a person doing {}.",
    "a clip of {}.",
)

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def readable_name(label: str) -> str:
    """Make a dataset label readable for a text encoder.

    CamelCase (UCF-101) is split into words, ``snake_case`` (HMDB-51) gets spaces; names that already contain
    spaces (Kinetics, SSv2) are kept as they are, parentheses included (they separate K400 classes).

    Examples:
        ``"ApplyEyeMakeup"`` -> ``"apply eye makeup"``; ``"brush_hair"`` -> ``"brush hair"``;
        ``"YoYo"`` -> ``"yo yo"``; ``"playing guitar"`` -> ``"playing guitar"``.
    """
    if " " in label.strip():
        return label.strip()
    words = label.replace("_", " ").replace("-", " ")
    words = _CAMEL.sub(" ", words)
    return re.sub(r"\s+", " ", words).strip().lower()


def build_prompts(labels: list[str], templates: str | tuple[str, ...] | list[str]) -> list[list[str]]:
    """Prompts per label: ``len(labels)`` lists of ``len(templates)`` strings.

    Args:
        labels: Dataset class names.
        templates: One template or several with a ``{}`` placeholder for the readable class name.
    """
    if isinstance(templates, str):
        templates = [templates]
    for t in templates:
        if "{}" not in t:
            raise ValueError(f"Prompt template {t!r} has no '{{}}' placeholder for the class name.")
    return [[t.format(readable_name(label)) for t in templates] for label in labels]
