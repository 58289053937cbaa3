"""Query video adapter (ALT §3.3): aligned entity embeddings query all frames' tokens, giving one video vector.

Queries ``Q = MLP_q(S^) + frame position``; keys/values ``K, V = MLP_kv(E) + temporal position`` over every frame's
tokens (cls and regions); ``M`` pre-LN decoder layers (cross-attention, then FFN); the output queries are pooled and
the pooled vector goes through ``LayerNorm + Linear`` (``out_proj``) to ``z``; optionally ``z = mean frame cls +
gamma * z`` with a small learnable ``gamma``.

The paper fixes the structure (entity text embeddings as queries, multi-frame visual embeddings as keys/values, MLPs
on both sides, cross-attention, one output vector; an earlier version added a 1-D temporal convolution); every
number and the residual are our choices, each an :class:`AdapterConfig` field.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

POOLS = ("mean", "confidence")


@dataclass
class AdapterConfig:
    """Settings of the query adapter.

    Args:
        layers: Decoder layers ``M``. Our choice (paper silent): 1, since the paper's 328 GFLOPs leave room for
            about one such layer at width 512 (``alt flops --adapter_layers 2`` shows the cost of more).
        heads: Attention heads. Our choice: 8 (CLIP's text-side convention at width 512).
        mlp_ratio: FFN hidden width over ``C``. Our choice: 4, as in CLIP's own blocks.
        max_frames: Rows of the frame/temporal position tables. ``None`` (default): the model's ``num_frames``, the
            frame count of the run (linked from the data). Checkpoints written before ``num_frames`` existed store a
            number here (the tables they hold), so they load unchanged.
        top_m: Our option (paper silent): keep only the ``top_m`` queries with the highest alignment confidence;
            ``None`` keeps all ``T*R`` (default, the cheaper alternative cuts the attention cost).
        temporal_conv: Our option (from the paper's earlier version): a depthwise 1-D temporal convolution (kernel
            3) over the per-frame cls tokens before they enter the keys, initialised to zero so it starts as the
            identity; off by default (the final paper dropped it).
        learnable_queries: Queries per frame of the ``align=False`` ablation (learnable instead of entity queries).
            Our choice: ``None`` uses as many as regions per frame, plus the frame position, so the ablation
            changes only where the queries come from, not their number; alternative: any fixed count.
        cls_residual: Our choice (paper silent on how training starts): ``z = mean_t cls_t + gamma * adapter`` with
            ``gamma`` learnable, initialised at ``residual_init``, so training starts near CLIP's zero-shot
            behaviour; ``False`` gives ``z = adapter`` alone.
        residual_init: Initial ``gamma`` (our choice 0.1; 0 would start exactly at CLIP's zero-shot classifier).
        dropout: Dropout in attention and FFN (our choice 0.0).
        pool: Our choice: ``"mean"`` over output queries; alternative ``"confidence"``: mean weighted by alignment
            confidence.
        out_proj: Our choice (neither the paper nor its peers' descriptions have it): ``LayerNorm + Linear`` on the
            pooled vector, the usual closing of a pre-LN decoder, whose outputs are otherwise never normalised; it
            also lets the adapter's output scale differ from the cls tokens' before the residual. ``False``: the
            pooled vector itself.
    """

    layers: int = 1
    heads: int = 8
    mlp_ratio: float = 4.0
    max_frames: int | None = None
    top_m: int | None = None
    temporal_conv: bool = False
    learnable_queries: int | None = None
    cls_residual: bool = True
    residual_init: float = 0.1
    dropout: float = 0.0
    pool: str = "mean"
    out_proj: bool = True

    def __post_init__(self) -> None:
        if self.layers < 1:
            raise ValueError(f"adapter.layers must be >= 1, got {self.layers}.")
        if self.pool not in POOLS:
            raise ValueError(f"adapter.pool must be one of {POOLS}, got {self.pool!r}.")
        if self.top_m is not None and self.top_m < 1:
            raise ValueError(f"adapter.top_m must be >= 1 or null (all queries), got {self.top_m}.")
        if self.learnable_queries is not None and self.learnable_queries < 1:
            raise ValueError(f"adapter.learnable_queries must be >= 1 or null, got {self.learnable_queries}.")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"adapter.max_frames must be >= 1 or null (num_frames), got {self.max_frames}.")


def mlp(dim: int, hidden: int, out: int | None = None, dropout: float = 0.0) -> nn.Sequential:
    """Two-layer GELU MLP ``dim -> hidden -> out`` (``out`` defaults to ``dim``)."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out or dim))


class CrossAttentionLayer(nn.Module):
    """Pre-LN decoder layer without self-attention: ``x += CA(LN(x), LN(kv)); x += FFN(LN(x))``.

    Our choice (paper silent): no self-attention among queries, since the paper describes only cross-attention and
    800 queries would make self-attention the dominant adapter cost; alternative: a full decoder layer.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"Width {dim} is not divisible by {heads} heads; choose adapter.heads dividing it.")
        self.heads = heads
        self.dropout = dropout
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = mlp(dim, int(dim * mlp_ratio), dropout=dropout)

    def forward(self, x: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        """Queries ``x`` ``[B, Q, C]`` attend over ``kv`` ``[B, N, C]``; returns ``[B, Q, C]``."""
        q = rearrange(self.q(self.norm_q(x)), "b q (h d) -> b h q d", h=self.heads)
        k, v = rearrange(self.kv(self.norm_kv(kv)), "b n (two h d) -> two b h n d", two=2, h=self.heads)
        attn = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.out(rearrange(attn, "b h q d -> b q (h d)"))  # [B, Q, C]
        return x + self.ffn(self.norm_ffn(x))


class QueryAdapter(nn.Module):
    """Entity-query cross-attention adapter.

    Args:
        dim: Width ``C`` (the joint CLIP space: 512 for B/16, 768 for L/14).
        config: :class:`AdapterConfig`.
        num_regions: Regions per frame ``R`` (1 for the cls-only ablation); sizes the learnable-query table of the
            ``align=False`` ablation.
        entity_queries: Queries come from aligned entities (paper). ``False`` builds the learnable-query table of
            the ``align=False`` ablation; it exists only then, so that no parameter is left without a gradient
            (DDP's unused-parameter check).
        num_frames: Frames per clip ``T``: the rows of the position tables unless ``config.max_frames`` sets them.
    """

    #: The parameters with one row per frame (a checkpoint's tables may hold more rows than a run needs).
    temporal_tables = ("frame_pos", "temporal_pos")

    def __init__(
        self,
        dim: int,
        config: AdapterConfig | None = None,
        num_regions: int = 1,
        entity_queries: bool = True,
        num_frames: int = 8,
    ) -> None:
        super().__init__()
        self.config = c = config or AdapterConfig()
        self.dim = dim
        self.num_frames = rows = c.max_frames or num_frames
        self.query_mlp = mlp(dim, dim)
        self.kv_mlp = mlp(dim, dim)
        self.frame_pos = nn.Parameter(torch.zeros(rows, dim))  # added to the queries of frame t
        self.temporal_pos = nn.Parameter(torch.zeros(rows, dim))  # added to the keys of frame t
        nn.init.normal_(self.frame_pos, std=0.02)
        nn.init.normal_(self.temporal_pos, std=0.02)
        self.temporal_conv: nn.Conv1d | None = None
        if c.temporal_conv:
            self.temporal_conv = nn.Conv1d(dim, dim, 3, padding=1, groups=dim)
            for p in self.temporal_conv.parameters():  # weight and bias: starts as the identity through the residual
                nn.init.zeros_(p)
        self.learned_queries: nn.Parameter | None = None  # [Q0, C], the align=False ablation only
        if not entity_queries:
            n_learn = c.learnable_queries or max(1, num_regions)
            self.learned_queries = nn.Parameter(torch.randn(n_learn, dim) * 0.02)
        self.layers = nn.ModuleList(CrossAttentionLayer(dim, c.heads, c.mlp_ratio, c.dropout) for _ in range(c.layers))
        self.norm_out = nn.LayerNorm(dim) if c.out_proj else None
        self.proj_out = nn.Linear(dim, dim) if c.out_proj else None
        self.gamma = nn.Parameter(torch.tensor(float(c.residual_init))) if c.cls_residual else None

    def queries(
        self, batch: int, frames: int, aligned: torch.Tensor | None, confidence: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The query sequence ``[B, Q, C]`` and its pooling weights ``[B, Q]`` (or ``None``).

        Entity queries: ``MLP_q(aligned) + frame_pos`` for all ``T*R`` regions, optionally the ``top_m`` most
        confident. Learnable queries (``aligned is None``): the same table in every frame, plus the frame position.
        """
        t = frames
        if aligned is None:
            if self.learned_queries is None:
                raise ValueError(
                    "No aligned entities were given but this adapter was built for entity queries; build it with "
                    "entity_queries=False for the learnable-query ablation (align=False)."
                )
            q = self.query_mlp(self.learned_queries)[None] + self.frame_pos[:t, None]  # [T, Q0, C]
            return rearrange(q, "t q c -> (t q) c")[None].expand(batch, -1, -1), None  # [B, T*Q0, C]
        q = self.query_mlp(aligned) + self.frame_pos[:t, None]  # [B, T, R, C]
        q = rearrange(q, "b t r c -> b (t r) c")
        if confidence is None:
            return q, None
        weights = rearrange(confidence, "b t r -> b (t r)").to(q.dtype)  # [B, T*R]
        if self.config.top_m is not None and self.config.top_m < q.shape[1]:
            top = weights.topk(self.config.top_m, dim=1).indices  # [B, M]
            q = q.gather(1, top[..., None].expand(-1, -1, q.shape[-1]))  # [B, M, C]
            weights = weights.gather(1, top)  # [B, M]
        return q, weights

    def forward(
        self,
        tokens: torch.Tensor,
        aligned: torch.Tensor | None = None,
        confidence: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pool a video into one vector.

        Args:
            tokens: Every frame's tokens ``[B, T, 1+R, C]`` (cls first) after ``ln_post``/``proj``; with the
                ``region=False`` ablation ``[B, T, 1, C]``.
            aligned: Aligned entity embeddings ``[B, T, R', C]`` (query source); ``None`` uses learnable queries.
            confidence: Alignment confidences ``[B, T, R']`` (for top-M selection and confidence pooling).

        Returns:
            The video vector ``z`` ``[B, C]``.
        """
        b, t = tokens.shape[:2]
        if t > self.num_frames:
            raise ValueError(
                f"{t} frames exceed the adapter's {self.num_frames}-row position tables (num_frames, or "
                f"adapter.max_frames of an older checkpoint): build the model with num_frames >= {t}."
            )
        if tokens.shape[-1] != self.dim:
            raise ValueError(f"Tokens have width {tokens.shape[-1]} but the adapter was built for {self.dim}.")
        cls = tokens[:, :, 0]  # [B, T, C]
        if self.temporal_conv is not None:
            mixed = cls + self.temporal_conv(cls.transpose(1, 2)).transpose(1, 2)  # [B, T, C]
            tokens = torch.cat([mixed.unsqueeze(2), tokens[:, :, 1:]], dim=2)
        kv = self.kv_mlp(tokens) + self.temporal_pos[:t, None]  # [B, T, 1+R, C]
        kv = rearrange(kv, "b t n c -> b (t n) c")  # [B, T*(1+R), C]
        q, weights = self.queries(b, t, aligned, confidence)  # [B, Q, C], [B, Q] | None
        for layer in self.layers:
            q = layer(q, kv)  # [B, Q, C]
        if self.config.pool == "confidence" and weights is not None:
            pooled = (q * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp_min(1e-6)  # [B, C]
        else:
            pooled = q.mean(1)  # [B, C]
        out = pooled  # [B, C]
        if self.norm_out is not None and self.proj_out is not None:  # both or neither (config.out_proj)
            out = self.proj_out(self.norm_out(pooled))  # [B, C]
        if self.gamma is None:
            return out
        return cls.mean(1) + self.gamma * out  # the residual is CLIP's own mean frame embedding
