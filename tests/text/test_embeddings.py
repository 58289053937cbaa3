"""Text-embedding cache: reused on the second call, invalidated by other backbone weights or other corpus texts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

import alt_lightning.text.embeddings as emb_lib
from alt_lightning.model.backbone import load_clip
from alt_lightning.text.corpus import Corpus, load_corpus


@pytest.fixture
def encode_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls of the real encoder (and how many texts each embedded)."""
    calls: list[int] = []
    real = emb_lib.encode_texts

    def counting(clip_model: torch.nn.Module, model_name: str, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        calls.append(len(texts))
        return real(clip_model, model_name, texts, batch_size)

    monkeypatch.setattr(emb_lib, "encode_texts", counting)
    return calls


def _embed(weights: Path, texts: list[str], cache: Path) -> tuple[torch.Tensor, dict]:
    clip = load_clip("alt-tiny", str(weights))
    return emb_lib.cached_text_embeddings(
        "alt-tiny", str(weights), texts, clip_model=clip, cache_dir=cache, return_info=True
    )


def test_second_call_is_a_cache_hit(tiny_weights: Path, tiny_corpus: Path, tmp_path: Path, encode_calls) -> None:
    texts = load_corpus(tiny_corpus).texts()
    first, info1 = _embed(tiny_weights, texts, tmp_path)
    second, info2 = _embed(tiny_weights, texts, tmp_path)
    assert (info1["hit"], info2["hit"]) == (False, True) and info1["path"] == info2["path"]
    assert encode_calls == [12]  # embedded once, for the 12 entities
    assert torch.equal(first, second) and first.shape == (12, 64)
    assert torch.allclose(first.norm(dim=-1), torch.ones(12), atol=1e-5)


def test_other_backbone_weights_invalidate(tiny_weights: Path, tmp_path: Path, encode_calls) -> None:
    texts = ["a photo of a hand.", "a photo of a foot."]
    weights = tmp_path / "weights.pt"
    weights.write_bytes(tiny_weights.read_bytes())
    a, _ = _embed(weights, texts, tmp_path / "cache")
    torch.manual_seed(1)
    torch.save(load_clip("alt-tiny", seed=7).state_dict(), weights)  # same file name, other weights
    b, info = _embed(weights, texts, tmp_path / "cache")
    assert not info["hit"] and encode_calls == [2, 2]
    assert not torch.allclose(a, b)


def test_corpus_change_invalidates(tiny_weights: Path, tiny_corpus: Path, tmp_path: Path, encode_calls) -> None:
    corpus = load_corpus(tiny_corpus)
    _embed(tiny_weights, corpus.texts(), tmp_path)
    first = dataclasses.replace(corpus.records[0], description="An edited description.")
    edited = Corpus(corpus.name, corpus.version, (first, *corpus.records[1:]))
    assert edited.hash != corpus.hash
    _, info = _embed(tiny_weights, edited.texts(), tmp_path)
    assert not info["hit"] and encode_calls == [12, 12]
    _, info = _embed(tiny_weights, corpus.texts("a photo of {unit}."), tmp_path)  # other entity template
    assert not info["hit"] and len(encode_calls) == 3
    _, info = _embed(tiny_weights, corpus.texts(), tmp_path)  # the original is still cached
    assert info["hit"] and len(encode_calls) == 3


def test_class_embeddings_average_the_templates(tiny_weights: Path, tmp_path: Path) -> None:
    clip = load_clip("alt-tiny", str(tiny_weights))
    prompts = [["a video of a person hopping.", "a photo of hopping."], ["a video of a person diving.", "x diving."]]
    out = emb_lib.class_text_embeddings("alt-tiny", str(tiny_weights), prompts, clip_model=clip, cache_dir=tmp_path)
    flat_prompts = [p for group in prompts for p in group]
    flat = emb_lib.cached_text_embeddings(
        "alt-tiny", str(tiny_weights), flat_prompts, clip_model=clip, cache_dir=tmp_path
    )
    expected = torch.nn.functional.normalize(flat.view(2, 2, -1).mean(1), dim=-1)
    assert out.shape == (2, 64) and torch.allclose(out, expected, atol=1e-6)
