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
from alt_lightning.commands.loader_bench import time_loader
from alt_lightning.data.annotations import parse_path_label_list
from alt_lightning.data.dataset import SamplingConfig, VideoDataset
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
    args += ["--batch_size=2", "--image_size=32", "--workers", "0", "1", f"--json={out}", "--decord=false"]
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
    assert alt_main(["loader-bench", *data, "--modes", "eval", "--workers", "0", "--batches=2", f"--json={out}"]) == 0
    res = json.loads(out.read_text())
    assert res["source"].startswith("VideoListDataModule(") and res["batch_size"] == 3
    assert [(r["reader"], r["clips"]) for r in res["results"]] == [("pyav", 6), ("decord", 6)]
    assert calls == [4] * 6  # the decord stand-in decoded every clip, 4 frames each


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


@pytest.mark.parametrize(("workers", "batches"), [(0, 4), (2, 4), (2, 6), (3, 6)])
def test_time_loader_excludes_every_workers_first_batch(workers: int, batches: int) -> None:
    """With w workers the first w batches arrive together: the steady rate must not count them.

    Items sleep 0.1 s, batches hold 2 items: one worker makes 10 clips/s, w workers 10 w. Counting from the first
    batch only (the old timing), 2 workers over 4 batches read 15 clips/s per worker (+50 %).
    """
    r = time_loader(SleepyDataset(64, 0.1), workers=workers, batch_size=2, batches=batches)
    expected = 10.0 * max(1, workers)
    assert r["clips"] == 2 * batches and r["warmup_batches"] == max(1, workers)
    assert expected * 0.85 <= r["clips_per_s"] <= expected * 1.1, r


def test_time_loader_says_when_no_batch_is_left_after_the_warm_up() -> None:
    r = time_loader(SleepyDataset(8, 0.0), workers=2, batch_size=2, batches=2)
    assert r["clips"] == 4 and math.isnan(r["clips_per_s"])
