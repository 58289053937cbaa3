"""What the alignment says about a video: the entities its regions matched, and those that explain a class.

Every region of every sampled frame was matched to one corpus entity with some confidence (``ALTOutput.entity_ids``,
``confidence``; ``sizes`` counts the patches each region holds, ``source`` says which). For each entity,
:func:`entity_evidence` reports how much of the frames' area its regions cover (share) and their mean confidence.
An entity explains a class when regions matched it *and* its text embedding is closer to that class's prompt than to
the other labels' prompts. Our choice (the paper shows alignments but gives no scoring rule):
``relevance(e, c) = share(e) * confidence(e) * (cos(e, c) - mean_j cos(e, j))``; alternatives would read the
adapter's cross-attention weights or gradients.

The model is duck-typed (no Lightning here): ``module.model`` is an :class:`~alt_lightning.model.alt.ALT`, and calling
``module(video)`` runs it, as for ``ALTModule``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from alt_lightning.model.alt import ALTOutput
from alt_lightning.model.region_encoder import region_assignment


@dataclass
class EntityEvidence:
    """How a video's regions matched one entity.

    Attributes:
        entity_id: Index in the corpus.
        name: The entity (corpus unit).
        regions: Regions (over all frames and views) matched to it.
        share: Share of the frames' patch area those regions cover (0-1).
        confidence: Mean alignment confidence of those regions (0-1).
    """

    entity_id: int
    name: str
    regions: int
    share: float
    confidence: float

    def summary(self) -> str:
        """``name share% (confidence)``: how ``alt predict``'s console and the heatmaps' legend both print it."""
        return f"{self.name} {100 * self.share:.0f}% ({self.confidence:.2f})"


@dataclass
class ClassPrediction:
    """One of a video's top-k classes.

    Attributes:
        label: Class name.
        score: Probability (views averaged).
        entities: Entities that explain it, most relevant first, with their relevance.
    """

    label: str
    score: float
    entities: list[tuple[EntityEvidence, float]] = field(default_factory=list)


def entity_evidence(
    entity_ids: torch.Tensor, confidence: torch.Tensor, sizes: torch.Tensor | None, names: Sequence[str]
) -> list[EntityEvidence]:
    """Aggregate region-to-entity matches over frames and views, most area first.

    Args:
        entity_ids: ``[..., R]`` entity per region.
        confidence: ``[..., R]`` its confidence.
        sizes: ``[..., R]`` patches per region (``None``: every region counts as 1).
        names: Entity names by id.
    """
    ids = entity_ids.reshape(-1).long()
    conf = confidence.reshape(-1).float()
    area = torch.ones_like(conf) if sizes is None else sizes.reshape(-1).float()
    k = len(names)
    count = torch.bincount(ids, minlength=k).float()  # [K]
    covered = torch.zeros(k).index_add_(0, ids, area)  # [K]
    conf_sum = torch.zeros(k).index_add_(0, ids, conf)  # [K]
    used = torch.nonzero(count).flatten().tolist()
    total = float(area.sum())
    out = [
        EntityEvidence(
            entity_id=e,
            name=names[e],
            regions=int(count[e]),
            share=float(covered[e]) / total,
            confidence=float(conf_sum[e] / count[e]),
        )
        for e in used
    ]
    return sorted(out, key=lambda x: (-x.share, x.entity_id))


def output_evidence(
    out: ALTOutput, names: Sequence[str], region: bool, video: int | None = None
) -> list[EntityEvidence]:
    """:func:`entity_evidence` of a forward pass: all its clips (the views of one video), or clip ``video`` only.

    Args:
        out: The model output (``entity_ids`` and ``confidence`` ``[B, T, R]``, ``sizes`` ``[B, T, 1+R]``).
        names: Entity names by id.
        region: Whether the model aligns regions (``sizes`` weigh them by area) or frame cls tokens (each counts 1).
        video: Index of the one clip to aggregate (``None``: every clip of ``out``).

    Returns:
        The evidence, most area first; empty for a model without alignment.
    """
    if out.entity_ids is None or out.confidence is None:
        return []
    pick = slice(None) if video is None else video
    sizes = out.sizes[pick, ..., 1:].cpu() if (out.sizes is not None and region) else None  # drop the cls token
    return entity_evidence(out.entity_ids[pick].cpu(), out.confidence[pick].cpu(), sizes, names)


def explain_class(
    evidence: Sequence[EntityEvidence],
    entity_embeddings: torch.Tensor,
    class_embeddings: torch.Tensor,
    class_index: int,
    top: int = 3,
) -> list[tuple[EntityEvidence, float]]:
    """The matched entities that explain one class, by ``share * confidence * specificity``.

    Args:
        evidence: The video's matched entities (:func:`entity_evidence`).
        entity_embeddings: ``[K, C]`` normalised entity text embeddings.
        class_embeddings: ``[N, C]`` normalised class prompt embeddings.
        class_index: The class to explain.
        top: Entities returned at most.

    Returns:
        ``(evidence, relevance)`` with positive relevance, highest first.
    """
    if not evidence:
        return []
    ids = torch.tensor([e.entity_id for e in evidence])
    cos = entity_embeddings[ids].float() @ class_embeddings.float().T  # [E, N]
    specificity = cos[:, class_index] - cos.mean(dim=1)  # [E]
    scored = [(e, e.share * e.confidence * float(s)) for e, s in zip(evidence, specificity, strict=True)]
    scored = [x for x in scored if x[1] > 0]
    return sorted(scored, key=lambda x: -x[1])[:top]


def entity_patch_map(
    source: torch.Tensor, entity_ids: torch.Tensor, confidence: torch.Tensor, grid_size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which entity, and how confidently, each patch of each frame was aligned to.

    Args:
        source: ``[T, 1 + R, 1 + P]`` source map of the frames (cls row/column first).
        entity_ids: ``[T, R]`` entity chosen per region.
        confidence: ``[T, R]`` its soft probability.
        grid_size: ``(gh, gw)`` patch grid.

    Returns:
        ``entity [T, gh, gw]`` (long) and ``conf [T, gh, gw]`` (float).
    """
    region = region_assignment(source.float(), grid_size)  # [T, gh, gw], values in [0, R)
    t = region.shape[0]
    flat = region.reshape(t, -1)  # [T, P]
    entity = entity_ids.long().gather(1, flat).reshape_as(region)  # [T, gh, gw]
    conf = confidence.float().gather(1, flat).reshape_as(region)  # [T, gh, gw]
    return entity, conf


