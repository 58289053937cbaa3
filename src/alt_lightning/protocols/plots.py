"""Pictures of a protocol's results, written by ``alt protocol`` beside ``results.json``.

* **few-shot** (``few_shot.png``): top-1 against the shots per class ``K``, one line per dataset: the mean over seeds
  with error bars of one standard deviation, and every seed's value as a dot.
* **zero-shot** (``zero_shot.png``): top-1 of every split as a bar, and their mean with its standard deviation.
* **base-to-novel** (``base_to_novel.png``): base top-1, novel top-1 and their harmonic mean (HM), each the mean over
  seeds with error bars.

Every number drawn is read from the results' ``summary`` (:func:`alt_lightning.protocols.report.summarize`: the
means and population standard deviations the table prints), never recomputed here. The figures are plain
``matplotlib.figure.Figure`` objects (no pyplot, so no global state and no display needed); matplotlib is the optional
``[viz]`` extra, and without it :func:`write_plots` says once that the plots were skipped and how to get them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from alt_lightning.protocols.report import METRIC_TITLES

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: File name of each protocol's picture, in the protocol's output folder.
PLOT_FILES = {"few-shot": "few_shot.png", "zero-shot": "zero_shot.png", "base-to-novel": "base_to_novel.png"}
#: Size of every picture: inches and dots per inch (960 x 600 pixels).
FIGSIZE, DPI = (8.0, 5.0), 120
#: How to get the plots when matplotlib is missing.
VIZ_HINT = "pip install 'alt-lightning[viz]'"
#: Base-to-novel series: the summary's metric and its legend label.
B2N_SERIES = (("base_top1", "base top-1"), ("novel_top1", "novel top-1"), ("hm", "HM"))

_SHOTS = re.compile(r"K=(\d+)")


def _as_list(results: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One results dict or several, as a list (each a dataset: one line or one bar group)."""
    return [results] if isinstance(results, Mapping) else list(results)


def _figure(title: str) -> Figure:
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    fig.suptitle(title)
    return fig


def _done(results: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [u for u in results.get("units", {}).values() if u.get("status") == "done"]


def few_shot_figure(results: Mapping[str, Any] | Sequence[Mapping[str, Any]], metric: str = "top1") -> Figure:
    """Accuracy against ``K``: one line per results file (dataset), mean ± std over seeds, each seed a dot.

    Args:
        results: A few-shot ``results.json`` (as a dict), or several to compare datasets in one picture.
        metric: A summarized metric (``top1``, ``top5``, ``mean_class``).

    Returns:
        The figure; its axes hold one errorbar container per dataset.

    Raises:
        ValueError: A results file of another protocol, or a group that is not ``K=<shots>``.
    """
    everything = _as_list(results)
    fig = _figure(f"few-shot {METRIC_TITLES.get(metric, metric)}: mean ± std over seeds")
    ax = fig.add_subplot()
    shots_seen: set[int] = set()
    for res in everything:
        if res.get("protocol") != "few-shot":
            raise ValueError(f"few_shot_figure needs few-shot results, got {res.get('protocol')!r}.")
        points = []
        for group, entry in res.get("summary", {}).items():
            match = _SHOTS.fullmatch(group)
            if match is None:
                raise ValueError(f"few-shot group {group!r} does not name its shots (K=<shots>).")
            if metric in entry:
                points.append((int(match.group(1)), entry[metric], entry["n"]))
        points.sort(key=lambda p: p[0])
        if not points:
            continue
        shots = [k for k, _, _ in points]
        shots_seen.update(shots)
        seeds = sorted({n for _, _, n in points})
        label = f"{res.get('name', '')} ({'/'.join(map(str, seeds))} seeds)"
        bars = ax.errorbar(
            shots,
            [e["mean"] for _, e, _ in points],
            yerr=[e["std"] for _, e, _ in points],
            marker="o",
            capsize=4,
            label=label,
        )
        colour = bars.lines[0].get_color()
        for k, e, _ in points:
            ax.annotate(
                f"{e['mean']:.1f} ± {e['std']:.1f}", (k, e["mean"]), xytext=(6, -4), textcoords="offset points",
                fontsize=8, color=colour,
            )  # fmt: skip
        xs = [k for k, e, _ in points for _ in e["values"]]
        ax.scatter(xs, [v for _, e, _ in points for v in e["values"]], s=12, color=colour, alpha=0.45, zorder=3)
    if shots_seen:
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(shots_seen), [str(k) for k in sorted(shots_seen)])
        ax.minorticks_off()
        ax.margins(x=0.12)  # room for the labels beside the last point
    ax.set_xlabel("shots per class (K)")
    ax.set_ylabel(f"{METRIC_TITLES.get(metric, metric)} (%)")
    ax.grid(True, alpha=0.3)
    if ax.containers:
        ax.legend(loc="lower right")
    return fig


