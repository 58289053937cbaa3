"""Entity-to-region alignment (ALT §3.2): each region takes the text embedding of its best-matching entity.

For the regions ``E`` of a frame and the corpus embeddings ``T_ent``::

    A   = s_a * norm(E) @ norm(T_ent)^T                      # [R, K] scaled cosine similarities
    A^S = softmax((A + G) / tau)   (training, G ~ Gumbel)    # plain softmax in evaluation
    A^H = onehot(argmax A^S) + A^S - detach(A^S)             # straight-through: hard forward, soft backward
    S^  = A^H @ T_ent                                        # [R, C] aligned entity embeddings
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class AlignmentConfig:
    """Settings of the alignment head.

    Args:
        scale: Similarity scale ``s_a``. Our choice (paper silent): ``None`` takes CLIP's own logit scale
            (100 for OpenAI weights), so the soft assignment is as peaked as CLIP's zero-shot classifier;
            alternatives: a fixed number, or learnable (``learnable_scale``).
        learnable_scale: Learn ``log s_a`` (our choice: off, the corpus and regions are frozen anyway).
        tau: Gumbel-softmax temperature ``tau_g`` in training (paper: configurable; our default 1.0).
        gumbel: Add Gumbel noise in training (paper: yes). Evaluation never adds noise (our choice: plain softmax,
            so evaluation is deterministic).
        hard: Straight-through hard one-hot (paper: yes); ``False`` uses the soft mixture of entities.
    """

    scale: float | None = None
    learnable_scale: bool = False
    tau: float = 1.0
    gumbel: bool = True
    hard: bool = True


@dataclass
class AlignmentOutput:
    """What the alignment head returns.

    Attributes:
        aligned: Aligned entity embeddings ``[..., R, C]`` (the adapter's query source).
        entity_ids: Chosen entity per region ``[..., R]`` (for explanations).
        confidence: Soft probability of the chosen entity ``[..., R]``.
    """

    aligned: torch.Tensor
    entity_ids: torch.Tensor
    confidence: torch.Tensor


class EntityAligner(nn.Module):
    """Aligns region tokens with a frozen entity corpus.

    Args:
        entity_embeddings: ``[K, C]`` CLIP text embeddings of the corpus (kept as a non-persistent buffer: they are
            recomputed from the backbone and the corpus, never checkpointed).
        config: :class:`AlignmentConfig`.
        clip_logit_scale: CLIP's ``exp(logit_scale)``, used when ``config.scale`` is ``None``.
    """

    def __init__(
        self,
        entity_embeddings: torch.Tensor,
        config: AlignmentConfig | None = None,
        clip_logit_scale: float = 100.0,
    ) -> None:
        super().__init__()
        self.config = config or AlignmentConfig()
        self.register_buffer("entities", F.normalize(entity_embeddings.float(), dim=-1), persistent=False)  # [K, C]
        scale = self.config.scale if self.config.scale is not None else clip_logit_scale
        log_scale = torch.tensor(math.log(scale))
        if self.config.learnable_scale:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale, persistent=False)

    @property
    def num_entities(self) -> int:
        """Corpus size ``K``."""
        return self.entities.shape[0]

    def similarity(self, regions: torch.Tensor) -> torch.Tensor:
        """Scaled cosine similarities ``[..., R, K]`` of regions ``[..., R, C]`` with every entity."""
        return self.log_scale.exp() * F.normalize(regions, dim=-1) @ self.entities.to(regions.dtype).T

    def forward(self, regions: torch.Tensor) -> AlignmentOutput:
        """Align regions ``[..., R, C]`` (any leading dims, e.g. ``[B, T, R, C]``)."""
        logits = self.similarity(regions)  # [..., R, K]
        if self.training and self.config.gumbel:
            u = torch.rand_like(logits).clamp_(1e-10, 1.0 - 1e-7)
            logits = logits - torch.log(-torch.log(u))  # + Gumbel(0, 1) noise
        tau = self.config.tau if self.training else 1.0
        soft = torch.softmax(logits.float() / tau, dim=-1).to(regions.dtype)  # [..., R, K]
        confidence, ids = soft.max(dim=-1)  # [..., R]
        entities = self.entities.to(regions.dtype)
        if self.config.hard:
            # Straight-through: the forward value is exactly the chosen entity's embedding (one gather instead of a
            # one-hot matmul); the backward pass is that of soft @ T_ent.
            hard = entities[ids]  # [..., R, C]
            if torch.is_grad_enabled() and soft.requires_grad:
                mixed = soft @ entities  # [..., R, C]
                aligned = hard + mixed - mixed.detach()
            else:
                aligned = hard
        else:
            aligned = soft @ entities
        return AlignmentOutput(aligned, ids, confidence)
