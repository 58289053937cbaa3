"""Profile one ALT training step and one inference step (torch.profiler), printing the top kernels.

Usage: python scripts/profile_step.py [--model_name ViT-B-16] [--r 8] [--batch 16] [--frames 8]
Used to explain `alt bench` figures (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from alt_lightning.commands.bench import build_bench_model
from alt_lightning.model.config import ALTConfig


def main() -> None:
    """Time the phases of a training step and print the profiler's top ops."""
    p = argparse.ArgumentParser()
    p.add_argument("--model_name", default="alt-tiny")
    p.add_argument("--r", type=int, nargs="+", default=[8, 0])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--rows", type=int, default=12)
    a = p.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for r in a.r:
        torch.manual_seed(0)
        base = ALTConfig.for_backbone(a.model_name)
        config = dataclasses.replace(base, pretrained=None, num_frames=a.frames)
        config.encoder = dataclasses.replace(base.encoder, r=r)
        model, clip = build_bench_model(config, 2000, 400)
        model.to(dev).train()
        size = clip.visual.image_size[0]
        video = torch.randn(a.batch, a.frames, 3, size, size, device=dev)
        labels = torch.randint(0, 400, (a.batch,), device=dev)
        opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-4)

        def step(phases: dict[str, float] | None = None) -> None:
            t0 = time.perf_counter()
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                tokens, _, _ = model.encode_frames(video)
                sync()
                t1 = time.perf_counter()
                z, _, _ = model.forward_features(tokens)
                loss = F.cross_entropy(model.classifier(z), labels)
            sync()
            t2 = time.perf_counter()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            sync()
            t3 = time.perf_counter()
            if phases is not None:
                for k, v in (("encode", t1 - t0), ("head_fwd", t2 - t1), ("bwd_step", t3 - t2)):
                    phases[k] = phases.get(k, 0.0) + v

        for _ in range(3):
            step()
        phases: dict[str, float] = {}
        for _ in range(10):
            step(phases)
        with torch.no_grad():
            tok, _, _ = model.encode_frames(video)
        print(
            f"r={r}: tokens {tuple(tok.shape)} {tok.dtype}; ms per step: "
            + ", ".join(f"{k} {1000 * v / 10:.1f}" for k, v in phases.items())
        )
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
        with profile(activities=acts) as prof:
            step()
            sync()
        key = "cuda_time_total" if dev.type == "cuda" else "cpu_time_total"
        print(prof.key_averages().table(sort_by=key, row_limit=a.rows, max_name_column_width=60))


if __name__ == "__main__":
    main()
