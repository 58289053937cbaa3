"""Token merging operator against a brute-force reference."""

from __future__ import annotations

import math

import pytest
import torch

from alt_lightning.model.tome import (
    bipartite_soft_matching,
    clamp_r,
    initial_source,
    merge_schedule,
    merge_source,
    merge_step,
    merge_weighted_average,
    proportional_attention_bias,
    resolve_r,
)


def reference_merge(x: torch.Tensor, size: torch.Tensor, metric: torch.Tensor, r: int):
    """Naive per-sample loop: ToMe bipartite matching and size-weighted averages, cls protected.

    Returns (x [N, T-r, D], size [N, T-r], merged A positions per sample, member lists per output token).
    """
    n_batch, t, _ = x.shape
    xs, sizes, merged_sets, members_all = [], [], [], []
    for n in range(n_batch):
        set_a = list(range(0, t, 2))
        set_b = list(range(1, t, 2))
        best = {}
        for a in set_a[1:]:  # position 0 (cls) never merges
            sims = [
                float(torch.dot(metric[n, a], metric[n, b]) / (metric[n, a].norm() * metric[n, b].norm()))
                for b in set_b
            ]
            j = max(range(len(sims)), key=lambda i: sims[i])
            best[a] = (sims[j], set_b[j])
        chosen = sorted(best, key=lambda a: -best[a][0])[:r]
        members = [[a] for a in set_a if a not in chosen] + [
            [b] + [a for a in chosen if best[a][1] == b] for b in set_b
        ]
        out_x = torch.stack([sum(x[n, i] * size[n, i] for i in grp) / sum(size[n, i] for i in grp) for grp in members])
        out_s = torch.stack([sum(size[n, i] for i in grp) for grp in members])
        xs.append(out_x)
        sizes.append(out_s)
        merged_sets.append(set(chosen))
        members_all.append(members)
    return torch.stack(xs), torch.stack(sizes), merged_sets, members_all


@pytest.mark.parametrize(("t", "r"), [(17, 1), (17, 5), (17, 8), (16, 7), (37, 12), (10, 0)])
def test_merge_matches_bruteforce(t: int, r: int) -> None:
    gen = torch.Generator().manual_seed(t * 100 + r)
    n, d, dk = 3, 5, 4
    x = torch.randn(n, t, d, generator=gen, dtype=torch.float64)
    metric = torch.randn(n, t, dk, generator=gen, dtype=torch.float64)
    size = torch.randint(1, 6, (n, t), generator=gen).double()
    size[:, 0] = 1.0

    matching = bipartite_soft_matching(metric, r)
    got_x, got_size = merge_weighted_average(x, size, matching)
    ref_x, ref_size, ref_merged, ref_members = reference_merge(x, size, metric, r)

    assert got_x.shape == (n, t - r, d)
    for i in range(n):
        merged_positions = set(matching.src[i].tolist())
        assert merged_positions == ref_merged[i]
        assert 0 not in merged_positions
    torch.testing.assert_close(got_x, ref_x, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(got_size.double(), ref_size)
    # Sizes are conserved: the total is the original token mass.
    torch.testing.assert_close(got_size.sum(1).double(), size.sum(1))

    # The source map records exactly the reference groups.
    source = merge_source(initial_source(n, t, x.device, x.dtype), matching)
    for i in range(n):
        for row, grp in enumerate(ref_members[i]):
            assert torch.nonzero(source[i, row]).flatten().tolist() == sorted(grp)


def test_repeated_merges_keep_mass_and_partition() -> None:
    gen = torch.Generator().manual_seed(0)
    n, t0, d = 2, 1 + 36, 8
    x = torch.randn(n, t0, d, generator=gen)
    size = torch.ones(n, t0)
    source = initial_source(n, t0, x.device, x.dtype)
    schedule = merge_schedule(t0, [8] * 4)
    assert schedule == [8, 8, 8, 6]
    for r in schedule:
        metric = x + 0.1 * torch.randn(x.shape, generator=gen)
        matching = bipartite_soft_matching(metric, r)
        x, size = merge_weighted_average(x, size, matching)
        source = merge_source(source, matching)
        assert size.sum(1).tolist() == [float(t0)] * n
        # Every original token is held by exactly one current token, and sizes count them.
        assert torch.equal(source.sum(1), torch.ones(n, t0))
        assert torch.equal(source.sum(2), size)
        assert source[:, 0].tolist() == [[1.0] + [0.0] * (t0 - 1)] * n
    assert x.shape == (n, t0 - sum(schedule), d) == (n, 7, d)


def test_cls_is_protected_even_when_it_is_the_best_match() -> None:
    t = 9
    metric = torch.randn(1, t, 4)
    metric[0, 1] = metric[0, 0]  # cls identical to B token 1: cosine 1, the best possible score
    matching = bipartite_soft_matching(metric, 4)
    assert 0 not in matching.src.tolist()[0]
    assert matching.order[0, 0].item() == 0
    assert matching.r == 4


def test_merge_order_and_exact_average() -> None:
    # 5 tokens: A = {0, 2, 4}, B = {1, 3}. Token 4 is a near copy of token 3; nothing else is close.
    metric = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 0.9]]])
    x = torch.arange(5, dtype=torch.float32).view(1, 5, 1) * 10.0
    size = torch.tensor([[1.0, 1.0, 1.0, 3.0, 1.0]])
    matching = bipartite_soft_matching(metric, 1)
    assert matching.src.tolist() == [[4]] and matching.dst.tolist() == [[3]]
    assert matching.order.tolist() == [[0, 2, 1, 3]]
    out_x, out_size = merge_weighted_average(x, size, matching)
    # Output order: kept A tokens (0, 2), then B tokens (1, 3+4).
    assert out_x.flatten().tolist() == pytest.approx([0.0, 20.0, 10.0, (30.0 * 3 + 40.0) / 4])
    assert out_size.flatten().tolist() == [1.0, 1.0, 1.0, 4.0]


