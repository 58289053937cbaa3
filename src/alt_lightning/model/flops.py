"""FLOPs and parameters of an ALT configuration, measured on a random-initialised model and checked analytically.

Convention (the field's, fvcore's): one multiply-add is one FLOP, so every number here is a count of
multiply-accumulates (MACs). Counted: every matrix product and convolution (linear layers, patch embedding,
attention ``Q K^T`` and ``A V``, ToMe's bipartite similarity, the region-entity similarity). Not counted, as in
fvcore's default: element-wise work (norms, activations, softmax, merges, gathers), which is well under 1 % here.

:func:`measure_flops` builds the model on the ``meta`` device (no memory, no arithmetic, no weights) and runs one
clip through it under :class:`torch.utils.flop_counter.FlopCounterMode` (which counts ``2 x MACs``; we halve it).
On ``meta`` ``scaled_dot_product_attention`` falls back to its math form, whose matrix products are counted; on a
CPU the fused kernel is not in PyTorch's FLOP registry, so :data:`SDPA_CPU_FORMULA` adds it. :func:`analytic_flops`
counts the same products from the architecture's shapes; the tests check that both agree exactly.

Test-time views multiply the per-view count (``3 x 1`` views: three clips of ``T`` frames, one crop each).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import open_clip
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from alt_lightning.model.adapter import AdapterConfig, QueryAdapter
from alt_lightning.model.alignment import EntityAligner
from alt_lightning.model.alt import ALT
from alt_lightning.model.backbone import register_model_configs
from alt_lightning.model.classifier import TextClassifier
from alt_lightning.model.region_encoder import RegionEncoder

#: Components of the breakdown, in pipeline order.
COMPONENTS = ("encoder", "alignment", "adapter", "classifier")

#: Corpus size used when no shipped corpus is present (the paper does not report K; ours is about this size).
FALLBACK_CORPUS_SIZE = 2000


def default_corpus_size() -> int:
    """Entities in the shipped default corpus, or :data:`FALLBACK_CORPUS_SIZE` if it is not built yet."""
    from alt_lightning.text.corpus import DEFAULT_CORPUS, load_corpus, shipped_corpus_path

    if shipped_corpus_path(DEFAULT_CORPUS).is_file():
        return len(load_corpus(DEFAULT_CORPUS))
    return FALLBACK_CORPUS_SIZE


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
class FlopSpec:
    """An ALT configuration to count.

    Args:
        model_name: open_clip architecture (``ViT-B-16``, ``ViT-L-14``, ``alt-tiny``, ...).
        frames: Frames per clip ``T``.
        image_size: Input side; ``None`` takes the architecture's own.
        r: ToMe merges per block (0: no merging).
        corpus_size: Entities ``K``; ``None``: the shipped corpus size (:func:`default_corpus_size`).
        num_classes: Classes ``N`` of the classifier (400 for Kinetics-400).
        adapter: :class:`AdapterConfig` (layers, top-M, ...).
        views: Test views ``(clips, crops)``.
        align: Entity queries (``False``: learnable queries, no alignment).
        region: Region tokens (``False``: frame cls tokens only).
        trainable_blocks: Unfrozen backbone blocks (only changes the trainable-parameter count).
    """

    model_name: str = "ViT-B-16"
    frames: int = 8
    image_size: int | None = None
    r: int = 8
    corpus_size: int | None = None
    num_classes: int = 400
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    views: tuple[int, int] = (3, 1)
    align: bool = True
    region: bool = True
    trainable_blocks: int = 0

    def resolved(self) -> FlopSpec:
        """A copy with ``corpus_size`` filled in."""
        return replace(self, corpus_size=self.corpus_size if self.corpus_size is not None else default_corpus_size())

    @property
    def num_views(self) -> int:
        """Clips times crops."""
        return self.views[0] * self.views[1]


@dataclass
class FlopReport:
    """Counts for one configuration. All FLOPs are multiply-adds.

    Attributes:
        spec: The (resolved) configuration.
        per_view: MACs of one view (one clip of ``T`` frames) per component of :data:`COMPONENTS`.
        tokens_per_frame: ``1 + R`` output tokens of the encoder.
        params_total: Parameters of the ALT module (image tower + alignment + adapter + classifier).
        params_trainable: Those that train.
        params_text_tower: The CLIP text tower's (used offline to embed corpus and class names; not in the module).
        method: How ``per_view`` was obtained.
    """

    spec: FlopSpec
    per_view: dict[str, int]
    tokens_per_frame: int
    params_total: int
    params_trainable: int
    params_text_tower: int
    method: str

    @property
    def encoder_per_frame(self) -> float:
        """Encoder MACs per frame."""
        return self.per_view["encoder"] / self.spec.frames

    @property
    def view_total(self) -> int:
        """MACs of one view."""
        return sum(self.per_view.values())

    @property
    def total(self) -> int:
        """MACs of all views."""
        return self.view_total * self.spec.num_views

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (GFLOPs and millions of parameters included)."""
        return {
            "spec": asdict(self.spec),
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


def build_random_alt(spec: FlopSpec, device: str | torch.device = "meta") -> tuple[ALT, int]:
    """A random-initialised ALT of ``spec`` (no download) and its CLIP text tower's parameter count.

    Args:
        spec: Resolved configuration (``corpus_size`` set).
        device: ``"meta"`` (shapes only; default) or a real device.

    Returns:
        ``(model in eval mode, text tower parameters)``.
    """
    register_model_configs()
    kwargs: dict[str, Any] = {} if spec.image_size is None else {"force_image_size": spec.image_size}
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # open_clip warns that no pretrained weights were loaded: that is the point
    try:
        with torch.device(device):
            clip = open_clip.create_model(spec.model_name, device=device, **kwargs)
    finally:
        logging.disable(previous)
    text_params = sum(p.numel() for n, p in clip.named_parameters() if not n.startswith("visual."))
    # FLOPs count the model's math (head dim 64 for ViT-B/16): the folded attention's padded channels are an
    # implementation detail, so the count always runs the mask form.
    encoder = RegionEncoder(clip.visual, r=spec.r, trainable_blocks=spec.trainable_blocks, attention="mask")
    dim = encoder.out_dim
    with torch.device(device):
        aligner = EntityAligner(torch.randn(spec.corpus_size or 1, dim)) if spec.align else None
        adapter = QueryAdapter(
            dim, spec.adapter, num_regions=encoder.num_regions if spec.region else 1, entity_queries=spec.align
        )
        classifier = TextClassifier(torch.randn(spec.num_classes, dim))
    model = ALT(encoder, aligner, adapter, classifier, region=spec.region).eval()
    return model, text_params


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


def measure_flops(spec: FlopSpec | None = None, device: str | torch.device = "meta") -> FlopReport:
    """Count FLOPs (as MACs) and parameters by running one view through a random-initialised model.

    Args:
        spec: Configuration (default: ALT-B/16, 8 x 224, r = 8, 3 x 1 views, shipped corpus size).
        device: ``"meta"`` (fast, default) or ``"cpu"``/``"cuda"`` (runs the arithmetic; same counts).

    Returns:
        The :class:`FlopReport`.
    """
    spec = (spec or FlopSpec()).resolved()
    model, text_params = build_random_alt(spec, device)
    size = model.encoder.image_size
    video = torch.zeros(1, spec.frames, 3, *size, device=device)  # one view
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=SDPA_CPU_FORMULA) as counter:
        model(video)
    flops = _component_counts(counter, model)
    return FlopReport(
        spec=replace(spec, image_size=size[0]),
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


def analytic_flops(spec: FlopSpec | None = None) -> dict[str, int]:
    """Per-view MACs per component from the architecture's shapes (no forward pass through the model).

    The encoder's geometry (widths, merge schedule) is read from a ``meta``-device build; every count is a formula:
    alignment ``T R' K C``; adapter ``2 T R' C^2`` (query MLP) ``+ 2 T (1 + R') C^2`` (key/value MLP) ``+ 3 T C``
    (temporal conv) and per layer ``2 Q C^2 + 2 N C^2 + 2 Q N C + 2 Q C C_ffn`` with ``Q`` queries and ``N`` keys,
    ``+ C^2`` output projection; classifier ``N_cls C``.
    """
    spec = (spec or FlopSpec()).resolved()
    model, _ = build_random_alt(spec, "meta")
    enc, c, t, a = model.encoder, model.encoder.out_dim, spec.frames, spec.adapter
    per_frame = enc.num_regions if spec.region else 1  # R': region tokens, or the cls token alone
    keys = t * (1 + enc.num_regions) if spec.region else t
    if spec.align:
        query_mlp = 2 * t * per_frame * c * c
        queries = t * per_frame if a.top_m is None else min(a.top_m, t * per_frame)
        alignment = t * per_frame * int(spec.corpus_size or 0) * c
    else:
        q0 = a.learnable_queries or per_frame
        query_mlp = 2 * q0 * c * c
        queries = t * q0
        alignment = 0
    ffn = int(c * a.mlp_ratio)
    layer = 2 * queries * c * c + 2 * keys * c * c + 2 * queries * keys * c + 2 * queries * c * ffn
    adapter = query_mlp + 2 * keys * c * c + (3 * t * c if a.temporal_conv else 0) + a.layers * layer + c * c
    return {
        "encoder": t * encoder_macs(enc),
        "alignment": alignment,
        "adapter": adapter,
        "classifier": spec.num_classes * c,
    }


def alt_flops(
    model_name: str = "ViT-B-16",
    *,
    frames: int = 8,
    image_size: int | None = None,
    r: int = 8,
    corpus_size: int | None = None,
    adapter_layers: int = 1,
    views: str | int | tuple[int, int] = (3, 1),
    num_classes: int = 400,
    device: str = "meta",
) -> dict[str, Any]:
    """Convenience wrapper of :func:`measure_flops` for scripts (e.g. ``alt bench``).

    Returns:
        ``{"per_view": MACs, "total": MACs, "breakdown": {component: MACs per view}, "params_total",
        "params_trainable", "report": FlopReport}``.
    """
    spec = FlopSpec(
        model_name=model_name,
        frames=frames,
        image_size=image_size,
        r=r,
        corpus_size=corpus_size,
        num_classes=num_classes,
        adapter=AdapterConfig(layers=adapter_layers),
        views=parse_views(views),
    )
    report = measure_flops(spec, device)
    return {
        "per_view": report.view_total,
        "total": report.total,
        "breakdown": dict(report.per_view),
        "params_total": report.params_total,
        "params_trainable": report.params_trainable,
        "report": report,
    }
