"""Text classifier (ALT §3.4): scaled cosine similarity between the video vector and class-name embeddings.

``logits_j = s * cos(z, c_j)`` where ``c_j`` is the frozen CLIP text embedding of class ``j``'s prompts (one template,
or the renormalised mean over an ensemble) and ``s`` is CLIP's logit scale. The class embeddings are buffers computed
once (and cached on disk by :mod:`alt_lightning.text.embeddings`); replacing them changes the label space without
retraining, which is how zero-shot evaluation works.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from alt_lightning.model.precision import autocast_off
from alt_lightning.text.prompts import DEFAULT_TEMPLATE, ENSEMBLE_TEMPLATES, build_prompts

#: Named prompt modes: ``single`` is the X-CLIP / ViFi-CLIP template, ``ensemble`` our 8 templates.
PROMPT_MODES: dict[str, tuple[str, ...]] = {"single": (DEFAULT_TEMPLATE,), "ensemble": tuple(ENSEMBLE_TEMPLATES)}


def resolve_templates(spec: str | Sequence[str]) -> list[str]:
    """Prompt templates from a spec.

    Args:
        spec: ``"single"`` (``"a video of a person {}."``), ``"ensemble"`` (our 8 templates; our choice of
            templates, paper silent), one template string containing ``{}``, or a list of such templates.

    Returns:
        The templates, each with one ``{}`` placeholder for the readable class name.

    Raises:
        ValueError: For an unknown mode name or a template without ``{}``.
    """
    if isinstance(spec, str):
        if spec in PROMPT_MODES:
            return list(PROMPT_MODES[spec])
        if "{}" not in spec:
            raise ValueError(
                f"prompt_templates={spec!r} is neither a mode ({', '.join(PROMPT_MODES)}) nor a template with '{{}}' "
                "for the class name."
            )
        return [spec]
    templates = list(spec)
    if not templates:
        raise ValueError("prompt_templates is an empty list; give at least one template with '{}'.")
    return templates


def class_prompts(class_names: Sequence[str], spec: str | Sequence[str] = "single") -> list[list[str]]:
    """``[N][P]`` prompts: every class name made readable, put into every template of ``spec``.

    Readable names: ``ApplyEyeMakeup`` -> ``apply eye makeup``, ``brush_hair`` -> ``brush hair``; names with spaces
    stay as they are.
    """
    return build_prompts(list(class_names), resolve_templates(spec))


class TextClassifier(nn.Module):
    """``logits_j = s * cos(z, c_j)`` with frozen class text embeddings ``c_j``.

    Swapping the embeddings (:meth:`set_class_embeddings`) changes the label space without retraining: that is
    zero-shot evaluation.

    Args:
        class_embeddings: ``[N, C]`` CLIP text embeddings of the class prompts (non-persistent buffer: recomputed
            from the backbone and the class names, never checkpointed).
        logit_scale: ``s``; the paper uses CLIP's (100 for OpenAI weights).
        learnable_scale: Learn ``log s``. Our choice (paper silent): off, as ViFi-CLIP and X-CLIP keep CLIP's;
            alternative: on (then it is checkpointed as a trainable parameter).
        class_names: The class names, kept for reports (optional).
    """

    class_embeddings: torch.Tensor  # [N, C] buffer (register_buffer)

    def __init__(
        self,
        class_embeddings: torch.Tensor,
        logit_scale: float = 100.0,
        learnable_scale: bool = False,
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        _check(class_embeddings, None, class_names)
        self.register_buffer("class_embeddings", F.normalize(class_embeddings.float(), dim=-1), persistent=False)
        self.class_names = list(class_names) if class_names is not None else None
        log_scale = torch.tensor(math.log(logit_scale))
        if learnable_scale:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale, persistent=False)

    @property
    def num_classes(self) -> int:
        """Number of classes ``N``."""
        return self.class_embeddings.shape[0]

    def set_class_embeddings(self, class_embeddings: torch.Tensor, class_names: Sequence[str] | None = None) -> None:
        """Replace the label space (zero-shot), keeping the device; the width ``C`` must stay the same."""
        _check(class_embeddings, self.class_embeddings.shape[1], class_names)
        self.class_embeddings = F.normalize(class_embeddings.float(), dim=-1).to(self.class_embeddings.device)
        self.class_names = list(class_names) if class_names is not None else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, N]`` (float32) of video vectors ``z`` ``[B, C]``."""
        # Autocast off: it would run the product in bf16 (logits rounded to 0.125-0.25 at scale 100, top-1 ties).
        with autocast_off(z.device):
            return self.log_scale.exp() * F.normalize(z.float(), dim=-1) @ self.class_embeddings.T


def _check(embeddings: torch.Tensor, width: int | None, names: Sequence[str] | None) -> None:
    if embeddings.ndim != 2 or embeddings.shape[0] == 0:
        raise ValueError(f"Class embeddings must be a non-empty [N, C] matrix, got {tuple(embeddings.shape)}.")
    if width is not None and embeddings.shape[1] != width:
        raise ValueError(f"Class embeddings have width {embeddings.shape[1]}, the classifier {width}.")
    if names is not None and len(names) != embeddings.shape[0]:
        raise ValueError(f"{len(names)} class names for {embeddings.shape[0]} class embeddings.")
