"""`alt check-data`: parallel decode check, report CSV, cleaned lists, config handling."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import yaml

from alt_lightning.cli import main as alt_main
from alt_lightning.commands import check_data
from alt_lightning.commands.check_data import REPORT_COLUMNS, check_video


def _truncated_mp4(path: Path) -> Path:
    """An mp4 whose index (moov first) promises 40 frames of which about half remain after the cut."""
    full = path.with_name("full_" + path.name)
    rng = np.random.default_rng(0)
    with av.open(str(full), "w", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=20, options={"g": "10"})
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(40):
            arr = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)  # noise: big packets, so the cut is mid-stream
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 20)
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    data = full.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    full.unlink()
    return path


@pytest.fixture
def mixed_root(synthetic_root: Path, tmp_path: Path) -> Path:
    """A list dataset: 4 good training videos, then garbage, empty, missing and truncated files."""
    root = tmp_path / "data"
    (root / "v").mkdir(parents=True)
    good = sorted((synthetic_root / "videos").rglob("train_*.mp4"))[:4]
    for i, src in enumerate(good):
        os.symlink(src, root / "v" / f"good {i}.mp4")  # a space in the name, as list files allow
    (root / "v" / "garbage.mp4").write_bytes(np.random.default_rng(1).integers(0, 256, 4000, np.uint8).tobytes())
    (root / "v" / "empty.mp4").write_bytes(b"")
    _truncated_mp4(root / "v" / "cut.mp4")
    lines = [f"v/good {i}.mp4 {i % 2}" for i in range(4)] + ["v/garbage.mp4 0", "v/empty.mp4 1", "v/cut.mp4 1"]
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    (root / "val.txt").write_text("v/good 0.mp4 0\nv/missing.mp4 1\n")
    (root / "classes.txt").write_text("left\nright\n")
    return root


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_check_video_reports_reasons_without_raising(mixed_root: Path) -> None:
    ok = check_video(str(mixed_root / "v" / "good 0.mp4"))
    assert (ok["status"], ok["reason"], ok["frames"], ok["fps"], ok["duration"]) == ("ok", "", 12, 12.0, 1.0)
    assert ok["size_bytes"] > 0
    assert check_video(str(mixed_root / "v" / "garbage.mp4"))["reason"] == "undecodable"
    assert check_video(str(mixed_root / "v" / "nope.mp4"))["reason"] == "missing file"
    cut = check_video(str(mixed_root / "v" / "cut.mp4"))
    assert cut["status"] == "ok" and cut["reason"].startswith("truncated") and cut["frames"] == 40
    assert check_video(str(mixed_root / "v" / "cut.mp4"), full=True)["reason"].startswith("truncated")


@pytest.mark.timeout(120)
def test_check_data_in_parallel_writes_report_and_clean_lists(mixed_root: Path, tmp_path: Path, capsys) -> None:
    report, clean = tmp_path / "report.csv", tmp_path / "clean_{split}.txt"
    rc = alt_main(
        [
            "check-data",
            "--data.class_path=alt_lightning.datamodules.VideoListDataModule",
            f"--data.init_args.root={mixed_root}",
            "--data.init_args.classes=classes.txt",
            "--splits",
            "train",
            "val",
            "--workers=2",
            f"--report={report}",
            f"--clean-list={clean}",
        ]
    )
    assert rc == 1  # bad videos found
    rows = _rows(report)
    assert tuple(rows[0]) == REPORT_COLUMNS
    got = {(r["split"], Path(r["path"]).name): (r["status"], r["reason"].split(":")[0]) for r in rows}
    assert got == {
        **{("train", f"good {i}.mp4"): ("ok", "") for i in range(4)},
        ("train", "garbage.mp4"): ("bad", "undecodable"),
        ("train", "empty.mp4"): ("bad", "empty file"),
        ("train", "cut.mp4"): ("ok", "truncated"),
        ("val", "good 0.mp4"): ("ok", ""),
        ("val", "missing.mp4"): ("bad", "missing file"),
    }
    good0 = next(r for r in rows if r["path"].endswith("good 0.mp4"))
    assert (good0["frames"], good0["fps"], good0["duration"]) == ("12", "12.0", "1.0") and int(good0["size_bytes"]) > 0
    train_list = (tmp_path / "clean_train.txt").read_text().splitlines()
    assert train_list == ["v/good 0.mp4 0", "v/good 1.mp4 1", "v/good 2.mp4 0", "v/good 3.mp4 1", "v/cut.mp4 1"]
    assert (tmp_path / "clean_val.txt").read_text() == "v/good 0.mp4 0\n"
    out = capsys.readouterr().out
    assert "undecodable (1)" in out and "missing file (1)" in out


def test_check_data_reads_the_data_section_of_a_fit_config(mixed_root: Path, tmp_path: Path, model_config) -> None:
    """A whole `alt fit` config, read by its parser: the model is parsed (never built), the data checked."""
    config = tmp_path / "fit.yaml"
    data = {"class_path": "alt_lightning.datamodules.VideoListDataModule", "init_args": {"root": str(mixed_root)}}
    data["init_args"] |= {"classes": "classes.txt", "val_list": "nothing.txt"}
    config.write_text(yaml.safe_dump({"model": model_config, "trainer": {"max_epochs": 1}, "data": data}))
    report, clean = tmp_path / "r.csv", tmp_path / "train_clean.txt"
    args = ["check-data", f"--config={config}", "--data.init_args.val_list=val.txt", "--splits", "val"]
    assert alt_main([*args, "--workers=0", f"--report={report}", "--progress=false"]) == 1
    assert [Path(r["path"]).name for r in _rows(report)] == ["good 0.mp4", "missing.mp4"]  # override applied
    strict = ["check-data", f"--config={config}", "--splits", "train", "--workers=0", "--strict=true"]
    assert alt_main([*strict, f"--report={report}", f"--clean-list={clean}", "--progress=false"]) == 1
    assert "v/cut.mp4 1" not in clean.read_text().splitlines()  # damaged files are bad with --strict
    assert next(r for r in _rows(report) if r["path"].endswith("cut.mp4"))["status"] == "bad"


def test_check_data_checks_what_the_run_reads(mixed_root: Path, tmp_path: Path) -> None:
    """A few-shot option on the data: the training videos checked are the draw the run trains on, no others."""
    report, manifest = tmp_path / "r.csv", tmp_path / "few_shot.txt"
    args = ["check-data", "--data.class_path=alt_lightning.datamodules.VideoListDataModule"]
    args += [f"--data.init_args.root={mixed_root}", "--data.init_args.classes=classes.txt", "--splits", "train"]
    args += ["--data.init_args.few_shot.shots=1", f"--data.init_args.few_shot.manifest_out={manifest}"]
    assert alt_main([*args, "--workers=0", "--progress=false", f"--report={report}"]) in (0, 1)
    drawn = {x.rsplit(" ", 1)[0] for x in manifest.read_text().splitlines() if x and not x.startswith("#")}
    rows = _rows(report)
    assert len(rows) == 2 and {r["split"] for r in rows} == {"train"}  # one video per class, of the 7 listed
    assert {str(Path(r["path"]).relative_to(mixed_root)) for r in rows} == drawn


def test_permission_errors_carry_the_os_message_not_missing_or_undecodable(
    mixed_root: Path, tmp_path: Path, unprivileged, monkeypatch
) -> None:
    """A file that exists but cannot be read, or sits in a folder that cannot be entered, is not "missing"."""
    good = (mixed_root / "v" / "good 0.mp4").resolve()
    sealed = shutil.copy(good, mixed_root / "v" / "sealed.mp4")  # a copy: chmod must not reach the shared file
    (mixed_root / "locked").mkdir()
    shutil.copy(good, mixed_root / "locked" / "inside.mp4")
    unprivileged.deny(Path(sealed), 0)  # exists, no read permission
    unprivileged.deny(mixed_root / "locked", 0o600)  # no execute: even isfile() says False inside
    (mixed_root / "perm.txt").write_text("v/good 0.mp4 0\nv/sealed.mp4 1\nlocked/inside.mp4 0\nv/gone.mp4 1\n")
    report = tmp_path / "report.csv"
    monkeypatch.setenv("COLUMNS", "250")  # the summary table in one piece
    args = ["-m", "alt_lightning", "check-data", "--data.class_path=alt_lightning.datamodules.VideoListDataModule"]
    args += [f"--data.init_args.root={mixed_root}", "--data.init_args.classes=classes.txt"]
    args += ["--data.init_args.val_list=perm.txt", "--splits", "val", "--workers=0", "--progress=false"]
    res = unprivileged.run(*args, f"--report={report}")
    assert res.returncode == 1, res.stderr
    got = {Path(r["path"]).name: (r["status"], r["reason"]) for r in _rows(report)}
    assert got == {
        "good 0.mp4": ("ok", ""),
        "sealed.mp4": ("bad", "unreadable (Permission denied)"),
        "inside.mp4": ("bad", "unreadable (Permission denied)"),
        "gone.mp4": ("bad", "missing file"),
    }
    assert "unreadable (Permission denied) (2)" in res.stdout and "missing file (1)" in res.stdout


def test_check_data_fails_in_one_line_before_decoding_when_an_output_cannot_be_written(
    mixed_root: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    def never(*args, **kwargs):
        raise AssertionError("videos were decoded before the outputs were opened")

    monkeypatch.setattr(check_data, "_check_all", never)
    monkeypatch.setenv("COLUMNS", "250")
    blocker = tmp_path / "a_file"
    blocker.write_text("")  # a folder path through a regular file cannot be created, not even by root
    base = ["check-data", "--data.class_path=alt_lightning.datamodules.VideoListDataModule"]
    base += [f"--data.init_args.root={mixed_root}", "--data.init_args.classes=classes.txt", "--workers=0"]
    unwritable_clean_list = [f"--report={tmp_path / 'r.csv'}", f"--clean-list={blocker}/c.txt"]
    for extra in ([f"--report={blocker / 'r.csv'}"], unwritable_clean_list):
        assert alt_main([*base, *extra, "--progress=false"]) == 2
        lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
        assert len(lines) == 1 and str(blocker) in lines[0] and "cannot write" in lines[0], lines
    assert not (tmp_path / "r.csv").exists()  # nothing half-written either

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(check_data, "_check_all", interrupted)
    old_list = tmp_path / "clean.txt"
    old_list.write_text("v/good 0.mp4 0\n")
    with pytest.raises(KeyboardInterrupt):
        alt_main([*base, f"--report={tmp_path / 'r.csv'}", f"--clean-list={old_list}", "--splits", "val"])
    assert not (tmp_path / "r.csv").exists() and old_list.read_text() == "v/good 0.mp4 0\n"  # as before the run


@pytest.mark.timeout(120)
def test_check_data_workers_do_not_import_torch(mixed_root: Path, tmp_path: Path) -> None:
    """Run as the installed `alt` script runs: multiprocessing re-runs a script's __main__ in every worker."""
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    (probe_dir / "probe.py").write_text(
        "import json, os, sys\n"
        "import alt_lightning.commands.check_data as cd\n"
        "real = cd.check_video\n"
        "def check_video(path, timeout_s=60.0, full=False):\n"
        "    heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'lightning', 'jsonargparse'})\n"
        "    with open(os.path.join(os.environ['PROBE_DIR'], f'{os.getpid()}.json'), 'w') as f:\n"
        "        json.dump(heavy, f)\n"
        "    return real(path, timeout_s, full)\n"
        "cd.check_video = check_video\n"
    )
    # Like the console script pip writes (imports the CLI at the top, no .py), with torch imported too: a heavy main
    # module that the workers must not re-run.
    script = probe_dir / "alt"
    script.write_text(
        "import sys\nimport torch\nimport probe\nfrom alt_lightning.cli import main\n"
        "if __name__ == '__main__':\n    assert 'torch' in sys.modules\n    sys.exit(main())\n"
    )
    env = {**os.environ, "PROBE_DIR": str(probe_dir)}
    env["PYTHONPATH"] = os.pathsep.join([str(probe_dir), str(Path(check_data.__file__).parents[2])])
    args = ["check-data", "--data.class_path=alt_lightning.datamodules.VideoListDataModule"]
    args += [f"--data.init_args.root={mixed_root}", "--data.init_args.classes=classes.txt", "--splits", "train"]
    args += ["--workers=2", "--progress=false", f"--report={tmp_path / 'r.csv'}"]
    res = subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, text=True, timeout=110)
    assert res.returncode == 1, res.stderr  # bad videos found, and checked by the workers
    workers = sorted(probe_dir.glob("*.json"))
    assert workers, "no worker ran check_video"
    assert {w.stem: json.loads(w.read_text()) for w in workers} == {w.stem: [] for w in workers}
    assert len(_rows(tmp_path / "r.csv")) == 7
