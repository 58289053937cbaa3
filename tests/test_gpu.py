"""GPU-only checks (marked `gpu`, skipped without CUDA; run by scripts/gpu_check.sh on a lent GPU)."""

from __future__ import annotations

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_region_encoder_bf16_on_gpu_matches_fp32_cpu() -> None:
    from alt_lightning.model.backbone import load_clip
    from alt_lightning.model.region_encoder import RegionEncoder

    torch.manual_seed(0)
    clip = load_clip("ViT-B-16")
    x = torch.randn(4, 3, 224, 224)
    ref = {r: RegionEncoder(clip.visual, r=r)(x).tokens.double() for r in (0, 8)}
    clip.visual.cuda()
    for r in (0, 8):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = RegionEncoder(clip.visual, r=r)(x.cuda()).tokens.double().cpu()
        assert out.shape == ref[r].shape == (4, 1 + (196 if r == 0 else 100), 512)
        # With r = 8, bf16 rounding can flip near-tied matches of random weights, which reorders regions: compare
        # the cls token there (it attends to every region, so it still checks the merged attention); all tokens at r=0.
        a, b = (out, ref[r]) if r == 0 else (out[:, 0], ref[r][:, 0])
        rel = (a - b).norm() / b.norm()
        # Random weights amplify bf16 rounding over 12 blocks; a wrong mask or merge gives errors near 1.
        assert rel < 0.1, f"r={r}: bf16 relative error {rel:.2e}"


def test_alt_training_step_bf16_on_gpu(tmp_path, synthetic_root, module_kwargs) -> None:
    import lightning.pytorch as pl

    from alt_lightning.datamodules import VideoListDataModule
    from alt_lightning.lightning import ALTModule

    dm = VideoListDataModule(root=str(synthetic_root), classes="classes.txt", num_frames=4, batch_size=4, num_workers=0)
    model = ALTModule(class_names=dm.class_names, **module_kwargs)
    trainer = pl.Trainer(
        accelerator="gpu",
        devices=1,
        precision="bf16-mixed",
        max_epochs=1,
        limit_train_batches=3,
        limit_val_batches=2,
        logger=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, dm)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert trainer.callback_metrics["val/videos"] > 0


def test_frozen_bf16_cast_keeps_outputs() -> None:
    from alt_lightning.model.backbone import load_clip
    from alt_lightning.model.region_encoder import RegionEncoder

    torch.manual_seed(0)
    visual = load_clip("ViT-B-16").visual.cuda()
    x = torch.randn(8, 3, 224, 224, device="cuda")
    enc = RegionEncoder(visual, r=0)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        ref = enc(x).tokens.float()
        enc.cast_frozen_(torch.bfloat16)
        out = enc(x).tokens.float()
    assert next(visual.parameters()).dtype == torch.bfloat16
    rel = (out - ref).norm() / ref.norm()
    assert rel < 0.05, f"relative change {rel:.2e}"


# ------------------------------------------------------------------ issue 14: launch overhead and the flash path
def _b16_visual():
    from alt_lightning.model.backbone import load_clip

    torch.manual_seed(0)
    return load_clip("ViT-B-16", None).visual.cuda().eval()


