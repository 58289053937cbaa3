"""``alt flops``: FLOPs (multiply-adds, attention included) and parameters of an ALT configuration.

Examples::

    alt flops                                             # ALT-B/16: ViT-B-16, 8 x 224, r = 8, 3x1 views
    alt flops --r 0 --adapter_layers 2                    # ablations
    alt flops --config configs/experiments/k400_b16.yaml  # the model/data sections of a fit config
    alt flops --json                                      # machine-readable

Counts come from a random-initialised model on the ``meta`` device (no weights, no download, about a second),
measured with ``torch.utils.flop_counter`` and cross-checked against the analytic count (``--check``).
Explicit arguments override the config file.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alt_lightning.commands import parse_or_exit_code, report_console
from alt_lightning.model.adapter import AdapterConfig
from alt_lightning.model.flops import COMPONENTS, FlopReport, FlopSpec, analytic_flops, measure_flops, parse_views

#: The paper's figures for ALT-B/16 (8 x 224, 3x1 views), printed beside ours.
PAPER_B16 = {"gflops": 328.0, "params_m": 134.4}


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``alt flops`` (defaults ``None``: taken from ``--config`` or :class:`FlopSpec`)."""
    p = argparse.ArgumentParser(prog="alt flops", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", help="a fit config (YAML); its model and data sections set the defaults")
    p.add_argument("--model_name", help="open_clip architecture (default ViT-B-16)")
    p.add_argument("--frames", type=int, help="frames per clip T (default 8)")
    p.add_argument("--image_size", type=int, help="input side (default: the backbone's)")
    p.add_argument("--r", type=int, help="ToMe merges per block (default 8; 0 = no merging)")
    p.add_argument("--views", help="test views, clips x crops (default 3x1)")
    p.add_argument("--corpus_size", type=int, help="entities K (default: the shipped corpus size, else 2000)")
    p.add_argument("--num_classes", type=int, help="classes (default 400)")
    p.add_argument("--adapter_layers", type=int, help="adapter decoder layers M (default 1)")
    p.add_argument("--top_m", type=int, help="keep only the top-M queries (default: all)")
    p.add_argument("--align", action=argparse.BooleanOptionalAction, default=None, help="entity queries (default)")
    p.add_argument("--region", action=argparse.BooleanOptionalAction, default=None, help="region tokens (default)")
    p.add_argument("--device", default="meta", help="meta (default, no arithmetic) or cpu/cuda (runs the model)")
    p.add_argument("--check", action="store_true", help="also compute the analytic count and compare")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def _section(cfg: dict[str, Any], key: str) -> dict[str, Any]:
    """``init_args`` of a ``class_path`` section, or the section itself."""
    sec = cfg.get(key) or {}
    return dict(sec.get("init_args", sec)) if isinstance(sec, dict) else {}


def spec_from_config(path: str | Path) -> dict[str, Any]:
    """:class:`FlopSpec` fields read from a fit config's ``model`` and ``data`` sections."""
    cfg = yaml.safe_load(Path(path).read_text()) or {}
    model, data = _section(cfg, "model"), _section(cfg, "data")
    out: dict[str, Any] = {}
    for key in ("model_name", "align", "region"):
        if key in model:
            out[key] = model[key]
    encoder = model.get("encoder") or {}
    if "r" in encoder:
        out["r"] = encoder["r"]
    if "trainable_blocks" in encoder:
        out["trainable_blocks"] = encoder["trainable_blocks"]
    if model.get("adapter"):
        out["adapter"] = AdapterConfig(**model["adapter"])
    if model.get("corpus") and model.get("align", True):
        from alt_lightning.text.corpus import load_corpus

        out["corpus_size"] = len(load_corpus(model["corpus"]))
    if "num_frames" in data:
        out["frames"] = data["num_frames"]
    if data.get("image_size"):
        out["image_size"] = data["image_size"]
    if "test_clips" in data or "test_crops" in data:
        out["views"] = (int(data.get("test_clips", 1)), int(data.get("test_crops", 1)))
    return out


def spec_from_args(args: argparse.Namespace) -> FlopSpec:
    """Defaults, then the config file, then explicit arguments."""
    fields: dict[str, Any] = spec_from_config(args.config) if args.config else {}
    for key in ("model_name", "frames", "image_size", "r", "corpus_size", "num_classes", "align", "region"):
        if getattr(args, key) is not None:
            fields[key] = getattr(args, key)
    if args.views is not None:
        fields["views"] = parse_views(args.views)
    if args.adapter_layers is not None or args.top_m is not None:
        changes = {"layers": args.adapter_layers, "top_m": args.top_m}
        fields["adapter"] = replace(
            fields.get("adapter") or AdapterConfig(), **{k: v for k, v in changes.items() if v is not None}
        )
    return FlopSpec(**fields)


def _g(macs: float) -> str:
    """GFLOPs with three decimals, or four significant digits for tiny models."""
    g = macs / 1e9
    return f"{g:.3f}" if g >= 1 else f"{g:.4g}"


def render(report: FlopReport, console: Console, analytic: dict[str, int] | None = None) -> None:
    """A rich table of the breakdown, totals and parameters."""
    s = report.spec
    title = (
        f"{s.model_name}, {s.frames} frames of {s.image_size} px, r = {s.r}, {report.tokens_per_frame} tokens/frame, "
        f"K = {s.corpus_size}, {s.num_classes} classes, adapter {s.adapter.layers} layer(s), "
        f"views {s.views[0]}x{s.views[1]}"
    )
    table = Table(title=escape(title), caption="GFLOPs = 10^9 multiply-adds (fvcore convention)")
    table.add_column("component")
    table.add_column("GFLOPs / view", justify="right")
    table.add_column(f"GFLOPs x {s.num_views} views", justify="right")
    table.add_column("share", justify="right")
    if analytic is not None:
        table.add_column("analytic / view", justify="right")
    view_total = max(1, report.view_total)
    for comp in COMPONENTS:
        macs = report.per_view[comp]
        row = [comp, _g(macs), _g(macs * s.num_views), f"{100 * macs / view_total:.1f} %"]
        if analytic is not None:
            row.append(_g(analytic[comp]))
        table.add_row(*row)
    per_frame = ["  (encoder per frame)", _g(report.encoder_per_frame), "", ""]
    table.add_row(*per_frame, *([""] if analytic is not None else []))
    total = ["total", _g(report.view_total), _g(report.total), "100 %"]
    if analytic is not None:
        total.append(_g(sum(analytic.values())))
    table.add_row(*total, style="bold")
    console.print(table)
    console.print(
        f"parameters: {report.params_total / 1e6:.1f} M in the ALT module (image tower + adapter), "
        f"{report.params_trainable / 1e6:.2f} M trainable; CLIP text tower {report.params_text_tower / 1e6:.1f} M "
        f"(offline only: corpus and class embeddings), {(report.params_total + report.params_text_tower) / 1e6:.1f} M "
        "with it."
    )
    console.print(
        f"paper, ALT-B/16 (ViT-B/16, 8 x 224, 3x1 views): {PAPER_B16['gflops']:.0f} GFLOPs, "
        f"{PAPER_B16['params_m']} M parameters (what its parameter count includes is not stated)."
    )
    console.print(f"[dim]{escape(report.method)}[/dim]")


def main(argv: list[str] | None = None) -> int:
    """Run ``alt flops`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    args = parse_or_exit_code(build_parser(), argv)
    if isinstance(args, int):
        return args
    console = report_console()
    try:
        spec = spec_from_args(args)
        report = measure_flops(spec, args.device)
        analytic = analytic_flops(report.spec) if args.check else None
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        console.print(f"[red]error:[/red] {escape(str(e))}", soft_wrap=True)
        return 1
    if args.json:
        out = report.to_dict()
        if analytic is not None:
            out["analytic_macs"] = analytic
        print(json.dumps(out, indent=2, default=str))
    else:
        render(report, console, analytic)
    if analytic is not None and analytic != report.per_view:
        console.print("[red]measured and analytic counts differ[/red]")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
