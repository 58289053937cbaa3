r"""``alt protocol``: run a paper protocol into one table and one JSON (resumable).

::

    alt protocol zero-shot --ckpt_path K400.ckpt --config configs/model/alt_b16.yaml \
        --config configs/data/hmdb51.yaml --config configs/trainer/gpu.yaml \
        --config configs/experiments/zero_shot_hmdb51.yaml                        # splits 1, 2, 3
    alt protocol few-shot --shots 2 4 8 16 --seeds 0 1 2 --config ... --config configs/experiments/few_shot_ucf101.yaml
    alt protocol base-to-novel --seeds 0 1 2 --config ... --config configs/experiments/base_to_novel_ucf101.yaml
    alt protocol show runs/protocols/few_shot_ucf101/results.json

Arguments after ``--`` go to every run unchanged (e.g. ``-- --trainer.max_epochs=10``). Results go to
``<out>/results.json`` (default ``runs/protocols/<name>``, ``<name>`` the last config's file name), with a picture
beside it (``few_shot.png``, ``zero_shot.png`` or ``base_to_novel.png``; needs matplotlib, the ``[viz]`` extra);
running the same command again skips the units already done.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from alt_lightning.commands import ArgumentParser
from alt_lightning.protocols.report import print_results
from alt_lightning.protocols.runner import (
    ProtocolRunner,
    ProtocolSpec,
    plan_base_to_novel,
    plan_few_shot,
    plan_zero_shot,
    restart,
)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", action="append", required=True, help="config files or preset names, in order (as for alt fit)"
    )
    p.add_argument("--name", help="experiment name (default: the last config's file name)")
    p.add_argument("--out", help="output folder (default runs/protocols/<name>)")
    p.add_argument("--restart", action="store_true", help="discard earlier results in --out and start over")


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``alt protocol``."""
    parser = ArgumentParser(
        prog="alt protocol",
        description="Run a paper protocol (each unit through alt fit/test) into a table and a JSON; resumable. "
        "Arguments after -- go to every run.",
    )
    sub = parser.add_subparsers(dest="protocol", required=True, help="the protocol to run (or show: a results table)")
    zs = sub.add_parser("zero-shot", help="test one checkpoint (or the backbone alone) on every split of a target")
    _common(zs)
    zs.add_argument(
        "--ckpt_path", dest="ckpt", metavar="CKPT", help="checkpoint to test; none: zero-shot from the backbone alone"
    )
    zs.add_argument("--ckpt", dest="ckpt", help=argparse.SUPPRESS)  # the older spelling, kept working
    zs.add_argument(
        "--splits",
        nargs="+",
        default=["1", "2", "3"],
        help="official splits (HMDB/UCF), K600 subset numbers (k600_zs_split<k>) or class lists/manifests; "
        "with --draw: seeds",
    )
    zs.add_argument("--draw", type=int, help="K600: draw this many of the 220 novel classes per seed in --splits")
    zs.add_argument(
        "--split-key",
        help="CLI option that selects a split (default: --data.init_args.class_subset.classes when the data has a "
        "class subset, else --data.init_args.split)",
    )
    fs = sub.add_parser("few-shot", help="fit + test for every K x seed")
    _common(fs)
    fs.add_argument("--shots", type=int, nargs="+", default=[2, 4, 8, 16], help="videos per class K (default 2 4 8 16)")
    fs.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="draws of the K videos (default 0 1 2)")
    fs.add_argument(
        "--manifest-pattern",
        help="read published lists instead of drawing, e.g. 'lists/train1_few_shot_{shots}.txt' ({shots}, {seed})",
    )
    fs.add_argument("--test-on", choices=("last", "best"), default="last", help="checkpoint tested (default last)")
    b2n = sub.add_parser("base-to-novel", help="per seed: fit on base classes, test base and novel, harmonic mean")
    _common(b2n)
    b2n.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="draws of the training videos (0 1 2)")
    b2n.add_argument("--shots", type=int, default=16, help="training videos per base class (default 16)")
    b2n.add_argument(
        "--subset-key", help="CLI option switching base/novel (default: --data.init_args.class_subset.subset)"
    )
    b2n.add_argument("--test-on", choices=("last", "best"), default="last", help="checkpoint tested (default last)")
    show = sub.add_parser("show", help="print the table of a results file")
    show.add_argument("results", help="results.json")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``alt protocol``."""
    argv = list(argv or [])
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    args = build_parser().parse_args(argv)
    console = Console()
    if args.protocol == "show":
        print_results(json.loads(Path(args.results).read_text(encoding="utf-8")), console)
        return 0
    from alt_lightning.lightning.presets import resolve_config

    configs = [resolve_config(c) for c in args.config]  # files, or shipped preset names (experiments/few_shot_ucf101)
    missing = [c for c in configs if not Path(c).is_file()]
    if missing:
        console.print(f"[red]config not found (neither a file nor a preset name):[/red] {', '.join(missing)}")
        return 2
    name = args.name or Path(configs[-1]).stem
    out = Path(args.out or Path("runs") / "protocols" / name)
    if args.restart:
        restart(out)
    spec = ProtocolSpec(
        protocol=args.protocol,
        configs=configs,
        out=out,
        name=name,
        ckpt=getattr(args, "ckpt", None),
        extra=extra,
        test_on=getattr(args, "test_on", "last"),
    )
    if args.protocol == "zero-shot":
        units = plan_zero_shot(spec, args.splits, draw=args.draw, split_key=args.split_key)
    elif args.protocol == "few-shot":
        units = plan_few_shot(spec, args.shots, args.seeds, args.manifest_pattern)
    else:
        units = plan_base_to_novel(spec, args.seeds, args.shots, args.subset_key)
    ProtocolRunner(spec, units, console=console).run()
    return 0
