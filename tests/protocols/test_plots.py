"""`alt protocol`'s pictures: every protocol through the runner (fake runs), the PNG beside results.json, and the
plotted numbers against numpy on the fake runs' own values."""

from __future__ import annotations

import io
import struct
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from rich.console import Console

from alt_lightning.protocols.plots import (
    DPI,
    FIGSIZE,
    PLOT_FILES,
    VIZ_HINT,
    base_to_novel_figure,
    few_shot_figure,
    protocol_figure,
    zero_shot_figure,
)
from alt_lightning.protocols.runner import (
    ProtocolRunner,
    ProtocolSpec,
    plan_base_to_novel,
    plan_few_shot,
    plan_zero_shot,
)

pytest.importorskip("matplotlib")
from matplotlib.container import BarContainer, ErrorbarContainer

#: Top-1 (0-1) of each fake run, by what its arguments select.
ZS_TOP1 = {"1": 0.5, "2": 0.625, "3": 0.25}
FS_TOP1 = {(2, 0): 0.25, (2, 1): 0.5, (2, 2): 0.375, (4, 0): 0.5, (4, 1): 0.625, (4, 2): 0.75, (8, 0): 1.0}
B2N_TOP1 = {(0, "base"): 0.75, (0, "novel"): 0.25, (1, "base"): 1.0, (1, "novel"): 0.5}


def _arg(argv: list[str], key: str) -> str | None:
    return next((a.split("=", 1)[1] for a in argv if a.startswith(f"{key}=")), None)


def _fake(make):
    """A run_fn: the fake CLI of `fake_cli` with the top-1 its arguments select, and the trainer calls the runner
    makes after a fit (test, save_checkpoint) as no-ops."""

    def run(argv: list[str]) -> SimpleNamespace:
        if (split := _arg(argv, "--data.init_args.split")) is not None:
            top1 = ZS_TOP1[split]
        elif (subset := _arg(argv, "--data.init_args.class_subset.subset")) == "novel":
            top1 = B2N_TOP1[(int(run.seed), "novel")]
        else:
            shots, seed = int(_arg(argv, "--data.init_args.few_shot.shots")), int(_arg(argv, "--seed_everything"))
            run.seed = seed
            top1 = B2N_TOP1[(seed, "base")] if subset == "base" else FS_TOP1[(shots, seed)]
        cli = make(top1)
        cli.trainer.test = lambda *a, **k: None
        cli.trainer.save_checkpoint = lambda path: Path(path).write_bytes(b"")
        cli.model = None
        return cli

    run.seed = None
    return run


def _run(protocol: str, tmp_path: Path, config: Path, make, console: Console | None = None) -> dict:
    spec = ProtocolSpec(protocol=protocol, configs=[str(config)], out=tmp_path / protocol, name="ucf_tiny")
    if protocol == "zero-shot":
        units = plan_zero_shot(spec)
    elif protocol == "few-shot":
        units = [u for u in plan_few_shot(spec, [2, 4, 8], [0, 1, 2]) if (int(u.group[2:]), u.seed) in FS_TOP1]
    else:
        units = plan_base_to_novel(spec, [0, 1], shots=2, subset_key="--data.init_args.class_subset.subset")
    console = console or Console(file=io.StringIO(), width=200)
    return ProtocolRunner(spec, units, run_fn=_fake(make), console=console).run()


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG signature and IHDR chunk (read by hand, not by the library that wrote it)."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def _bars(fig) -> list[BarContainer]:
    (ax,) = fig.axes
    return [c for c in ax.containers if isinstance(c, BarContainer)]


def _lines(fig) -> list[ErrorbarContainer]:
    (ax,) = fig.axes
    return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


def _yerr(container: ErrorbarContainer) -> list[float]:
    """Half the length of each vertical error bar."""
    (segments,) = container.lines[2]
    return [abs(seg[1][1] - seg[0][1]) / 2 for seg in segments.get_segments()]


