"""Region-aware image encoder: an open_clip ViT whose blocks merge tokens (ToMe) into regions.

:class:`RegionEncoder` re-runs the blocks of an open_clip ``VisionTransformer`` with its own
attention (computed from the block's weights with ``scaled_dot_product_attention``) so that it can
read the keys for the ToMe similarity metric and add the proportional-attention bias. After every
block's attention sub-layer, ``r`` tokens are merged (see :mod:`alt_lightning.model.tome`); after the
last block every remaining token goes through ``ln_post`` and ``proj``, so region tokens live in
CLIP's joint image-text space. With ``r = 0`` the outputs equal open_clip's own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from open_clip.transformer import Attention, VisionTransformer
from torch import nn

from alt_lightning.model.tome import (
    bipartite_soft_matching,
    initial_source,
    merge_schedule,
    merge_source,
    merge_weighted_average,
    proportional_attention_bias,
    resolve_r,
)

__all__ = ["RegionEncoder", "RegionTokens", "region_assignment", "source_to_heatmaps"]


@dataclass
class RegionTokens:
    """Output of :class:`RegionEncoder`.

    Attributes:
        tokens: ``[N, 1 + R, C]`` cls token then R region tokens, after ``ln_post`` and ``proj``.
        size: ``[N, 1 + R]`` float32 number of patches each token holds (cls: 1).
        source: ``[N, 1 + R, 1 + P]`` 0/1 map from output tokens to the cls token (column 0) and the
            P original patches (row-major on the patch grid), or None when not kept.
    """

    tokens: torch.Tensor
    size: torch.Tensor
    source: torch.Tensor | None = None

    @property
    def cls(self) -> torch.Tensor:
        """``[N, C]`` the cls token (CLIP's image embedding)."""
        return self.tokens[:, 0]

    @property
    def regions(self) -> torch.Tensor:
        """``[N, R, C]`` the region tokens."""
        return self.tokens[:, 1:]


def source_to_heatmaps(source: torch.Tensor, grid_size: tuple[int, int]) -> torch.Tensor:
    """Turns a source map into one 0/1 mask per region on the patch grid.

    Args:
        source: ``[N, 1 + R, 1 + P]`` from :class:`RegionTokens` (cls row and column first).
        grid_size: ``(gh, gw)`` with ``gh * gw == P``.

    Returns:
        ``[N, R, gh, gw]``; every patch belongs to exactly one region.

    Raises:
        ValueError: If the source width does not match the grid.
    """
    gh, gw = grid_size
    if source.shape[-1] != 1 + gh * gw:
        raise ValueError(
            f"source has {source.shape[-1]} columns but a {gh}x{gw} grid needs {1 + gh * gw} "
            f"(cls + patches); pass the encoder's grid_size."
        )
    n, t, _ = source.shape
    return source[:, 1:, 1:].reshape(n, t - 1, gh, gw)


def region_assignment(source: torch.Tensor, grid_size: tuple[int, int]) -> torch.Tensor:
    """Index of the region holding each patch.

    Args:
        source: ``[N, 1 + R, 1 + P]`` source map.
        grid_size: ``(gh, gw)`` patch grid.

    Returns:
        ``[N, gh, gw]`` long tensor with values in ``[0, R)`` (region ``i`` is token ``1 + i``).
    """
    return source_to_heatmaps(source, grid_size).argmax(dim=1)


def _biased_sdpa(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None, dropout_p: float
) -> torch.Tensor:
    """``scaled_dot_product_attention`` with an optional additive per-key bias.

    Args:
        q: ``[N, H, T, Dh]`` queries.
        k: ``[N, H, T, Dh]`` keys.
        v: ``[N, H, T, Dh]`` values.
        bias: ``[N, 1, 1, T]`` bias added to the logits of every query for each key, or None.
        dropout_p: Attention dropout probability.

    Returns:
        ``[N, H, T, Dh]`` attention output.
    """
    # A float mask rules out the flash kernel (measured on an H200, ViT-B/16 shapes, bf16: 0.50 ms
    # instead of 0.17 ms per layer at batch 256). Folding the bias into an extra q/k channel restores
    # flash but the concatenations cost more than they save, so the mask stays.
    mask = None if bias is None else bias.to(q.dtype)  # SDPA wants the query dtype (autocast may differ)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)


def _attention(attn: nn.Module, x: torch.Tensor, bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Self-attention of an open_clip block from its weights, returning the keys too.

    Args:
        attn: The block's ``nn.MultiheadAttention`` or open_clip ``Attention``.
        x: ``[N, T, W]`` normalised input (after ``ln_1``).
        bias: ``[N, 1, 1, T]`` additive logit bias or None.

    Returns:
        ``(out [N, T, W], metric [N, T, Dh])``: the attention output after the output projection, and
        the keys averaged over heads (the ToMe similarity metric).
    """
    n, t, w = x.shape
    if isinstance(attn, nn.MultiheadAttention):
        heads = attn.num_heads
        if attn._qkv_same_embed_dim:
            q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
        else:
            bq, bk, bv = (None, None, None) if attn.in_proj_bias is None else attn.in_proj_bias.chunk(3)
            q = F.linear(x, attn.q_proj_weight, bq)
            k = F.linear(x, attn.k_proj_weight, bk)
            v = F.linear(x, attn.v_proj_weight, bv)
        q, k, v = (z.reshape(n, t, heads, -1).transpose(1, 2) for z in (q, k, v))  # [N, H, T, Dh]
        p = attn.dropout if attn.training else 0.0
        out = _biased_sdpa(q, k, v, bias, p)  # [N, H, T, Dh]
        out = attn.out_proj(out.transpose(1, 2).reshape(n, t, w))
    else:  # open_clip Attention (custom blocks): optional qk-norm, head scale, inner norm
        heads = attn.num_heads
        q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (z.reshape(n, t, heads, -1).transpose(1, 2) for z in (q, k, v))  # [N, H, T, Dh]
        q, k = attn.ln_q(q), attn.ln_k(k)
        p = attn.attn_drop.p if attn.training else 0.0
        out = _biased_sdpa(q, k, v, bias, p)  # [N, H, T, Dh]
        if attn.head_scale is not None:
            out = out * attn.head_scale
        out = attn.ln_inner(out.transpose(1, 2).reshape(n, t, w))
        out = attn.out_drop(attn.out_proj(out))
    return out, k.mean(dim=1)


def _check_visual(visual: nn.Module) -> None:
    """Rejects towers whose forward pass RegionEncoder cannot reproduce."""
    if not isinstance(visual, VisionTransformer):
        raise TypeError(
            f"RegionEncoder needs an open_clip VisionTransformer (model.visual of a ViT CLIP model), got "
            f"{type(visual).__name__}; ResNet and timm towers have no token sequence to merge."
        )
    if visual.attn_pool is not None:
        raise NotImplementedError(
            "RegionEncoder does not support attentional pooling (CoCa-style attn_pool); use a CLIP ViT "
            "with attentional_pool=False."
        )
    if not isinstance(visual.patch_dropout, nn.Identity):
        raise NotImplementedError(
            "RegionEncoder does not support patch dropout (it would break the patch grid of the source "
            "map); build the model with vision_cfg patch_dropout=0."
        )
    if visual.pool_type != "tok":
        raise NotImplementedError(
            f"RegionEncoder needs the cls token as image embedding (pool_type='tok'), got pool_type="
            f"'{visual.pool_type}'."
        )
    for i, block in enumerate(visual.transformer.resblocks):
        attn = getattr(block, "attn", None)
        if hasattr(block, "ln_1_kv"):
            raise NotImplementedError(f"block {i} is a cross-attention block; only self-attention is supported.")
        if isinstance(attn, nn.MultiheadAttention):
            if attn.bias_k is not None or attn.add_zero_attn:
                raise NotImplementedError(f"block {i}: MultiheadAttention with bias_k/add_zero_attn.")
        elif isinstance(attn, Attention):
            if attn.logit_scale is not None:
                # open_clip 3.3.0's own forward fails for this variant (bmm on 4-D tensors), so there is
                # no reference to match; no released CLIP ViT uses it.
                raise NotImplementedError(f"block {i}: scaled cosine attention is not supported.")
        else:
            raise NotImplementedError(
                f"block {i} has attention {type(attn).__name__}; RegionEncoder supports "
                f"nn.MultiheadAttention and open_clip.transformer.Attention."
            )


class RegionEncoder(nn.Module):
    """Frozen (by default) CLIP ViT with token merging in every block; outputs cls + region tokens.

    Example:
        >>> model = open_clip.create_model("ViT-B-16", pretrained="openai")
        >>> enc = RegionEncoder(model.visual, r=8)
        >>> out = enc(images)  # images [N, 3, 224, 224] -> out.tokens [N, 101, 512]
    """

    def __init__(
        self,
        visual: nn.Module,
        r: int | Sequence[int] = 8,
        trainable_blocks: int = 0,
        keep_source: bool = False,
        proportional_attention: bool = True,
    ) -> None:
        """Wraps an open_clip vision tower.

        Args:
            visual: ``model.visual`` of an open_clip ViT CLIP model. Its parameters' ``requires_grad``
                flags are set in place according to ``trainable_blocks``.
            r: Tokens merged after the attention of every block (int), or one value per block. Each
                layer's value is clamped so that at most half of the mergeable (non-cls) tokens merge.
                ALT uses r = 8 for ViT-B/16 (196 patches -> 100 regions after 12 blocks). Our choice
                (paper silent on the exact value): 8, the value consistent with the paper's GFLOPs;
                0 disables merging (every patch is a region).
            trainable_blocks: 0 (our design card's choice, a frozen backbone) freezes everything and runs
                the whole forward under ``torch.no_grad()`` (no activations kept); -1 trains everything;
                k > 0 trains the last k blocks plus ``ln_post`` and ``proj``, the earlier part runs
                without autograd. Frozen parts stay in eval mode even when ``train()`` is called.
            keep_source: Also return the ``[N, 1 + R, 1 + P]`` source map (for region heatmaps); it
                costs ``N * (1 + P)^2`` floats, so it is off by default.
            proportional_attention: Add ``log(size)`` of every key to the attention logits once tokens
                have been merged, as ToMe does (on by default; the paper uses ToMe as published).
                Alternative: False, plain attention over merged tokens.

        Raises:
            TypeError: If ``visual`` is not an open_clip ``VisionTransformer``.
            NotImplementedError: For towers with attentional pooling, patch dropout, non-cls pooling or
                unsupported attention variants.
            ValueError: For a bad ``r`` or ``trainable_blocks``.
        """
        super().__init__()
        _check_visual(visual)
        self.visual = visual
        blocks = visual.transformer.resblocks
        self.num_layers = len(blocks)
        self.r_per_layer = resolve_r(r, self.num_layers)
        if not -1 <= trainable_blocks <= self.num_layers:
            raise ValueError(
                f"trainable_blocks must be -1 (all), 0 (frozen) or 1..{self.num_layers} (last k blocks), "
                f"got {trainable_blocks}."
            )
        self.trainable_blocks = trainable_blocks
        self.keep_source = keep_source
        self.proportional_attention = proportional_attention

        # Which parts run without autograd and stay in eval mode.
        self._embed_frozen = trainable_blocks != -1
        self._num_frozen_blocks = {-1: 0, 0: self.num_layers}.get(trainable_blocks, self.num_layers - trainable_blocks)
        self._head_frozen = trainable_blocks == 0
        for p in visual.parameters():
            p.requires_grad_(not self._head_frozen)  # all frozen only when trainable_blocks == 0
        if self._embed_frozen:
            for p in self._embed_params():
                p.requires_grad_(False)
            for block in blocks[: self._num_frozen_blocks]:
                block.requires_grad_(False)
        self.train(self.training)

    # ----------------------------------------------------------------------------------- geometry
    @property
    def image_size(self) -> tuple[int, int]:
        """``(height, width)`` the tower was built for."""
        return tuple(self.visual.image_size)

    @property
    def grid_size(self) -> tuple[int, int]:
        """``(gh, gw)`` patch grid."""
        return tuple(self.visual.grid_size)

    @property
    def num_patches(self) -> int:
        """Number of patches P."""
        gh, gw = self.grid_size
        return gh * gw

    @property
    def width(self) -> int:
        """Transformer width (before ``proj``)."""
        return int(self.visual.transformer.width)

    @property
    def out_dim(self) -> int:
        """Channel count C of the output tokens (the joint embedding size)."""
        return int(self.visual.proj.shape[1]) if self.visual.proj is not None else self.width

    @property
    def r_schedule(self) -> list[int]:
        """Effective (clamped) merge count of every block at the configured image size."""
        return merge_schedule(1 + self.num_patches, self.r_per_layer)

    def num_tokens(self, image_size: int | tuple[int, int] | None = None) -> int:
        """Number of output tokens ``1 + R`` (cls + regions).

        Args:
            image_size: Input size to check; must equal the configured one (None: use it).

        Returns:
            ``1 + P - sum(clamped r)``.
        """
        if image_size is not None:
            self._check_size(image_size if isinstance(image_size, tuple) else (image_size, image_size))
        return 1 + self.num_patches - sum(self.r_schedule)

    @property
    def num_regions(self) -> int:
        """Number of region tokens R (output tokens without cls)."""
        return self.num_tokens() - 1

    def heatmaps(self, source: torch.Tensor) -> torch.Tensor:
        """``[N, R, gh, gw]`` 0/1 region masks from a ``[N, 1 + R, 1 + P]`` source map."""
        return source_to_heatmaps(source, self.grid_size)

    # ------------------------------------------------------------------------------- train / eval
    def _embed_params(self) -> list[nn.Parameter]:
        v = self.visual
        return [*v.conv1.parameters(), v.class_embedding, v.positional_embedding, *v.ln_pre.parameters()]

    def cast_frozen_(self, dtype: torch.dtype) -> RegionEncoder:
        """Store the frozen weights in ``dtype`` (e.g. bf16 on a GPU under bf16 autocast).

        Autocast otherwise re-casts every fp32 weight at every call; frozen weights never change, so one cast
        saves that traffic. Trainable parameters stay in fp32 for the optimizer. Our choice; the LightningModule
        applies it on CUDA with bf16 precision.

        Returns:
            self.
        """
        for p in self.visual.parameters():
            if not p.requires_grad:
                p.data = p.data.to(dtype)
        return self

    def train(self, mode: bool = True) -> RegionEncoder:
        """Sets the training mode, but keeps frozen parts in eval mode (no dropout there).

        Args:
            mode: Training mode for the trainable parts.

        Returns:
            self.
        """
        super().train(mode)
        if mode:
            v = self.visual
            if self._embed_frozen:
                for m in (v.conv1, v.patch_dropout, v.ln_pre):
                    m.eval()
            for block in v.transformer.resblocks[: self._num_frozen_blocks]:
                block.eval()
            if self._head_frozen:
                v.eval()
        return self

    # ------------------------------------------------------------------------------------ forward
    def _check_size(self, hw: tuple[int, int]) -> None:
        if tuple(hw) != self.image_size:
            raise ValueError(
                f"RegionEncoder was built for {self.image_size[0]}x{self.image_size[1]} images, got "
                f"{hw[0]}x{hw[1]}; resize/crop frames to the backbone's image size."
            )

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        v = self.visual
        x = v.conv1(images.to(v.conv1.weight.dtype))  # [N, W, gh, gw]
        x = x.flatten(2).transpose(1, 2)  # [N, P, W]
        cls = v.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)  # [N, 1, W]
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)  # [N, 1 + P, W]
        return v.ln_pre(x)

    def _block(
        self,
        block: nn.Module,
        x: torch.Tensor,
        size: torch.Tensor,
        source: torch.Tensor | None,
        r: int,
        merged: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        # Before any merge all sizes are 1 and the bias would be 0: skip it, which keeps the flash
        # kernel usable and the r = 0 path identical to open_clip.
        bias = proportional_attention_bias(size, x.dtype) if (merged and self.proportional_attention) else None
        out, metric = _attention(block.attn, block.ln_1(x), bias)  # [N, T, W], [N, T, Dh]
        if hasattr(block, "ln_attn"):
            out = block.ln_attn(out)
        x = x + block.ls_1(out)
        if r > 0:
            matching = bipartite_soft_matching(metric, r, protect_first=True)
            x, size = merge_weighted_average(x, size, matching)  # [N, T - r, W], [N, T - r]
            if source is not None:
                source = merge_source(source, matching)  # [N, T - r, 1 + P]
        x = x + block.ls_2(block.mlp(block.ln_2(x)))
        return x, size, source

    def forward(self, images: torch.Tensor) -> RegionTokens:
        """Encodes images into cls + region tokens.

        Args:
            images: ``[N, 3, H, W]`` normalised images at the configured size.

        Returns:
            :class:`RegionTokens` with ``tokens [N, 1 + R, C]``, ``size [N, 1 + R]`` and optionally
            ``source [N, 1 + R, 1 + P]``.

        Raises:
            ValueError: For inputs of the wrong rank, channel count or size.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be [N, 3, H, W], got shape {tuple(images.shape)}.")
        self._check_size(tuple(images.shape[-2:]))

        def autograd_off(frozen: bool) -> contextlib.AbstractContextManager:
            # Only switch autograd off; never switch it on inside a caller's no_grad/inference_mode.
            return torch.no_grad() if frozen else contextlib.nullcontext()

        v = self.visual
        schedule = self.r_schedule
        with autograd_off(self._embed_frozen):
            x = self._embed(images)  # [N, 1 + P, W]
        n, t0, _ = x.shape
        size = torch.ones(n, t0, device=x.device, dtype=torch.float32)  # [N, T]
        source = initial_source(n, t0, x.device, x.dtype) if self.keep_source else None
        merged = False
        for i, (block, r) in enumerate(zip(v.transformer.resblocks, schedule, strict=True)):
            with autograd_off(i < self._num_frozen_blocks):
                x, size, source = self._block(block, x, size, source, r, merged)
            merged = merged or r > 0
        with autograd_off(self._head_frozen):
            x = v.ln_post(x)  # [N, 1 + R, W]
            if v.proj is not None:
                x = x @ v.proj  # [N, 1 + R, C]
        return RegionTokens(tokens=x, size=size, source=source)
