"""Independent reference: the logged top-1, top-5 and mean-class equal a plain numpy recomputation from
``predictions_test.csv``, under 1 and 2 (DDP, gloo on CPU) processes; and the video counts add up.

The reference shares no code with the package: it reads the CSV with :mod:`csv` and counts with numpy (no torchmetrics,
no ``alt_lightning``). The test set is unbalanced (3/1/2/3/1/2/2 videos over classes 1-7) and class 0 has no test
video, although the (untrained) model predicts it for most videos; one listed file is missing and one does not decode.

The definitions checked (the field's, e.g. X-CLIP, ViFi-CLIP, mmaction2):

* top-1 / top-5: the share of evaluated videos whose label is the first / among the first five predicted classes
  (multi-view scores are averaged per video first);
* mean-class: the mean, over the classes that have at least one evaluated video, of the share of that class's videos
  whose first predicted class is right (per-class recall); classes without evaluated videos are left out, whether
  predicted or not.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

#: Test videos per class (8 classes; class 0, which the untrained tiny model predicts most, has none).
PER_CLASS = (0, 3, 1, 2, 3, 1, 2, 2)

SCRIPT = r"""
import json, sys
from pathlib import Path

import lightning.pytorch as pl

from alt_lightning.datamodules import VideoListDataModule
from alt_lightning.lightning import ALTModule
from alt_lightning.lightning.callbacks import PredictionWriter


def run(devices, root, test_list, out, kwargs):
    pl.seed_everything(0)
    dm = VideoListDataModule(
        root=root, classes="classes.txt", test_list=test_list, num_frames=4, batch_size=3, num_workers=0,
        test_clips=2, pin_memory=False, bad_file_log=str(out / "bad_videos.csv"),
    )
    model = ALTModule(class_names=dm.class_names, **json.loads(kwargs))
    trainer = pl.Trainer(
        accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto", logger=False,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False, default_root_dir=str(out),
        callbacks=[PredictionWriter(top_k=5)],
    )
    trainer.test(model, dm)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    (out / f"metrics_rank{trainer.global_rank}.json").write_text(json.dumps(metrics))
    return metrics


if __name__ == "__main__":
    run(int(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4]), sys.argv[5])
"""


@pytest.fixture(scope="module")
def unbalanced_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, int]]:
    """8 synthetic classes, an unbalanced test list without class 0, one missing and one undecodable file.

    Returns:
        The dataset root, the test list and the expected counts (listed, evaluated, failed, missing).
    """
    from alt_lightning.data.synthetic import DEFAULT_CLASSES, write_synthetic_dataset

    root = tmp_path_factory.mktemp("reference_set")
    write_synthetic_dataset(root, classes=DEFAULT_CLASSES, videos_per_class={"test": 3}, num_frames=12, seed=3)
    by_class: dict[int, list[str]] = {}
    for line in (root / "test.txt").read_text().splitlines():
        path, label = line.rsplit(" ", 1)
        by_class.setdefault(int(label), []).append(path)
    lines = [f"{p} {c}" for c, n in enumerate(PER_CLASS) for p in by_class[c][:n]]
    garbage = root / "videos" / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    lines.insert(5, "videos/garbage.mp4 2")  # listed, present, undecodable
    lines.insert(9, "videos/not_there.mp4 1")  # listed, absent
    test_list = root / "unbalanced.txt"
    test_list.write_text("\n".join(lines) + "\n")
    counts = {"listed": len(lines), "evaluated": sum(PER_CLASS), "failed": 1, "missing": 1}
    return root, test_list, counts


def reference_metrics(predictions: Path) -> dict[str, float]:
    """top-1, top-5 and mean-class from a predictions CSV with csv and numpy only."""
    with predictions.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    labels = np.array([int(r["label_id"]) for r in rows])  # [M]
    ranked = np.array([[int(r[f"pred_id_{j}"]) for j in range(1, 6)] for r in rows])  # [M, 5] best first
    hit1 = ranked[:, 0] == labels
    hit5 = (ranked == labels[:, None]).any(axis=1)
    present = np.unique(labels)
    recall = [hit1[labels == c].mean() for c in present]
    return {"top1": float(hit1.mean()), "top5": float(hit5.mean()), "mean_class": float(np.mean(recall))}


def _check(out: Path, metrics: dict[str, float], counts: dict[str, int]) -> dict[str, float]:
    predictions = out / "predictions_test.csv"
    ref = reference_metrics(predictions)
    for key in ("top1", "top5", "mean_class"):
        assert metrics[f"test/{key}"] == pytest.approx(ref[key], abs=1e-6), key
    with predictions.open() as f:
        assert sum(1 for _ in f) == 1 + counts["evaluated"]  # one row per evaluated video
    for key, want in counts.items():
        assert metrics[f"test/videos_{key}"] == want, key
    listed = metrics["test/videos_listed"]
    assert listed == metrics["test/videos_evaluated"] + metrics["test/videos_failed"] + metrics["test/videos_missing"]
    return ref


@pytest.fixture
def untrained_kwargs(module_kwargs: dict) -> dict:
    """The untrained model this case was chosen for: its random weights were drawn after position tables of 64 rows
    (the size before ``num_frames`` set it), so the tables keep that size (``adapter.max_frames``)."""
    return {**module_kwargs, "adapter": {**module_kwargs["adapter"], "max_frames": 64}}


def test_metrics_equal_a_numpy_recomputation_from_the_predictions_file(
    unbalanced_set: tuple[Path, Path, dict[str, int]], untrained_kwargs: dict, tmp_path: Path
) -> None:
    module_kwargs = untrained_kwargs
    root, test_list, counts = unbalanced_set
    script = tmp_path / "reference_eval.py"
    script.write_text(SCRIPT)
    spec = importlib.util.spec_from_file_location("reference_eval", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "one"
    out.mkdir()
    metrics = module.run(1, str(root), str(test_list), out, json.dumps(module_kwargs))
    ref = _check(out, metrics, counts)
    # The case tells the definitions apart: a class average is not the share of videos right, and a class absent from
    # the test set is predicted (a class average over every predicted class would count it as a class with recall 0).
    assert abs(ref["top1"] - ref["mean_class"]) > 0.01, ref
    with (out / "predictions_test.csv").open() as f:
        assert any(r["pred_id_1"] == "0" for r in csv.DictReader(f))
    assert 0 < ref["top1"] < ref["top5"] < 1, ref


def test_metrics_equal_the_recomputation_under_two_ddp_processes(
    unbalanced_set: tuple[Path, Path, dict[str, int]], untrained_kwargs: dict, tmp_path: Path
) -> None:
    module_kwargs = untrained_kwargs
    root, test_list, counts = unbalanced_set
    script = tmp_path / "reference_eval.py"
    script.write_text(SCRIPT)
    out = tmp_path / "two"
    out.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1"}
    env.pop("LOCAL_RANK", None)
    args = [sys.executable, str(script), "2", str(root), str(test_list), str(out), json.dumps(module_kwargs)]
    t0 = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, cwd=out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for rank in (0, 1):  # every rank logs the same gathered numbers
        _check(out, json.loads((out / f"metrics_rank{rank}.json").read_text()), counts)
    print(f"2-process evaluation took {time.monotonic() - t0:.1f} s")
