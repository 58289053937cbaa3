"""``alt bench``: throughput, memory, FLOPs and parameters of ALT on the current device, beside its own baseline.

Prints GFLOPs per view and in total, total and trainable parameters, inference frames/s and videos/s, training
clips/s and peak memory. With ``--baseline`` the same run also measures the bare open_clip visual tower of the same
backbone (inference) and a full fine-tuning step of it (all weights trainable, cosine classifier over class
embeddings), and prints ALT's ratios to them. ``--variants`` measures several encoder settings (attention form x
compile mode) in the same process against one baseline. ``--count_ops`` instead counts the aten ops of one encoder
forward (torch.profiler; CUDA launches too on a GPU) at ``--r`` and at r = 0 and times the encoder alone. Weights are
random: speed does not depend on their values.
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

from alt_lightning.commands import ArgumentParser
from alt_lightning.model.alt import ALT
from alt_lightning.model.backbone import ClipModel, load_clip
from alt_lightning.model.build import build_alt, load_backbone
from alt_lightning.model.config import PRESETS, ALTConfig
from alt_lightning.model.flops import measure_flops
from alt_lightning.model.region_encoder import ATTENTION_FORMS, COMPILE_MODES, RegionEncoder

#: aten ops that move no data (views, allocations, dtype queries, conjugation flags): not compute. The in-place
#: metadata ops unsqueeze_/squeeze_ are counted, as the figures of issue 14 did.
METADATA_OPS = frozenset(
    f"aten::{name}"
    for name in (
        *("view", "_unsafe_view", "reshape", "_reshape_alias", "as_strided", "as_strided_", "expand", "expand_as"),
        *("transpose", "t", "permute", "slice", "select", "unsqueeze", "squeeze", "unflatten", "flatten", "chunk"),
        *("split", "split_with_sizes", "unbind", "narrow", "alias", "detach", "lift_fresh", "empty", "empty_strided"),
        *("empty_like", "new_empty", "resize_", "set_", "contiguous", "to", "_to_copy", "clone", "result_type"),
        *("promote_types", "resolve_conj", "resolve_neg", "item", "_local_scalar_dense", "is_nonzero", "numpy_T"),
        *("zeros", "zeros_like", "ones_like", "new_zeros", "new_ones", "full", "scalar_tensor"),
    )
)

#: CUDA runtime/driver calls that start work on the GPU (kernels, memsets, copies, graphs).
CUDA_LAUNCHES = ("cudaLaunch", "cuLaunch", "cudaGraphLaunch", "cudaMemsetAsync", "cudaMemcpyAsync")


def count_aten_ops(fn: Callable[[], Any]) -> dict[str, int]:
    """The aten ops of one call of ``fn``, from ``torch.profiler`` (CPU events; CUDA launches when on a GPU).

    Counts:
        ``innermost``: compute ops (not in :data:`METADATA_OPS`) with no compute op below them: 151 for a ViT-B/16
            forward without merging, the figure of issue 14.
        ``dispatched``: top-level aten calls (no aten caller) that do any compute: what eager mode dispatches from
            Python, roughly one GPU launch each.
        ``all``: every aten event, views included.
        ``cuda_launches``: CUDA calls that start GPU work (:data:`CUDA_LAUNCHES`), only when CUDA was used.
    """
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    events = prof.events()
    aten = [e for e in events if e.name.startswith("aten::")]
    memo: dict[int, bool] = {}

    def computes_below(e: Any) -> bool:
        if id(e) not in memo:
            memo[id(e)] = any(
                (c.name.startswith("aten::") and c.name not in METADATA_OPS) or computes_below(c)
                for c in e.cpu_children
            )
        return memo[id(e)]

    def top(e: Any) -> bool:
        parent = e.cpu_parent
        while parent is not None:
            if parent.name.startswith("aten::"):
                return False
            parent = parent.cpu_parent
        return True

    counts = {
        "innermost": sum(e.name not in METADATA_OPS and not computes_below(e) for e in aten),
        "dispatched": sum(top(e) and (e.name not in METADATA_OPS or computes_below(e)) for e in aten),
        "all": len(aten),
    }
    launches = [
        e for e in events if e.name in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cudaGraphLaunch")
    ]
    if launches:
        counts["cuda_launches"] = len(launches)
    return counts


def parse_variant(text: str) -> tuple[str, str]:
    """``"folded:cuda-graphs"`` -> ``("folded", "cuda-graphs")``; ``"mask"`` -> ``("mask", "none")``."""
    attention, _, compile_mode = text.partition(":")
    compile_mode = compile_mode or "none"
    if attention not in ATTENTION_FORMS or compile_mode not in COMPILE_MODES:
        raise ValueError(
            f"variant {text!r}: expected ATTENTION[:COMPILE] with ATTENTION in {ATTENTION_FORMS} and COMPILE in "
            f"{COMPILE_MODES}, e.g. folded:cuda-graphs."
        )
    return attention, compile_mode


def bench_config(args: argparse.Namespace, attention: str = "mask", compile_mode: str = "none") -> ALTConfig:
    """The model to time, with random weights.

    ``--preset`` (default: the preset of ``--model_name``, else alt-tiny), then ``--model_name``, ``--frames``,
    ``--r`` and ``--adapter_layers`` where given, and the encoder's attention form and compile mode.
    """
    config = ALTConfig.preset(args.preset) if args.preset else ALTConfig.for_backbone(args.model_name or "alt-tiny")
    changes = {"model_name": args.model_name, "num_frames": args.frames}
    config = replace(config, pretrained=None, **{k: v for k, v in changes.items() if v is not None})
    encoder = {"attention": attention, "compile": compile_mode} | ({"r": args.r} if args.r is not None else {})
    config.encoder = replace(config.encoder, **encoder)
    if args.adapter_layers is not None:
        config.adapter = replace(config.adapter, layers=args.adapter_layers)
    return config


def build_bench_model(config: ALTConfig, corpus_size: int, num_classes: int) -> tuple[ALT, nn.Module]:
    """ALT with random weights and random corpus and class embeddings (no text tower: only the video path is timed).

    Returns:
        The ALT model and the CLIP model it was cut from (for the baselines).
    """
    clip = load_backbone(config)
    return build_alt(config, num_classes, corpus_size=corpus_size, clip=clip), clip


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_runs(fn: Callable[[], Any], device: torch.device, steps: int, warmup: int) -> list[float]:
    """Seconds of each of ``steps`` runs of ``fn`` after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return times