def zero_shot_figure(results: Mapping[str, Any] | Sequence[Mapping[str, Any]], metric: str = "top1") -> Figure:
    """One bar per split and one for their mean (± std), per results file (dataset).

    Args:
        results: A zero-shot ``results.json`` (as a dict), or several: bar groups side by side.
        metric: A summarized metric.

    Returns:
        The figure; its axes hold one bar container per split label (``split 1``, ...) and one for the mean.
    """
    everything = _as_list(results)
    for res in everything:
        if res.get("protocol") != "zero-shot":
            raise ValueError(f"zero_shot_figure needs zero-shot results, got {res.get('protocol')!r}.")
    title = METRIC_TITLES.get(metric, metric)
    fig = _figure(f"zero-shot {title} per split, and their mean ± std")
    ax = fig.add_subplot()
    labels: list[str] = []  # split labels in first-seen order across the datasets
    values: list[dict[str, float]] = []
    for res in everything:
        mine = {str(u.get("label")): float(u["metrics"][metric]) for u in _done(res) if metric in u["metrics"]}
        labels += [k for k in mine if k not in labels]
        values.append(mine)
    width = 0.8 / (len(labels) + 1)
    xs = range(len(everything))
    for i, label in enumerate(labels):
        pos = [x + (i - len(labels) / 2) * width for x, v in zip(xs, values, strict=True) if label in v]
        heights = [v[label] for v in values if label in v]
        bars = ax.bar(pos, heights, width, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    means = [_summary_entry(res, metric) for res in everything]
    pos = [x + len(labels) / 2 * width for x, m in zip(xs, means, strict=True) if m]
    bars = ax.bar(
        pos,
        [m["mean"] for m in means if m],
        width,
        yerr=[m["std"] for m in means if m],
        capsize=4,
        label="mean ± std",
        color="0.35",
    )
    ax.bar_label(bars, fmt="%.1f", fontsize=8, fontweight="bold")
    ax.set_xticks(list(xs), [_name_with_count(res) for res in everything])
    ax.set_ylabel(f"{title} (%)")
    ax.set_ylim(0, 105)
    ax.grid(True, axis="y", alpha=0.3)
    fig.legend(loc="outside lower center", ncols=len(labels) + 1, fontsize=8)
    return fig


def base_to_novel_figure(results: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Figure:
    """Base top-1, novel top-1 and HM bars (means over seeds ± std), one group per results file (dataset).

    Returns:
        The figure; its axes hold three bar containers (base, novel, HM).
    """
    everything = _as_list(results)
    for res in everything:
        if res.get("protocol") != "base-to-novel":
            raise ValueError(f"base_to_novel_figure needs base-to-novel results, got {res.get('protocol')!r}.")
    fig = _figure("base-to-novel: base and novel top-1 and their harmonic mean, mean ± std over seeds")
    ax = fig.add_subplot()
    width = 0.8 / len(B2N_SERIES)
    xs = range(len(everything))
    for i, (metric, label) in enumerate(B2N_SERIES):
        entries = [_summary_entry(res, metric) for res in everything]
        pos = [x + (i - 1) * width for x, e in zip(xs, entries, strict=True) if e]
        bars = ax.bar(
            pos,
            [e["mean"] for e in entries if e],
            width,
            yerr=[e["std"] for e in entries if e],
            capsize=4,
            label=label,
        )
        ax.bar_label(bars, fmt="%.1f", fontsize=8, padding=2)
    names = []
    for res in everything:
        s = res.get("summary", {}).get(str(res.get("name", "")), {})
        hm = f"\nHM of the means {s['hm_of_means']:.1f}" if "hm_of_means" in s else ""
        names.append(_name_with_count(res) + hm)
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("top-1 (%)")
    ax.set_ylim(0, 105)
    ax.grid(True, axis="y", alpha=0.3)
    fig.legend(loc="outside lower center", ncols=len(B2N_SERIES), fontsize=8)
    return fig


def _summary_entry(results: Mapping[str, Any], metric: str) -> Mapping[str, Any] | None:
    """``{"mean", "std", "values"}`` of ``metric`` over the units of the results' one group, if any is done."""
    summary = results.get("summary", {})
    entry = summary.get(str(results.get("name", ""))) or (next(iter(summary.values())) if summary else None)
    return entry.get(metric) if entry else None


def _name_with_count(results: Mapping[str, Any]) -> str:
    """The experiment name, and how many units are done when not all are."""
    done, total = len(_done(results)), len(results.get("units", {}))
    return str(results.get("name", "")) + ("" if done == total else f" ({done} of {total} done)")


def protocol_figure(results: Mapping[str, Any]) -> Figure:
    """The picture of one ``results.json`` of any protocol."""
    protocol = results.get("protocol")
    if protocol == "few-shot":
        return few_shot_figure(results)
    if protocol == "zero-shot":
        return zero_shot_figure(results)
    if protocol == "base-to-novel":
        return base_to_novel_figure(results)
    raise ValueError(f"no picture for protocol {protocol!r}; known: {', '.join(PLOT_FILES)}.")


def write_plots(results: Mapping[str, Any], out: str | Path, console: Console | None = None) -> list[Path]:
    """Write the protocol's picture into ``out`` (``PLOT_FILES``), or say once why not.

    Args:
        results: The results dict (its ``protocol`` picks the picture).
        out: Folder of the results (``<out>/few_shot.png``, ...).
        console: Where the skip note goes.

    Returns:
        The files written: one PNG, or none when matplotlib is missing or no unit is done.
    """
    console = console or Console()
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError:
        console.print(f"plots skipped: matplotlib is not installed ({VIZ_HINT} to get them)", markup=False)
        return []
    if not _done(results):
        return []
    path = Path(out) / PLOT_FILES[str(results.get("protocol"))]
    path.parent.mkdir(parents=True, exist_ok=True)
    protocol_figure(results).savefig(path, dpi=DPI)
    return [path]
