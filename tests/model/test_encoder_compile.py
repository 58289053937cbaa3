"""RegionEncoder(compile=...): compiled merges, torch.compile, CUDA graphs; bounded, with an eager fallback (issue 14).

The CPU tests check the option logic (fallbacks, bounds, copies) and, marked slow, that compiled code equals eager
code. CUDA graphs themselves are tested in tests/test_gpu.py.
"""

from __future__ import annotations

import copy
import logging
import pickle

import pytest
import torch

import alt_lightning.model.region_encoder as region_encoder
from alt_lightning.model.backbone import load_clip
from alt_lightning.model.region_encoder import MAX_SIGNATURES, RegionEncoder
from alt_lightning.model.tome import merge_step


@pytest.fixture(scope="module")
def visual() -> torch.nn.Module:
    torch.manual_seed(0)
    return load_clip("alt-tiny", None).visual.eval()


def _images(n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def test_cuda_graphs_on_cpu_run_eagerly_with_one_warning(visual, caplog: pytest.LogCaptureFixture) -> None:
    eager = RegionEncoder(visual, r=2, keep_source=True)
    graphed = RegionEncoder(visual, r=2, keep_source=True, compile="cuda-graphs")
    with caplog.at_level(logging.WARNING, logger="alt_lightning.model.region_encoder"):
        for seed in (0, 1):
            got, ref = graphed(_images(seed=seed)), eager(_images(seed=seed))
            assert torch.equal(got.tokens, ref.tokens) and torch.equal(got.source, ref.source)
    warnings = [r for r in caplog.records if "CUDA graphs need a CUDA device" in r.getMessage()]
    assert len(warnings) == 1
    assert graphed.compile_seconds == {}


def test_compile_failure_falls_back_to_eager(visual, monkeypatch, caplog: pytest.LogCaptureFixture) -> None:
    calls = []

    def broken(*args: object) -> None:
        calls.append(1)
        raise RuntimeError("inductor exploded")

    monkeypatch.setattr(region_encoder, "compiled_merge_step", broken)
    enc = RegionEncoder(visual, r=2, compile="merge")
    ref = RegionEncoder(visual, r=2)(_images())
    with caplog.at_level(logging.WARNING, logger="alt_lightning.model.region_encoder"):
        first, second = enc(_images()), enc(_images())
    assert torch.equal(first.tokens, ref.tokens) and torch.equal(second.tokens, ref.tokens)
    assert len(calls) == 1  # never retried
    assert "inductor exploded" in enc._runner.failed
    assert sum("runs eagerly" in r.getMessage() for r in caplog.records) == 1


def test_compiled_signatures_are_bounded(visual, monkeypatch, caplog: pytest.LogCaptureFixture) -> None:
    # Stand in for the compiler (slow on CPU) with the eager step, counting calls.
    calls = []

    def fake(*args: object) -> tuple:
        calls.append(args[0].shape[0])
        return merge_step(*args)

    monkeypatch.setattr(region_encoder, "compiled_merge_step", fake)
    enc = RegionEncoder(visual, r=2, compile="merge")
    ref = RegionEncoder(visual, r=2)
    with caplog.at_level(logging.WARNING, logger="alt_lightning.model.region_encoder"), torch.no_grad():
        for n in range(1, MAX_SIGNATURES + 3):
            assert torch.equal(enc(_images(n)).tokens, ref(_images(n)).tokens)
    shapes = sorted(key[0][0] for key in enc.compile_seconds)
    assert shapes == list(range(1, MAX_SIGNATURES + 1))
    assert all(v >= 0 for v in enc.compile_seconds.values())
    # Beyond the bound the encoder runs eagerly (no compiled merges for batch sizes 5 and 6), with a warning.
    assert sorted(set(calls)) == list(range(1, MAX_SIGNATURES + 1))
    assert any(f"more than {MAX_SIGNATURES} input shapes" in r.getMessage() for r in caplog.records)


def test_copies_moves_and_casts_forget_compiled_state(visual, monkeypatch) -> None:
    monkeypatch.setattr(region_encoder, "compiled_merge_step", merge_step)
    enc = RegionEncoder(visual, r=2, compile="merge")
    enc(_images())
    assert len(enc.compile_seconds) == 1
    for clone in (copy.deepcopy(enc), pickle.loads(pickle.dumps(enc))):
        assert clone.compile_seconds == {} and clone.compile_mode == "merge"
        torch.testing.assert_close(clone(_images()).tokens, enc(_images()).tokens, atol=0, rtol=0)
    enc.to(torch.float64)
    assert enc.compile_seconds == {}
    enc.float()
    enc(_images())
    enc.cast_frozen_(torch.float32)
    assert enc.compile_seconds == {}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["merge", "reduce-overhead"])
def test_compiled_equals_eager_on_cpu(visual, mode: str) -> None:
    # Real inductor compilation (C++ on CPU, about a minute on 2 cores). Merges must be identical; values may differ
    # in the last bits where the compiler reorders a reduction.
    eager = RegionEncoder(visual, r=2, keep_source=True)
    compiled = RegionEncoder(visual, r=2, keep_source=True, compile=mode)
    for seed in (0, 1):
        with torch.no_grad():
            got, ref = compiled(_images(3, seed)), eager(_images(3, seed))
        assert torch.equal(got.source, ref.source) and torch.equal(got.size, ref.size)
        torch.testing.assert_close(got.tokens, ref.tokens, atol=1e-5, rtol=1e-5)
    assert compiled._runner.failed is None
    assert len(compiled.compile_seconds) == 1


def test_alt_module_passes_attention_and_compile(module_kwargs: dict) -> None:
    from alt_lightning.lightning import ALTModule

    kwargs = {**module_kwargs, "encoder": {"r": 2, "attention": "folded", "compile": "cuda-graphs"}}
    model = ALTModule(class_names=["a", "b"], **kwargs)
    assert model.model.encoder.attention == "folded"
    assert model.model.encoder.compile_mode == "cuda-graphs"
