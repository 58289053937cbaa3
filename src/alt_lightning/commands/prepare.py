r"""``alt prepare``: re-encode a dataset tree for fast training and evaluation (PyAV; no FFmpeg program needed).

Usage::

    alt prepare SOURCE OUT [--short_side 256] [--gop 12] [--fps F] [--crf 23] [--preset veryfast] [--upscale false]
                           [--workers N] [--others copy|symlink|skip] [--overwrite false] [--failures CSV]
    alt prepare data/k400 data/k400_256           # then train with data.init_args.root=data/k400_256

Every video under ``SOURCE`` is written to the same relative path under ``OUT`` (same file name and extension, h264
inside, short side ``--short_side``, a keyframe every ``--gop`` frames, no B-frames, no audio, upright); every other
file (annotation lists, CSVs) is copied, so ``OUT`` is a complete dataset root: point the DataModule's ``root`` at it
and change nothing else. ``SOURCE`` is only read; an ``OUT`` equal to it, inside it or around it is refused. A rerun
skips the outputs that decode and redoes the rest (Ctrl-C is safe: files are renamed into place when complete).
Videos that fail, and damaged sources whose decodable frames were written (``partial``), are listed with the reason
in ``OUT/prepare_failures.csv``. Details: :mod:`alt_lightning.data.prepare` and ``data/README.md``.

Exit status: 0 when every video was prepared (``partial`` included: the CSV names them), 1 when some failed, 2 for a
usage error (overlapping folders, settings that differ from the earlier run of this ``OUT``).
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any


def build_parser() -> Any:
    """Arguments of ``alt prepare``."""
    from jsonargparse import ArgumentParser, DefaultHelpFormatter

    from alt_lightning.data.prepare import PrepareSettings
    from alt_lightning.errors import PlainHelpMixin

    class HelpFormatter(PlainHelpMixin, DefaultHelpFormatter):
        """jsonargparse's formatter, without reST markup."""

    d = PrepareSettings()
    parser = ArgumentParser(prog="alt prepare", description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    parser.add_argument("source", type=str, help="dataset root to prepare (only read)")
    parser.add_argument("out", type=str, help="prepared root to write (outside the source)")
    parser.add_argument("--short_side", type=int, default=d.short_side, help="shorter side in pixels (even)")
    parser.add_argument("--gop", type=int, default=d.gop, help="keyframe interval in frames")
    parser.add_argument("--fps", type=float | None, default=None, help="output frame rate (default: the source's)")
    parser.add_argument("--crf", type=int, default=d.crf, help="x264 quality (lower: better, larger)")
    parser.add_argument("--preset", type=str, default=d.preset, help="x264 preset (ultrafast .. veryslow)")
    parser.add_argument("--upscale", type=bool, default=d.upscale, help="scale smaller videos up to short_side")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (0: this one)")
    parser.add_argument("--threads", type=int, default=d.threads, help="FFmpeg threads per video")
    parser.add_argument("--timeout_s", type=float | None, default=d.timeout_s, help="time limit per video")
    parser.add_argument("--others", type=str, default="copy", help="non-video files: copy, symlink or skip")
    parser.add_argument("--overwrite", type=bool, default=False, help="re-encode videos that are already prepared")
    parser.add_argument("--failures", type=str | None, default=None, help="CSV of failures (default OUT/...)")
    parser.add_argument("--progress", type=bool, default=True, help="show a progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``alt prepare``."""
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from alt_lightning.data.prepare import PrepareError, PrepareResult, PrepareSettings, prepare_tree
    from alt_lightning.errors import normalize_options

    cfg = build_parser().parse_args(normalize_options(list(sys.argv[1:] if argv is None else argv)))
    console = Console()

    try:
        settings = PrepareSettings(
            short_side=cfg.short_side,
            gop=cfg.gop,
            fps=cfg.fps,
            crf=cfg.crf,
            preset=cfg.preset,
            upscale=cfg.upscale,
            threads=cfg.threads,
            timeout_s=cfg.timeout_s,
        )
    except PrepareError as e:
        console.print(f"[red]{escape(str(e))}[/red]", soft_wrap=True)
        return 2

    counts: Counter[str] = Counter()
    columns = (
        TextColumn("preparing videos"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[counts]}"),
    )
    with Progress(*columns, console=console, disable=not cfg.progress) as bar:
        task = bar.add_task("prepare", total=None, counts="")

        def start(total: int) -> None:
            bar.update(task, total=total)

        def done(result: PrepareResult) -> None:
            counts[result.status] += 1
            bar.update(task, advance=1, counts=", ".join(f"{n} {s}" for s, n in sorted(counts.items())))

        try:
            report = prepare_tree(
                cfg.source,
                cfg.out,
                settings,
                workers=cfg.workers,
                overwrite=cfg.overwrite,
                others=cfg.others,
                failures_csv=cfg.failures,
                on_start=start,
                on_result=done,
            )
        except PrepareError as e:
            console.print(f"[red]{escape(str(e))}[/red]", soft_wrap=True)
            return 2

    n = len(report.results)
    frames = sum(r.frames for r in report.results if r.status in ("done", "partial"))
    verb = {"copy": "copied", "symlink": "linked"}.get(cfg.others)
    others = (
        f"other files: {report.others} {verb}, {report.others_present} already there" if verb else "other files skipped"
    )
    console.print(
        f"{n} videos: {report.count('done')} prepared ({frames} frames), {report.count('skipped')} already prepared, "
        f"{report.count('partial')} partial (damaged source), {report.count('failed')} failed; {others}",
        soft_wrap=True,
    )
    bad = [r for r in report.results if r.status in ("failed", "partial")]
    if bad:
        reasons = Counter(r.reason.split(":")[0] for r in bad)
        console.print(
            f"listed in {escape(str(report.failures_csv))}: "
            + ", ".join(f"{k} x {escape(v)}" for v, k in reasons.most_common()),
            soft_wrap=True,
        )
    return 1 if report.count("failed") else 0


if __name__ == "__main__":
    raise SystemExit(main())
