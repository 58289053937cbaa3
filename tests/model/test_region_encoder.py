"""RegionEncoder on tiny open_clip ViTs: equality with open_clip at r=0, merging, freezing, heatmaps."""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import pytest
import torch
from open_clip.transformer import VisionTransformer
from torch import nn

import alt_lightning
from alt_lightning.model.region_encoder import (
    RegionEncoder,
    _attention,
    padded_head_dim,
    region_assignment,
    source_to_heatmaps,
)

CONFIG_DIR = Path(alt_lightning.__file__).parent / "resources" / "model_configs"


def _perturb(module: nn.Module, seed: int) -> nn.Module:
    # open_clip's init leaves LayerNorms at 1/0 and biases at 0; random values catch swapped terms.
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return module.eval()


@pytest.fixture(scope="module")
def tiny_name() -> str:
    open_clip.add_model_config(CONFIG_DIR / "alt-tiny.json")
    return "alt-tiny"


@pytest.fixture(scope="module")
def tiny4_name(tmp_path_factory: pytest.TempPathFactory) -> str:
    # 4 layers, 96 px / patch 16 -> 36 patches, with layer scale so ls_1/ls_2 matter.
    cfg = {
        "embed_dim": 48,
        "vision_cfg": {
            "image_size": 96,
            "layers": 4,
            "width": 64,
            "head_width": 16,
            "patch_size": 16,
            "ls_init_value": 0.5,
        },
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    path = tmp_path_factory.mktemp("cfg") / "alt-tiny-4l96.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(path)
    return "alt-tiny-4l96"


def _visual(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return _perturb(open_clip.create_model(name).visual, seed)


def _custom_visual(seed: int = 0) -> nn.Module:
    # open_clip's custom block (open_clip.transformer.Attention) with every optional piece switched on.
    torch.manual_seed(seed)
    visual = VisionTransformer(
        image_size=64,
        patch_size=16,
        width=64,
        layers=3,
        heads=4,
        mlp_ratio=2.0,
        ls_init_value=0.3,
        output_dim=40,
        qk_norm=True,
        scale_heads=True,
        scale_attn_inner=True,
        scale_attn=True,
        scale_fc=True,
    )
    return _perturb(visual, seed)


@pytest.mark.parametrize("which", ["tiny", "tiny4", "custom"])
def test_r0_equals_open_clip(which: str, tiny_name: str, tiny4_name: str) -> None:
    visual = {
        "tiny": lambda: _visual(tiny_name),
        "tiny4": lambda: _visual(tiny4_name),
        "custom": _custom_visual,
    }[which]()
    enc = RegionEncoder(visual, r=0)
    size = enc.image_size[0]
    images = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(1))
    out = enc(images)
    with torch.no_grad():
        visual.output_tokens = True
        pooled, patch_tokens = visual(images)  # patch tokens come after ln_post, before proj
        visual.output_tokens = False
        pooled_only = visual(images)
    assert out.tokens.shape == (3, 1 + enc.num_patches, enc.out_dim)
    torch.testing.assert_close(out.cls, pooled_only, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.cls, pooled, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.regions, patch_tokens @ visual.proj, atol=1e-5, rtol=1e-5)
    assert out.size.tolist() == [[1.0] * (1 + enc.num_patches)] * 3


@pytest.mark.parametrize(
    ("which", "r", "expected"),
    [
        ("tiny", 0, 17),
        ("tiny", 1, 15),
        ("tiny", 3, 11),
        ("tiny", 8, 5),  # clamped: [8, 4]
        ("tiny4", 2, 29),
        ("tiny4", 4, 21),
        ("tiny4", 8, 7),  # clamped: [8, 8, 8, 6]
        ("tiny4", [1, 0, 5, 3], 28),
    ],
)
def test_token_count_sizes_and_cls(
    which: str, r: int | list[int], expected: int, tiny_name: str, tiny4_name: str
) -> None:
    name = tiny_name if which == "tiny" else tiny4_name
    enc = RegionEncoder(_visual(name), r=r, keep_source=True)
    s = enc.image_size[0]
    n, p = 2, enc.num_patches
    if isinstance(r, int) and r * enc.num_layers <= (p + 1) // 2:
        assert expected == 1 + p - enc.num_layers * r  # the paper's 1 + N - L*r when no clamping
    assert enc.num_tokens(s) == enc.num_tokens() == expected
    assert enc.num_regions == expected - 1
    out = enc(torch.randn(n, 3, s, s))
    assert out.tokens.shape == (n, expected, enc.out_dim)
    assert out.size.shape == (n, expected)
    assert out.size.sum(1).tolist() == [float(1 + p)] * n
    assert out.source.shape == (n, expected, 1 + p)
    # cls holds only itself and nobody else holds cls.
    assert out.size[:, 0].tolist() == [1.0] * n
    assert out.source[:, 0].tolist() == [[1.0] + [0.0] * p] * n
    assert out.source[:, 1:, 0].abs().sum().item() == 0.0
    torch.testing.assert_close(out.source.sum(-1), out.size)


def test_merging_changes_output_and_proportional_attention_matters(tiny4_name: str) -> None:
    visual = _visual(tiny4_name)
    images = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(3))
    base = RegionEncoder(visual, r=0)(images).cls
    merged = RegionEncoder(visual, r=4)(images).cls
    plain = RegionEncoder(visual, r=4, proportional_attention=False)(images).cls
    assert (merged - base).abs().max().item() > 1e-3
    assert (merged - plain).abs().max().item() > 1e-4


