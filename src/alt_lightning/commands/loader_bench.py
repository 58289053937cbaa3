"""``alt loader-bench``: clips per second of the data path (decode + sample + transform) per worker count.

Usage::

    alt loader-bench                                   # writes a synthetic set (340x256, 150 frames) and times it
    alt loader-bench --videos /data/k400/val --limit 64 --workers 0 1 2 4
    alt loader-bench --config configs/data/k400.yaml --workers 2 4 8
    alt loader-bench --synthetic 16 --modes train eval --json bench.json
    alt loader-bench --synthetic 6 --synthetic_style camera --synthetic_size 1920x1080 --synthetic_gop 250 \
                     --prepare true --workers 1           # raw 1080p (x264's default GOP) vs `alt prepare`d copies

For each mode (``train``: random segment sampling and augmentation, one clip per video; ``eval``: the test views,
deterministic) and each worker count it runs a DataLoader over the videos (cycled to ``--batches`` batches) and
reports clips/s after the warm-up (the first batch of every worker: steady state, start-up excluded) and the first
batch's latency. When torchcodec can run here, the same loop is also timed with ``decoder="torchcodec"`` (CPU).
Inside workers each decoder uses 1 thread, in the main process FFmpeg's default (as the DataModules do), so the
rows with 1 worker are the per-core figures. When ``import decord`` works the same loop is timed with decord as the
decoder (decord is never a dependency).

Synthetic videos: ``--synthetic_style demo`` (default) is the demo dataset (shapes over full-resolution noise, crf 18,
a keyframe every 12 frames); ``camera`` renders the same scenes at 1/8 of the size and scales them up, which gives
the bitrate of real footage (about 5.7 Mbit/s at 1080p30, crf 23) with a keyframe every ``--synthetic_gop`` frames
(default 250, x264's own). ``--prepare true`` also runs ``alt prepare`` (``--prepare_short_side``,
``--prepare_gop``) on the videos into a temporary folder and times both copies in the same run.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from alt_lightning.data.dataset import SamplingConfig, VideoDataset, worker_init
from alt_lightning.data.parsers import VIDEO_EXTENSIONS
from alt_lightning.data.records import VideoRecord
from alt_lightning.data.transforms import ClipTransform
from alt_lightning.datamodules.samplers import whole_video_batch_size


class DecordVideoDataset(VideoDataset):
    """The same dataset with decord as the decoder (for comparison only): sampling, views and transform as PyAV's."""

    def open_reader(self, path: str) -> _DecordReader:  # type: ignore[override]
        """A ``decord.VideoReader`` behind the reader interface the dataset uses."""
        return _DecordReader(path, self.decode_threads)


class _DecordReader:
    """What :class:`VideoDataset` needs of a reader (``info.num_frames``, ``get``, ``last_issue``), from decord."""

    last_issue = None

    def __init__(self, path: str, threads: int) -> None:
        import decord

        self._reader = decord.VideoReader(path, num_threads=threads)
        self.info = SimpleNamespace(num_frames=len(self._reader))

    def get(self, indices: Sequence[int]) -> np.ndarray:
        """uint8 ``[len(indices), H, W, 3]`` with decord's ``get_batch``."""
        return self._reader.get_batch(list(indices)).asnumpy()

    def __enter__(self) -> _DecordReader:
        return self

    def __exit__(self, *exc: object) -> None:
        del self._reader


def decord_available() -> bool:
    """Whether decord can be imported here."""
    try:
        import decord  # noqa: F401
    except Exception:
        return False
    return True


