"""`alt loader-bench`: clips/s per reader, mode and worker count, from synthetic videos or a DataModule."""

from __future__ import annotations

import json
import math
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from alt_lightning.cli import main as alt_main
from alt_lightning.commands import loader_bench
from alt_lightning.commands.loader_bench import time_loader
from alt_lightning.data.dataset import SamplingConfig, VideoDataset
from alt_lightning.data.parsers import parse_path_label_list
from alt_lightning.data.transforms import ClipTransform


def test_time_loader_cycles_the_dataset_to_the_asked_batches(synthetic_root: Path) -> None:
    records = parse_path_label_list(synthetic_root / "val.txt", root=synthetic_root)[:3]
    tf = ClipTransform(32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    ds = VideoDataset(records, tf, SamplingConfig(num_frames=4), train=False)
    r = time_loader(ds, workers=0, batch_size=2, batches=4)
    assert r["clips"] == 8 and r["clips_per_s"] > 0 and r["first_batch_s"] > 0


def test_loader_bench_on_synthetic_videos_with_workers(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    args = ["loader-bench", "--synthetic=3", "--synthetic_frames=12", "--synthetic_size=64x48", "--batches=2"]
    args += [
        "--batch_size=2",
        "--image_size=32",
        "--workers",
        "0",
        "1",
        f"--json={out}",
        "--decord=false",
        "--torchcodec=false",
    ]
    assert alt_main(args) == 0
    res = json.loads(out.read_text())
    assert res["source"] == "synthetic 3 x 64x48 12 frames h264"
    rows = [(r["reader"], r["mode"], r["workers"], r["threads"], r["clips"]) for r in res["results"]]
    assert rows == [("pyav", m, w, 1 if w else 0, 4) for m in ("train", "eval") for w in (0, 1)]
    assert all(r["clips_per_s"] > 0 for r in res["results"])
    assert "clips/s" in capsys.readouterr().out


def test_loader_bench_with_a_datamodule_and_a_decord_stand_in(
    synthetic_root: Path, tmp_path: Path, monkeypatch
) -> None:
    """The decord path is exercised with a stand-in module (decord itself is never a dependency)."""
    calls: list[int] = []

    class FakeReader:
        def __init__(self, path: str, num_threads: int = 0) -> None:
            self.n = 12

        def __len__(self) -> int:
            return self.n

        def get_batch(self, indices: list[int]) -> types.SimpleNamespace:
            calls.append(len(indices))
            return types.SimpleNamespace(asnumpy=lambda: np.zeros((len(indices), 48, 64, 3), np.uint8))

    monkeypatch.setitem(sys.modules, "decord", types.SimpleNamespace(VideoReader=FakeReader))
    out = tmp_path / "bench.json"
    data = [
        "--data.class_path=alt_lightning.datamodules.VideoListDataModule",
        f"--data.init_args.root={synthetic_root}",
    ]
    data += ["--data.init_args.classes=classes.txt", "--data.init_args.num_frames=4", "--data.init_args.batch_size=3"]
    data += ["--data.init_args.image_size=32", "--data.init_args.test_clips=2"]
    args = [
        "loader-bench",
        *data,
        "--modes",
        "eval",
        "--workers",
        "0",
        "--batches=2",
        f"--json={out}",
        "--torchcodec=false",
    ]
    assert alt_main(args) == 0
    res = json.loads(out.read_text())
    assert res["source"].startswith("VideoListDataModule(") and res["batch_size"] == 3
    # Evaluation batches hold whole videos (batch 3 -> 2: one video of 2 views), as the DataModule makes them.
    assert [(r["reader"], r["clips"]) for r in res["results"]] == [("pyav", 4), ("decord", 4)]
    assert calls == [8] * 2  # the decord stand-in decoded both views of each video in one call, 4 frames each


class SleepyDataset(torch.utils.data.Dataset):
    """Items that each take a fixed time to load: a loader whose true throughput is known."""

    train = False

    def __init__(self, n: int, seconds: float) -> None:
        self.n, self.seconds = n, seconds

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        time.sleep(self.seconds)
        return {"label": i}


class ClockedLoader:
    """A DataLoader stand-in on a simulated clock: ``w`` workers, each batch takes ``s`` seconds in its worker.

    Worker ``i % w`` makes batch ``i`` right after its previous one (all start together after a start-up time), and
    batches are delivered in order, as torch's DataLoader does: with ``w`` workers the first ``w`` batches arrive
    together. Without workers the main process makes one batch after the other. Deterministic: no machine load.
    """

    seconds = 0.1
    startup = 0.7

    def __init__(self, dataset, batch_size: int, sampler: list[int], num_workers: int, **_: object) -> None:
        self.batch_size, self.indices, self.workers = batch_size, list(sampler), num_workers
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def __iter__(self):
        w, arrival = max(1, self.workers), 0.0
        for i in range(0, len(self.indices), self.batch_size):
            finished = self.startup + (i // self.batch_size // w + 1) * self.seconds
            arrival = max(arrival, finished)  # in order: a batch waits for the ones before it
            self.now = arrival
            yield {"label": self.indices[i : i + self.batch_size]}


@pytest.mark.parametrize("workers", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("batches", [8, 9, 32])
def test_time_loader_excludes_every_workers_first_batch(monkeypatch, workers: int, batches: int) -> None:
    """Steady rate = exactly w batches per batch time, whatever the worker count (the old timing read up to 1.75x)."""
    loaders: list[ClockedLoader] = []

    def make(*args, **kwargs) -> ClockedLoader:
        loaders.append(ClockedLoader(*args, **kwargs))
        return loaders[-1]

    monkeypatch.setattr(loader_bench, "DataLoader", make)
    monkeypatch.setattr(loader_bench, "time", types.SimpleNamespace(perf_counter=lambda: loaders[-1].now))
    r = time_loader(SleepyDataset(64, 0.0), workers=workers, batch_size=2, batches=batches)
    w = max(1, workers)
    assert r["clips"] == 2 * batches
    assert r["first_batch_s"] == pytest.approx(0.8)  # start-up + one batch
    # After the first round (w batches at 0.8 s), the rest arrive a round (0.1 s) at a time, w per round; a last
    # round that is not full still takes its 0.1 s. With whole rounds that is w batches (2 w clips) per 0.1 s.
    rounds_after = math.ceil(batches / w) - 1
    assert r["clips_per_s"] == pytest.approx(2 * (batches - w) / (0.1 * rounds_after))
    if batches % w == 0:
        assert r["clips_per_s"] == pytest.approx(20 * w)
    assert r["warmup_batches"] == w


def test_time_loader_with_real_workers_reads_the_true_rate() -> None:
    """The same with torch's DataLoader and items that sleep 0.1 s (2 per batch): 2 workers make 20 clips/s.

    A loaded machine delays both workers and the main loop, so the bounds are wide; the simulated test above is the
    exact one. The old timing read about 1.3x here.
    """
    r = time_loader(SleepyDataset(64, 0.1), workers=2, batch_size=2, batches=8)
    assert r["clips"] == 16
    assert 20 * 0.6 <= r["clips_per_s"] <= 20 * 1.25, r
    assert r["warmup_batches"] == 2


def test_time_loader_says_when_no_batch_is_left_after_the_warm_up() -> None:
    r = time_loader(SleepyDataset(8, 0.0), workers=2, batch_size=2, batches=2)
    assert r["clips"] == 4 and math.isnan(r["clips_per_s"])


def test_loader_bench_times_raw_and_prepared_copies_in_one_run(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["loader-bench", "--synthetic=2", "--synthetic_style=camera", "--synthetic_size=128x96"]
    args += ["--synthetic_frames=30", "--synthetic_gop=30", "--prepare=true", "--prepare_short_side=48"]
    args += [
        "--batches=3",
        "--batch_size=1",
        "--image_size=32",
        "--workers",
        "0",
        "--modes",
        "eval",
        "--decord=false",
        "--torchcodec=false",
    ]
    assert alt_main([*args, f"--json={out}"]) == 0
    res = json.loads(out.read_text())
    assert res["source"] == "synthetic 2 x 128x96 30 frames camera-style h264, keyframe every 30"
    assert [(r["files"], r["clips"]) for r in res["results"]] == [("raw", 3), ("prepared", 3)]
    raw, prepared = (r["clips_per_s"] for r in res["results"])
    assert res["prepared_over_raw"] == {"pyav eval 0 workers": pytest.approx(prepared / raw)}
    assert "short side 48" in res["notes"][0] and "Mbit/s" in res["notes"][0]


def test_camera_videos_have_the_asked_size_gop_and_a_camera_bitrate(tmp_path: Path) -> None:
    import av

    from alt_lightning.commands.loader_bench import write_camera_videos

    records = write_camera_videos(tmp_path, 2, 40, (320, 180), gop=16)
    assert [(Path(r.path).name, r.label) for r in records] == [("camera_000.mp4", 0), ("camera_001.mp4", 1)]
    with av.open(records[0].path) as c:
        s = c.streams.video[0]
        assert (s.codec_context.width, s.codec_context.height) == (320, 180)
        keys = [i for i, p in enumerate(p for p in c.demux(s) if p.size) if p.is_keyframe]
    assert keys[:3] == [0, 16, 32]
    bits_per_pixel = Path(records[0].path).stat().st_size * 8 / (40 * 320 * 180)
    assert bits_per_pixel < 0.2  # real footage: ~0.1 (5.7 Mbit/s at 1080p30); noise at crf 18 is ~0.5