def time_fn(fn: Callable[[], Any], device: torch.device, steps: int, warmup: int) -> float:
    """Median seconds of ``fn`` over ``steps`` runs after ``warmup`` runs."""
    return statistics.median(time_runs(fn, device, steps, warmup))


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float:
    """Peak allocated GPU memory since the last reset; on CPU the process's peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _autocast(device: torch.device, dtype: torch.dtype | None) -> Callable[[], Any]:
    if dtype is None:
        return lambda: torch.autocast(device.type, enabled=False)
    return lambda: torch.autocast(device.type, dtype=dtype)


def _image_size(clip: ClipModel) -> int:
    size = clip.visual.image_size
    return size[0] if isinstance(size, tuple) else size


def _measure_variant(
    args: argparse.Namespace,
    attention: str,
    compile_mode: str,
    device: torch.device,
    dtype: torch.dtype | None,
    cast_frozen: bool,
) -> tuple[dict[str, Any], ALT]:
    """Inference and training figures of ALT with one encoder setting."""
    torch.manual_seed(0)
    autocast = _autocast(device, dtype)
    config = bench_config(args, attention, compile_mode)
    model, clip = build_bench_model(config, args.corpus_size, args.num_classes)
    model.to(device)
    if cast_frozen and dtype is not None:
        model.encoder.cast_frozen_(dtype)  # what ALTModule does on a GPU with bf16 precision
    b, t, size = args.batch, config.num_frames, _image_size(clip)
    video = torch.randn(b, t, 3, size, size, device=device)
    labels = torch.randint(0, args.num_classes, (b,), device=device)
    tb = args.train_batch or b
    train_video, train_labels = video[:tb], labels[:tb]
    # Compiled encoders compile (and record their graphs) during the first calls: give them enough warm-up.
    warmup = args.warmup if compile_mode == "none" else max(args.warmup, 3)
    out: dict[str, Any] = {"attention": attention, "compile": compile_mode}
    out["_text_params"] = sum(p.numel() for n, p in clip.named_parameters() if not n.startswith("visual."))

    model.eval()

    def infer() -> None:
        with torch.inference_mode(), autocast():
            model(video)

    _peak_reset(device)
    start = time.perf_counter()
    infer()
    _sync(device)
    out["infer_first_call_s"] = time.perf_counter() - start
    sec = time_fn(infer, device, args.steps, warmup)
    out.update(infer_frames_s=b * t / sec, infer_videos_s=b / sec / args.views, infer_peak_gib=_peak_gib(device))
    if args.no_train:
        return _with_compile_stats(out, model, compile_mode), model

    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def train_step() -> None:
        with autocast():
            loss = F.cross_entropy(model(train_video).logits, train_labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    _peak_reset(device)
    sec = time_fn(train_step, device, args.steps, warmup)
    out.update(train_batch=tb, train_clips_s=tb / sec, train_peak_gib=_peak_gib(device))
    return _with_compile_stats(out, model, compile_mode), model


def _with_compile_stats(out: dict[str, Any], model: ALT, compile_mode: str) -> dict[str, Any]:
    """Compile/capture seconds per input signature and any fallback to eager."""
    if compile_mode != "none":
        seconds = model.encoder.compile_seconds
        out["compile_s"] = {"x".join(map(str, key[0])) + f" {key[1:]}": round(v, 3) for key, v in seconds.items()}
        out["compile_total_s"] = sum(seconds.values())
        runner = model.encoder._runner
        if runner is not None:
            out["compile_fallback"] = runner.failed or sorted(runner.warned) or None
    return out


def _measure_baseline(
    args: argparse.Namespace, device: torch.device, dtype: torch.dtype | None, cast_frozen: bool
) -> dict[str, Any]:
    """The bare open_clip tower (inference) and its full fine-tuning, on the same shapes as ALT."""
    torch.manual_seed(0)
    autocast = _autocast(device, dtype)
    clip = load_clip(args.model_name, None)
    visual = clip.visual.to(device)
    visual.float()  # the bare tower as open_clip gives it: fp32 weights, autocast at run time
    b, t, size = args.batch, args.frames, _image_size(clip)
    tb = args.train_batch or b
    frames = torch.randn(b * t, 3, size, size, device=device)
    train_frames = frames[: tb * t]
    labels = torch.randint(0, args.num_classes, (tb,), device=device)
    res: dict[str, Any] = {}

    def infer_bare() -> None:
        with torch.inference_mode(), autocast():
            visual(frames)

    visual.eval()
    _peak_reset(device)
    sec = time_fn(infer_bare, device, args.steps, args.warmup)
    res.update(bare_infer_frames_s=b * t / sec, bare_infer_peak_gib=_peak_gib(device))
    if cast_frozen:  # the same tower with its weights cast once, as ALT's frozen tower is: the fair baseline
        visual.to(dtype)
        sec = time_fn(infer_bare, device, args.steps, args.warmup)
        res.update(bare_bf16w_infer_frames_s=b * t / sec)
        visual.float()
    if args.no_train:
        return res
    # Full fine-tuning of the same tower: every weight trainable, frame features averaged over time.
    for p in visual.parameters():
        p.requires_grad_(True)
    visual.train()
    class_emb = F.normalize(torch.randn(args.num_classes, visual.output_dim, device=device), dim=-1)
    ft_opt = torch.optim.AdamW(visual.parameters(), lr=1e-5)

    def ft_step() -> None:
        with autocast():
            z = visual(train_frames).view(tb, t, -1).mean(1)
            loss = F.cross_entropy(100 * F.normalize(z.float(), dim=-1) @ class_emb.T, labels)
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
    return res


def _ratios(variant: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float]:
    """ALT against the bare tower and full fine-tuning (the three targets of issue 14), where both were measured."""
    out = {}
    if "bare_infer_frames_s" in baseline:
        bare = baseline.get("bare_bf16w_infer_frames_s", baseline["bare_infer_frames_s"])
        out["ratio_infer_vs_bare"] = variant["infer_frames_s"] / bare
    if "finetune_clips_s" in baseline and "train_clips_s" in variant:
        out["ratio_train_vs_finetune"] = variant["train_clips_s"] / baseline["finetune_clips_s"]
        out["ratio_train_memory_vs_finetune"] = variant["train_peak_gib"] / baseline["finetune_peak_gib"]
    return out


def _release(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def encoder_op_report(args: argparse.Namespace, device: torch.device, dtype: torch.dtype | None) -> list[dict]:
    """Aten ops per encoder forward and encoder-only frames/s, for every variant at ``--r`` and at r = 0.

    All encoders share one tower (random weights) and are timed round-robin, one forward each per round, so that a
    shared machine's changing load hits every setting alike; the median and the fastest of ``--steps`` rounds are
    reported.
    """
    autocast = _autocast(device, dtype)
    torch.manual_seed(0)
    clip = load_clip(args.model_name, None)
    visual = clip.visual.to(device).eval()
    size = _image_size(clip)
    images = torch.randn(args.batch * args.frames, 3, size, size, device=device)
    rows: list[dict] = []
    encoders: list[RegionEncoder] = []
    for text in args.variants:
        attention, compile_mode = parse_variant(text)
        for r in dict.fromkeys((args.r, 0)):
            enc = RegionEncoder(visual, r=r, attention=attention, compile=compile_mode)

            def forward(enc: RegionEncoder = enc) -> None:
                with torch.inference_mode(), autocast():
                    enc(images)

            start = time.perf_counter()
            for _ in range(1 if compile_mode == "none" else 3):  # compile, then record any graphs
                forward()
            _sync(device)
            row = {"attention": attention, "compile": compile_mode, "r": r, "images": images.shape[0]}
            row["first_calls_s"] = time.perf_counter() - start
            if compile_mode != "none":
                row["compile_total_s"] = sum(enc.compile_seconds.values())
                runner = enc._runner
                row["compile_fallback"] = (runner.failed or sorted(runner.warned) or None) if runner else None
            row.update(count_aten_ops(forward))
            rows.append(row)
            encoders.append(enc)
            print(row, flush=True)
    times: list[list[float]] = [[] for _ in encoders]
    for _ in range(args.warmup + args.steps):
        for enc, ts in zip(encoders, times, strict=True):
            with torch.inference_mode(), autocast():
                start = time.perf_counter()
                enc(images)
                _sync(device)
                ts.append(time.perf_counter() - start)
    for row, ts in zip(rows, times, strict=True):
        ts = ts[args.warmup :]
        sec = statistics.median(ts)
        # The fastest run too: on a shared machine the median mostly measures the other processes.
        row.update(forward_ms=1000 * sec, forward_ms_min=1000 * min(ts), frames_s=images.shape[0] / sec)
    return rows


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Measure everything; returns the figures (also printed)."""
    # The preset's values for whatever was not given, so that every measurement below times the same model.
    resolved = bench_config(args)
    args.model_name, args.frames = resolved.model_name, resolved.num_frames
    args.r, args.adapter_layers = resolved.encoder.r, resolved.adapter.layers
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = (
        torch.bfloat16 if (args.precision == "bf16" or (args.precision == "auto" and device.type == "cuda")) else None
    )
    cast_frozen = dtype is not None and device.type == "cuda" and args.frozen_cast
    res: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "model_name": args.model_name,
        "frames": args.frames,
        "r": args.r,
        "batch": args.batch,
        "views": args.views,
        "precision": "bf16-autocast" if dtype else "fp32",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "frozen_weights": "bf16" if cast_frozen else "fp32",
        "date": time.strftime("%Y-%m-%d"),
    }
    if args.count_ops:
        res["encoder_ops"] = encoder_op_report(args, device, dtype)
        return res
    config = bench_config(args)
    flops = measure_flops(config, views=(args.views, 1), num_classes=args.num_classes, corpus_size=args.corpus_size)
    res.update(gflops_per_view=flops.view_total / 1e9, gflops_total=flops.total / 1e9)

    def save() -> None:  # after every measurement: a run cut short by a timeout keeps what it measured
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(res, indent=2, default=str))

    # The baseline first, so that every variant's ratios exist even if a later (compiled) variant runs out of time.
    baseline: dict[str, Any] = {}
    if args.baseline:
        baseline = _measure_baseline(args, device, dtype, cast_frozen)
        res.update(baseline)
        _release(device)
        save()
    variants: list[dict[str, Any]] = []
    res["variants"] = variants
    for i, text in enumerate(args.variants):
        attention, compile_mode = parse_variant(text)
        figures, model = _measure_variant(args, attention, compile_mode, device, dtype, cast_frozen)
        if i == 0:
            total = sum(p.numel() for p in model.parameters())
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            text_params = figures.pop("_text_params")
            res.update(
                params_total_m=total / 1e6,
                params_trainable_m=trainable / 1e6,
                params_with_text_m=(total + text_params) / 1e6,
            )
        figures.pop("_text_params", None)
        del model
        _release(device)
        figures.update(_ratios(figures, baseline))
        variants.append(figures)
        if i == 0:  # the first variant's figures at the top level too (the keys of earlier JSON files)
            res.update({k: v for k, v in figures.items() if k not in ("attention", "compile")})
            res["attention"], res["compile"] = attention, compile_mode
        print(figures, flush=True)
        save()
    return res


