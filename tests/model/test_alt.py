"""The ALT nn.Module on the tiny backbone: output shapes, ablation wiring, gradients only where they belong."""

from __future__ import annotations

import pytest
import torch

from alt_lightning.model.alt import ALT
from alt_lightning.model.build import build_alt
from alt_lightning.model.config import ALTConfig

K, N = 9, 5


def _alt(r: int = 2, align: bool = True, region: bool = True, seed: int = 0) -> ALT:
    torch.manual_seed(seed)
    config = ALTConfig(model_name="alt-tiny", pretrained=None, encoder={"r": r}, adapter={"heads": 4})
    config.align, config.region = align, region
    return build_alt(config, N, corpus_size=K)  # random corpus and class embeddings: no text tower runs


def _video(b: int = 2, t: int = 3) -> torch.Tensor:
    return torch.randn(b, t, 3, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    ("r", "align", "region", "regions"),
    [(2, True, True, 16 - 4), (0, True, True, 16), (2, False, True, 12), (2, True, False, 1), (1, False, False, 1)],
)
def test_output_shapes_for_each_ablation(r: int, align: bool, region: bool, regions: int) -> None:
    model = _alt(r, align, region).eval()
    out = model(_video())
    assert out.logits.shape == (2, N) and out.z.shape == (2, 64)
    assert out.sizes.shape == (2, 3, 1 + 16 - 2 * r)  # alt-tiny: 16 patches, 2 blocks
    if align:
        assert out.entity_ids.shape == (2, 3, regions) and int(out.entity_ids.max()) < K
        assert out.confidence.shape == (2, 3, regions)
    else:
        assert out.entity_ids is None and out.confidence is None


def test_only_the_adapter_learns_with_a_frozen_backbone() -> None:
    model = _alt().train()
    out = model(_video())
    out.logits.logsumexp(-1).sum().backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert not any(p.requires_grad for p in model.encoder.parameters())
    grads = {n: p.grad for n, p in model.adapter.named_parameters()}
    assert all(g is not None for g in grads.values()), [n for n, g in grads.items() if g is None]
    assert grads["query_mlp.0.weight"].abs().sum() > 0  # the entity queries shape the output


def test_forward_features_matches_forward() -> None:
    model = _alt().eval()
    video = _video()
    out = model(video)
    tokens, sizes, _ = model.encode_frames(video)
    z, ids, _ = model.forward_features(tokens)
    assert torch.equal(z, out.z) and torch.equal(ids, out.entity_ids) and torch.equal(sizes, out.sizes)


def test_cls_only_keys_ignore_region_tokens() -> None:
    model = _alt(region=False).eval()
    tokens, _, _ = model.encode_frames(_video())
    changed = tokens.clone()
    changed[:, :, 1:] += 5.0  # regions change, cls stays
    assert torch.equal(model.forward_features(tokens)[0], model.forward_features(changed)[0])
