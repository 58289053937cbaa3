"""FLOPs and parameters of an ALT configuration, measured on a random-initialised model and checked analytically.

Convention (the field's, fvcore's): one multiply-add is one FLOP, so every number here is a count of
multiply-accumulates (MACs). Counted: every matrix product and convolution (linear layers, patch embedding,
attention ``Q K^T`` and ``A V``, ToMe's bipartite similarity, the region-entity similarity). Not counted, as in
fvcore's default: element-wise work (norms, activations, softmax, merges, gathers), which is well under 1 % here.

:func:`measure_flops` builds the model of an :class:`~alt_lightning.model.config.ALTConfig` with
:func:`~alt_lightning.model.build.build_alt` on the ``meta`` device (no memory, no arithmetic, no weights; random
corpus and class embeddings of the given sizes, no text tower run) and runs one clip through it under
:class:`torch.utils.flop_counter.FlopCounterMode` (which counts ``2 x MACs``; we halve it).
On ``meta`` ``scaled_dot_product_attention`` falls back to its math form, whose matrix products are counted; on a
CPU the fused kernel is not in PyTorch's FLOP registry, so :data:`SDPA_CPU_FORMULA` adds it. :func:`analytic_flops`
counts the same products from the architecture's shapes; the tests check that both agree exactly.

Test-time views multiply the per-view count (``3 x 1`` views: three clips of ``T`` frames, one crop each).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from alt_lightning.model.alt import ALT
from alt_lightning.model.build import build_alt, load_backbone
from alt_lightning.model.config import ALTConfig
from alt_lightning.model.region_encoder import RegionEncoder

#: Components of the breakdown, in pipeline order.
COMPONENTS = ("encoder", "alignment", "adapter", "classifier")


def config_corpus_size(config: ALTConfig) -> int:
    """Entities ``K`` of the config's corpus (0 without alignment: no corpus is used)."""
    if not config.align:
        return 0
    from alt_lightning.text.corpus import load_corpus

    return len(load_corpus(config.corpus))


def parse_views(views: str | int | tuple[int, int]) -> tuple[int, int]:
    """``"3x1"`` -> ``(3, 1)`` (temporal clips x spatial crops); an int ``n`` means ``n`` clips of one crop."""
    if isinstance(views, int):
        views = (views, 1)
    if isinstance(views, (tuple, list)):
        if len(views) != 2 or min(views) < 1:
            raise ValueError(f"views must be (clips, crops) with both >= 1, got {views!r}.")
        return int(views[0]), int(views[1])
    try:
        clips, crops = (int(v) for v in views.lower().replace("×", "x").split("x"))
    except ValueError:
        raise ValueError(f"views must look like '3x1' (temporal clips x spatial crops), got {views!r}.") from None
    if clips < 1 or crops < 1:
        raise ValueError(f"views must be positive, got {views!r}.")
    return clips, crops


@dataclass
class FlopReport:
    """Counts for one model and input. All FLOPs are multiply-adds.

    Attributes:
        config: The model (``num_frames``: frames per view ``T``).
        views: Test views ``(clips, crops)``; every view is one clip of ``T`` frames.
        num_classes: Classes ``N`` of the classifier.
        corpus_size: Entities ``K`` of the alignment.
        image_size: Input side.
        per_view: MACs of one view per component of :data:`COMPONENTS`.
        tokens_per_frame: ``1 + R`` output tokens of the encoder.
        params_total: Parameters of the ALT module (image tower + alignment + adapter + classifier).
        params_trainable: Those that train.
        params_text_tower: The CLIP text tower's (used offline to embed corpus and class names; not in the module).
        method: How ``per_view`` was obtained.
    """

    config: ALTConfig
    views: tuple[int, int]
    num_classes: int
    corpus_size: int
    image_size: int
    per_view: dict[str, int]
    tokens_per_frame: int
    params_total: int
    params_trainable: int
    params_text_tower: int
    method: str

    @property
    def frames(self) -> int:
        """Frames per view ``T``."""
        return self.config.num_frames

    @property
    def num_views(self) -> int:
        """Clips times crops."""
        return self.views[0] * self.views[1]

    @property
    def encoder_per_frame(self) -> float:
        """Encoder MACs per frame."""
        return self.per_view["encoder"] / self.frames

    @property
    def view_total(self) -> int:
        """MACs of one view."""
        return sum(self.per_view.values())

    @property
    def total(self) -> int:
        """MACs of all views."""
        return self.view_total * self.num_views

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (GFLOPs and millions of parameters included)."""
        return {
            "config": asdict(self.config),
            "frames": self.frames,
            "views": list(self.views),
            "num_classes": self.num_classes,
            "corpus_size": self.corpus_size,
            "image_size": self.image_size,
            "per_view_macs": dict(self.per_view),
            "gflops_per_view": self.view_total / 1e9,
            "gflops_total": self.total / 1e9,
            "gflops_encoder_per_frame": self.encoder_per_frame / 1e9,
            "tokens_per_frame": self.tokens_per_frame,
            "params_total_m": self.params_total / 1e6,
            "params_trainable_m": self.params_trainable / 1e6,
            "params_text_tower_m": self.params_text_tower / 1e6,
            "method": self.method,
        }


def _sdpa_cpu_flops(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, **kwargs: Any) -> int:
    """FLOPs (2 x MACs) of the fused CPU attention kernel, which PyTorch's registry lacks."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


