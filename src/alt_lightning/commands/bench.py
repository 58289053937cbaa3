"""``alt bench``: throughput, memory, FLOPs and parameters of ALT on the current device, beside its own baseline.

Prints GFLOPs per view and in total, total and trainable parameters, inference frames/s and videos/s, training
clips/s and peak memory. With ``--baseline`` the same run also measures the bare open_clip visual tower of the same
backbone (inference) and a full fine-tuning step of it (all weights trainable, cosine classifier over class
embeddings), and prints ALT's ratios to them. Weights are random: speed does not depend on their values.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch import nn

from alt_lightning.model.alt import ALT
from alt_lightning.model.build import build_alt, load_backbone
from alt_lightning.model.config import PRESETS, ALTConfig
from alt_lightning.model.flops import measure_flops


def bench_config(args: argparse.Namespace) -> ALTConfig:
    """The model to time, with random weights.

    ``--preset`` (default: the preset of ``--model_name``, else alt-tiny), then ``--model_name``, ``--frames``,
    ``--r`` and ``--adapter_layers`` where given.
    """
    config = ALTConfig.preset(args.preset) if args.preset else ALTConfig.for_backbone(args.model_name or "alt-tiny")
    changes = {"model_name": args.model_name, "num_frames": args.frames}
    config = replace(config, pretrained=None, **{k: v for k, v in changes.items() if v is not None})
    if args.r is not None:
        config.encoder = replace(config.encoder, r=args.r)
    if args.adapter_layers is not None:
        config.adapter = replace(config.adapter, layers=args.adapter_layers)
    return config


def build_bench_model(
    config: ALTConfig, corpus_size: int, num_classes: int, compile_encoder: bool = False
) -> tuple[ALT, nn.Module]:
    """ALT with random weights and random corpus and class embeddings (no text tower: only the video path is timed).

    Returns:
        The ALT model and the CLIP model it was cut from (for the baselines).
    """
    clip = load_backbone(config)
    model = build_alt(config, num_classes, corpus_size=corpus_size, clip=clip)
    if compile_encoder:
        model.encoder = torch.compile(model.encoder)  # type: ignore[assignment]
    return model, clip


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], Any], device: torch.device, steps: int, warmup: int) -> float:
    """Median seconds of ``fn`` over ``steps`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float:
    """Peak allocated GPU memory since the last reset; on CPU the process's peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Measure everything; returns the figures (also printed)."""
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(0)
    dtype = (
        torch.bfloat16 if (args.precision == "bf16" or (args.precision == "auto" and device.type == "cuda")) else None
    )
    autocast = (
        (lambda: torch.autocast(device.type, dtype=dtype))
        if dtype
        else (lambda: torch.autocast(device.type, enabled=False))
    )
    config = bench_config(args)
    model, clip = build_bench_model(config, args.corpus_size, args.num_classes, args.compile)
    model.to(device)
    cast_frozen = dtype is not None and device.type == "cuda" and args.frozen_cast
    if cast_frozen:
        model.encoder.cast_frozen_(dtype)  # what ALTModule does on a GPU with bf16 precision
    size = clip.visual.image_size[0] if isinstance(clip.visual.image_size, tuple) else clip.visual.image_size
    b, t = args.batch, config.num_frames
    video = torch.randn(b, t, 3, size, size, device=device)
    labels = torch.randint(0, args.num_classes, (b,), device=device)
    tb = args.train_batch or b
    train_video, train_labels = video[:tb], labels[:tb]
    res: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "model_name": config.model_name,
        "frames": t,
        "r": config.encoder.r,
        "batch": b,
        "views": args.views,
        "precision": "bf16-autocast" if dtype else "fp32",
        "torch": torch.__version__,
        "frozen_weights": "bf16" if cast_frozen else "fp32",
        "date": time.strftime("%Y-%m-%d"),
    }
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    text_params = sum(p.numel() for n, p in clip.named_parameters() if not n.startswith("visual."))
    res.update(
        params_total_m=total / 1e6, params_trainable_m=trainable / 1e6, params_with_text_m=(total + text_params) / 1e6
    )
    flops = measure_flops(config, views=(args.views, 1), num_classes=args.num_classes, corpus_size=args.corpus_size)
    res.update(gflops_per_view=flops.view_total / 1e9, gflops_total=flops.total / 1e9)

    model.eval()

    def infer() -> None:
        with torch.inference_mode(), autocast():
            model(video)

    _peak_reset(device)
    sec = time_fn(infer, device, args.steps, args.warmup)
    res.update(infer_frames_s=b * t / sec, infer_videos_s=b / sec / args.views, infer_peak_gib=_peak_gib(device))

    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def train_step() -> None:
        with autocast():
            loss = F.cross_entropy(model(train_video).logits, train_labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    _peak_reset(device)
    sec = time_fn(train_step, device, args.steps, args.warmup)
    res.update(train_batch=tb, train_clips_s=tb / sec, train_peak_gib=_peak_gib(device))

    if args.baseline:
        visual = clip.visual.to(device)
        visual.float()  # the bare tower as open_clip gives it: fp32 weights, autocast at run time
        frames = video.flatten(0, 1)
        train_frames = train_video.flatten(0, 1)

        def infer_bare() -> None:
            with torch.inference_mode(), autocast():
                visual(frames)

        visual.eval()
        _peak_reset(device)
        sec = time_fn(infer_bare, device, args.steps, args.warmup)
        res.update(bare_infer_frames_s=b * t / sec, bare_infer_peak_gib=_peak_gib(device))
        bare_ref = res["bare_infer_frames_s"]
        if cast_frozen:  # the same tower with its weights cast once, as ALT's frozen tower is: the fair baseline
            visual.to(dtype)
            sec = time_fn(infer_bare, device, args.steps, args.warmup)
            res.update(bare_bf16w_infer_frames_s=b * t / sec)
            bare_ref = res["bare_bf16w_infer_frames_s"]
            visual.float()
        # Full fine-tuning of the same tower: every weight trainable, frame features averaged over time.
        del model, opt
        for p in visual.parameters():
            p.requires_grad_(True)
        visual.train()
        class_emb = F.normalize(torch.randn(args.num_classes, visual.output_dim, device=device), dim=-1)
        ft_opt = torch.optim.AdamW(visual.parameters(), lr=1e-5)

        def ft_step() -> None:
            with autocast():
                z = visual(train_frames).view(tb, t, -1).mean(1)
                loss = F.cross_entropy(100 * F.normalize(z.float(), dim=-1) @ class_emb.T, train_labels)
            loss.backward()
            ft_opt.step()
            ft_opt.zero_grad(set_to_none=True)

        _peak_reset(device)
        try:
            sec = time_fn(ft_step, device, args.steps, args.warmup)
        except torch.cuda.OutOfMemoryError:
            res["finetune_note"] = f"full fine-tuning ran out of memory at {tb} clips per step"
            return res
        res.update(finetune_clips_s=tb / sec, finetune_peak_gib=_peak_gib(device))
        res.update(
            ratio_infer_vs_bare=res["infer_frames_s"] / bare_ref,
            ratio_train_vs_finetune=res["train_clips_s"] / res["finetune_clips_s"],
            ratio_train_memory_vs_finetune=res["train_peak_gib"] / res["finetune_peak_gib"],
        )
    return res


def print_report(res: dict[str, Any], console: Console | None = None) -> None:
    """Rich table of the figures."""
    console = console or Console()
    table = Table(
        title=f"alt bench: {res['model_name']}, {res['frames']} frames, r={res['r']}, batch {res['batch']}, "
        f"{res['precision']} on {res['device']} ({res['date']})"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in res.items():
        if key in ("model_name", "frames", "r", "batch", "precision", "device", "date"):
            continue
        table.add_row(key, f"{value:,.3f}" if isinstance(value, float) else str(value))
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    """``alt bench``."""
    p = argparse.ArgumentParser(prog="alt bench", description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=list(PRESETS), help="the model (default: the preset of --model_name)")
    p.add_argument("--model_name", help="open_clip backbone, e.g. ViT-B-16 (default: the preset's, else alt-tiny)")
    p.add_argument("--frames", type=int, help="frames per clip (default: the preset's)")
    p.add_argument("--r", type=int, help="ToMe tokens merged per block (default: the preset's)")
    p.add_argument("--batch", type=int, default=4, help="clips per inference step")
    p.add_argument("--train_batch", type=int, default=None, help="clips per training step (default: --batch)")
    p.add_argument("--views", type=int, default=3, help="test views per video (videos/s = clips/s / views)")
    p.add_argument("--corpus_size", type=int, default=2000)
    p.add_argument("--num_classes", type=int, default=400)
    p.add_argument("--adapter_layers", type=int, help="adapter decoder layers (default: the preset's)")
    p.add_argument(
        "--precision", choices=("auto", "bf16", "fp32"), default="auto", help="auto: bf16 on GPU, fp32 on CPU"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true", help="torch.compile the region encoder")
    p.add_argument("--frozen_cast", action="store_true", help="store the frozen tower in bf16 (cast_frozen_bf16)")
    p.add_argument("--baseline", action="store_true", help="also time the bare visual tower and its full fine-tuning")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    res = run_bench(args)
    print_report(res)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2))
    return 0