def test_batch_items_are_merged_independently(tiny4_name: str) -> None:
    enc = RegionEncoder(_visual(tiny4_name), r=4, keep_source=True)
    images = torch.randn(3, 3, 96, 96, generator=torch.Generator().manual_seed(4))
    together = enc(images)
    for i in range(3):
        alone = enc(images[i : i + 1])
        torch.testing.assert_close(alone.tokens[0], together.tokens[i], atol=1e-5, rtol=1e-5)
        assert torch.equal(alone.source[0], together.source[i])


@pytest.mark.parametrize("form", ["mask", "folded"])
@pytest.mark.parametrize("kind", ["mha", "custom"])
def test_attention_bias_matches_reference(kind: str, form: str) -> None:
    torch.manual_seed(0)
    if kind == "mha":
        attn = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    else:
        attn = _custom_visual().transformer.resblocks[0].attn
    w = attn.embed_dim if kind == "mha" else attn.out_proj.in_features
    n, t, h = 2, 7, attn.num_heads
    x = torch.randn(n, t, w)
    size = torch.randint(1, 5, (n, t)).float()
    bias = size.log()[:, None, None, :]
    out, metric = _attention(attn, x, size.log(), form)
    if kind == "mha":
        ref = attn(x, x, x, attn_mask=bias.expand(n, h, t, t).reshape(n * h, t, t), need_weights=False)[0]
        keys = torch.nn.functional.linear(x, attn.in_proj_weight[w : 2 * w], attn.in_proj_bias[w : 2 * w])
        torch.testing.assert_close(metric, keys.view(n, t, h, -1).mean(2))
    else:
        ref = attn(x, attn_mask=bias.expand(n, h, t, t).reshape(n * h, t, t))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    # The bias is real: without it the output differs.
    assert (out - _attention(attn, x, None, form)[0]).abs().max().item() > 1e-3


def test_frozen_encoder_keeps_no_graph(tiny_name: str) -> None:
    enc = RegionEncoder(_visual(tiny_name), r=2)
    enc.train()
    assert not enc.visual.training  # frozen tower stays in eval mode
    assert all(not p.requires_grad for p in enc.parameters())
    images = torch.randn(2, 3, 64, 64, requires_grad=True)
    out = enc(images)
    assert not out.tokens.requires_grad
    extra = nn.Parameter(torch.ones(()))
    (out.tokens.sum() * extra).backward()
    assert extra.grad is not None
    assert all(p.grad is None for p in enc.parameters())