def test_cuda_graphs_equal_eager_in_inference_and_training() -> None:
    from alt_lightning.model.region_encoder import RegionEncoder

    visual = _b16_visual()
    eager = RegionEncoder(visual, r=8, keep_source=True)
    graphed = RegionEncoder(visual, r=8, keep_source=True, compile="cuda-graphs")
    gen = torch.Generator(device="cuda").manual_seed(1)
    for step in range(3):  # capture on the first call, replays afterwards, each with new images
        x = torch.randn(6, 3, 224, 224, device="cuda", generator=gen)
        with torch.inference_mode():
            got, ref = graphed(x), eager(x)
        # fp32, same kernels: the merges agree except where CUDA's atomic adds (scatter_add) reorder a sum and flip a
        # near tie; the cls token attends to everything, so a wrong graph shows there.
        assert (got.source == ref.source).all(-1).float().mean().item() > 0.98, f"step {step}"
        torch.testing.assert_close(got.cls, ref.cls, atol=1e-3, rtol=1e-3)
    assert len(graphed.compile_seconds) == 1 and graphed._runner.failed is None
    # The training forward (grad on, no inference mode) replays the same graph; its outputs feed a trained head.
    head = torch.nn.Parameter(torch.ones(512, device="cuda"))
    out = graphed(x)
    assert not out.tokens.requires_grad and len(graphed.compile_seconds) == 1
    (out.tokens * head).sum().backward()
    assert head.grad is not None
    torch.testing.assert_close(out.cls, eager(x).cls, atol=1e-3, rtol=1e-3)
    # Outputs are copies: the next replay does not overwrite them.
    keep = out.tokens.clone()
    graphed(torch.randn_like(x))
    assert torch.equal(out.tokens, keep)

    # bf16 autocast is another signature (another capture); new weights (cast_frozen_) force new captures.
    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return ((a.float() - b).norm() / b.norm()).item()

    with torch.autocast("cuda", dtype=torch.bfloat16):
        low = graphed(x).cls
    assert len(graphed.compile_seconds) == 2 and rel(low, out.cls) < 0.1
    graphed.cast_frozen_(torch.bfloat16)  # eager shares these weights: not used after this
    assert graphed.compile_seconds == {}
    with torch.autocast("cuda", dtype=torch.bfloat16):
        cast = graphed(x).cls
    assert len(graphed.compile_seconds) == 1 and rel(cast, out.cls) < 0.1
    assert graphed._runner.failed is None
    assert all(s < 30 for s in graphed.compile_seconds.values()), graphed.compile_seconds


def test_folded_attention_takes_the_flash_kernel() -> None:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from alt_lightning.model.region_encoder import RegionEncoder

    visual = _b16_visual()
    x = torch.randn(4, 3, 224, 224, device="cuda")
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        ref = RegionEncoder(visual, r=8, attention="mask")(x).cls.float()
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            out = RegionEncoder(visual, r=8, attention="folded")(x).cls.float()
            with pytest.raises(RuntimeError):  # the mask form cannot run on flash alone
                RegionEncoder(visual, r=8, attention="mask")(x)
    assert ((out - ref).norm() / ref.norm()).item() < 0.05


@pytest.mark.parametrize("mode", ["merge", "reduce-overhead"])
def test_compiled_encoder_equals_eager_on_gpu(mode: str) -> None:
    from alt_lightning.model.backbone import load_clip
    from alt_lightning.model.region_encoder import RegionEncoder

    torch.manual_seed(0)
    visual = load_clip("alt-tiny", None).visual.cuda().eval()
    eager = RegionEncoder(visual, r=2, keep_source=True)
    compiled = RegionEncoder(visual, r=2, keep_source=True, compile=mode)
    for seed in (0, 1, 2):
        x = torch.randn(4, 3, 64, 64, device="cuda", generator=torch.Generator(device="cuda").manual_seed(seed))
        with torch.inference_mode():
            got, ref = compiled(x), eager(x)
        assert (got.source == ref.source).all(-1).float().mean().item() > 0.98
        torch.testing.assert_close(got.cls, ref.cls, atol=1e-3, rtol=1e-3)
    assert compiled._runner.failed is None, compiled._runner.failed
    print(f"compile={mode}: {compiled.compile_seconds}")


def test_alt_training_step_with_cuda_graphs(tmp_path, synthetic_root, module_kwargs) -> None:
    import lightning.pytorch as pl

    from alt_lightning.datamodules import VideoListDataModule
    from alt_lightning.lightning import ALTModule

    dm = VideoListDataModule(root=str(synthetic_root), classes="classes.txt", num_frames=4, batch_size=4, num_workers=0)
    kwargs = {**module_kwargs, "encoder": {**module_kwargs["encoder"], "compile": "cuda-graphs", "attention": "folded"}}
    model = ALTModule(class_names=dm.class_names, **kwargs)
    trainer = pl.Trainer(
        accelerator="gpu",
        devices=1,
        precision="bf16-mixed",
        max_epochs=1,
        limit_train_batches=3,
        limit_val_batches=2,
        logger=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, dm)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    runner = model.model.encoder._runner
    assert runner.failed is None and len(runner.graphs) >= 1, (runner.failed, runner.warned)