def time_loader(
    dataset: VideoDataset, *, workers: int, batch_size: int, batches: int, seed: int = 0
) -> dict[str, float]:
    """Iterate ``batches`` batches (the dataset cycled, shuffled in training) and time them.

    The steady rate leaves out the warm-up: the first ``max(1, workers)`` batches. Each of ``w`` workers starts on
    its own first batch at once (the DataLoader hands every worker ``prefetch_factor`` batches up front), so the first
    ``w`` batches arrive together after start-up; from the arrival of batch ``w - 1`` on, every worker has delivered
    once and is busy with its next batch, and the loop here never makes them wait (it does no work per batch), so
    the batches after it take the workers' steady time. Counting from the first batch only would credit the other
    ``w - 1`` batches with no time (+50 % at 2 workers and 4 batches). ``prefetch_factor`` does not change this: it
    only sets how far ahead of the consumer the workers may run.

    Evaluation batches hold whole videos (:func:`~alt_lightning.datamodules.samplers.whole_video_batch_size`), as
    the DataModules make them.

    Returns:
        ``clips``, ``warmup_batches``, ``first_batch_s`` (includes worker start-up), ``warmup_s`` (until the last
        warm-up batch), ``seconds`` (after it) and ``clips_per_s`` (clips after the warm-up over their time; NaN
        when no batch is left after the warm-up: ask for more ``batches``).
    """
    if not dataset.train:  # whole videos per batch, as the DataModules batch evaluation (one pass per video)
        batch_size = whole_video_batch_size(batch_size, int(getattr(dataset, "num_views", 1)))
    n = batches * batch_size
    reps = math.ceil(n / len(dataset))
    rng = np.random.default_rng(seed)
    order = [
        int(i) for _ in range(reps) for i in (rng.permutation(len(dataset)) if dataset.train else range(len(dataset)))
    ]
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=order[:n],
        num_workers=workers,
        worker_init_fn=worker_init if workers > 0 else None,
        drop_last=False,
    )
    warmup = max(1, workers)
    t0 = time.perf_counter()
    t_first = t_warm = t0
    clips = warm_clips = 0
    for i, batch in enumerate(loader):
        clips += len(batch["label"])
        if i == 0:
            t_first = time.perf_counter()
        if i == warmup - 1:
            t_warm, warm_clips = time.perf_counter(), clips
    end = time.perf_counter()
    if clips == warm_clips or batches <= warmup:  # nothing arrived after the warm-up
        t_warm = end
    steady = end - t_warm
    return {
        "clips": clips,
        "warmup_batches": warmup,
        "first_batch_s": t_first - t0,
        "warmup_s": t_warm - t0,
        "seconds": steady,
        "clips_per_s": (clips - warm_clips) / steady if steady > 0 and clips > warm_clips else float("nan"),
    }


def _synthetic(folder: Path, count: int, frames: int, size: tuple[int, int], codec: str) -> list[VideoRecord]:
    from alt_lightning.data.synthetic import DEFAULT_CLASSES, write_synthetic_dataset

    per_class = math.ceil(count / len(DEFAULT_CLASSES))
    paths = write_synthetic_dataset(
        folder,
        videos_per_class={"bench": per_class},
        num_frames=frames,
        width=size[0],
        height=size[1],
        fps=30,
        codec=codec,
    )
    lines = paths["bench"].read_text().splitlines()[: count if count else None]
    return [VideoRecord(str(folder / p), int(lab), p) for p, lab in (ln.rsplit(None, 1) for ln in lines)]


