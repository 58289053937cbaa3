"""Entity-to-region alignment (ALT §3.2): each region takes the text embedding of its best-matching entity.

For the regions ``E`` of a frame and the corpus embeddings ``T_ent``::

    A   = s_a * norm(E) @ norm(T_ent)^T                      # [R, K] scaled cosine similarities
    A^S = softmax((A + G) / tau)   (training, G ~ Gumbel)    # plain softmax in evaluation
    A^H = onehot(argmax A^S) + A^S - detach(A^S)             # straight-through: hard forward, soft backward
    S^  = A^H @ T_ent                                        # [R, C] aligned entity embeddings

The paper states the Gumbel-softmax similarity, the hard one-hot and the detach trick; the scale ``s_a``, the
temperature values and the evaluation rule are ours (see :class:`AlignmentConfig`).

The straight-through estimator is inert in the default setting: its gradient flows into ``A`` and from there only
to the regions ``E`` and the scale ``s_a`` (the corpus embeddings are frozen buffers). With a frozen backbone
(``encoder.trainable_blocks=0``) and a fixed scale (``learnable_scale=False``) neither trains, so no parameter gets
a gradient through the alignment and the hard forward choice is all that matters; the adapter learns from the
chosen embeddings as given. It becomes active when something upstream of the alignment trains: unfrozen backbone
blocks (``encoder.trainable_blocks != 0``) or a learnable scale (``alignment.learnable_scale=True``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from alt_lightning.model.precision import autocast_off


@dataclass
class AlignmentConfig:
    """Settings of the alignment head.

    Args:
        scale: Similarity scale ``s_a``. Our choice (paper silent): ``None`` takes CLIP's own logit scale
            (100 for OpenAI weights), so the assignment is as peaked as CLIP's zero-shot classifier;
            alternatives: a fixed number, or learnable (``learnable_scale``).
        learnable_scale: Learn ``log s_a``. Our choice (paper silent): off, since regions and corpus are frozen
            the scale only sharpens the soft assignment; alternative: on (it then receives the STE gradient).
        tau: Gumbel-softmax temperature ``tau_g`` in training (paper: a temperature; its value is our choice, 1.0;
            alternatives: 0.5 or an annealed schedule set from a callback).
        gumbel: Add Gumbel noise in training (paper: yes). ``False`` gives a deterministic softmax in training too.
        eval_tau: Softmax temperature in evaluation. Our choice (paper silent): plain softmax (1.0) without noise,
            so evaluation is deterministic; it changes only the confidences (the argmax does not depend on it);
            alternative: the training ``tau``.
        hard: Straight-through hard one-hot (paper: yes); ``False`` uses the soft mixture of entities instead.
    """

    scale: float | None = None
    learnable_scale: bool = False
    tau: float = 1.0
    gumbel: bool = True
    eval_tau: float = 1.0
    hard: bool = True

    def __post_init__(self) -> None:
        if self.tau <= 0 or self.eval_tau <= 0:
            raise ValueError(f"alignment tau and eval_tau must be > 0, got tau={self.tau}, eval_tau={self.eval_tau}.")
        if self.scale is not None and self.scale <= 0:
            raise ValueError(f"alignment scale must be > 0 (or null for CLIP's logit scale), got {self.scale}.")


@dataclass
class AlignmentOutput:
    """What the alignment head returns.

    Attributes:
        aligned: Aligned entity embeddings ``[..., R, C]`` (the adapter's query source). In the forward pass each row
            is exactly one corpus embedding; with ``hard=True`` its gradient is that of the soft assignment.
        entity_ids: Chosen entity per region ``[..., R]`` (long; for explanations).
        confidence: Probability of the chosen entity under the (noisy, in training) soft assignment ``[..., R]``.
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

    Raises:
        ValueError: If the embeddings are not a non-empty ``[K, C]`` matrix.
    """

    entities: torch.Tensor  # [K, C] buffer (register_buffer)

    def __init__(
        self,
        entity_embeddings: torch.Tensor,
        config: AlignmentConfig | None = None,
        clip_logit_scale: float = 100.0,
    ) -> None:
        super().__init__()
        self.config = config or AlignmentConfig()
        _check_embeddings(entity_embeddings)
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

    def set_entity_embeddings(self, entity_embeddings: torch.Tensor) -> None:
        """Swap the corpus (same width ``C``), keeping device; e.g. a corpus extended for a new dataset."""
        _check_embeddings(entity_embeddings, self.entities.shape[1])
        self.entities = F.normalize(entity_embeddings.float(), dim=-1).to(self.entities.device)

    def similarity(self, regions: torch.Tensor) -> torch.Tensor:
        """Scaled cosine similarities ``[..., R, K]`` of regions ``[..., R, C]`` with every entity."""
        if regions.shape[-1] != self.entities.shape[1]:
            raise ValueError(
                f"Regions have width {regions.shape[-1]} but the corpus embeddings {self.entities.shape[1]}: embed "
                "the corpus with the same backbone as the image encoder."
            )
        # float32 with autocast off: under bf16 autocast the product would be rounded to ~3 digits, so entities
        # whose cosines differ by < 0.002 tie and the argmax falls on the lowest corpus index.
        with autocast_off(regions.device):
            unit = F.normalize(regions.float(), dim=-1)  # [..., R, C]
            return self.log_scale.exp() * unit @ self.entities.T  # [..., R, K] float32

    def forward(self, regions: torch.Tensor) -> AlignmentOutput:
        """Align regions ``[..., R, C]`` (any leading dims, e.g. ``[B, T, R, C]``)."""
        logits = self.similarity(regions)  # [..., R, K]
        if self.training and self.config.gumbel:
            u = torch.rand_like(logits, dtype=torch.float32).clamp_(1e-10, 1.0 - 1e-7)
            logits = logits.float() - torch.log(-torch.log(u))  # + Gumbel(0, 1) noise
        tau = self.config.tau if self.training else self.config.eval_tau
        # float32 softmax: with K ~ 2000 entities and s_a = 100, half precision would flatten small probabilities.
        soft = torch.softmax(logits.float() / tau, dim=-1)  # [..., R, K]
        # The choice is taken on the float32 probabilities: rounded to bf16 (regions from an autocast encoder), close
        # entities would tie and the argmax would fall on the lowest corpus index.
        confidence, ids = soft.max(dim=-1)  # [..., R]
        soft, confidence = soft.to(regions.dtype), confidence.to(regions.dtype)
        entities = self.entities.to(regions.dtype)  # [K, C]
        if not self.config.hard:
            return AlignmentOutput(soft @ entities, ids, confidence)
        # Straight-through: the forward value is exactly the chosen entity's embedding (a gather instead of the
        # one-hot matmul); x - x.detach() is exactly 0, so adding it changes only the backward pass, which becomes
        # that of soft @ T_ent. Without a graph (frozen regions, fixed scale, no_grad) the matmul is skipped.
        aligned = entities[ids]  # [..., R, C]
        if torch.is_grad_enabled() and soft.requires_grad:
            mixed = soft @ entities  # [..., R, C]
            aligned = aligned + (mixed - mixed.detach())
        return AlignmentOutput(aligned, ids, confidence)


def _check_embeddings(embeddings: torch.Tensor, width: int | None = None) -> None:
    if embeddings.ndim != 2 or embeddings.shape[0] == 0:
        raise ValueError(
            f"Entity embeddings must be a non-empty [K, C] matrix, got shape {tuple(embeddings.shape)}; "
            "is the corpus empty?"
        )
    if width is not None and embeddings.shape[1] != width:
        raise ValueError(f"New entity embeddings have width {embeddings.shape[1]}, the aligner {width}.")
