"""TextClassifier and prompt templates: scaled cosine logits, readable names, buffers, zero-shot swap."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from alt_lightning.model.classifier import TextClassifier, class_prompts, resolve_templates
from alt_lightning.text.prompts import ENSEMBLE_TEMPLATES


def test_logits_are_scaled_cosine_similarities() -> None:
    g = torch.Generator().manual_seed(0)
    emb, z = torch.randn(5, 8, generator=g), torch.randn(3, 8, generator=g)
    clf = TextClassifier(emb * 7.0, logit_scale=50.0)  # the embedding norm must not matter
    expected = 50.0 * F.cosine_similarity(z[:, None], emb[None], dim=-1)  # [3, 5]
    assert torch.allclose(clf(z), expected, atol=1e-4)
    assert clf(z).dtype == torch.float32 and clf(z.half()).dtype == torch.float32


def test_embeddings_are_buffers_not_checkpointed_and_scale_optionally_learnable() -> None:
    clf = TextClassifier(torch.randn(4, 8))
    assert "class_embeddings" in dict(clf.named_buffers()) and clf.state_dict() == {}
    assert list(clf.parameters()) == []
    learn = TextClassifier(torch.randn(4, 8), logit_scale=10.0, learnable_scale=True)
    learn(torch.randn(2, 8)).sum().backward()
    assert learn.log_scale.grad is not None


def test_zero_shot_swap_changes_the_label_space() -> None:
    clf = TextClassifier(torch.randn(4, 8), class_names=list("abcd"))
    new = torch.randn(6, 8)
    clf.set_class_embeddings(new, list("uvwxyz"))
    z = torch.randn(2, 8)
    assert clf(z).shape == (2, 6) and clf.num_classes == 6 and clf.class_names == list("uvwxyz")
    assert torch.allclose(clf(z), TextClassifier(new)(z))
    with pytest.raises(ValueError, match="width"):
        clf.set_class_embeddings(torch.randn(3, 9))
    with pytest.raises(ValueError, match="class names"):
        clf.set_class_embeddings(torch.randn(3, 8), ["a"])


def test_templates_single_ensemble_custom() -> None:
    assert resolve_templates("single") == ["a video of a person {}."]
    assert resolve_templates("ensemble") == list(ENSEMBLE_TEMPLATES) and len(ENSEMBLE_TEMPLATES) == 8
    assert resolve_templates("a clip of {}") == ["a clip of {}"]
    assert resolve_templates(["{} !", "x {}"]) == ["{} !", "x {}"]
    with pytest.raises(ValueError, match="neither a mode"):
        resolve_templates("ensembel")


def test_class_prompts_use_readable_names() -> None:
    prompts = class_prompts(["ApplyEyeMakeup", "brush_hair", "playing guitar"], "single")
    assert prompts == [
        ["a video of a person apply eye makeup."],
        ["a video of a person brush hair."],
        ["a video of a person playing guitar."],
    ]
    assert [len(p) for p in class_prompts(["YoYo"], "ensemble")] == [8]
    assert class_prompts(["YoYo"], "ensemble")[0][0] == "a photo of a person yo yo."


def test_logits_are_float32_under_bf16_autocast() -> None:
    g = torch.Generator().manual_seed(0)
    clf = TextClassifier(torch.randn(400, 64, generator=g))
    z = torch.randn(8, 64, generator=g)
    ref = clf(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = clf(z)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-5)
