"""Regression tests for defects found in a review of model/, lightning/, cli.py and the commands."""

from __future__ import annotations

import torch

from alt_lightning.cli import _is_video_predict
from alt_lightning.model.alignment import AlignmentConfig, EntityAligner
from alt_lightning.model.classifier import TextClassifier
from alt_lightning.model.tome import bipartite_soft_matching


def test_tome_matching_is_float32_under_bf16_autocast() -> None:
    # Near-duplicate tokens: similarities differ below bf16 resolution, so a bf16 product would tie them.
    g = torch.Generator().manual_seed(0)
    base = torch.randn(1, 1, 64, generator=g)
    metric = base + 1e-3 * torch.randn(4, 197, 64, generator=g)  # [N, T, Dk]
    ref = bipartite_soft_matching(metric, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = bipartite_soft_matching(metric, 8)
    assert torch.equal(got.src, ref.src)
    assert torch.equal(got.dst, ref.dst)


def test_alignment_similarity_is_float32_under_bf16_autocast() -> None:
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


def test_classifier_logits_are_float32_under_bf16_autocast() -> None:
    g = torch.Generator().manual_seed(0)
    clf = TextClassifier(torch.randn(400, 64, generator=g))
    z = torch.randn(8, 64, generator=g)
    ref = clf(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = clf(z)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-5)


def test_video_predict_detected_with_ckpt_first() -> None:
    # `alt predict --ckpt X.ckpt clip.mp4` (labels from the checkpoint) is the per-video command, not LightningCLI's.
    assert _is_video_predict(["--ckpt", "x.ckpt", "clip.mp4"])
    assert _is_video_predict(["--ckpt=x.ckpt", "clip.mp4"])
    assert not _is_video_predict(["--config", "fit.yaml", "--ckpt_path", "x.ckpt"])


def test_alignment_maps_with_frozen_tower_cast_to_bf16(module_kwargs: dict) -> None:
    # encoder.cast_frozen_bf16 stores the frozen tower in bf16 (fit/test start on a GPU); the heatmap callback then
    # runs the model outside the trainer's autocast context, so bf16 tokens meet the fp32 adapter.
    from alt_lightning.lightning.callbacks import alignment_maps
    from alt_lightning.lightning.module import ALTModule

    module = ALTModule(class_names=["a b", "c d", "e f"], **module_kwargs)
    module.model.encoder.cast_frozen_(torch.bfloat16)
    video = torch.randn(1, 2, 3, 64, 64)
    out, entity, _conf = alignment_maps(module, video)
    assert out.logits.shape == (1, 3)
    assert entity.shape == (1, 2, 4, 4)


def test_predict_r_override_applies_with_checkpoint(module_kwargs: dict, tmp_path) -> None:
    # `alt predict clip.mp4 --ckpt X --r 1` silently ran with the checkpoint's r.
    from argparse import Namespace

    import lightning
    from alt_lightning.commands.predict import build_model
    from alt_lightning.lightning.module import ALTModule

    module = ALTModule(class_names=["a b", "c d", "e f"], **module_kwargs)
    ckpt = {
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams),
        "pytorch-lightning_version": lightning.__version__,
    }
    module.on_save_checkpoint(ckpt)
    path = tmp_path / "x.ckpt"
    torch.save(ckpt, path)
    args = Namespace(ckpt=str(path), config=None, model_name=None, pretrained=None, corpus=None, r=None)
    model, _ = build_model(args, None)
    assert model.model.encoder.r_per_layer == [2, 2]
    model, _ = build_model(Namespace(**{**vars(args), "r": 1}), None)
    assert model.model.encoder.r_per_layer == [1, 1]
    assert model.class_names == ["a b", "c d", "e f"]