#: Extra formulas for :class:`FlopCounterMode` so that attention is counted on a real CPU too.
SDPA_CPU_FORMULA = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops}


def build_random_alt(
    config: ALTConfig,
    num_classes: int,
    corpus_size: int,
    image_size: int | None = None,
    device: str | torch.device = "meta",
) -> tuple[ALT, int]:
    """The ALT of ``config`` with random weights and random corpus/class embeddings, and its text tower's size.

    Args:
        config: The model (its ``pretrained`` weights are not loaded: shapes are all that count).
        num_classes: Classes ``N``.
        corpus_size: Entities ``K``.
        image_size: Input side; ``None`` takes the architecture's own.
        device: ``"meta"`` (shapes only; default) or a real device.

    Returns:
        ``(model in eval mode, CLIP text tower parameters)``.
    """
    config = replace(config, pretrained=None)
    clip = load_backbone(config, device, image_size)
    text_params = sum(p.numel() for n, p in clip.named_parameters() if not n.startswith("visual."))
    # FLOPs count the model's math (head dim 64 for ViT-B/16): the folded attention's padded channels are an
    # implementation detail, so the count always runs the mask form (and eagerly: nothing to compile on meta).
    config = replace(config, encoder=replace(config.encoder, attention="mask", compile="none"))
    model = build_alt(config, num_classes, corpus_size=corpus_size, clip=clip)
    return model.eval(), text_params


def _component_counts(counter: FlopCounterMode, model: nn.Module) -> dict[str, int]:
    """Sum FlopCounterMode's per-module counts for each ALT component (FLOPs = 2 x MACs)."""
    counts = counter.get_flop_counts()
    root = type(model).__name__
    names = {"encoder": "encoder", "alignment": "aligner", "adapter": "adapter", "classifier": "classifier"}
    out = {comp: sum(counts.get(f"{root}.{attr}", {}).values()) for comp, attr in names.items()}
    rest = counter.get_total_flops() - sum(out.values())
    if rest:  # products outside the four components would be a bug in this breakdown, not a rounding matter
        raise RuntimeError(f"{rest} FLOPs were counted outside the ALT components: {sorted(counts)}.")
    return out


