"""Time multi-view evaluation decoding before and after one-pass decoding (issue 14, item 0), on the same files.

Writes camera-style h264 videos (``alt loader-bench --synthetic_style camera``: footage-like bitrate, a keyframe every
``--gop`` frames, x264's default 250) at 1920x1080 and 340x256, and reads every view of every video (3 temporal clips
x 1 crop of 8 frames at 224, the ALT-B/16 protocol) through a DataLoader in the main process, one decoding thread
(one core), in batches of whole videos:

- ``before``: one open and one decode per (video, view), the previous path (``VideoDataset`` items one by one);
- ``after``: ``VideoDataset.__getitems__``, what the DataModules run: each video of a batch opened once and the frames
  of all its views decoded in one pass.

Before and after alternate within each repeat (a shared machine loads both alike). Prints the frames decoded per
video (the readers' own counters), clips/s (median of ``--repeats``) and whether the clips are equal bit for bit::

    python scripts/eval_decode_speed.py [--repeats 3] [--frames 300] [--gop 250] [--json out.json]

Not a test: the timings depend on the machine (``tests/data/test_dataset.py`` checks the clips and the frame counts).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from machine import cpu_name, load
from torch.utils.data import DataLoader

from alt_lightning.commands.loader_bench import write_camera_videos
from alt_lightning.data.dataset import SamplingConfig, VideoDataset
from alt_lightning.data.decode import VideoReader
from alt_lightning.data.transforms import ClipTransform

MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)  # CLIP's


class Counted(VideoDataset):
    """The evaluation dataset, keeping every reader it opened (their ``stats`` count decoded frames)."""

    readers: list[VideoReader]

    def open_reader(self, path: str) -> VideoReader:  # noqa: D102
        reader = super().open_reader(path)
        self.readers.append(reader)
        return reader


class PerView(Counted):
    """The previous path: the DataLoader fetches items one by one, each (video, view) opened and decoded alone."""

    __getitems__ = None  # type: ignore[assignment]  # torch's fetcher then calls __getitem__ per index


def _run(ds: Counted, batch_size: int) -> tuple[float, int, list[dict[str, Any]]]:
    """Seconds to read every item, frames decoded, the batches."""
    ds.readers = []
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0)
    t0 = time.perf_counter()
    batches = list(loader)
    seconds = time.perf_counter() - t0
    return seconds, sum(r.stats.frames_decoded for r in ds.readers), batches


def measure(records: list, views: int, repeats: int, videos_per_batch: int) -> dict[str, Any]:
    """Alternate before/after ``repeats`` times on ``records``."""
    tf = ClipTransform(224, MEAN, STD, train=False, interpolation="bicubic")
    sampling = SamplingConfig(num_frames=8, num_clips=views)
    kw = {"train": False, "split": "bench", "decode_threads": 1}
    before, after = PerView(records, tf, sampling, **kw), Counted(records, tf, sampling, **kw)
    batch = views * videos_per_batch
    times: dict[str, list[float]] = {"before": [], "after": []}
    frames: dict[str, int] = {}
    first: dict[str, list[dict[str, Any]]] = {}
    for r in range(repeats):
        order = [("before", before), ("after", after)]
        for name, ds in order if r % 2 == 0 else order[::-1]:
            s, f, got = _run(ds, batch)
            times[name].append(s)
            frames[name] = f
            first.setdefault(name, got)
    equal = all(
        torch.equal(a["video"], b["video"]) and torch.equal(a["index"], b["index"]) and torch.equal(a["ok"], b["ok"])
        for a, b in zip(first["before"], first["after"], strict=True)
    )
    clips = len(records) * views
    out = {"videos": len(records), "views": views, "clips": clips, "equal_bit_for_bit": equal}
    for name in ("before", "after"):
        med = statistics.median(times[name])
        out[name] = {
            "frames_per_video": frames[name] / len(records),
            "seconds": [round(t, 3) for t in times[name]],
            "clips_per_s": clips / med,
        }
    out["speedup"] = out["after"]["clips_per_s"] / out["before"]["clips_per_s"]
    return out


def main(argv: list[str] | None = None) -> int:
    """Write the videos, time both paths, print the figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--frames", type=int, default=300, help="frames per video (30 fps)")
    p.add_argument("--gop", type=int, default=250, help="keyframe interval")
    p.add_argument("--views", type=int, default=3, help="temporal clips per video")
    p.add_argument("--sizes", default="1920x1080:3,340x256:8", help="WIDTHxHEIGHT:VIDEOS, comma-separated")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    results = []
    load_start = load()
    with tempfile.TemporaryDirectory() as tmp:
        for spec in a.sizes.split(","):
            size, count = spec.split(":")
            w, h = (int(v) for v in size.split("x"))
            t0 = time.perf_counter()
            records = write_camera_videos(Path(tmp) / size, int(count), a.frames, (w, h), a.gop)
            took = time.perf_counter() - t0
            print(f"wrote {count} x {size}, {a.frames} frames, keyframe every {a.gop} in {took:.1f} s")
            r = measure(records, a.views, a.repeats, videos_per_batch=2)
            r["size"] = size
            results.append(r)
            print(json.dumps(r))
    machine = {"machine": cpu_name(), "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__}
    machine["load_start"], machine["load_end"] = load_start, load()
    print(f"\n{machine['machine']}, {machine['date']}, torch {machine['torch']}, one decoding thread; load "
          f"{machine['load_start']} -> {machine['load_end']}")  # fmt: skip
    print("| size | videos | frames/video before | after | clips/s before | after | speed-up | equal |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        b, f = r["before"], r["after"]
        print(
            f"| {r['size']} | {r['videos']} | {b['frames_per_video']:.0f} | {f['frames_per_video']:.0f} | "
            f"{b['clips_per_s']:.2f} | {f['clips_per_s']:.2f} | {r['speedup']:.2f}x | {r['equal_bit_for_bit']} |"
        )
    if a.json:
        Path(a.json).write_text(json.dumps({**machine, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
