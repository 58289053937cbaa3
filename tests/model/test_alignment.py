"""EntityAligner: hard straight-through forward, soft gradients, deterministic evaluation, temperature and scale."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from alt_lightning.model.alignment import AlignmentConfig, EntityAligner

K, C = 7, 16


def _corpus(seed: int = 0) -> torch.Tensor:
    return torch.randn(K, C, generator=torch.Generator().manual_seed(seed))


def _regions(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, C, generator=torch.Generator().manual_seed(seed))


def test_straight_through_forward_is_the_hard_choice_and_gradient_is_the_soft_one() -> None:
    aligner = EntityAligner(_corpus(), AlignmentConfig(scale=10.0, tau=0.5, gumbel=False)).train()
    regions = _regions(2, 3, 5).requires_grad_(True)  # [B, T, R, C]
    weights = torch.randn(2, 3, 5, C, generator=torch.Generator().manual_seed(2))
    out = aligner(regions)

    entities = F.normalize(_corpus(), dim=-1)
    sims = 10.0 * F.normalize(regions, dim=-1) @ entities.T  # [B, T, R, K]
    assert torch.equal(out.entity_ids, sims.argmax(-1))
    assert torch.equal(out.aligned, entities[out.entity_ids])  # bit-exact: the forward is the one-hot choice
    assert torch.allclose(out.confidence, torch.softmax(sims / 0.5, -1).max(-1).values, atol=1e-6)

    (out.aligned * weights).sum().backward()
    reference = regions.detach().clone().requires_grad_(True)
    soft = torch.softmax(10.0 * F.normalize(reference, dim=-1) @ entities.T / 0.5, -1)
    ((soft @ entities) * weights).sum().backward()
    assert regions.grad is not None and regions.grad.abs().sum() > 0
    assert torch.allclose(regions.grad, reference.grad, atol=1e-6)


def test_gumbel_training_still_outputs_corpus_rows_and_passes_gradients() -> None:
    aligner = EntityAligner(_corpus(), AlignmentConfig(scale=1.0, tau=1.0)).train()
    regions = _regions(4, 6).requires_grad_(True)
    torch.manual_seed(0)
    out = aligner(regions)
    entities = F.normalize(_corpus(), dim=-1)
    assert torch.equal(out.aligned, entities[out.entity_ids])
    out.aligned.sum().backward()
    assert regions.grad.abs().sum() > 0
    # With a flat similarity (scale 1) the Gumbel noise changes choices between calls.
    choices = {tuple(aligner(regions).entity_ids.flatten().tolist()) for _ in range(5)}
    assert len(choices) > 1


def test_eval_is_deterministic_plain_softmax() -> None:
    aligner = EntityAligner(_corpus(), AlignmentConfig(scale=1.0, tau=0.1, eval_tau=1.0)).eval()
    regions = _regions(3, 5)
    a, b = aligner(regions), aligner(regions)
    assert torch.equal(a.entity_ids, b.entity_ids) and torch.equal(a.confidence, b.confidence)
    sims = F.normalize(regions, dim=-1) @ F.normalize(_corpus(), dim=-1).T
    assert torch.allclose(a.confidence, torch.softmax(sims, -1).max(-1).values, atol=1e-6)  # eval_tau, not tau


def test_lower_temperature_gives_higher_confidence_same_choice() -> None:
    regions = _regions(10)
    warm = EntityAligner(_corpus(), AlignmentConfig(scale=5.0, tau=2.0, gumbel=False)).train()(regions)
    cold = EntityAligner(_corpus(), AlignmentConfig(scale=5.0, tau=0.2, gumbel=False)).train()(regions)
    assert torch.equal(warm.entity_ids, cold.entity_ids)
    assert (cold.confidence > warm.confidence).all()


def test_soft_assignment_mixes_entities() -> None:
    aligner = EntityAligner(_corpus(), AlignmentConfig(scale=3.0, hard=False)).eval()
    regions = _regions(4)
    entities = F.normalize(_corpus(), dim=-1)
    soft = torch.softmax(3.0 * F.normalize(regions, dim=-1) @ entities.T, -1)
    assert torch.allclose(aligner(regions).aligned, soft @ entities, atol=1e-6)


def test_clip_scale_default_learnable_scale_and_corpus_swap() -> None:
    assert torch.isclose(EntityAligner(_corpus(), clip_logit_scale=42.0).log_scale.exp(), torch.tensor(42.0))
    aligner = EntityAligner(_corpus(), AlignmentConfig(scale=5.0, learnable_scale=True, gumbel=False)).train()
    aligner(_regions(6)).aligned.pow(2).sum().backward()
    assert aligner.log_scale.grad is not None and aligner.log_scale.grad != 0
    aligner.set_entity_embeddings(torch.randn(3, C))
    assert aligner.num_entities == 3 and int(aligner.eval()(_regions(6)).entity_ids.max()) < 3


def test_errors_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        EntityAligner(torch.zeros(0, C))
    with pytest.raises(ValueError, match="same backbone"):
        EntityAligner(_corpus())(torch.randn(2, C + 1))
    with pytest.raises(ValueError, match="tau"):
        AlignmentConfig(tau=0.0)


def test_similarity_and_choice_are_float32_under_bf16_autocast() -> None:
    g = torch.Generator().manual_seed(0)
    ent = torch.randn(1, 64, generator=g) + 0.02 * torch.randn(500, 64, generator=g)  # [K, C] close entities
    aligner = EntityAligner(ent, AlignmentConfig(gumbel=False)).eval()
    regions = torch.randn(2, 3, 20, 64, generator=g)  # [B, T, R, C]
    ref = aligner(regions)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = aligner(regions)
    assert torch.equal(got.entity_ids, ref.entity_ids)
    # Regions that come out of an autocast encoder are bf16: the choice must not be taken on bf16 probabilities.
    half = regions.bfloat16()
    ref_half = aligner(half.float())
    got_half = aligner(half)
    assert torch.equal(got_half.entity_ids, ref_half.entity_ids)
    assert got_half.aligned.dtype == torch.bfloat16


def test_straight_through_is_inert_unless_something_upstream_trains() -> None:
    """Frozen regions and a fixed scale: no gradient path through the alignment; a learnable scale or trainable
    regions open it (the module docstring's claim)."""
    regions = torch.randn(2, 3, 4, C)
    frozen = EntityAligner(_corpus(), AlignmentConfig(gumbel=False)).train()(regions)
    assert not frozen.aligned.requires_grad  # the adapter learns from the chosen embeddings as given
    learnable = EntityAligner(_corpus(), AlignmentConfig(gumbel=False, scale=5.0, learnable_scale=True)).train()
    learnable(regions).aligned.sum().backward()
    assert learnable.log_scale.grad is not None and learnable.log_scale.grad.abs() > 0
    trainable = regions.clone().requires_grad_(True)
    out = EntityAligner(_corpus(), AlignmentConfig(gumbel=False, scale=5.0)).train()(trainable)
    (out.aligned * torch.randn_like(out.aligned)).sum().backward()
    assert trainable.grad is not None and trainable.grad.abs().sum() > 0
