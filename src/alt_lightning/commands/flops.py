"""``alt flops``: FLOPs (multiply-adds, attention included) and parameters of an ALT model and its input.

Examples::

    alt flops                                  # preset alt-b16-8f: ViT-B/16, 8 x 224, r = 8, 3x1 views
    alt flops --preset alt-l14 --views 3x1     # another preset (alt-b16-8f, alt-b16-32f, alt-l14, alt-tiny)
    alt flops --r 0 --adapter_layers 2         # ablations
    alt flops --config configs/model/alt_b16.yaml --config configs/data/k400.yaml \
        --config configs/experiments/supervised_k400.yaml     # an experiment: its model, frames and views
    alt flops --json                           # machine-readable

``--config`` (as often as ``alt fit`` takes it) is read by ``alt fit``'s own parser, without instantiating
anything: the model section gives the model, the data section the frames per clip and the test views. The count is
of ALT as :func:`~alt_lightning.model.build.build_alt` builds it (a subclass's own ``configure_*`` hooks are not
run). Explicit arguments override the preset or the configs. Counts come from a random-initialised model on the
``meta`` device (no weights, no download, about a second), measured with ``torch.utils.flop_counter`` and
cross-checked against the analytic count (``--check``).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alt_lightning.commands import ArgumentParser, parse_or_exit_code, report_console
from alt_lightning.model.config import PRESETS, ALTConfig
from alt_lightning.model.flops import COMPONENTS, FlopReport, analytic_flops, measure_flops, parse_views

#: The paper's figures for ALT-B/16 (8 x 224, 3x1 views), printed beside ours.
PAPER_B16 = {"gflops": 328.0, "params_m": 134.4}

#: Test views without a config: the paper's ALT-B/16 protocol.
DEFAULT_VIEWS = (3, 1)


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``alt flops`` (defaults ``None``: taken from ``--preset`` or ``--config``)."""
    p = ArgumentParser(prog="alt flops", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", choices=list(PRESETS), help="a named model (default alt-b16-8f)")
    src.add_argument(
        "--config", action="append", help="alt fit's configs (repeatable): model, frames and views of an experiment"
    )
    p.add_argument("--model_name", help="open_clip architecture (its preset, or the defaults with it)")
    p.add_argument("--frames", type=int, help="frames per clip T")
    p.add_argument("--image_size", type=int, help="input side (default: the data's, else the backbone's)")
    p.add_argument("--r", type=int, help="ToMe merges per block (0 = no merging)")
    p.add_argument("--views", help="test views, clips x crops (default: the data's, else 3x1)")
    p.add_argument("--corpus_size", type=int, help="entities K (default: the model's corpus)")
    p.add_argument("--num_classes", type=int, default=400, help="classes (default 400)")
    p.add_argument("--adapter_layers", type=int, help="adapter decoder layers M")
    p.add_argument("--top_m", type=int, help="keep only the top-M queries (default: all)")
    p.add_argument("--align", action=argparse.BooleanOptionalAction, default=None, help="entity queries")
    p.add_argument("--region", action=argparse.BooleanOptionalAction, default=None, help="region tokens")
    p.add_argument("--device", default="meta", help="meta (default, no arithmetic) or cpu/cuda (runs the model)")
    p.add_argument("--check", action="store_true", help="also compute the analytic count and compare")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def from_fit_configs(configs: list[str]) -> tuple[ALTConfig, dict[str, Any]]:
    """The model and the input (``views``, ``image_size``) of ``alt fit --config ...``, parsed as ``alt fit`` does.

    Raises:
        ValueError: If ``alt fit``'s parser refuses the configs.
    """
    from alt_lightning.lightning.cli import parse_config

    cfg = parse_config(["fit", *(a for c in configs for a in ("--config", c))])
    model = cfg.model.init_args.as_dict()
    data = cfg.data.init_args.as_dict()
    names = set(ALTConfig.__dataclass_fields__) - {"num_frames"}
    config = ALTConfig(**{k: v for k, v in model.items() if k in names}, num_frames=data["num_frames"])
    return config, {"views": (data["test_clips"], data["test_crops"]), "image_size": data.get("image_size")}


def resolve(args: argparse.Namespace) -> tuple[ALTConfig, dict[str, Any]]:
    """The model and the :func:`measure_flops` arguments: the preset or the configs, then explicit arguments."""
    if args.config:
        config, inputs = from_fit_configs(args.config)
    elif args.preset:
        config, inputs = ALTConfig.preset(args.preset), {}
    else:
        config, inputs = ALTConfig.for_backbone(args.model_name or "ViT-B-16"), {}
    changes: dict[str, Any] = {
        k: getattr(args, k) for k in ("model_name", "align", "region") if getattr(args, k) is not None
    }
    if args.frames is not None:
        changes["num_frames"] = args.frames
    if args.r is not None:
        changes["encoder"] = replace(config.encoder, r=args.r)
    adapter = {"layers": args.adapter_layers, "top_m": args.top_m}
    if any(v is not None for v in adapter.values()):
        changes["adapter"] = replace(config.adapter, **{k: v for k, v in adapter.items() if v is not None})
    inputs.setdefault("views", DEFAULT_VIEWS)
    if args.views is not None:
        inputs["views"] = parse_views(args.views)
    if args.image_size is not None:
        inputs["image_size"] = args.image_size
    inputs.update(num_classes=args.num_classes, corpus_size=args.corpus_size, device=args.device)
    return replace(config, **changes), inputs


def _g(macs: float) -> str:
    """GFLOPs with three decimals, or four significant digits for tiny models."""
    g = macs / 1e9
    return f"{g:.3f}" if g >= 1 else f"{g:.4g}"


def render(report: FlopReport, console: Console, analytic: dict[str, int] | None = None) -> None:
    """A rich table of the breakdown, totals and parameters."""
    s, c = report, report.config
    title = (
        f"{c.model_name}, {s.frames} frames of {s.image_size} px, r = {c.encoder.r}, {s.tokens_per_frame} "
        f"tokens/frame, K = {s.corpus_size}, {s.num_classes} classes, adapter {c.adapter.layers} layer(s), "
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
        config, inputs = resolve(args)
        report = measure_flops(config, **inputs)
        analytic = (
            analytic_flops(
                config, num_classes=report.num_classes, corpus_size=report.corpus_size, image_size=report.image_size
            )
            if args.check
            else None
        )
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
