"""scripts/gpu_check.sh runs end to end on a CPU (--dry-run: tiny model), so its first run on a lent GPU is not its
first run at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_writes_the_figures_file(tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path), "PY": sys.executable}
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_check.sh"), "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) <= 8  # the device returns at most 8 files from $OUT
    (figures,) = [p for p in tmp_path.glob("dryrun_*_issue14.json")]
    data = json.loads(figures.read_text())
    assert data["dry_run"] is True and data["torch"] and data["date"]
    assert [(v["attention"], v["compile"]) for v in data["variants"]] == [
        ("mask", "none"),
        ("folded", "none"),
        ("mask", "cuda-graphs"),
    ]
    for v in data["variants"]:
        assert {"ratio_infer_vs_bare", "ratio_train_vs_finetune", "ratio_train_memory_vs_finetune"} <= set(v)
    assert {(row["attention"], row["r"]) for row in data["encoder_ops"]} == {
        (a, r) for a in ("mask", "folded") for r in (8, 0)
    }
    assert "skipped" in data["gpu_tests"]