def test_merge_is_differentiable_in_values() -> None:
    x = torch.randn(2, 11, 6, requires_grad=True)
    metric = torch.randn(2, 11, 3)
    matching = bipartite_soft_matching(metric, 3)
    out, _ = merge_weighted_average(x, torch.ones(2, 11), matching)
    out.sum().backward()
    # Each original token contributes with weight 1/size of its group; their total per sample is T - r.
    torch.testing.assert_close(x.grad.sum(dim=(1, 2)), torch.full((2,), 8.0 * 6))


def test_merge_keeps_low_precision_dtype() -> None:
    x = torch.randn(1, 9, 4).to(torch.bfloat16)
    matching = bipartite_soft_matching(x, 2)
    out, size = merge_weighted_average(x, torch.ones(1, 9), matching)
    assert out.dtype == torch.bfloat16 and size.dtype == torch.float32


def test_clamp_and_schedule() -> None:
    assert clamp_r(8, 17) == 8
    assert clamp_r(9, 17) == 8
    assert clamp_r(8, 9) == 4
    assert clamp_r(3, 1) == 0
    assert clamp_r(8, 16, protect_first=False) == 8
    assert merge_schedule(17, [8, 8]) == [8, 4]
    assert merge_schedule(197, [8] * 12) == [8] * 12  # ViT-B/16: 197 -> 101 tokens
    assert merge_schedule(257, [8] * 24) == [8] * 24  # ViT-L/14: 257 -> 65 tokens
    assert merge_schedule(50, [30, 0, 30]) == [24, 0, 12]


def test_resolve_r() -> None:
    assert resolve_r(3, 4) == [3, 3, 3, 3]
    assert resolve_r((1, 0, 2), 3) == [1, 0, 2]
    with pytest.raises(ValueError, match="one value per block"):
        resolve_r([1, 2], 3)
    with pytest.raises(ValueError, match=">= 0"):
        resolve_r(-1, 2)


def test_matching_rejects_too_large_r() -> None:
    with pytest.raises(ValueError, match="clamp_r"):
        bipartite_soft_matching(torch.randn(1, 9, 4), 5)


def test_proportional_bias() -> None:
    size = torch.tensor([[1.0, 2.0, 4.0]])
    bias = proportional_attention_bias(size, torch.float16)
    assert bias.shape == (1, 1, 1, 3) and bias.dtype == torch.float16
    assert bias.flatten().tolist() == pytest.approx([0.0, math.log(2.0), math.log(4.0)], abs=1e-3)