def _params_with_grad(enc: RegionEncoder, images: torch.Tensor) -> set[str]:
    enc.train()
    enc(images).tokens.square().mean().backward()
    return {name for name, p in enc.visual.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_last_block_trainable(tiny_name: str) -> None:
    enc = RegionEncoder(_visual(tiny_name), r=2, trainable_blocks=1)
    enc.train()
    blocks = enc.visual.transformer.resblocks
    assert not blocks[0].training and blocks[1].training and enc.visual.ln_post.training
    assert not enc.visual.conv1.training
    got = _params_with_grad(enc, torch.randn(2, 3, 64, 64))
    expected = {
        name
        for name, _ in enc.visual.named_parameters()
        if name.startswith(("transformer.resblocks.1.", "ln_post.")) or name == "proj"
    }
    assert got == expected
    assert {n for n, p in enc.visual.named_parameters() if p.requires_grad} == expected


def test_all_trainable(tiny_name: str) -> None:
    enc = RegionEncoder(_visual(tiny_name), r=2, trainable_blocks=-1)
    got = _params_with_grad(enc, torch.randn(2, 3, 64, 64))
    assert got == {name for name, _ in enc.visual.named_parameters()}
    assert enc.visual.training


def test_heatmaps_partition_the_grid(tiny4_name: str) -> None:
    enc = RegionEncoder(_visual(tiny4_name), r=5, keep_source=True)
    out = enc(torch.randn(2, 3, 96, 96))
    maps = enc.heatmaps(out.source)
    assert maps.shape == (2, enc.num_regions, 6, 6) == (2, 36 - 20, 6, 6)
    assert set(maps.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(maps.sum(1), torch.ones(2, 6, 6))
    torch.testing.assert_close(maps.sum((2, 3)), out.size[:, 1:])
    assign = region_assignment(out.source, enc.grid_size)
    assert torch.equal(maps.argmax(1), assign)
    assert assign.max().item() < enc.num_regions
    with pytest.raises(ValueError, match="grid"):
        source_to_heatmaps(out.source, (5, 5))


def test_source_is_none_unless_kept(tiny_name: str) -> None:
    assert RegionEncoder(_visual(tiny_name), r=2)(torch.randn(1, 3, 64, 64)).source is None


def test_rejects_bad_inputs_and_towers(tiny_name: str) -> None:
    enc = RegionEncoder(_visual(tiny_name), r=2)
    with pytest.raises(ValueError, match="64x64"):
        enc(torch.randn(1, 3, 96, 96))
    with pytest.raises(ValueError, match="64x64"):
        enc.num_tokens(96)
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        enc(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match="trainable_blocks"):
        RegionEncoder(_visual(tiny_name), trainable_blocks=3)
    with pytest.raises(ValueError, match="one value per block"):
        RegionEncoder(_visual(tiny_name), r=[1, 2, 3])
    with pytest.raises(TypeError, match="VisionTransformer"):
        RegionEncoder(nn.Linear(2, 2))
    common = {"image_size": 32, "patch_size": 16, "width": 32, "layers": 1, "heads": 2, "mlp_ratio": 2.0}
    with pytest.raises(NotImplementedError, match="patch dropout"):
        RegionEncoder(VisionTransformer(**common, patch_dropout=0.5))
    with pytest.raises(NotImplementedError, match="attentional pooling"):
        RegionEncoder(VisionTransformer(**common, attentional_pool=True, attn_pooler_heads=2, output_dim=32))
    with pytest.raises(NotImplementedError, match="pool_type"):
        RegionEncoder(VisionTransformer(**common, pool_type="avg"))
    with pytest.raises(NotImplementedError, match="scaled cosine"):
        RegionEncoder(VisionTransformer(**common, scaled_cosine_attn=True))


def test_runs_under_bf16_autocast(tiny4_name: str) -> None:
    enc = RegionEncoder(_visual(tiny4_name), r=4, keep_source=True)
    images = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(5))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = enc(images)
    assert out.tokens.shape == (2, 21, 48) and out.size.dtype == torch.float32
    assert torch.isfinite(out.tokens.float()).all()
    assert torch.equal(out.source.float().sum(1), torch.ones(2, 37))
    # bf16 only perturbs the values: cls stays close to the fp32 result at r=0.
    enc0 = RegionEncoder(enc.visual, r=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = enc0(images).cls.float()
    ref = enc0(images).cls
    assert (low - ref).abs().max().item() < 0.05 * ref.abs().max().item()


# ------------------------------------------------------------------ proportional attention: mask vs folded (issue 14)
def test_padded_head_dim() -> None:
    assert [padded_head_dim(d) for d in (7, 32, 48, 63, 64, 80)] == [8, 40, 56, 64, 72, 88]


@pytest.mark.parametrize("which", ["tiny", "tiny4", "custom"])
def test_folded_attention_gives_the_same_merges_fp32(which: str, tiny_name: str, tiny4_name: str) -> None:
    # alt-tiny has head dim 32 (the folded constant sqrt(32) is not a power of two), tiny4 16; the custom tower
    # (open_clip Attention with qk-norm) keeps the mask in both forms.
    builders = {"tiny": lambda: _visual(tiny_name), "tiny4": lambda: _visual(tiny4_name), "custom": _custom_visual}
    visual = builders[which]()
    size = visual.image_size[0]
    images = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(7))
    mask = RegionEncoder(visual, r=4, keep_source=True, attention="mask")(images)
    folded = RegionEncoder(visual, r=4, keep_source=True, attention="folded")(images)
    assert torch.equal(folded.source, mask.source)
    assert torch.equal(folded.size, mask.size)
    torch.testing.assert_close(folded.tokens, mask.tokens, atol=1e-5, rtol=1e-5)
    # Proportional attention is really on in the folded form (a wrong fold would give the plain result).
    plain = RegionEncoder(visual, r=4, proportional_attention=False, attention="folded")(images).cls
    assert (plain - folded.cls).abs().max().item() > 1e-4


def test_folded_attention_on_vit_b16_shapes() -> None:
    from alt_lightning.model.backbone import load_clip

    torch.manual_seed(0)
    visual = load_clip("ViT-B-16", None).visual  # random weights, no download
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        mask = RegionEncoder(visual, r=8, keep_source=True, attention="mask")(images)
        folded = RegionEncoder(visual, r=8, keep_source=True, attention="folded")(images)
    assert folded.tokens.shape == (2, 101, 512)
    assert torch.equal(folded.source, mask.source)  # identical merges in all 12 blocks
    torch.testing.assert_close(folded.tokens, mask.tokens, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("width", "heads"), [(768, 12), (384, 8)], ids=["dh64", "dh48"])
def test_folded_attention_within_bf16_tolerance(width: int, heads: int) -> None:
    # One attention layer with merged-token sizes, under bf16 autocast. Tolerance (our choice): the two forms differ
    # by less than bf16's unit roundoff (2^-8, relative L2), and folding adds no error against the fp32 result.
    torch.manual_seed(0)
    attn = nn.MultiheadAttention(width, heads, batch_first=True).eval()
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(0.0, 0.05)
    x = torch.randn(2, 181, width)
    log_size = torch.randint(1, 9, (2, 181)).float().log()
    with torch.no_grad():
        ref = _attention(attn, x, log_size, "mask")[0]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mask = _attention(attn, x, log_size, "mask")[0].float()
            folded = _attention(attn, x, log_size, "folded")[0].float()

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return ((a - b).norm() / b.norm()).item()

    assert rel(folded, mask) < 2**-8
    assert rel(folded, ref) < 1.1 * rel(mask, ref)
    assert 1e-4 < rel(mask, ref) < 0.02  # bf16 really ran


def test_rejects_unknown_attention_and_compile(tiny_name: str) -> None:
    with pytest.raises(ValueError, match="attention must be one of"):
        RegionEncoder(_visual(tiny_name), attention="flash")
    with pytest.raises(ValueError, match="compile must be one of"):
        RegionEncoder(_visual(tiny_name), compile="max-autotune")
    with pytest.raises(ValueError, match="trainable_blocks=0"):
        RegionEncoder(_visual(tiny_name), compile="cuda-graphs", trainable_blocks=1)
