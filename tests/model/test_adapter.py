"""QueryAdapter: shapes for several B, T, R and every option; residual, top-M, temporal conv and learnable queries."""

from __future__ import annotations

import pytest
import torch

from alt_lightning.model.adapter import AdapterConfig, QueryAdapter

C = 32


def _inputs(b: int, t: int, r: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(b, t, 1 + r, C, generator=g)  # [B, T, 1+R, C]
    aligned = torch.randn(b, t, r, C, generator=g)  # [B, T, R, C]
    confidence = torch.rand(b, t, r, generator=g)  # [B, T, R]
    return tokens, aligned, confidence


@pytest.mark.parametrize(("b", "t", "r"), [(1, 1, 1), (2, 4, 5), (3, 8, 2), (2, 3, 16)])
@pytest.mark.parametrize(
    "config",
    [
        AdapterConfig(heads=4),
        AdapterConfig(heads=4, layers=2, top_m=3),
        AdapterConfig(heads=4, temporal_conv=True, pool="confidence"),
        AdapterConfig(heads=4, cls_residual=False),
    ],
    ids=["default", "2layers-top3", "tconv-confpool", "no-residual"],
)
def test_entity_query_shapes(b: int, t: int, r: int, config: AdapterConfig) -> None:
    adapter = QueryAdapter(C, config, num_regions=r)
    tokens, aligned, confidence = _inputs(b, t, r)
    z = adapter(tokens, aligned, confidence)
    assert z.shape == (b, C) and torch.isfinite(z).all()


@pytest.mark.parametrize(("b", "t", "r"), [(1, 2, 3), (2, 4, 5)])
def test_learnable_query_shapes_and_count(b: int, t: int, r: int) -> None:
    adapter = QueryAdapter(C, AdapterConfig(heads=4), num_regions=r, entity_queries=False)
    tokens, _, _ = _inputs(b, t, r)
    q, weights = adapter.queries(b, t, None, None)
    assert q.shape == (b, t * r, C) and weights is None  # as many queries as the entity version
    assert adapter(tokens).shape == (b, C)
    fixed = QueryAdapter(C, AdapterConfig(heads=4, learnable_queries=6), num_regions=r, entity_queries=False)
    assert fixed.queries(b, t, None, None)[0].shape == (b, t * 6, C)


def test_learnable_table_exists_only_for_the_ablation() -> None:
    assert QueryAdapter(C, AdapterConfig(heads=4), num_regions=3).learned_queries is None
    tokens, _, _ = _inputs(1, 2, 3)
    with pytest.raises(ValueError, match="entity_queries=False"):
        QueryAdapter(C, AdapterConfig(heads=4), num_regions=3)(tokens)


def test_top_m_keeps_the_most_confident_queries() -> None:
    adapter = QueryAdapter(C, AdapterConfig(heads=4, top_m=4), num_regions=3)
    _, aligned, confidence = _inputs(2, 2, 3)
    q, weights = adapter.queries(2, 2, aligned, confidence)
    assert q.shape == (2, 4, C)
    expected = confidence.flatten(1).sort(dim=1, descending=True).values[:, :4]
    assert torch.equal(weights.sort(dim=1, descending=True).values, expected)
    # The kept queries are exactly the MLP outputs of those regions.
    full, _ = QueryAdapter.queries(adapter, 2, 2, aligned, None)
    picked = confidence.flatten(1).topk(4, dim=1).indices
    assert torch.allclose(q, full.gather(1, picked[..., None].expand(-1, -1, C)))


def test_zero_gamma_gives_the_mean_cls_embedding() -> None:
    adapter = QueryAdapter(C, AdapterConfig(heads=4, residual_init=0.0), num_regions=2)
    tokens, aligned, confidence = _inputs(2, 4, 2)
    assert torch.equal(adapter(tokens, aligned, confidence), tokens[:, :, 0].mean(1))
    assert QueryAdapter(C, AdapterConfig(heads=4), num_regions=2).gamma.item() == pytest.approx(0.1)


def test_temporal_conv_starts_as_identity_then_mixes_frames() -> None:
    torch.manual_seed(0)
    plain = QueryAdapter(C, AdapterConfig(heads=4), num_regions=2)
    conv = QueryAdapter(C, AdapterConfig(heads=4, temporal_conv=True), num_regions=2)
    missing = conv.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["temporal_conv.bias", "temporal_conv.weight"]
    tokens, aligned, confidence = _inputs(2, 4, 2)
    assert torch.allclose(conv(tokens, aligned, confidence), plain(tokens, aligned, confidence))
    with torch.no_grad():
        conv.temporal_conv.weight.fill_(0.5)
    assert not torch.allclose(conv(tokens, aligned, confidence), plain(tokens, aligned, confidence))


def test_frame_order_matters() -> None:
    adapter = QueryAdapter(C, AdapterConfig(heads=4, cls_residual=False), num_regions=2)
    tokens, aligned, confidence = _inputs(1, 3, 2)
    flipped = adapter(tokens.flip(1), aligned.flip(1), confidence.flip(1))
    assert not torch.allclose(adapter(tokens, aligned, confidence), flipped, atol=1e-5)


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="pool"):
        AdapterConfig(pool="max")
    with pytest.raises(ValueError, match="divisible"):
        QueryAdapter(30, AdapterConfig(heads=8))
    adapter = QueryAdapter(C, AdapterConfig(heads=4, max_frames=2), num_regions=1, num_frames=8)
    assert adapter.frame_pos.shape[0] == adapter.temporal_pos.shape[0] == 2  # an older checkpoint's table size wins
    with pytest.raises(ValueError, match="max_frames"):
        adapter(*_inputs(1, 3, 1))
    with pytest.raises(ValueError, match="num_frames >= 3"):
        QueryAdapter(C, AdapterConfig(heads=4), num_regions=1, num_frames=2)(*_inputs(1, 3, 1))
    assert QueryAdapter(C, AdapterConfig(heads=4), num_frames=5).frame_pos.shape[0] == 5  # tables: num_frames rows
    with pytest.raises(ValueError, match="max_frames"):
        AdapterConfig(max_frames=0)


def test_without_out_proj_z_is_the_pooled_queries() -> None:
    """``out_proj=False`` drops the closing LayerNorm + Linear: z is the mean of the decoder's output queries."""
    torch.manual_seed(0)
    adapter = QueryAdapter(C, AdapterConfig(heads=4, cls_residual=False, out_proj=False), num_regions=2)
    with_proj = QueryAdapter(C, AdapterConfig(heads=4, cls_residual=False), num_regions=2)
    count = sum(p.numel() for p in with_proj.parameters()) - sum(p.numel() for p in adapter.parameters())
    assert adapter.norm_out is None and adapter.proj_out is None and count == 2 * C + C * C + C
    tokens, aligned, confidence = _inputs(2, 3, 2)
    q, _ = adapter.queries(2, 3, aligned, confidence)  # [B, T*R, C]
    kv = (adapter.kv_mlp(tokens) + adapter.temporal_pos[:3, None]).flatten(1, 2)  # [B, T*(1+R), C]
    assert torch.allclose(adapter(tokens, aligned, confidence), adapter.layers[0](q, kv).mean(1))
