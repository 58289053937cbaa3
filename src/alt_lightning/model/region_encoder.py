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
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from open_clip.transformer import Attention, ResidualAttentionBlock, VisionTransformer
from torch import nn

from alt_lightning.model.tome import (
    compiled_merge_step,
    initial_source,
    merge_schedule,
    merge_step,
    resolve_r,
)

__all__ = [
    "ATTENTION_FORMS",
    "COMPILE_MODES",
    "RegionEncoder",
    "RegionTokens",
    "region_assignment",
    "source_to_heatmaps",
]

log = logging.getLogger(__name__)


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


#: How proportional attention adds ``log(size)`` of every key to the logits (``RegionEncoder(attention=...)``).
ATTENTION_FORMS = ("mask", "folded")


def padded_head_dim(head_dim: int) -> int:
    """Head dim of the folded form: one extra channel, rounded up to a multiple of 8 (flash kernels need it)."""
    return (head_dim + 1 + 7) // 8 * 8


def _sdpa(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_size: torch.Tensor | None, dropout_p: float
) -> torch.Tensor:
    """``scaled_dot_product_attention`` with an optional additive per-key ``log(size)`` mask.

    Args:
        q: ``[N, H, T, Dh]`` queries.
        k: ``[N, H, T, Dh]`` keys.
        v: ``[N, H, T, Dh]`` values.
        log_size: ``[N, T]`` added to the logits of every query for each key, or None.
        dropout_p: Attention dropout probability.

    Returns:
        ``[N, H, T, Dh]`` attention output.
    """
    # A float mask rules out the flash kernel on a GPU (docs/benchmarks.md); the "folded" form avoids the mask.
    mask = None if log_size is None else log_size.to(q.dtype)[:, None, None, :]  # SDPA wants the query dtype
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)


