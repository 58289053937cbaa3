"""Evaluation is exact under DDP: 2 CPU processes score every (video, view) once and match 1 process.

DDP never runs inside pytest: a script is written to ``tmp_path`` and run with ``sys.executable``; each rank dumps
the (video, view) pairs it scored and the gathered evaluation to JSON.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = r'''
import json, sys
from pathlib import Path

import lightning.pytorch as pl

from alt_lightning.datamodules import VideoListDataModule
from alt_lightning.lightning import ALTModule


class Recording(ALTModule):
    """Records which (video, view) pairs this rank scored."""

    def on_test_epoch_start(self):
        super().on_test_epoch_start()
        self.pairs = []

    def test_step(self, batch, batch_idx):
        self.pairs += list(zip(batch["index"].tolist(), batch["view"].tolist()))
        return super().test_step(batch, batch_idx)


def run(devices, root, test_list, out, kwargs):
    pl.seed_everything(0)
    dm = VideoListDataModule(
        root=root, classes="classes.txt", test_list=test_list, num_frames=4, batch_size=4, num_workers=0,
        test_clips=3, pin_memory=False, bad_file_log=str(out / "bad_videos.csv"),
    )
    model = Recording(class_names=dm.class_names, **json.loads(kwargs))
    trainer = pl.Trainer(
        accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto", logger=False,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False, default_root_dir=str(out),
    )
    trainer.test(model, dm)
    ev = model.last_eval
    result = {
        "rank": trainer.global_rank,
        "world": trainer.world_size,
        "pairs": model.pairs,
        "index": ev["index"].tolist(),
        "label": ev["label"].tolist(),
        "probs": ev["probs"].tolist(),
        "num_videos": ev["num_videos"],
        "num_failed": ev["num_failed"],
        "views": ev["views"],
        "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
    }
    (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(result))
    return result


if __name__ == "__main__":
    run(int(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4]), sys.argv[5])
'''


def _in_process(script: Path, root: Path, test_list: Path, out: Path, kwargs: dict) -> dict:
    """The 1-process reference, run inside pytest (no DDP there)."""
    spec = importlib.util.spec_from_file_location("ddp_eval_script", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out.mkdir()
    return module.run(1, str(root), str(test_list), out, json.dumps(kwargs))


def _run(script: Path, devices: int, root: Path, test_list: Path, out: Path, kwargs: dict) -> list[dict]:
    out.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1"}
    env.pop("LOCAL_RANK", None)
    args = [sys.executable, str(script), str(devices), str(root), str(test_list), str(out), json.dumps(kwargs)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, cwd=out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(devices)]


@pytest.mark.timeout(400)
def test_two_process_evaluation_scores_every_view_once_and_matches_one_process(
    synthetic_root: Path, module_kwargs: dict, tmp_path: Path
) -> None:
    lines = (synthetic_root / "test.txt").read_text().splitlines()[:10]
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(5000))
    lines.insert(4, f"{garbage} 1")  # 11 videos (odd: uneven shards), one of them undecodable
    test_list = tmp_path / "test11.txt"
    test_list.write_text("\n".join(lines) + "\n")
    script = tmp_path / "ddp_eval.py"
    script.write_text(SCRIPT)
    t0 = time.monotonic()
    one = _in_process(script, synthetic_root, test_list, tmp_path / "one", module_kwargs)
    two = _run(script, 2, synthetic_root, test_list, tmp_path / "two", module_kwargs)
    elapsed = time.monotonic() - t0

    expected = sorted((v, c) for v in range(11) for c in range(3))
    assert sorted(map(tuple, one["pairs"])) == expected
    scored = [tuple(p) for r in two for p in r["pairs"]]
    assert sorted(scored) == expected  # every (video, view) once across the 2 ranks: no padding, no drop
    # 33 views split by video (6 + 5 videos): each rank decodes its videos' 3 views in one pass.
    assert [sorted({v for v, _ in r["pairs"]}) for r in sorted(two, key=lambda r: r["rank"])] == [
        [0, 2, 4, 6, 8, 10],
        [1, 3, 5, 7, 9],
    ]
    for r in two:
        assert r["world"] == 2
        assert (r["num_videos"], r["num_failed"], r["views"]) == (11, 1, 3)
        assert r["index"] == one["index"] and 4 not in r["index"]  # the failed video is counted, not scored
        assert r["label"] == one["label"]
        for p, q in zip(r["probs"], one["probs"], strict=True):
            assert max(abs(a - b) for a, b in zip(p, q, strict=True)) < 1e-5
        for key in ("test/top1", "test/top5", "test/mean_class", "test/videos_evaluated", "test/videos_failed"):
            assert r["metrics"][key] == pytest.approx(one["metrics"][key], abs=1e-6), key
    assert one["metrics"]["test/videos_listed"] == 11 and one["metrics"]["test/videos_failed"] == 1
    print(f"1-process + 2-process evaluation took {elapsed:.1f} s")
