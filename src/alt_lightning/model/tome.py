"""Token Merging (ToMe, Bolya et al., ICLR 2023) as pure tensor functions.

ALT turns the patch tokens of a frozen CLIP ViT into "regions" by merging similar tokens inside every
block. One merge step works on a token sequence ``x [N, T, D]`` (cls first) with a similarity metric
``metric [N, T, Dk]`` (the block's keys averaged over heads):

1. bipartite soft matching: tokens at even positions form set A, odd positions set B; every A token
   finds its most cosine-similar B token; the ``r`` A tokens with the highest best-match similarity
   are merged into their B partners (:func:`bipartite_soft_matching`);
2. the merge itself is a size-weighted average, so a token that already holds many patches counts
   as much as all of them (:func:`merge_weighted_average`);
3. the 0/1 "source" map (which original patches each token holds) is merged by a plain sum
   (:func:`merge_source`), which keeps it 0/1 because merged groups are disjoint;
4. later attention layers add ``log(size)`` of every key to the logits ("proportional attention",
   :func:`proportional_attention_bias`) so a merged token is attended to as if it were still all of
   its patches.

The output order of a merge step is fixed: the A tokens that stay, in their original order (so the
protected cls token stays first), then all B tokens in their original order. Index computations run
without autograd (they are discrete); the merged values stay differentiable with respect to ``x``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from alt_lightning.model.precision import autocast_off

__all__ = [
    "Matching",
    "bipartite_soft_matching",
    "clamp_r",
    "compiled_merge_step",
    "initial_source",
    "merge_schedule",
    "merge_source",
    "merge_step",
    "merge_tokens",
    "merge_weighted_average",
    "proportional_attention_bias",
    "resolve_r",
]


class Matching(NamedTuple):
    """The result of one bipartite soft matching step, as positions.

    Attributes:
        order: ``[N, T - r]`` positions (in the input sequence) of the tokens that survive, in output
            order: kept A tokens ascending, then all B tokens ascending.
        src: ``[N, r]`` input positions of the A tokens merged away, best-matched first.
        dst: ``[N, r]`` output positions of the B tokens receiving them (same order; may repeat).
    """

    order: torch.Tensor
    src: torch.Tensor
    dst: torch.Tensor

    @property
    def r(self) -> int:
        """Number of tokens this matching removes."""
        return int(self.src.shape[1])


def resolve_r(r: int | Sequence[int], num_layers: int) -> list[int]:
    """Turns ``r`` (one value for all layers, or one per layer) into a per-layer list.

    Args:
        r: Tokens to merge per layer; an int applies to every layer.
        num_layers: Number of transformer blocks.

    Returns:
        A list of ``num_layers`` non-negative ints (not yet clamped, see :func:`merge_schedule`).

    Raises:
        ValueError: If a value is negative or the list length differs from ``num_layers``.
    """
    if isinstance(r, int):
        rs = [r] * num_layers
    else:
        rs = [int(v) for v in r]
        if len(rs) != num_layers:
            raise ValueError(
                f"r was given per layer with {len(rs)} values but the model has {num_layers} blocks; "
                f"give one value per block or a single int."
            )
    if any(v < 0 for v in rs):
        raise ValueError(f"r must be >= 0 in every layer, got {rs}.")
    return rs


def clamp_r(r: int, num_tokens: int, protect_first: bool = True) -> int:
    """Largest admissible merge count for one layer.

    At most half of the mergeable tokens may merge in one step: with the cls token protected that is
    ``(T - 1) // 2``, which also guarantees that set A keeps its protected token and set B is large
    enough to receive every merged token.

    Args:
        r: Requested merge count.
        num_tokens: Current sequence length ``T`` (cls included).
        protect_first: Whether token 0 (cls) is excluded from merging.

    Returns:
        ``min(r, mergeable // 2)``, never negative.
    """
    mergeable = num_tokens - 1 if protect_first else num_tokens
    return max(0, min(r, mergeable // 2))


def merge_schedule(num_tokens: int, r_per_layer: Sequence[int], protect_first: bool = True) -> list[int]:
    """The clamped merge count of every layer for a given input length.

    Args:
        num_tokens: Sequence length entering the first block (``1 + P`` with cls).
        r_per_layer: Requested merge count per layer.
        protect_first: Whether token 0 (cls) is excluded from merging.

    Returns:
        Effective merge counts; the output length is ``num_tokens - sum(result)``.
    """
    out: list[int] = []
    t = num_tokens
    for r in r_per_layer:
        r_eff = clamp_r(r, t, protect_first)
        out.append(r_eff)
        t -= r_eff
    return out


@torch.no_grad()
def bipartite_soft_matching(metric: torch.Tensor, r: int, protect_first: bool = True) -> Matching:
    """Chooses which tokens to merge, by bipartite soft matching on cosine similarity.

    Args:
        metric: ``[N, T, Dk]`` per-token features whose cosine similarity decides the matching (ToMe
            uses the attention keys averaged over heads).
        r: Number of tokens to remove; must satisfy ``r <= clamp_r(r, T, protect_first)``.
        protect_first: Never merge token 0 (the cls token): its scores are set to ``-inf`` so it
            always ranks last in set A.

    Returns:
        The :class:`Matching` indices.

    Raises:
        ValueError: If ``r`` exceeds the admissible count for this sequence length.
    """
    n, t = metric.shape[:2]
    if r > clamp_r(r, t, protect_first):
        raise ValueError(
            f"cannot merge r={r} of {t} tokens (at most {clamp_r(t, t, protect_first)}); clamp r first with clamp_r()."
        )
    # float32: the argsort below is sensitive to ties that bf16/fp16 similarities would create. Autocast would cast
    # the product back to bf16 (near-identical background patches then tie), so it is switched off here.
    with autocast_off(metric.device):
        unit = F.normalize(metric.float(), dim=-1)
        scores = unit[:, 0::2] @ unit[:, 1::2].transpose(1, 2)  # [N, Ta, Tb] cosine similarities (A even, B odd)
    if protect_first:
        scores[:, 0, :] = float("-inf")
    best_score, best_dst = scores.max(dim=-1)  # [N, Ta], [N, Ta]
    ranked = best_score.argsort(dim=-1, descending=True)  # [N, Ta] A indices, most similar first
    # Every index below is built with as few kernels as possible (each one is a launch on a GPU, 12 times per
    # frame batch): A index i sits at input position 2 i, B index j at 2 j + 1.
    a_pos = ranked * 2  # [N, Ta] input positions of A, ranked
    # Sorting the survivors keeps spatial order and puts the protected cls token back at the front.
    keep_pos = a_pos[:, r:].sort(dim=-1).values  # [N, Ta - r]
    dst = best_dst.gather(1, ranked[:, :r]) + keep_pos.shape[1]  # [N, r] output positions of the receivers
    b_pos = torch.arange(1, t, 2, device=metric.device).expand(n, -1)  # [N, Tb]
    order = torch.cat([keep_pos, b_pos], dim=1)  # [N, T - r]
    return Matching(order=order, src=a_pos[:, :r], dst=dst)


def _rows(index: torch.Tensor, d: int) -> torch.Tensor:
    """``[N, K]`` token index -> ``[N, K, D]`` index for gather/scatter along dim 1."""
    return index.unsqueeze(-1).expand(-1, -1, d)


def merge_tokens(x: torch.Tensor, matching: Matching) -> torch.Tensor:
    """Applies a matching by summing each merged token into its partner.

    Args:
        x: ``[N, T, D]`` values of the sequence the matching was computed on.
        matching: Output of :func:`bipartite_soft_matching`.

    Returns:
        ``[N, T - r, D]`` in the matching's output order, receivers holding the sums.
    """
    d = x.shape[-1]
    out = x.gather(1, _rows(matching.order, d))  # [N, T - r, D] a new tensor: add into it in place
    moved = x.gather(1, _rows(matching.src, d))  # [N, r, D]
    return out.scatter_add_(1, _rows(matching.dst, d), moved)


def merge_weighted_average(
    x: torch.Tensor, size: torch.Tensor, matching: Matching
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merges tokens by a size-weighted average and tracks the new sizes.

    Only the ``r`` receiving rows change, so they are updated in place of a full weighted sum:
    ``new = x_dst + sum_i (x_i - x_dst) * s_i / S`` with ``S = s_dst + sum_i s_i`` (equal to
    ``(x_dst s_dst + sum_i x_i s_i) / S``). Every other row is one gather, which keeps the merge to
    about one pass over ``x`` on a GPU.

    Args:
        x: ``[N, T, D]`` token values.
        size: ``[N, T]`` number of original patches (or cls) each token holds.
        matching: Output of :func:`bipartite_soft_matching`.

    Returns:
        ``(x [N, T - r, D], size [N, T - r])``; ``x`` keeps its dtype, ``size`` is float32.
    """
    d = x.shape[-1]
    size = size.float()
    src_size = size.gather(1, matching.src)  # [N, r]
    new_size = size.gather(1, matching.order).scatter_add_(1, matching.dst, src_size)  # [N, T - r]
    out = x.gather(1, _rows(matching.order, d))  # [N, T - r, D] a new tensor: updated in place below
    # The r-row update runs in at least float32: half-precision weights lose digits.
    acc = torch.promote_types(x.dtype, torch.float32)
    x_src = x.gather(1, _rows(matching.src, d)).to(acc)  # [N, r, D]
    x_dst = out.gather(1, _rows(matching.dst, d)).to(acc)  # [N, r, D] values before the merge
    weight = src_size.to(acc) / new_size.gather(1, matching.dst).to(acc)  # [N, r] (sizes are exact)
    delta = (x_src - x_dst) * weight.unsqueeze(-1)  # [N, r, D]
    if out.requires_grad:  # autograd saved ``out`` for the gather of x_dst: add out of place (one more copy)
        return out.scatter_add(1, _rows(matching.dst, d), delta.to(x.dtype)), new_size
    return out.scatter_add_(1, _rows(matching.dst, d), delta.to(x.dtype)), new_size


def merge_source(source: torch.Tensor, matching: Matching) -> torch.Tensor:
    """Merges the source map (which original tokens each token holds).

    Args:
        source: ``[N, T, T0]`` 0/1 map from current tokens to the ``T0`` original tokens.
        matching: Output of :func:`bipartite_soft_matching`.

    Returns:
        ``[N, T - r, T0]`` 0/1 map (merged groups are disjoint, so sums stay 0/1).
    """
    return merge_tokens(source, matching)


def merge_step(
    x: torch.Tensor, size: torch.Tensor, source: torch.Tensor | None, metric: torch.Tensor, r: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One ToMe step with the cls token protected: matching, size-weighted merge and source merge.

    Args:
        x: ``[N, T, D]`` token values.
        size: ``[N, T]`` token sizes.
        source: ``[N, T, T0]`` source map, or None.
        metric: ``[N, T, Dk]`` similarity features.
        r: Tokens to remove (admissible, see :func:`clamp_r`).

    Returns:
        ``(x [N, T - r, D], size [N, T - r], source [N, T - r, T0] or None)``.
    """
    matching = bipartite_soft_matching(metric, r, protect_first=True)
    x, size = merge_weighted_average(x, size, matching)
    return x, size, (None if source is None else merge_source(source, matching))


_COMPILED_MERGE_STEP: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] | None = None


def compiled_merge_step(
    x: torch.Tensor, size: torch.Tensor, source: torch.Tensor | None, metric: torch.Tensor, r: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """:func:`merge_step` through ``torch.compile`` (dynamic shapes: one compilation serves every layer's length).

    The compiler fuses the normalisation, index arithmetic, gathers and the weighted update into a few kernels;
    the sorts and the similarity product stay library calls. Same math as :func:`merge_step` (floating-point results
    may differ in the last bits where the compiler reorders a reduction).
    """
    global _COMPILED_MERGE_STEP
    if _COMPILED_MERGE_STEP is None:
        _COMPILED_MERGE_STEP = torch.compile(merge_step, dynamic=True)
    return _COMPILED_MERGE_STEP(x, size, source, metric, r)


def initial_source(batch: int, num_tokens: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The identity source map of an unmerged sequence.

    Args:
        batch: Batch size ``N``.
        num_tokens: Sequence length ``T0`` (cls included).
        device: Target device.
        dtype: Target dtype (any float dtype holds 0/1 exactly).

    Returns:
        ``[N, T0, T0]`` identity matrices (an expanded view; merging materialises it).
    """
    return torch.eye(num_tokens, device=device, dtype=dtype).unsqueeze(0).expand(batch, -1, -1)


def proportional_attention_bias(size: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive attention mask for proportional attention: ``log(size)`` of every key.

    Args:
        size: ``[N, T]`` token sizes.
        dtype: dtype of the attention queries (``scaled_dot_product_attention`` wants them equal).

    Returns:
        ``[N, 1, 1, T]`` float mask, broadcast over heads and queries.
    """
    return size.log().to(dtype)[:, None, None, :]
