"""Numbers and reports of the evaluation protocols: aggregation (pure functions), rich tables, the results JSON.

Every number is a percentage (0-100). A protocol is a set of *units* (one zero-shot split, one few-shot ``K x seed``
run, one base-to-novel seed); units belong to a *group* (the target dataset, the shot count) and the summary of a
group is the mean ± standard deviation of its units.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from alt_lightning.lightning.module import VIDEO_COUNTS

#: Metrics of a plain evaluation (``ALTModule`` logs them as ``test/<name>``): top-1 and top-5 are the share of
#: videos right, mean-class the mean recall of the classes present (see ``ALTModule.configure_metrics``).
EVAL_METRICS = ("top1", "top5", "mean_class")
#: Metrics of a base-to-novel unit.
B2N_METRICS = ("base_top1", "novel_top1", "hm", "base_top5", "novel_top5", "base_mean_class", "novel_mean_class")
#: Column titles.
METRIC_TITLES = {
    "top1": "top-1",
    "top5": "top-5",
    "mean_class": "mean-class",
    "base_top1": "base top-1",
    "novel_top1": "novel top-1",
    "hm": "HM",
    "base_top5": "base top-5",
    "novel_top5": "novel top-5",
    "base_mean_class": "base mean-class",
    "novel_mean_class": "novel mean-class",
}
#: Distributions whose versions go into every results file.
VERSIONED_PACKAGES = ("alt-lightning", "torch", "lightning", "open_clip_torch", "torchmetrics", "av", "numpy")
#: Version of the results-file layout. 2: top-1/top-5 over videos (1 held class averages) and the video counts
#: ``videos_<listed|evaluated|failed|missing|not_run>`` (1: ``videos``, ``failed_videos``).
RESULTS_FORMAT = 2


# ----------------------------------------------------------------------------------------------- pure aggregation
def mean_std(values: Sequence[float], ddof: int = 0) -> tuple[float, float]:
    """Mean and standard deviation of ``values``.

    Args:
        values: Numbers (at least one).
        ddof: Delta degrees of freedom of the standard deviation. Our choice (the papers do not say): 0, the
            population standard deviation that ``numpy.std`` (used by the peers' scripts) computes; 1 gives the
            sample standard deviation.

    Returns:
        ``(mean, std)``; the std of a single value is 0.

    Raises:
        ValueError: If ``values`` is empty.
    """
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("mean_std needs at least one value.")
    mean = sum(vals) / len(vals)
    if len(vals) - ddof <= 0:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in vals) / (len(vals) - ddof)
    return mean, math.sqrt(var)


def harmonic_mean(base: float, novel: float) -> float:
    """Harmonic mean of base and novel accuracy, ``2 b n / (b + n)`` (0 when both are 0)."""
    return 0.0 if base + novel == 0 else 2.0 * base * novel / (base + novel)


def base_to_novel_metrics(base: Mapping[str, float], novel: Mapping[str, float]) -> dict[str, float]:
    """One base-to-novel unit's metrics from its base and novel evaluations (:func:`eval_metrics` of each).

    Returns:
        ``base_<metric>`` and ``novel_<metric>`` for the metrics and video counts, and ``hm``, the harmonic mean of
        base and novel top-1.
    """
    keys = (*EVAL_METRICS, *(f"videos_{c}" for c in VIDEO_COUNTS))
    out = {f"base_{k}": float(base[k]) for k in keys if k in base}
    out.update({f"novel_{k}": float(novel[k]) for k in keys if k in novel})
    out["hm"] = harmonic_mean(out["base_top1"], out["novel_top1"])
    return out


def summarize(
    units: Mapping[str, Mapping[str, Any]], metrics: Sequence[str] = EVAL_METRICS, ddof: int = 0
) -> dict[str, dict[str, Any]]:
    """Mean ± std of every metric over the finished units of each group.

    Args:
        units: ``unit id -> {"group": str, "status": "done", "metrics": {name: value}, ...}``; units not done are
            ignored.
        metrics: Metric names to summarize (missing ones are skipped).
        ddof: See :func:`mean_std`.

    Returns:
        ``group -> {"n": units, "units": [ids], metric: {"mean", "std", "values"}}`` in first-seen group order.
        Groups with base and novel accuracy also get ``hm_of_means``, the harmonic mean of the mean base and mean
        novel top-1 (how ViFi-CLIP's tables report HM).
    """
    groups: dict[str, list[tuple[str, Mapping[str, float]]]] = {}
    for uid, unit in units.items():
        if unit.get("status") != "done":
            continue
        groups.setdefault(str(unit.get("group", "")), []).append((uid, unit["metrics"]))
    out: dict[str, dict[str, Any]] = {}
    for group, members in groups.items():
        entry: dict[str, Any] = {"n": len(members), "units": [uid for uid, _ in members]}
        for m in metrics:
            values = [float(vals[m]) for _, vals in members if m in vals]
            if values:
                mean, std = mean_std(values, ddof)
                entry[m] = {"mean": mean, "std": std, "values": values}
        if "base_top1" in entry and "novel_top1" in entry:
            entry["hm_of_means"] = harmonic_mean(entry["base_top1"]["mean"], entry["novel_top1"]["mean"])
        out[group] = entry
    return out


def eval_metrics(values: Mapping[str, Any], stage: str = "test") -> dict[str, float]:
    """``top1``, ``top5``, ``mean_class`` in percent and the ``videos_<count>`` counts from logged ``<stage>/...``."""
    out: dict[str, float] = {}
    for key in EVAL_METRICS:
        if (v := values.get(f"{stage}/{key}")) is not None:
            out[key] = 100.0 * float(v)
    for key in (f"videos_{c}" for c in VIDEO_COUNTS):
        if (v := values.get(f"{stage}/{key}")) is not None:
            out[key] = float(v)
    return out


def videos_cell(values: Mapping[str, Any], prefix: str = "") -> str:
    """``"12"`` videos evaluated, or ``"10 of 12"`` when fewer than listed were scored (failed, missing, not run)."""
    evaluated, listed = values.get(f"{prefix}videos_evaluated"), values.get(f"{prefix}videos_listed")
    if evaluated is None:
        return ""
    if listed is None or int(listed) == int(evaluated):
        return str(int(evaluated))
    return f"{int(evaluated)} of {int(listed)}"


# ----------------------------------------------------------------------------------------------- versions, files
def package_versions(packages: Iterable[str] = VERSIONED_PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that decide the numbers, plus Python's."""
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write JSON through a temporary file and a rename, so an interrupted run never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def now() -> str:
    """Local time as ISO 8601 (seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S")


# ----------------------------------------------------------------------------------------------- tables
def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _fmt_ms(entry: Mapping[str, Any] | None) -> str:
    if not entry:
        return "–"
    return f"{entry['mean']:.2f} ± {entry['std']:.2f}"


def results_table(results: Mapping[str, Any], title: str | None = None) -> Table:
    """A rich table of a results file: one row per unit, then ``mean ± std`` per group.

    Args:
        results: The results dict (``units``, ``summary``, ``metrics``, ``protocol``).
        title: Table title (default: the protocol and its target).
    """
    metrics = list(results.get("metrics") or EVAL_METRICS)
    units: Mapping[str, Mapping[str, Any]] = results.get("units", {})
    summary: Mapping[str, Mapping[str, Any]] = results.get("summary", {})
    groups: dict[str, list[str]] = {}
    for uid, unit in units.items():
        groups.setdefault(str(unit.get("group", "")), []).append(uid)
    show_group = len(groups) > 1  # one group: the title already names it
    table = Table(title=title or f"{results.get('protocol', '')} {results.get('name', '')}".strip())
    if show_group:
        table.add_column("group")
    table.add_column("unit")
    for m in metrics:
        table.add_column(METRIC_TITLES.get(m, m), justify="right")
    table.add_column("videos", justify="right")
    for gi, (group, ids) in enumerate(groups.items()):
        if gi:
            table.add_section()
        lead = [group] if show_group else []
        for uid in ids:
            unit = units[uid]
            vals = unit.get("metrics", {})
            status = unit.get("status")
            cells = [_fmt(vals.get(m)) if status == "done" else str(status) for m in metrics]
            if "novel_videos_evaluated" in vals:
                count = f"{videos_cell(vals, 'base_')} + {videos_cell(vals, 'novel_')}"
            else:
                count = videos_cell(vals)
            table.add_row(*lead, str(unit.get("label", uid)), *cells, count)
        s = summary.get(group)
        if s and s.get("n", 0):
            cells = [_fmt_ms(s.get(m)) for m in metrics]
            if "hm" in metrics and "hm_of_means" in s:
                cells[metrics.index("hm")] += f" (of means {s['hm_of_means']:.2f})"
            table.add_row(*lead, f"mean ± std (n={s['n']})", *cells, "", style="bold")
    return table


def print_results(results: Mapping[str, Any], console: Console | None = None) -> None:
    """Print the results table (and where the JSON is)."""
    console = console or Console()
    if results.get("format", 1) < 2:
        console.print(
            f"note: results format {results.get('format', 1)} (alt-lightning before issue 11): its top-1 and top-5 are "
            "class averages, not the share of videos right; rerun the protocol for publishable numbers."
        )
    console.print(results_table(results))
    if results.get("path"):
        console.print(f"results: {results['path']}")