@contextmanager
def source_kept(encoder: Any, keep: bool = True) -> Iterator[None]:
    """Within the block, the region encoder also returns its source map (``keep_source``); restored after it.

    Training never pays for the source map: it is switched on only while explanations are drawn.
    """
    kept = encoder.keep_source
    encoder.keep_source = keep
    try:
        yield
    finally:
        encoder.keep_source = kept


@torch.no_grad()
def alignment_maps(module: nn.Module, video: torch.Tensor) -> tuple[ALTOutput, torch.Tensor, torch.Tensor]:
    """Run the model on clips ``[B, T, 3, S, S]`` with the source map kept; return the output and patch maps.

    The encoder's ``keep_source`` is switched on only for this call and the module is put in eval mode (no Gumbel
    noise), then both are restored.

    Args:
        module: A module whose ``model`` is the ALT and whose call runs it (``ALTModule``).
        video: ``[B, T, 3, S, S]`` normalised clips.

    Returns:
        The model output, ``entity [B, T, gh, gw]`` and ``conf [B, T, gh, gw]``.

    Raises:
        ValueError: If the model has no alignment (``align=False``) or no regions (``region=False``).
    """
    model = module.model
    if model.aligner is None:
        raise ValueError("This model has no entity alignment (align=False): there is nothing to draw.")
    if not model.region:
        raise ValueError("This model aligns frame cls tokens only (region=False): there are no regions to draw.")
    encoder = model.encoder
    was_training = module.training
    device = getattr(module, "device", None) or next(module.parameters()).device
    module.eval()
    try:
        with source_kept(encoder):
            out = module(video.to(device))
    finally:
        module.train(was_training)
    b, t = out.entity_ids.shape[:2]
    entity, conf = entity_patch_map(
        out.source.flatten(0, 1).cpu(),
        out.entity_ids.flatten(0, 1).cpu(),
        out.confidence.flatten(0, 1).cpu(),
        encoder.grid_size,
    )
    gh, gw = encoder.grid_size
    return out, entity.view(b, t, gh, gw), conf.view(b, t, gh, gw)