def measure_flops(
    config: ALTConfig | None = None,
    *,
    views: tuple[int, int] = (3, 1),
    num_classes: int = 400,
    corpus_size: int | None = None,
    image_size: int | None = None,
    device: str | torch.device = "meta",
) -> FlopReport:
    """Count FLOPs (as MACs) and parameters by running one view through the model :func:`build_alt` builds.

    Args:
        config: The model (default: the ``alt-b16-8f`` preset, ViT-B/16 with 8 frames and r = 8).
        views: Test views ``(clips, crops)`` (the paper's ALT-B/16 protocol: 3 x 1).
        num_classes: Classes ``N`` (400 for Kinetics-400).
        corpus_size: Entities ``K``; ``None``: the config's corpus (:func:`config_corpus_size`).
        image_size: Input side; ``None`` takes the architecture's own.
        device: ``"meta"`` (fast, default) or ``"cpu"``/``"cuda"`` (runs the arithmetic; same counts).

    Returns:
        The :class:`FlopReport`.
    """
    config = config or ALTConfig.preset("alt-b16-8f")
    k = corpus_size if corpus_size is not None else config_corpus_size(config)
    model, text_params = build_random_alt(config, num_classes, k, image_size, device)
    size = model.encoder.image_size
    video = torch.zeros(1, config.num_frames, 3, *size, device=device)  # one view
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=SDPA_CPU_FORMULA) as counter:
        model(video)
    flops = _component_counts(counter, model)
    return FlopReport(
        config=config,
        views=parse_views(views),
        num_classes=num_classes,
        corpus_size=k,
        image_size=size[0],
        per_view={k: v // 2 for k, v in flops.items()},
        tokens_per_frame=model.encoder.num_tokens(),
        params_total=sum(p.numel() for p in model.parameters()),
        params_trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        params_text_tower=text_params,
        method=f"measured: torch.utils.flop_counter on a random-initialised model ({torch.device(device).type})",
    )


def encoder_macs(encoder: RegionEncoder) -> int:
    """Analytic MACs of one frame through the region encoder (matrix products only).

    Per block with ``n`` tokens entering and ``r`` merged after attention: ``qkv + out = 4 n W^2``,
    ``Q K^T + A V = 2 n^2 W``, ToMe similarity ``ceil(n/2) floor(n/2) D_h`` (only when ``r > 0``), MLP
    ``2 (n - r) W W_mlp``; plus the patch embedding ``P 3 p^2 W`` and ``ln_post``/``proj`` ``(1 + R) W C``.
    """
    v = encoder.visual
    w = encoder.width
    patch = v.conv1.kernel_size[0] * v.conv1.kernel_size[1] * v.conv1.in_channels
    macs = encoder.num_patches * patch * w
    n = 1 + encoder.num_patches
    for block, r in zip(v.transformer.resblocks, encoder.r_schedule, strict=True):
        head_dim = w // block.attn.num_heads
        mlp_width = block.mlp.c_fc.out_features
        macs += 4 * n * w * w + 2 * n * n * w
        if r > 0:
            macs += math.ceil(n / 2) * (n // 2) * head_dim
        n -= r
        macs += 2 * n * w * mlp_width
    if v.proj is not None:
        macs += n * w * encoder.out_dim
    return macs


def analytic_flops(
    config: ALTConfig, *, num_classes: int = 400, corpus_size: int = 0, image_size: int | None = None
) -> dict[str, int]:
    """Per-view MACs per component from the architecture's shapes (no forward pass through the model).

    The encoder's geometry (widths, merge schedule) is read from a ``meta``-device build; every count is a formula,
    with ``T`` frames, ``R`` regions per frame, ``R'`` query sources per frame (``R``, or 1 for the cls-only
    ablation) and ``N_kv`` keys (``T (1 + R)``, or ``T`` for the cls-only ablation): alignment ``T R' K C``; adapter
    ``2 T R' C^2`` (query MLP) ``+ 2 N_kv C^2`` (key/value MLP) ``+ 3 T C`` (temporal conv) and per layer
    ``2 Q C^2 + 2 N_kv C^2 + 2 Q N_kv C + 2 Q C C_ffn`` with ``Q`` queries, ``+ C^2`` output projection
    (``out_proj``); classifier ``N_cls C``.
    """
    model, _ = build_random_alt(config, num_classes, corpus_size, image_size, "meta")
    enc, c, t, a = model.encoder, model.encoder.out_dim, config.num_frames, config.adapter
    per_frame = enc.num_regions if config.region else 1  # R': region tokens, or the cls token alone
    keys = t * (1 + enc.num_regions) if config.region else t  # N_kv
    if config.align:
        query_mlp = 2 * t * per_frame * c * c
        queries = t * per_frame if a.top_m is None else min(a.top_m, t * per_frame)
        alignment = t * per_frame * corpus_size * c
    else:
        q0 = a.learnable_queries or per_frame
        query_mlp = 2 * q0 * c * c
        queries = t * q0
        alignment = 0
    ffn = int(c * a.mlp_ratio)
    layer = 2 * queries * c * c + 2 * keys * c * c + 2 * queries * keys * c + 2 * queries * c * ffn
    adapter = query_mlp + 2 * keys * c * c + (3 * t * c if a.temporal_conv else 0) + a.layers * layer
    adapter += c * c if a.out_proj else 0
    return {
        "encoder": t * encoder_macs(enc),
        "alignment": alignment,
        "adapter": adapter,
        "classifier": num_classes * c,
    }