@pytest.mark.parametrize("protocol", ["zero-shot", "few-shot", "base-to-novel"])
def test_protocol_writes_a_png_beside_its_json(protocol, tmp_path: Path, ucf_config: Path, fake_cli) -> None:
    console = Console(file=io.StringIO(), width=200)
    results = _run(protocol, tmp_path, ucf_config, fake_cli, console)
    out = tmp_path / protocol
    png = out / PLOT_FILES[protocol]
    assert (out / "results.json").is_file() and png.is_file()
    assert _png_size(png) == (FIGSIZE[0] * DPI, FIGSIZE[1] * DPI) == (960, 600)
    from PIL import Image

    with Image.open(png) as img:
        img.load()
        assert img.format == "PNG" and img.size == (960, 600)
        colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
    assert len(colours) > 50  # drawn, not a blank canvas
    assert f"plot: {png}" in console.file.getvalue()
    series = {"zero-shot": (_bars, 4), "few-shot": (_lines, 1), "base-to-novel": (_bars, 3)}[protocol]
    assert len(series[0](protocol_figure(results))) == series[1]


def test_few_shot_one_line_per_dataset_mean_and_std_over_seeds(tmp_path: Path, ucf_config: Path, fake_cli) -> None:
    ucf = _run("few-shot", tmp_path, ucf_config, fake_cli)
    other = {**ucf, "name": "other"}
    fig = few_shot_figure([ucf, other])
    lines = _lines(fig)
    assert len(lines) == 2  # one line per dataset
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ucf_tiny (1/3 seeds)", "other (1/3 seeds)"]
    line, _, _ = lines[0]
    assert list(line.get_xdata()) == [2, 4, 8]
    for k, y, err in zip([2, 4, 8], line.get_ydata(), _yerr(lines[0]), strict=True):
        runs = 100 * np.array([v for (shots, _), v in FS_TOP1.items() if shots == k])
        assert y == pytest.approx(runs.mean()) and err == pytest.approx(runs.std())  # population std, as the table
    assert err == 0.0  # K=8 has one seed
    from matplotlib.collections import PathCollection

    dots = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert sum(len(c.get_offsets()) for c in dots) == 2 * len(FS_TOP1)  # every seed's value drawn as a dot


def test_zero_shot_one_bar_per_split_and_the_mean(tmp_path: Path, ucf_config: Path, fake_cli) -> None:
    fig = zero_shot_figure(_run("zero-shot", tmp_path, ucf_config, fake_cli))
    bars = _bars(fig)
    assert [b.get_label() for b in bars] == ["split 1", "split 2", "split 3", "mean ± std"]
    heights = [[p.get_height() for p in b.patches] for b in bars]
    assert heights[:3] == [[50.0], [62.5], [25.0]]
    values = 100 * np.array(list(ZS_TOP1.values()))
    assert heights[3] == [pytest.approx(values.mean())]
    assert _yerr(bars[3].errorbar) == [pytest.approx(values.std())]


def test_base_to_novel_bars_with_harmonic_mean(tmp_path: Path, ucf_config: Path, fake_cli) -> None:
    results = _run("base-to-novel", tmp_path, ucf_config, fake_cli)
    fig = base_to_novel_figure(results)
    bars = _bars(fig)
    assert [b.get_label() for b in bars] == ["base top-1", "novel top-1", "HM"]
    base = 100 * np.array([B2N_TOP1[(s, "base")] for s in (0, 1)])
    novel = 100 * np.array([B2N_TOP1[(s, "novel")] for s in (0, 1)])
    hm = 2 * base * novel / (base + novel)  # per seed: 37.5 and 66.67
    for container, values in zip(bars, (base, novel, hm), strict=True):
        (patch,) = container.patches
        assert patch.get_height() == pytest.approx(values.mean())
        assert _yerr(container.errorbar) == [pytest.approx(values.std())]
    hm_of_means = 2 * base.mean() * novel.mean() / (base.mean() + novel.mean())
    (ax,) = fig.axes
    assert f"HM of the means {hm_of_means:.1f}" in ax.get_xticklabels()[0].get_text()


def test_a_figure_refuses_another_protocols_results(tmp_path: Path, ucf_config: Path, fake_cli) -> None:
    results = _run("zero-shot", tmp_path, ucf_config, fake_cli)
    with pytest.raises(ValueError, match="needs few-shot results"):
        few_shot_figure(results)


def test_without_matplotlib_the_protocol_says_once_how_to_get_plots(
    tmp_path: Path, ucf_config: Path, fake_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    console = Console(file=io.StringIO(), width=200)
    results = _run("zero-shot", tmp_path, ucf_config, fake_cli, console)
    assert len(results["units"]) == 3  # the protocol itself ran
    text = console.file.getvalue()
    assert text.count("plots skipped") == 1 and VIZ_HINT in text
    assert not (tmp_path / "zero-shot" / PLOT_FILES["zero-shot"]).exists()
