"""The ALT model: region encoder -> entity alignment -> query adapter -> text classifier."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from alt_lightning.model.adapter import QueryAdapter
from alt_lightning.model.alignment import EntityAligner
from alt_lightning.model.classifier import TextClassifier
from alt_lightning.model.region_encoder import RegionEncoder


@dataclass
class EncoderConfig:
    """Settings of the region encoder.

    Args:
        r: ToMe tokens merged per block (paper: ToMe in every block; r = 8 is our reading of its 328 GFLOPs;
            0 switches ToMe off, the paper's "ToMe" ablation).
        trainable_blocks: 0 frozen (the design card's choice; the paper's text as recovered does not say), -1 all,
            k > 0 the last k blocks (our option).
        keep_source: Keep the patch-to-region map for heatmaps (explanations; costs memory).
        proportional_attention: ToMe's log-size attention bias (on, as ToMe publishes it).
        cast_frozen_bf16: On a GPU with bf16 precision, store the frozen tower in bf16 once instead of letting
            autocast re-cast it at every call. Our option, off by default: it saved memory but no time in our
            measurements (docs/benchmarks.md).
        attention: How the log-size bias enters attention: ``mask`` (default) or ``folded`` (an extra q/k channel,
            so a GPU can use its flash kernel); same logits (:class:`RegionEncoder`).
        compile: ``none`` (default), ``merge`` (compiled ToMe merges), ``reduce-overhead`` (``torch.compile`` of the
            encoder) or ``cuda-graphs`` (replayed CUDA graphs, frozen encoder only); falls back to eager with a
            warning if compilation fails (:class:`RegionEncoder`).
    """

    r: int = 8
    trainable_blocks: int = 0
    keep_source: bool = False
    proportional_attention: bool = True
    cast_frozen_bf16: bool = False
    attention: str = "mask"
    compile: str = "none"


@dataclass
class ALTOutput:
    """Everything a forward pass yields.

    Attributes:
        logits: ``[B, N]`` class scores.
        z: ``[B, C]`` video vector.
        entity_ids: ``[B, T, R]`` entity chosen per region (``None`` without alignment).
        confidence: ``[B, T, R]`` its soft probability.
        sizes: ``[B, T, 1+R]`` patches per token.
        source: ``[B, T, 1+R, 1+P]`` patch-to-token map when kept.
    """

    logits: torch.Tensor
    z: torch.Tensor
    entity_ids: torch.Tensor | None = None
    confidence: torch.Tensor | None = None
    sizes: torch.Tensor | None = None
    source: torch.Tensor | None = None


class ALT(nn.Module):
    """Align before Adapt.

    Args:
        encoder: Frozen CLIP ViT with token merging (:class:`RegionEncoder`).
        aligner: Entity-to-region alignment; ``None`` is the paper's "learnable queries" ablation (``align``).
        adapter: Query video adapter.
        classifier: Class-name text classifier.
        region: Use region tokens (paper); ``False`` is the paper's "cls only" ablation. How that ablation is wired
            is our choice (paper silent): keys/values are the ``T`` frame cls tokens and the queries are the entities
            aligned to those cls tokens (one per frame), so only the token set changes; alternative: keep region
            queries and cls-only keys.
    """

    def __init__(
        self,
        encoder: RegionEncoder,
        aligner: EntityAligner | None,
        adapter: QueryAdapter,
        classifier: TextClassifier,
        region: bool = True,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.aligner = aligner
        self.adapter = adapter
        self.classifier = classifier
        self.region = region

    def encode_frames(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Region tokens of every frame: ``[B, T, 1+R, C]``, sizes ``[B, T, 1+R]``, source or ``None``."""
        b = video.shape[0]
        out = self.encoder(rearrange(video, "b t c h w -> (b t) c h w"))
        tokens = rearrange(out.tokens, "(b t) n c -> b t n c", b=b)
        sizes = rearrange(out.size, "(b t) n -> b t n", b=b)
        source = None if out.source is None else rearrange(out.source, "(b t) n p -> b t n p", b=b)
        return tokens, sizes, source

    def forward_features(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """From frame tokens ``[B, T, 1+R, C]`` to ``z`` ``[B, C]`` (plus entity ids and confidences).

        Split from :meth:`forward` so that cached frozen features (issue: feature cache) skip the encoder.
        """
        if not self.region:
            tokens = tokens[:, :, :1]  # [B, T, 1, C]
        ids = confidence = aligned = None
        if self.aligner is not None:
            query_src = tokens[:, :, 1:] if self.region else tokens  # [B, T, R, C]
            a = self.aligner(query_src)
            aligned, ids, confidence = a.aligned, a.entity_ids, a.confidence
        z = self.adapter(tokens, aligned, confidence)  # [B, C]
        return z, ids, confidence

    def forward(self, video: torch.Tensor) -> ALTOutput:
        """Classify a batch of clips ``[B, T, 3, S, S]``."""
        tokens, sizes, source = self.encode_frames(video)
        # A frozen tower stored in bf16 (encoder.cast_frozen_bf16) yields bf16 tokens; outside autocast (heatmap
        # callback, alt predict) they would meet the fp32 head. Give the head its own dtype, as cached tokens get.
        head_param = next(self.adapter.parameters(), None)  # any adapter (configure_adapter may replace it)
        if head_param is not None:
            tokens = tokens.to(head_param.dtype)  # [B, T, 1+R, C]
        z, ids, confidence = self.forward_features(tokens)
        return ALTOutput(self.classifier(z), z, ids, confidence, sizes, source)