#: Columns of the per-variant tables (everything else is in the JSON).
_TABLE_COLUMNS = (
    *("attention", "compile", "r", "innermost", "dispatched", "cuda_launches", "forward_ms", "forward_ms_min"),
    *("infer_frames_s", "train_clips_s", "train_peak_gib", "compile_total_s", "ratio_infer_vs_bare"),
    *("ratio_train_vs_finetune", "ratio_train_memory_vs_finetune"),
)


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
        if key in ("model_name", "frames", "r", "batch", "precision", "device", "date", "variants", "encoder_ops"):
            continue
        table.add_row(key, f"{value:,.3f}" if isinstance(value, float) else str(value))
    console.print(table)
    for name in ("variants", "encoder_ops"):
        rows = res.get(name)
        if not rows:
            continue
        sub = Table(title=name)
        keys = [k for k in dict.fromkeys(k for row in rows for k in row) if k in _TABLE_COLUMNS]
        for k in keys:
            sub.add_column(k, justify="right")
        for row in rows:
            sub.add_row(*(f"{row.get(k):,.3f}" if isinstance(row.get(k), float) else str(row.get(k)) for k in keys))
        console.print(sub)


def build_parser() -> ArgumentParser:
    """Arguments of ``alt bench``."""
    p = ArgumentParser(prog="alt bench", description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=list(PRESETS), help="the model (default: the preset of --model_name)")
    p.add_argument("--model_name", help="open_clip backbone, e.g. ViT-B-16 (default: the preset's, else alt-tiny)")
    p.add_argument("--frames", type=int, help="frames per clip (default: the preset's)")
    p.add_argument("--r", type=int, help="ToMe tokens merged per block (default: the preset's)")
    p.add_argument("--batch", type=int, default=4, help="clips per inference step")
    p.add_argument("--train_batch", type=int, default=None, help="clips per training step (default: --batch)")
    p.add_argument("--views", type=int, default=3, help="test views per video (videos/s = clips/s / views)")
    p.add_argument("--corpus_size", type=int, default=2000, help="entities K in the alignment (default 2000)")
    p.add_argument("--num_classes", type=int, default=400, help="classes (default 400)")
    p.add_argument("--adapter_layers", type=int, help="adapter decoder layers (default: the preset's)")
    p.add_argument(
        "--precision", choices=("auto", "bf16", "fp32"), default="auto", help="auto: bf16 on GPU, fp32 on CPU"
    )
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:1")
    p.add_argument("--attention", choices=ATTENTION_FORMS, default="mask", help="proportional attention form")
    p.add_argument("--compile", choices=COMPILE_MODES, default="none", help="how the region encoder runs")
    p.add_argument(
        "--variants",
        nargs="+",
        default=None,
        metavar="ATTENTION[:COMPILE]",
        help="several encoder settings in one run against one baseline, e.g. mask folded folded:cuda-graphs "
        "(default: --attention:--compile)",
    )
    p.add_argument(
        "--count_ops",
        action="store_true",
        help="count aten ops (and CUDA launches) per encoder forward at --r and r=0 and time the encoder alone, "
        "for each variant, on --batch x --frames images; no ALT training",
    )
    p.add_argument("--frozen_cast", action="store_true", help="store the frozen tower in bf16 (cast_frozen_bf16)")
    p.add_argument("--baseline", action="store_true", help="also time the bare visual tower and its full fine-tuning")
    p.add_argument("--no_train", action="store_true", help="time inference only (no training step, no fine-tuning)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per measurement (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before them (default 3)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    return p


def main(argv: list[str] | None = None) -> int:
    """``alt bench``."""
    p = build_parser()
    args = p.parse_args(argv)
    args.variants = args.variants or [f"{args.attention}:{args.compile}"]
    for text in args.variants:
        try:
            parse_variant(text)
        except ValueError as err:
            p.error(str(err))
    res = run_bench(args)
    print_report(res)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2, default=str))
    return 0