def test_matching_is_float32_under_bf16_autocast() -> None:
    # Near-duplicate tokens: similarities differ below bf16 resolution, so a bf16 product would tie them.
    g = torch.Generator().manual_seed(0)
    base = torch.randn(1, 1, 64, generator=g)
    metric = base + 1e-3 * torch.randn(4, 197, 64, generator=g)  # [N, T, Dk]
    ref = bipartite_soft_matching(metric, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = bipartite_soft_matching(metric, 8)
    assert torch.equal(got.src, ref.src)
    assert torch.equal(got.dst, ref.dst)


# ------------------------------------------------------------------ fewer kernels, same results (issue 14)
def _previous_matching(metric: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The implementation before issue 14 (commit 8159810), kept verbatim as a regression oracle."""
    unit = torch.nn.functional.normalize(metric.float(), dim=-1)
    set_a, set_b = unit[:, 0::2], unit[:, 1::2]
    scores = set_a @ set_b.transpose(1, 2)
    scores[:, 0, :] = float("-inf")
    best_score, best_dst = scores.max(dim=-1)
    ranked = best_score.argsort(dim=-1, descending=True)
    src_a = ranked[:, :r]
    keep_a = ranked[:, r:].sort(dim=-1).values
    dst_b = best_dst.gather(1, src_a)
    n, num_b = metric.shape[0], set_b.shape[1]
    b_pos = torch.arange(num_b, device=metric.device).mul(2).add(1).expand(n, -1)
    order = torch.cat([keep_a * 2, b_pos], dim=1)
    return order, src_a * 2, dst_b + keep_a.shape[1]


def _previous_merge(x: torch.Tensor, size: torch.Tensor, order, src, dst) -> tuple[torch.Tensor, torch.Tensor]:
    def rows(i: torch.Tensor) -> torch.Tensor:
        return i.unsqueeze(-1).expand(-1, -1, x.shape[-1])

    size = size.float()
    src_size = size.gather(1, src)
    new_size = size.gather(1, order).scatter_add(1, dst, src_size)
    out = x.gather(1, rows(order))
    acc = torch.promote_types(x.dtype, torch.float32)
    x_src = x.gather(1, rows(src)).to(acc)
    x_dst = out.gather(1, rows(dst)).to(acc)
    weight = src_size.to(acc) / new_size.gather(1, dst).to(acc)
    delta = (x_src - x_dst) * weight.unsqueeze(-1)
    return out.scatter_add(1, rows(dst), delta.to(x.dtype)), new_size


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_equals_previous_implementation_exactly(dtype: torch.dtype) -> None:
    # ViT-B/16 shapes: 197 tokens of width 768, keys of 64 channels, 12 merge steps of r = 8.
    gen = torch.Generator().manual_seed(0)
    n, t, d = 3, 197, 768
    x = torch.randn(n, t, d, generator=gen).to(dtype)
    size = torch.ones(n, t)
    source = initial_source(n, t, x.device, torch.float32)
    prev_x, prev_size = x, size
    for _ in range(12):
        metric = torch.randn(n, x.shape[1], 64, generator=gen).to(dtype)
        matching = bipartite_soft_matching(metric, 8)
        order, src, dst = _previous_matching(metric, 8)
        assert torch.equal(matching.order, order) and torch.equal(matching.src, src) and torch.equal(matching.dst, dst)
        x, size, source = merge_step(x, size, source, metric, 8)
        prev_x, prev_size = _previous_merge(prev_x, prev_size, order, src, dst)
        assert torch.equal(x, prev_x) and torch.equal(size, prev_size)
    assert x.shape == (n, 101, d) and torch.equal(source.sum(-1), size)


def test_merge_step_is_the_three_functions() -> None:
    gen = torch.Generator().manual_seed(1)
    x, metric = torch.randn(2, 17, 6, generator=gen), torch.randn(2, 17, 4, generator=gen)
    size = torch.randint(1, 4, (2, 17), generator=gen).float()
    source = initial_source(2, 17, x.device, x.dtype)
    matching = bipartite_soft_matching(metric, 5)
    ref_x, ref_size = merge_weighted_average(x, size, matching)
    got_x, got_size, got_source = merge_step(x, size, source, metric, 5)
    assert torch.equal(got_x, ref_x) and torch.equal(got_size, ref_size)
    assert torch.equal(got_source, merge_source(source, matching))
    assert merge_step(x, size, None, metric, 5)[2] is None


def test_fewer_aten_ops_per_forward_than_before() -> None:
    # alt-tiny (2 blocks, r = 2), counted with torch.profiler as in issue 14. Before (commit 8159810): 100 innermost
    # compute ops at r = 2 and 31 at r = 0 (69 for two merges); 84 and 29 dispatched.
    from alt_lightning.commands.bench import count_aten_ops
    from alt_lightning.model.backbone import load_clip
    from alt_lightning.model.region_encoder import RegionEncoder

    torch.manual_seed(0)
    visual = load_clip("alt-tiny", None).visual
    images = torch.randn(2, 3, 64, 64)
    counts = {}
    for r in (2, 0):
        enc = RegionEncoder(visual, r=r)
        with torch.no_grad():
            counts[r] = count_aten_ops(lambda enc=enc: enc(images))
    assert counts[2]["innermost"] < 100 and counts[0]["innermost"] < 31
    assert counts[2]["dispatched"] < 84 and counts[0]["dispatched"] < 29
    assert counts[2]["innermost"] - counts[0]["innermost"] < 69