def write_camera_videos(
    folder: Path, count: int, frames: int, size: tuple[int, int], gop: int = 250, fps: int = 30, crf: int = 23
) -> list[VideoRecord]:
    """Write ``count`` h264 mp4 files whose bitrate is that of camera footage, not of noise.

    Each clip is a demo scene (:func:`~alt_lightning.data.synthetic.render_clip`) rendered at 1/8 of ``size`` and
    scaled up (bicubic) frame by frame: smooth texture and motion, no pixel noise, so x264 at ``crf`` 23 spends
    about what it spends on real video (measured 5.7 Mbit/s at 1080p30); ``gop`` is the keyframe interval.
    """
    import av

    from alt_lightning.data.synthetic import DEFAULT_CLASSES, ClassSpec, render_clip

    w, h = size
    rng = np.random.default_rng(0)
    records = []
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(count):
        label = k % len(DEFAULT_CLASSES)
        small = render_clip(ClassSpec(*DEFAULT_CLASSES[label]), rng, frames, max(16, h // 8), max(16, w // 8))
        rel = f"camera_{k:03d}.mp4"
        with av.open(str(folder / rel), "w") as c:
            s = c.add_stream("libx264", rate=fps, options={"crf": str(crf), "preset": "veryfast", "g": str(gop)})
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            for arr in small:
                f = av.VideoFrame.from_ndarray(arr, format="rgb24")
                for p in s.encode(f.reformat(width=w, height=h, format="yuv420p", interpolation="BICUBIC")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
        records.append(VideoRecord(str(folder / rel), label, rel))
    return records


def _prepared_copies(root: Path, records: list[VideoRecord], out: Path, short_side: int, gop: int) -> list[VideoRecord]:
    """``alt prepare`` the videos under ``root`` into ``out``; the records of the copies (same labels and ids)."""
    from alt_lightning.data.prepare import PrepareSettings, prepare_tree

    rel = [Path(r.path).relative_to(root).as_posix() for r in records]
    settings = PrepareSettings(short_side=short_side, gop=gop)
    report = prepare_tree(root, out, settings, workers=os.cpu_count() or 1, others="skip", videos=rel)
    failed = [r for r in report.results if r.status == "failed"]
    if failed:
        raise SystemExit(f"alt prepare failed on {len(failed)} videos, e.g. {failed[0].path}: {failed[0].reason}")
    return [VideoRecord(str(out / Path(r.path).relative_to(root)), r.label, r.video_id, dict(r.meta)) for r in records]


def _megabits_per_s(records: list[VideoRecord]) -> float:
    """Mean bitrate of the files (size over duration)."""
    from alt_lightning.data.decode import probe_video

    infos = [(os.path.getsize(r.path), probe_video(r.path).duration_s) for r in records]
    return sum(8 * b / max(d, 1e-9) for b, d in infos) / len(infos) / 1e6


def _folder(folder: Path, limit: int | None) -> list[VideoRecord]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    if not files:
        raise SystemExit(f"{folder}: no video files ({', '.join(VIDEO_EXTENSIONS)})")
    return [VideoRecord(str(p), 0, p.relative_to(folder).as_posix()) for p in files[:limit]]


def _arguments(parser: Any) -> None:
    """The options of ``alt loader-bench`` (besides the configs)."""
    parser.add_argument("--videos", type=str | None, default=None, help="folder of videos (searched recursively)")
    parser.add_argument("--synthetic", type=int, default=16, help="videos to write when no other source is given")
    parser.add_argument("--synthetic_size", type=str, default="340x256", help="WIDTHxHEIGHT of synthetic videos")
    parser.add_argument("--synthetic_frames", type=int, default=150, help="frames per synthetic video (30 fps)")
    parser.add_argument("--codec", type=str, default="h264", help="synthetic codec: h264, mpeg4, vp9, mjpeg")
    parser.add_argument("--limit", type=int | None, default=None, help="use at most this many videos")
    parser.add_argument("--workers", type=int, default=[0, 1, 2], nargs="+", help="DataLoader worker counts")
    parser.add_argument("--modes", type=str, default=["train", "eval"], nargs="+", help="train and/or eval")
    parser.add_argument("--batches", type=int, default=8, help="batches timed per configuration")
    parser.add_argument("--batch_size", type=int, default=8, help="clips per batch (videos/synthetic)")
    parser.add_argument("--num_frames", type=int, default=8, help="frames per clip (videos/synthetic)")
    parser.add_argument("--image_size", type=int, default=224, help="output side (videos/synthetic)")
    parser.add_argument("--decode_threads", type=int | None, default=None, help="default: 1 in workers, else 0")
    parser.add_argument("--decord", type=bool, default=True, help="also time decord when it is installed")
    parser.add_argument("--torchcodec", type=bool, default=True, help="also time decoder='torchcodec' when usable")
    parser.add_argument("--json", type=str | None, default=None, help="write the results here")
    parser.add_argument("--synthetic_style", type=str, default="demo", help="demo or camera (see above)")
    parser.add_argument("--synthetic_gop", type=int, default=250, help="keyframe interval of camera-style videos")
    parser.add_argument("--prepare", type=bool, default=False, help="also time an `alt prepare`d copy of the videos")
    parser.add_argument("--prepare_short_side", type=int, default=256, help="short side of the prepared copy")
    parser.add_argument("--prepare_gop", type=int, default=12, help="keyframe interval of the prepared copy")


def build_parser() -> Any:
    """The parser of ``alt loader-bench --help`` (the run parses with ``alt fit``'s parser and these options)."""
    from alt_lightning.commands.check_data import help_parser

    return help_parser("alt loader-bench", __doc__.split("\n\n")[0], _arguments)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``alt loader-bench``."""
    from rich.console import Console
    from rich.table import Table

    from alt_lightning.commands.check_data import parse_with_data

    args = list(sys.argv[1:] if argv is None else argv)
    description = __doc__.split("\n\n")[0]
    cfg, dm = parse_with_data(args, _arguments, prog="alt loader-bench", description=description, required=False)
    console = Console()
    if cfg.synthetic_style not in ("demo", "camera"):
        raise SystemExit(f"--synthetic_style must be demo or camera, got {cfg.synthetic_style!r}")

    tmp: tempfile.TemporaryDirectory[str] | None = None
    files: dict[str, dict[str, list[VideoRecord]]] = {}  # "raw"/"prepared" -> mode -> records
    notes: list[str] = []
    try:
        if dm is not None:
            if cfg.prepare:
                raise SystemExit(
                    "--prepare works on --videos or synthetic videos; for a DataModule run `alt prepare ROOT OUT`, "
                    "then loader-bench again with --data.init_args.root=OUT"
                )
            source = f"{type(dm).__name__}({dm.root})"
            files["raw"] = {m: dm.records("train" if m == "train" else "test")[: cfg.limit] for m in cfg.modes}
            sampling = {m: dm.sampling_config("train" if m == "train" else "test") for m in cfg.modes}
            transforms = {m: dm.transform("train" if m == "train" else "test") for m in cfg.modes}
            batch_size = dm.cfg.batch_size
        else:
            tmp = tempfile.TemporaryDirectory(prefix="alt_loader_bench_")
            if cfg.videos:
                root = Path(cfg.videos)
                base = _folder(root, cfg.limit)
                source = f"{cfg.videos} ({len(base)} videos)"
            else:
                root = Path(tmp.name) / "raw"
                w, h = (int(v) for v in cfg.synthetic_size.lower().split("x"))
                t = time.perf_counter()
                if cfg.synthetic_style == "camera":
                    base = write_camera_videos(root, cfg.synthetic, cfg.synthetic_frames, (w, h), cfg.synthetic_gop)
                    what = f"camera-style h264, keyframe every {cfg.synthetic_gop}"
                else:
                    base = _synthetic(root, cfg.synthetic, cfg.synthetic_frames, (w, h), cfg.codec)
                    what = cfg.codec
                source = f"synthetic {len(base)} x {w}x{h} {cfg.synthetic_frames} frames {what}"
                console.print(f"wrote {source} in {time.perf_counter() - t:.1f} s")
            files["raw"] = dict.fromkeys(cfg.modes, base)
            if cfg.prepare:
                t = time.perf_counter()
                copies = _prepared_copies(
                    root, base, Path(tmp.name) / "prepared", cfg.prepare_short_side, cfg.prepare_gop
                )
                took = time.perf_counter() - t
                files["prepared"] = dict.fromkeys(cfg.modes, copies)
                notes.append(
                    f"prepared {len(copies)} videos (short side {cfg.prepare_short_side}, keyframe every "
                    f"{cfg.prepare_gop}) in {took:.1f} s with {os.cpu_count()} processes; mean bitrate raw "
                    f"{_megabits_per_s(base):.2f} Mbit/s, prepared {_megabits_per_s(copies):.2f} Mbit/s"
                )
                console.print(notes[-1])
            mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)  # CLIP's
            sampling = {m: SamplingConfig(cfg.num_frames) for m in cfg.modes}
            transforms = {
                m: ClipTransform(cfg.image_size, mean, std, train=m == "train", interpolation="bicubic")
                for m in cfg.modes
            }
            batch_size = cfg.batch_size

        from alt_lightning.data.torchcodec_reader import torchcodec_available

        readers = ["pyav"] + (["torchcodec"] if cfg.torchcodec and torchcodec_available() is None else [])
        readers += ["decord"] if cfg.decord and decord_available() else []
        table = Table("files", "reader", "mode", "workers", "threads", "clips", "first batch s", "clips/s")
        results: list[dict[str, Any]] = []
        console.print(
            f"source: {source}; batch {batch_size}; {torch.get_num_threads()} torch threads; {os.cpu_count()} CPUs"
        )
        for kind, records in files.items():
            for reader in readers:
                cls = DecordVideoDataset if reader == "decord" else VideoDataset
                for mode in cfg.modes:
                    for workers in cfg.workers:
                        threads = cfg.decode_threads if cfg.decode_threads is not None else (1 if workers > 0 else 0)
                        ds = cls(
                            records[mode],
                            transforms[mode],
                            sampling[mode],
                            train=mode == "train",
                            split=mode,
                            decode_threads=threads,
                            decoder="torchcodec" if reader == "torchcodec" else "pyav",
                        )
                        r = time_loader(ds, workers=workers, batch_size=batch_size, batches=cfg.batches)
                        row = {"files": kind, "reader": reader, "mode": mode, "workers": workers, "threads": threads}
                        results.append({**row, **r})
                        table.add_row(
                            kind,
                            reader,
                            mode,
                            str(workers),
                            str(threads),
                            str(r["clips"]),
                            f"{r['first_batch_s']:.2f}",
                            f"{r['clips_per_s']:.1f}",
                        )
    finally:
        if tmp is not None:
            tmp.cleanup()
    console.print(table)
    if any(math.isnan(r["clips_per_s"]) for r in results):
        console.print("clips/s is nan where no batch came after the warm-up (one batch per worker): raise --batches")
    ratios = _ratios(results)
    for key, ratio in ratios.items():
        console.print(f"prepared / raw clips/s, {key}: {ratio:.1f}x")
    if cfg.decord and "decord" not in readers:
        console.print("decord is not installed: PyAV only (decord is an optional comparison, never a dependency)")
    if cfg.json:
        out = {"source": source, "batch_size": batch_size, "notes": notes, "results": results}
        if ratios:
            out["prepared_over_raw"] = ratios
        Path(cfg.json).write_text(json.dumps(out, indent=1))
    return 0


def _ratios(results: list[dict[str, Any]]) -> dict[str, float]:
    """Prepared / raw clips/s for every (reader, mode, workers) timed on both."""
    raw = {(r["reader"], r["mode"], r["workers"]): r["clips_per_s"] for r in results if r["files"] == "raw"}
    return {
        f"{r['reader']} {r['mode']} {r['workers']} workers": r["clips_per_s"] / raw[key]
        for r in results
        if r["files"] == "prepared" and (key := (r["reader"], r["mode"], r["workers"])) in raw
    }


if __name__ == "__main__":
    raise SystemExit(main())
