"""Protocol aggregation against hand-computed numbers, and the table built from a results dict."""

from __future__ import annotations

import math

import pytest
from rich.console import Console

from alt_lightning.protocols.report import (
    B2N_METRICS,
    base_to_novel_metrics,
    eval_metrics,
    harmonic_mean,
    mean_std,
    results_table,
    summarize,
    write_json_atomic,
)


def test_mean_std_by_hand() -> None:
    assert mean_std([60.0, 70.0, 80.0]) == pytest.approx((70.0, math.sqrt(200 / 3)))  # population std 8.165
    assert mean_std([60.0, 70.0, 80.0], ddof=1) == pytest.approx((70.0, 10.0))
    assert mean_std([42.5]) == (42.5, 0.0)
    assert mean_std([42.5], ddof=1) == (42.5, 0.0)
    with pytest.raises(ValueError, match="at least one"):
        mean_std([])


def test_harmonic_mean_by_hand() -> None:
    assert harmonic_mean(80.0, 60.0) == pytest.approx(2 * 80 * 60 / 140)  # 68.571
    assert harmonic_mean(50.0, 50.0) == 50.0
    assert harmonic_mean(0.0, 0.0) == 0.0
    assert harmonic_mean(100.0, 0.0) == 0.0


def _unit(group: str, status: str = "done", **metrics: float) -> dict:
    return {"group": group, "status": status, "metrics": metrics}


def test_summarize_zero_shot_splits_and_few_shot_groups() -> None:
    units = {
        "hmdb/split1": _unit("hmdb", top1=50.0, top5=80.0, mean_class=49.0),
        "hmdb/split2": _unit("hmdb", top1=53.0, top5=83.0, mean_class=52.0),
        "hmdb/split3": _unit("hmdb", top1=56.0, top5=86.0, mean_class=55.0),
        "K2/seed0": _unit("K=2", top1=10.0, top5=30.0, mean_class=10.0),
        "K2/seed1": _unit("K=2", top1=20.0, top5=40.0, mean_class=22.0),
        "K4/seed0": _unit("K=4", status="running"),  # not done: ignored
    }
    s = summarize(units)
    assert list(s) == ["hmdb", "K=2"]
    assert s["hmdb"]["n"] == 3 and s["hmdb"]["units"] == ["hmdb/split1", "hmdb/split2", "hmdb/split3"]
    assert s["hmdb"]["top1"]["mean"] == pytest.approx(53.0)
    assert s["hmdb"]["top1"]["std"] == pytest.approx(math.sqrt(6.0))  # deviations -3, 0, 3
    assert s["hmdb"]["top5"]["mean"] == pytest.approx(83.0)
    assert s["K=2"]["top1"] == {"mean": 15.0, "std": 5.0, "values": [10.0, 20.0]}
    assert s["K=2"]["mean_class"]["mean"] == pytest.approx(16.0)


def test_base_to_novel_per_seed_and_harmonic_mean_of_means() -> None:
    seeds = {
        f"seed{i}": {
            "group": "b2n",
            "status": "done",
            "metrics": base_to_novel_metrics({"top1": b, "top5": 90.0}, {"top1": n, "top5": 70.0}),
        }
        for i, (b, n) in enumerate([(80.0, 60.0), (90.0, 40.0), (70.0, 50.0)])
    }
    assert seeds["seed0"]["metrics"]["hm"] == pytest.approx(480 / 7)
    s = summarize(seeds, B2N_METRICS)["b2n"]
    assert s["base_top1"]["mean"] == pytest.approx(80.0) and s["novel_top1"]["mean"] == pytest.approx(50.0)
    hms = [2 * 80 * 60 / 140, 2 * 90 * 40 / 130, 2 * 70 * 50 / 120]
    assert s["hm"]["mean"] == pytest.approx(sum(hms) / 3)
    assert s["hm_of_means"] == pytest.approx(2 * 80 * 50 / 130)  # 61.54: HM of the mean base and novel


def test_eval_metrics_are_percent_and_counts_stay() -> None:
    logged = {"test/top1": 0.5, "test/top5": 0.875, "test/mean_class": 0.25, "val/top1": 0.1}
    logged.update({"test/videos_listed": 14.0, "test/videos_evaluated": 12.0, "test/videos_failed": 1.0})
    assert eval_metrics(logged) == {
        "top1": 50.0,
        "top5": 87.5,
        "mean_class": 25.0,
        "videos_listed": 14.0,
        "videos_evaluated": 12.0,
        "videos_failed": 1.0,
    }


def test_table_shows_rows_and_mean_std(tmp_path) -> None:
    results = {
        "protocol": "few-shot",
        "name": "demo",
        "metrics": ["top1", "top5", "mean_class"],
        "units": {
            "K2/seed0": _unit("K=2", top1=10.0, top5=30.0, mean_class=10.0, videos_evaluated=12, videos_listed=12),
            "K2/seed1": _unit("K=2", top1=20.0, top5=40.0, mean_class=22.0, videos_evaluated=10, videos_listed=12),
            "K4/seed0": _unit("K=4", status="failed"),
        },
    }
    results["summary"] = summarize(results["units"])
    console = Console(record=True, width=150)
    console.print(results_table(results))
    text = console.export_text()
    assert "15.00 ± 5.00" in text and "35.00 ± 5.00" in text and "16.00 ± 6.00" in text
    assert "failed" in text and "K=4" in text
    assert "10 of 12" in text  # fewer videos scored than listed shows in the table
    path = write_json_atomic(tmp_path / "r.json", results)
    assert path.read_text().startswith("{") and not list(tmp_path.glob(".*tmp"))
