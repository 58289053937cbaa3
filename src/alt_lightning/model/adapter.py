"""Query video adapter (ALT §3.3): aligned entity embeddings query all frames' tokens, giving one video vector.

Queries ``Q = MLP_q(S^) + frame position``; keys/values ``K, V = MLP_kv(E) + temporal position`` over every frame's
tokens; ``M`` pre-LN decoder layers (cross-attention, then FFN); the output queries are pooled to ``z``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


@dataclass
class AdapterConfig:
    """Settings of the query adapter.

    The paper fixes the structure (entity queries, MLPs on both sides, cross-attention, one output vector); every
    number here is our choice.

    Args:
        layers: Decoder layers ``M`` (our default 1: the paper's 328 GFLOPs leave room for about one such layer).
        heads: Attention heads (8).
        mlp_ratio: FFN hidden width over ``C``.
        max_frames: Size of the frame/temporal position tables.
        top_m: Keep only the ``top_m`` queries with the highest alignment confidence (``None``: all ``T*R``).
        temporal_conv: A depthwise 1-D temporal convolution over the per-frame cls tokens before they enter the
            keys (from the paper's earlier version; off by default).
        learnable_queries: Number of learnable queries used when entity queries are switched off (ablation
            ``align=False``); ``None`` uses as many as regions per frame times frames, capped at 256.
        cls_residual: Add the mean frame cls embedding to the output, ``z = cls_mean + gamma * adapter``, with
            ``gamma`` learnable and initialised at ``residual_init``, so training starts from CLIP's zero-shot
            behaviour (our reading of the paper's residual; off gives ``z = adapter`` alone).
        residual_init: Initial ``gamma``.
        dropout: Dropout in attention and FFN.
        pool: ``"mean"`` over output queries, or ``"confidence"``: mean weighted by alignment confidence.
    """

    layers: int = 1
    heads: int = 8
    mlp_ratio: float = 4.0
    max_frames: int = 64
    top_m: int | None = None
    temporal_conv: bool = False
    learnable_queries: int | None = None
    cls_residual: bool = True
    residual_init: float = 0.1
    dropout: float = 0.0
    pool: str = "mean"


def mlp(dim: int, hidden: int, out: int | None = None, dropout: float = 0.0) -> nn.Sequential:
    """Two-layer GELU MLP."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out or dim))


class CrossAttentionLayer(nn.Module):
    """Pre-LN decoder layer without self-attention: ``x += CA(LN(x), LN(kv)); x += FFN(LN(x))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"Adapter width {dim} is not divisible by {heads} heads.")
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
        """Queries ``x`` ``[B, Q, C]`` attend over ``kv`` ``[B, N, C]``."""
        q = rearrange(self.q(self.norm_q(x)), "b q (h d) -> b h q d", h=self.heads)
        k, v = rearrange(self.kv(self.norm_kv(kv)), "b n (two h d) -> two b h n d", two=2, h=self.heads)
        attn = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        x = x + self.out(rearrange(attn, "b h q d -> b q (h d)"))
        return x + self.ffn(self.norm_ffn(x))


class QueryAdapter(nn.Module):
    """Entity-query cross-attention adapter.

    Args:
        dim: Width ``C`` (the joint CLIP space: 512 for B/16, 768 for L/14).
        config: :class:`AdapterConfig`.
        num_regions: Regions per frame ``R`` (sizes the learnable-query table of the ``align=False`` ablation).
    """

    def __init__(self, dim: int, config: AdapterConfig | None = None, num_regions: int = 1) -> None:
        super().__init__()
        self.config = c = config or AdapterConfig()
        self.dim = dim
        self.query_mlp = mlp(dim, dim)
        self.kv_mlp = mlp(dim, dim)
        self.frame_pos = nn.Parameter(torch.zeros(c.max_frames, dim))  # added to queries of frame t
        self.temporal_pos = nn.Parameter(torch.zeros(c.max_frames, dim))  # added to keys of frame t
        nn.init.normal_(self.frame_pos, std=0.02)
        nn.init.normal_(self.temporal_pos, std=0.02)
        self.temporal_conv = nn.Conv1d(dim, dim, 3, padding=1, groups=dim) if c.temporal_conv else None
        if self.temporal_conv is not None:
            nn.init.zeros_(self.temporal_conv.weight)  # starts as identity through the residual
            nn.init.zeros_(self.temporal_conv.bias)
        n_learn = c.learnable_queries or min(256, max(1, num_regions) * 8)
        self.learned_queries = nn.Parameter(torch.randn(n_learn, dim) * 0.02)
        self.layers = nn.ModuleList(CrossAttentionLayer(dim, c.heads, c.mlp_ratio, c.dropout) for _ in range(c.layers))
        self.norm_out = nn.LayerNorm(dim)
        self.proj_out = nn.Linear(dim, dim)
        self.gamma = nn.Parameter(torch.tensor(float(c.residual_init))) if c.cls_residual else None

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
        if t > self.config.max_frames:
            raise ValueError(f"{t} frames exceed adapter.max_frames={self.config.max_frames}; raise it in the config.")
        cls = tokens[:, :, 0]  # [B, T, C]
        if self.temporal_conv is not None:
            cls = cls + self.temporal_conv(cls.transpose(1, 2)).transpose(1, 2)
            tokens = torch.cat([cls.unsqueeze(2), tokens[:, :, 1:]], dim=2)
        kv = self.kv_mlp(tokens) + self.temporal_pos[:t, None]  # [B, T, 1+R, C]
        kv = rearrange(kv, "b t n c -> b (t n) c")
        weights = None
        if aligned is not None:
            q = self.query_mlp(aligned) + self.frame_pos[:t, None]  # [B, T, R, C]
            q = rearrange(q, "b t r c -> b (t r) c")
            if confidence is not None:
                weights = rearrange(confidence, "b t r -> b (t r)")
                if self.config.top_m is not None and self.config.top_m < q.shape[1]:
                    top = weights.topk(self.config.top_m, dim=1).indices  # [B, M]
                    q = q.gather(1, top[..., None].expand(-1, -1, q.shape[-1]))
                    weights = weights.gather(1, top)
        else:
            q = self.query_mlp(self.learned_queries).expand(b, -1, -1)  # [B, Q, C]
        for layer in self.layers:
            q = layer(q, kv)  # [B, Q, C]
        if self.config.pool == "confidence" and weights is not None:
            pooled = (q * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp_min(1e-6)
        else:
            pooled = q.mean(1)  # [B, C]
        out = self.proj_out(self.norm_out(pooled))  # [B, C]
        if self.gamma is None:
            return out
        return cls.mean(1) + self.gamma * out
