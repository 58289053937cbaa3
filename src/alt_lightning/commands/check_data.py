r"""``alt check-data``: decode-check a DataModule's videos before training, in parallel processes.

Usage::

    alt check-data --config configs/data/k400.yaml [--splits train val] [--workers 8]
                   [--report check_data.csv] [--clean-list clean_{split}.txt] [--full] [--strict]
    alt check-data --data.class_path alt_lightning.datamodules.UCFHMDBDataModule \
                   --data.init_args.root data/ucf101 --data.init_args.dataset ucf101

The configs are those ``alt fit`` takes (files or preset names, read by its parser; only the DataModule is built), and
the videos checked are those a run reads: the class subset and the few-shot draw are applied (the few-shot list is
written as the run writes it). Every listed video (missing ones included) is opened, its header read, and a few frames
decoded (first, middle, last: ``--full`` decodes all); the report CSV has one row per video and split: ``path, video_id,
split, status (ok/bad), reason, frames, fps, duration, size_bytes``. A usable but damaged file (truncated: frames past
the cut repeat the last one) is ``ok`` with its reason, or ``bad`` with ``--strict``. ``--clean-list`` writes, per
split, the ``path label`` list of the good videos, ready for :class:`~alt_lightning.datamodules.VideoListDataModule`.
Both are opened before the first video is decoded (an unwritable path fails at once). A file that exists but cannot be
read is reported with the OS error (``unreadable (Permission denied)``), not as missing. Exit status: 0 when every video
is good, 1 otherwise, 2 for a usage error or an output that cannot be written.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import multiprocessing
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from alt_lightning.data.decode import VideoDecodeError, VideoReader
from alt_lightning.data.manifests import relative_path
from alt_lightning.data.processes import main_module_hidden
from alt_lightning.data.records import VideoRecord

if TYPE_CHECKING:  # heavy imports (Lightning, jsonargparse) stay out of the checking worker processes
    from alt_lightning.datamodules.base import VideoDataModule

REPORT_COLUMNS = ("path", "video_id", "split", "status", "reason", "frames", "fps", "duration", "size_bytes")


def check_video(path: str, timeout_s: float = 60.0, full: bool = False) -> dict[str, Any]:
    """Open ``path``, read its header and decode some frames; never raises.

    Args:
        path: Video file.
        timeout_s: Time limit of the open and of each decode call.
        full: Decode every frame (slow; finds damage in the middle) instead of the first, middle and last.

    Returns:
        ``status`` (``"ok"``/``"bad"``), ``reason`` (empty, the decode error, or the issue of a usable file such
        as ``"truncated: ..."``), ``frames``, ``fps``, ``duration``, ``size_bytes``.
    """
    out: dict[str, Any] = {"status": "bad", "reason": "", "frames": "", "fps": "", "duration": "", "size_bytes": ""}
    if os.path.exists(path):
        out["size_bytes"] = os.path.getsize(path)
    try:
        with VideoReader(path, timeout_s=timeout_s, threads=1) as reader:
            info = reader.info
            out.update(frames=info.num_frames, fps=round(info.fps, 3), duration=round(info.duration_s, 3))
            n = info.num_frames
            issues: list[str] = []
            chunks = [list(range(s, min(n, s + 64))) for s in range(0, n, 64)] if full else [[0, n // 2, n - 1]]
            for chunk in chunks:
                reader.get(chunk)
                if reader.last_issue:
                    issues.append(reader.last_issue)
                    break
        out.update(status="ok", reason=issues[0] if issues else "")
    except VideoDecodeError as e:
        out["reason"] = e.reason
    except Exception as e:  # a checker must report, not crash, whatever the file does to FFmpeg
        out["reason"] = f"{type(e).__name__}: {e}"
    return out


def _check_all(paths: list[str], workers: int, timeout_s: float, full: bool, progress: bool) -> dict[str, dict]:
    """``check_video`` over ``paths`` in ``workers`` processes (0: in this process), with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    results: dict[str, dict] = {}
    columns = (TextColumn("checking videos"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task("check", total=len(paths))
        if workers <= 0:
            for p in paths:
                results[p] = check_video(p, timeout_s, full)
                bar.advance(task)
            return results
        # forkserver: workers start clean (no Lightning, no torch threads inherited) and import only decode.py.
        ctx = multiprocessing.get_context("forkserver" if sys.platform != "win32" else "spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            # Chunks of a few videos: fewer round trips than one task per video, results still stream in.
            check = functools.partial(check_video, timeout_s=timeout_s, full=full)
            with main_module_hidden():  # map() submits every chunk, so every worker starts in here
                chunks = pool.map(check, paths, chunksize=8)
            for path, result in zip(paths, chunks, strict=True):
                results[path] = result
                bar.advance(task)
    return results


def _open_outputs(paths: Sequence[Path]) -> tuple[list[TextIO], list[Path]] | str:
    """Open every output file for writing before any video is decoded, without truncating an existing one.

    Returns:
        The open files (appending; :func:`_rewrite` empties one before writing) and those of them this run created,
        or the one-line error naming the path that cannot be written (nothing is left behind then).
    """
    files: list[TextIO] = []
    created: list[Path] = []
    for path in paths:
        try:
            existed = path.exists()
            path.parent.mkdir(parents=True, exist_ok=True)
            files.append(path.open("a", newline=""))
        except OSError as e:
            _discard(files, created)
            return f"cannot write {path}: {e.strerror or e}; pass a writable path (nothing was checked)"
        if not existed:
            created.append(path)
    return files, created


def _discard(files: list[TextIO], created: list[Path]) -> None:
    """Close ``files`` and remove the ones this run created (an interrupted check leaves no empty outputs)."""
    for f in files:
        f.close()
    for path in created:
        path.unlink(missing_ok=True)


def _rewrite(f: TextIO) -> TextIO:
    """Empty a file opened by :func:`_open_outputs` (appending: writes then start at 0)."""
    f.seek(0)
    f.truncate()
    return f


def _clean_list_path(pattern: str, split: str, several: bool) -> Path:
    """``pattern`` with ``{split}`` filled in; ``name.<split>.txt`` when several splits share a plain name."""
    if "{split}" in pattern:
        return Path(pattern.format(split=split))
    p = Path(pattern)
    return p.with_name(f"{p.stem}.{split}{p.suffix}") if several else p


def help_parser(prog: str, description: str, add_arguments: Callable[[Any], None]) -> Any:
    """The parser whose help a command that reads data configs prints: ``--config``, the DataModule's and its own."""
    from jsonargparse import ArgumentParser

    from alt_lightning.datamodules.base import VideoDataModule
    from alt_lightning.lightning.cli import HelpFormatter

    parser = ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter)
    parser.add_argument(
        "--config", type=str | None, default=None, help="alt fit config files or preset names (as alt fit, repeatable)"
    )
    parser.add_subclass_arguments(VideoDataModule, "data", required=False)
    add_arguments(parser)
    return parser


def print_help(prog: str, description: str, add_arguments: Callable[[Any], None]) -> None:
    """The help of a command that reads data configs (:func:`help_parser`)."""
    help_parser(prog, description, add_arguments).print_help()


def parse_with_data(
    argv: Sequence[str],
    add_arguments: Callable[[Any], None],
    *,
    prog: str,
    description: str,
    required: bool = True,
) -> tuple[Any, VideoDataModule | None]:
    """Parse ``argv`` as ``alt fit`` parses it, with a command's own options; build only the DataModule.

    ``--config`` takes what ``alt fit`` takes (files or preset names; model and trainer sections are parsed, never
    built), ``--data.*`` arguments override it, and ``--ckpt_path`` brings back a checkpoint's DataModule.

    Args:
        argv: The command's arguments.
        add_arguments: Adds the command's own options to the parser.
        prog: The command (``--help``).
        description: Its description (``--help``).
        required: Whether a missing DataModule is an error.

    Returns:
        The parsed namespace and the DataModule (``None`` when none is named and ``required`` is false).

    Raises:
        SystemExit: 0 after ``--help``; one line for a usage error or a missing DataModule.
    """
    from alt_lightning.lightning.cli import data_given, instantiate_data, parse_config

    if any(a in ("-h", "--help") for a in argv):  # the command's own help, not all of alt fit's
        print_help(prog, description, add_arguments)
        raise SystemExit(0)
    try:
        cfg = parse_config(["fit", *argv], add_arguments=add_arguments)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    if not data_given(cfg):
        if required:
            raise SystemExit("give --config (an alt fit config or preset name) or --data.class_path ...")
        return cfg, None
    return cfg, instantiate_data(cfg)


def _arguments(parser: Any) -> None:
    """The options of ``alt check-data`` (besides the configs)."""
    parser.add_argument("--splits", type=str, default=["train", "val", "test"], nargs="+", help="splits to check")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (0: this one)")
    parser.add_argument("--report", type=str, default="check_data.csv", help="report CSV to write")
    parser.add_argument(
        "--clean_list",
        "--clean-list",
        type=str | None,
        default=None,
        help="write the good videos as 'path label' lists (use {split} in the name)",
    )
    parser.add_argument("--full", type=bool, default=False, help="decode every frame, not three")
    parser.add_argument("--strict", type=bool, default=False, help="count usable but damaged files as bad")
    parser.add_argument("--timeout_s", type=float, default=60.0, help="time limit per video")
    parser.add_argument("--progress", type=bool, default=True, help="show a progress bar")


def build_parser() -> Any:
    """The parser of ``alt check-data --help`` (the run parses with ``alt fit``'s parser and these options)."""
    return help_parser("alt check-data", __doc__.split("\n\n")[0], _arguments)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``alt check-data``."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    try:
        args = list(sys.argv[1:] if argv is None else argv)
        cfg, dm = parse_with_data(args, _arguments, prog="alt check-data", description=__doc__.split("\n\n")[0])
    except SystemExit as err:
        if isinstance(err.code, int) or err.code is None:  # --help
            return err.code or 0
        console.print(f"[red]{escape(str(err.code))}[/red]", soft_wrap=True)
        return 2
    assert dm is not None

    unknown = [s for s in cfg.splits if s not in ("train", "val", "test")]
    if unknown:
        console.print(f"[red]unknown split(s) {unknown}: use train, val and/or test (--splits train val)[/red]")
        return 2
    per_split: dict[str, list] = {}
    errors: list[str] = []
    for split in cfg.splits:
        try:
            # What a run reads (class subset and few-shot draw applied); decoding needs no labels (Kinetics test.csv).
            per_split[split] = dm.split_records(split, unlabelled_ok=True)
        except Exception as e:  # one split's annotations may be absent (e.g. Kinetics test.csv)
            errors.append(f"{split}: {e}")
    paths = sorted({r.path for records in per_split.values() for r in records})
    # Outputs first: an unwritable --report must fail now, not after hours of decoding.
    report = Path(cfg.report)
    lists = {s: _clean_list_path(cfg.clean_list, s, len(per_split) > 1) for s in per_split} if cfg.clean_list else {}
    opened = _open_outputs([report, *lists.values()])
    if isinstance(opened, str):
        console.print(f"[red]{escape(opened)}[/red]", soft_wrap=True)
        return 2
    files, created = opened
    outputs = dict(zip([report, *lists.values()], files, strict=True))
    try:
        results = _check_all(paths, cfg.workers, cfg.timeout_s, cfg.full, cfg.progress)
    except BaseException:  # Ctrl-C included: previous outputs stay whole, new ones are not left empty
        _discard(files, created)
        raise

    table = Table("split", "videos", "ok", "bad", "damaged but usable", "most common reasons")
    any_bad = bool(errors)
    with contextlib.ExitStack() as stack:
        for f in files:
            stack.enter_context(f)
        writer = csv.DictWriter(_rewrite(outputs[report]), fieldnames=REPORT_COLUMNS)
        writer.writeheader()
        for split, records in per_split.items():
            good: list[VideoRecord] = []
            reasons: Counter[str] = Counter()
            damaged = 0
            for r in records:
                res = dict(results[r.path])
                if res["status"] == "ok" and res["reason"]:
                    damaged += 1
                    if cfg.strict:
                        res["status"] = "bad"
                if res["status"] == "bad":
                    reasons[res["reason"].split(":")[0]] += 1
                else:
                    good.append(r)
                writer.writerow({"path": r.path, "video_id": r.video_id, "split": split, **res})
            n_bad = len(records) - len(good)
            any_bad |= n_bad > 0
            top = ", ".join(f"{k} ({v})" for k, v in reasons.most_common(3))
            table.add_row(split, str(len(records)), str(len(good)), str(n_bad), str(damaged), top)
            unlabelled = sum(r.label < 0 for r in good)
            if split in lists and unlabelled:
                # A `path label` list has no way to say "no label": a `path -1` line would be refused when read back.
                console.print(f"{split}: {unlabelled} videos have no label; no clean list written for {split}")
                _rewrite(outputs[lists[split]])
            elif split in lists:
                out = lists[split]
                # The dataset's own label ids (a class subset's relabelling is redone by whatever reads the list).
                lines = [f"{relative_path(r.path, dm.root)} {r.meta.get('parent_label', r.label)}\n" for r in good]
                _rewrite(outputs[out]).write("".join(lines))
                console.print(f"{split}: {len(good)} good videos listed in {out}")
    console.print(table)
    for message in errors:
        console.print(f"[red]{message}[/red]")
    console.print(f"report: {report}")
    return 1 if any_bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