def _folded_qkv(
    attn: nn.MultiheadAttention, x: torch.Tensor, log_size: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k, v with ``log(size)`` folded into one extra channel, head dim padded to a multiple of 8.

    ``scale (q . k) + log(s_j) = scale ([q, 1/scale, 0..] . [k, log(s_j), 0..])``: with ``scale`` passed explicitly
    (the padded width would change SDPA's default) the logits are those of the mask form, and SDPA may take its flash
    kernel, which has no mask input. The padding is done on the projection's weights (a few MB), not on the q/k/v
    activations; the extra v channels are zero and dropped from the output.

    Args:
        attn: Block attention with a packed input projection.
        x: ``[N, T, W]`` normalised input.
        log_size: ``[N, T]`` float32 ``log(size)`` of every token.

    Returns:
        ``q, k, v``, each ``[N, H, T, Dp]`` (strided views of one projection output).
    """
    n, t, w = x.shape
    heads = attn.num_heads
    dh = w // heads
    dp = padded_head_dim(dh)
    weight = F.pad(attn.in_proj_weight.view(3, heads, dh, w), (0, 0, 0, dp - dh)).view(3 * heads * dp, w)
    bias: torch.Tensor | None = attn.in_proj_bias
    if bias is not None:
        bias = F.pad(bias.view(3, heads, dh), (0, dp - dh)).view(-1)
    qkv = F.linear(x, weight, bias).view(n, t, 3, heads, dp)  # [N, T, 3, H, Dp], extra channels 0
    # Writing into the projection's output is safe for autograd: addmm does not keep its output for backward.
    qkv[:, :, 0, :, dh] = dh**0.5  # 1 / scale
    qkv[:, :, 1, :, dh] = log_size[:, :, None]  # [N, T, 1] broadcast over heads
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # [N, H, T, Dp]
    return q, k, v


def _attention(
    attn: nn.MultiheadAttention | Attention,
    x: torch.Tensor,
    log_size: torch.Tensor | None,
    form: str = "mask",
    metric: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Self-attention of an open_clip block from its weights, returning the keys too.

    Args:
        attn: The block's ``nn.MultiheadAttention`` or open_clip ``Attention``.
        x: ``[N, T, W]`` normalised input (after ``ln_1``).
        log_size: ``[N, T]`` float32 ``log(size)`` of every key (proportional attention), or None.
        form: ``"mask"`` (additive mask) or ``"folded"`` (extra q/k channel; packed ``nn.MultiheadAttention``
            projections only, every other attention uses the mask).
        metric: Whether to return the ToMe metric (only needed where the block merges).

    Returns:
        ``(out [N, T, W], metric [N, T, Dh] or None)``: the attention output after the output projection, and
        the keys averaged over heads (the ToMe similarity metric).
    """
    n, t, w = x.shape
    heads = attn.num_heads
    dh = w // heads
    if isinstance(attn, nn.MultiheadAttention):
        p = attn.dropout if attn.training else 0.0
        if form == "folded" and log_size is not None and attn._qkv_same_embed_dim:
            q, k, v = _folded_qkv(attn, x, log_size)  # [N, H, T, Dp]
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p, scale=dh**-0.5)[..., :dh]  # [N, H, T, Dh]
            k = k[..., :dh]
        else:
            if attn._qkv_same_embed_dim:
                q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
            else:
                bq, bk, bv = (None, None, None) if attn.in_proj_bias is None else attn.in_proj_bias.chunk(3)
                q = F.linear(x, attn.q_proj_weight, bq)
                k = F.linear(x, attn.k_proj_weight, bk)
                v = F.linear(x, attn.v_proj_weight, bv)
            q, k, v = (z.reshape(n, t, heads, -1).transpose(1, 2) for z in (q, k, v))  # [N, H, T, Dh]
            out = _sdpa(q, k, v, log_size, p)  # [N, H, T, Dh]
        out = attn.out_proj(out.transpose(1, 2).reshape(n, t, w))
    else:  # open_clip Attention (custom blocks): optional qk-norm, head scale, inner norm
        q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (z.reshape(n, t, heads, -1).transpose(1, 2) for z in (q, k, v))  # [N, H, T, Dh]
        q, k = attn.ln_q(q), attn.ln_k(k)
        p = attn.attn_drop.p if attn.training else 0.0
        out = _sdpa(q, k, v, log_size, p)  # [N, H, T, Dh]
        if attn.head_scale is not None:
            out = out * attn.head_scale
        out = attn.ln_inner(out.transpose(1, 2).reshape(n, t, w))
        out = attn.out_drop(attn.out_proj(out))
    return out, (k.mean(dim=1) if metric else None)


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


#: How the encoder's forward runs (``RegionEncoder(compile=...)``).
COMPILE_MODES = ("none", "merge", "reduce-overhead", "cuda-graphs")

#: Input signatures (shape, dtype, device, autocast) compiled or captured per encoder; others run eagerly. This
#: bounds the compile/capture time spent (a training batch, an evaluation batch and the last short batches).
MAX_SIGNATURES = 4

_Outputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


def _signature(images: torch.Tensor, modes: bool) -> tuple:
    """What a compilation or capture depends on: shape, dtype, device, autocast (and grad modes, for dynamo)."""
    device = images.device.type
    amp = torch.is_autocast_enabled(device) if device in ("cpu", "cuda") else False
    amp_dtype = torch.get_autocast_dtype(device) if amp else None
    grad = (torch.is_grad_enabled(), torch.is_inference_mode_enabled()) if modes else ()
    return (tuple(images.shape), images.dtype, str(images.device), amp, amp_dtype, *grad)


class _Runner:
    """Runs the encoder's forward with compiled merges, compiled whole, or replayed from CUDA graphs.

    One compilation or capture per input signature, at most :data:`MAX_SIGNATURES`; its wall time is logged and kept
    in :attr:`seconds`. A failure logs a warning and the encoder runs eagerly from then on (never a crash
    mid-epoch). CUDA-graph outputs are cloned: the graph's own output buffers are overwritten by the next replay.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.reset()

    def reset(self) -> None:
        """Forget compiled code and captured graphs (weights moved, cast or replaced)."""
        self.compiled: Callable[[torch.Tensor], _Outputs] | None = None
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, _Outputs]] = {}
        self.pointers: tuple[int, ...] | None = None
        self.seconds: dict[tuple, float] = {}
        self.failed: str | None = None
        self.warned: set[str] = set()

    def __getstate__(self) -> dict:
        # Compiled code and CUDA graphs cannot be copied or pickled; a copy compiles/captures afresh.
        return {"mode": self.mode}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.reset()

    def _eager(self, encoder: RegionEncoder, images: torch.Tensor, why: str) -> _Outputs:
        if why not in self.warned:
            self.warned.add(why)
            log.warning("RegionEncoder(compile=%r) runs eagerly: %s", self.mode, why)
        return encoder._tokens(images)

    def _fail(self, encoder: RegionEncoder, err: BaseException, what: str) -> None:
        self.failed = f"{what} failed ({type(err).__name__}: {err})"
        self.compiled, self.graphs = None, {}

    def __call__(self, encoder: RegionEncoder, images: torch.Tensor) -> _Outputs:
        if self.failed:
            return self._eager(encoder, images, self.failed)
        if self.mode == "cuda-graphs":
            if images.device.type != "cuda":
                return self._eager(encoder, images, f"CUDA graphs need a CUDA device, got {images.device.type} inputs")
            return self._graphed(encoder, images)
        return self._compiled(encoder, images)

    def _too_many(self, key: tuple) -> str | None:
        if key in self.seconds or len(self.seconds) < MAX_SIGNATURES:
            return None
        return f"more than {MAX_SIGNATURES} input shapes/dtypes ({key[0]} is run eagerly)"

    def _compiled(self, encoder: RegionEncoder, images: torch.Tensor) -> _Outputs:
        key = _signature(images, modes=True)  # dynamo guards on grad/inference mode: one compilation each
        if why := self._too_many(key):
            return self._eager(encoder, images, why)
        new = key not in self.seconds
        if self.compiled is None:
            if self.mode == "merge":  # eager blocks, compiled merge steps (dynamic shapes: one compilation)
                self.compiled = lambda images: encoder._tokens(images, compiled_merge_step)
            else:
                self.compiled = torch.compile(encoder._tokens, mode=self.mode, dynamic=False)
        start = time.perf_counter()
        try:
            out = self.compiled(images)
            if new and images.is_cuda:
                torch.cuda.synchronize(images.device)
        except Exception as err:  # any compiler error: fall back, never stop the run
            self._fail(encoder, err, "torch.compile")
            return self._eager(encoder, images, self.failed or "")
        if new:
            self.seconds[key] = time.perf_counter() - start
            log.info("RegionEncoder: compile=%r, first call for %s took %.1f s", self.mode, key[0], self.seconds[key])
        return out if self.mode == "merge" else self._clone(out)  # compiled CUDA graphs reuse their outputs

    def _graphed(self, encoder: RegionEncoder, images: torch.Tensor) -> _Outputs:
        pointers = tuple(p.data_ptr() for p in encoder.parameters())
        if pointers != self.pointers:  # weights moved or were replaced: captured graphs read stale memory
            self.graphs, self.seconds, self.pointers = {}, {}, pointers
        key = _signature(images, modes=False)  # a frozen encoder's graph serves training and evaluation
        with torch.inference_mode(False), torch.no_grad():  # buffers usable in training and evaluation alike
            if key not in self.graphs:
                if why := self._too_many(key):
                    return self._eager(encoder, images, why)
                start = time.perf_counter()
                try:
                    self.graphs[key] = self._capture(encoder._tokens, images, key)
                except Exception as err:  # capture refused (e.g. a synchronising op): fall back, never stop the run
                    self._fail(encoder, err, "CUDA graph capture")
                    return self._eager(encoder, images, self.failed or "")
                self.seconds[key] = time.perf_counter() - start
                log.info("RegionEncoder: CUDA graph capture for %s took %.2f s", key[0], self.seconds[key])
            graph, static_in, static_out = self.graphs[key]
            static_in.copy_(images)
            graph.replay()
            return self._clone(static_out)

    @staticmethod
    def _capture(
        fn: Callable[[torch.Tensor], _Outputs], images: torch.Tensor, key: tuple
    ) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, _Outputs]:
        amp, amp_dtype = key[3], key[4]
        static_in = images.detach().clone()

        def run() -> _Outputs:
            # Autocast's weight-cast cache must be off while capturing: cached casts would live outside the graph.
            with torch.autocast("cuda", dtype=amp_dtype or torch.bfloat16, enabled=amp, cache_enabled=False):
                return fn(static_in)

        current = torch.cuda.current_stream(images.device)
        side = torch.cuda.Stream(device=images.device)
        side.wait_stream(current)
        with torch.cuda.stream(side):  # warm-up outside the capture (lazy initialisation, library workspaces)
            for _ in range(2):
                run()
        current.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: CUDA calls of other threads (DataLoader pin-memory) do not invalidate the capture.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            static_out = run()
        return graph, static_in, static_out

    @staticmethod
    def _clone(out: _Outputs) -> _Outputs:
        x, size, source = out
        if not x.is_cuda:
            return out
        return x.clone(), size.clone(), None if source is None else source.clone()


class RegionEncoder(nn.Module):
    """Frozen (by default) CLIP ViT with token merging in every block; outputs cls + region tokens.

    Example:
        >>> model = open_clip.create_model("ViT-B-16", pretrained="openai")
        >>> enc = RegionEncoder(model.visual, r=8)
        >>> out = enc(images)  # images [N, 3, 224, 224] -> out.tokens [N, 101, 512]
    """

    # open_clip's tower, checked by _check_visual; declared so its (untyped) attributes are not read as
    # nn.Module.__getattr__'s ``Tensor | Module``.
    visual: VisionTransformer

    def __init__(
        self,
        visual: nn.Module,
        r: int | Sequence[int] = 8,
        trainable_blocks: int = 0,
        keep_source: bool = False,
        proportional_attention: bool = True,
        attention: str = "mask",
        compile: str = "none",
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
            attention: How the log-size bias enters attention (same logits, an implementation choice):
                ``"mask"`` (default) an additive mask; ``"folded"`` one extra q/k channel (head dim padded to a
                multiple of 8, ``scale`` passed explicitly), so that SDPA can take its flash kernel on a GPU.
                Folding needs the packed projection of ``nn.MultiheadAttention`` (every released CLIP ViT); other
                attention modules use the mask. Default "mask": the only GPU measurement so far (H200, eager)
                found folding no faster; the two forms are measured side by side by ``scripts/gpu_check.sh``.
            compile: ``"none"`` (default, eager); ``"merge"`` ``torch.compile`` of the ToMe merge steps only
                (fewer kernels per merge, one quick compilation with dynamic shapes); ``"reduce-overhead"``
                ``torch.compile`` of the whole forward (CUDA graphs on a GPU through the compiler); ``"cuda-graphs"``
                our own CUDA graph per input shape, replayed (frozen encoders only, ``trainable_blocks=0``; eager on
                a CPU). Each compiles or captures on the first call of an input shape/dtype (at most
                ``MAX_SIGNATURES``), logs the time taken (:attr:`compile_seconds`), and falls back to eager with a
                warning if compilation or capture fails. Our option for launch-bound GPUs.

        Raises:
            TypeError: If ``visual`` is not an open_clip ``VisionTransformer``.
            NotImplementedError: For towers with attentional pooling, patch dropout, non-cls pooling or
                unsupported attention variants.
            ValueError: For a bad ``r``, ``trainable_blocks``, ``attention`` or ``compile``.
        """
        super().__init__()
        _check_visual(visual)
        if attention not in ATTENTION_FORMS:
            raise ValueError(f"attention must be one of {ATTENTION_FORMS}, got {attention!r}.")
        if compile not in COMPILE_MODES:
            raise ValueError(f"compile must be one of {COMPILE_MODES}, got {compile!r}.")
        if compile == "cuda-graphs" and trainable_blocks != 0:
            raise ValueError(
                f"compile='cuda-graphs' needs a frozen encoder (trainable_blocks=0), got trainable_blocks="
                f"{trainable_blocks}; use compile='reduce-overhead' to train backbone blocks."
            )
        self.visual = visual
        blocks = self.visual.transformer.resblocks
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
        self.attention = attention
        self.compile_mode = compile
        self._runner = None if compile == "none" else _Runner(compile)

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
        if self._runner is not None:
            self._runner.reset()  # compiled code and graphs were made for the old weights
        return self

    def _apply(self, fn: Callable, *args: Any, **kwargs: Any) -> RegionEncoder:
        # .to()/.cuda()/.half() replace the weights: compiled code and captured graphs must be made again.
        if self._runner is not None:
            self._runner.reset()
        return super()._apply(fn, *args, **kwargs)

    @property
    def compile_seconds(self) -> dict[tuple, float]:
        """Wall time of every compilation/capture so far, by input signature (shape first); empty when eager."""
        return dict(self._runner.seconds) if self._runner is not None else {}

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
        block: ResidualAttentionBlock,
        x: torch.Tensor,
        size: torch.Tensor,
        source: torch.Tensor | None,
        r: int,
        merged: bool,
        merge: Callable = merge_step,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        # Before any merge all sizes are 1 and the bias would be 0: skip it, which keeps the flash
        # kernel usable and the r = 0 path identical to open_clip.
        log_size = size.log() if (merged and self.proportional_attention) else None  # [N, T]
        out, metric = _attention(block.attn, block.ln_1(x), log_size, self.attention, metric=r > 0)
        if hasattr(block, "ln_attn"):
            out = block.ln_attn(out)
        x = x + block.ls_1(out)
        if r > 0:
            x, size, source = merge(x, size, source, metric, r)  # [N, T - r, W], [N, T - r], [N, T - r, 1 + P]
        x = x + block.ls_2(block.mlp(block.ln_2(x)))
        return x, size, source

    def _tokens(
        self, images: torch.Tensor, merge: Callable = merge_step
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The whole tensor computation (what ``compile`` compiles or captures): images to tokens, size, source.

        ``merge`` is the ToMe step (:func:`~alt_lightning.model.tome.merge_step` or its compiled form).
        """

        def autograd_off(frozen: bool) -> contextlib.AbstractContextManager:
            # Only switch autograd off; never switch it on inside a caller's no_grad/inference_mode.
            return torch.no_grad() if frozen else contextlib.nullcontext()

        v = self.visual
        with autograd_off(self._embed_frozen):
            x = self._embed(images)  # [N, 1 + P, W]
        n, t0, _ = x.shape
        size = torch.ones(n, t0, device=x.device, dtype=torch.float32)  # [N, T]
        source = initial_source(n, t0, x.device, x.dtype) if self.keep_source else None
        merged = False
        for i, (block, r) in enumerate(zip(v.transformer.resblocks, self.r_schedule, strict=True)):
            with autograd_off(i < self._num_frozen_blocks):
                x, size, source = self._block(block, x, size, source, r, merged, merge)
            merged = merged or r > 0
        with autograd_off(self._head_frozen):
            x = v.ln_post(x)  # [N, 1 + R, W]
            if v.proj is not None:
                x = x @ v.proj  # [N, 1 + R, C]
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
        self._check_size((images.shape[-2], images.shape[-1]))
        x, size, source = self._tokens(images) if self._runner is None else self._runner(self, images)
        return RegionTokens(tokens=x, size=size, source=source)
