"""Text classifier (ALT §3.4): scaled cosine similarity between the video vector and class-name embeddings."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class TextClassifier(nn.Module):
    """``logits_j = s * cos(z, c_j)`` with frozen class text embeddings ``c_j``.

    Swapping the embeddings (:meth:`set_class_embeddings`) changes the label space without retraining: that is
    zero-shot evaluation.

    Args:
        class_embeddings: ``[N, C]`` CLIP text embeddings of the class prompts (non-persistent buffer: recomputed
            from the backbone and the class names, never checkpointed).
        logit_scale: ``s``; the paper uses CLIP's (100 for OpenAI weights).
        learnable_scale: Learn ``log s`` (our choice: off, as ViFi-CLIP/X-CLIP keep CLIP's).
    """

    def __init__(
        self, class_embeddings: torch.Tensor, logit_scale: float = 100.0, learnable_scale: bool = False
    ) -> None:
        super().__init__()
        self.register_buffer("class_embeddings", F.normalize(class_embeddings.float(), dim=-1), persistent=False)
        log_scale = torch.tensor(math.log(logit_scale))
        if learnable_scale:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale, persistent=False)

    @property
    def num_classes(self) -> int:
        """Number of classes ``N``."""
        return self.class_embeddings.shape[0]

    def set_class_embeddings(self, class_embeddings: torch.Tensor) -> None:
        """Replace the label space (zero-shot), keeping device and dtype."""
        self.class_embeddings = F.normalize(class_embeddings.float(), dim=-1).to(self.class_embeddings.device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, N]`` of video vectors ``z`` ``[B, C]``."""
        return self.log_scale.exp() * F.normalize(z.float(), dim=-1) @ self.class_embeddings.T
