"""Every shipped config runs: each experiment's documented command(s), and every piece in a small combination.

The commands are read from the comment header of each experiment file (so the documentation is what is tested) and
run in-process on tiny data in the datasets' official on-disk formats (Kinetics CSVs, UCF-101 and HMDB-51 split
files, SSv2 JSON), with the backbone swapped for alt-tiny with saved weights, 4 frames, 1 batch per stage, and
protocol runs cut to 1 shot and 1 seed.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from alt_lightning.cli import main
from alt_lightning.lightning.cli import parse_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
EXPERIMENTS = sorted((CONFIGS / "experiments").glob("*.yaml"))

#: Two classes of each half of the label order (base-to-novel needs both halves), per dataset.
K400_CLASSES = ("abseiling", "air drumming", "yoga", "zumba")
K600_CLASSES = ("arguing", "backflip (human)", "abseiling")  # the first two are in all three zero-shot subsets
UCF_CLASSES = ("ApplyEyeMakeup", "Archery", "Basketball", "YoYo")
HMDB_CLASSES = ("brush_hair", "cartwheel", "walk", "wave")
SSV2_LABELS = (
    "Approaching something with your camera",
    "Attaching something to something",
    "Bending something so that it deforms",
    "Wiping something off of something",
)


def header_commands(path: Path) -> list[list[str]]:
    """The ``alt ...`` commands of a config's leading comment block (``\\`` continues a line)."""
    commands, current = [], None
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line[1:].strip()
        if current is None and not text.startswith("alt "):
            continue
        current = text if current is None else f"{current} {text}"
        if current.endswith("\\"):
            current = current[:-1].rstrip()
        else:
            commands.append(shlex.split(current)[1:])
            current = None
    return commands


def composed(configs: list[str]) -> Any:
    """The configuration ``alt fit`` composes from ``configs`` (paths relative to the repository), defaults filled."""
    return parse_config(["fit", *(a for c in configs for a in ("--config", str(REPO / c)))])


def test_every_experiment_documents_its_command() -> None:
    assert len(EXPERIMENTS) >= 13
    for path in EXPERIMENTS:
        cmds = header_commands(path)
        assert cmds, f"{path.name} has no `alt ...` command in its header"
        for cmd in cmds:
            configs = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--config"]
            assert configs[-1] == f"configs/experiments/{path.name}", cmd
            assert all((REPO / c).is_file() for c in configs), configs


def test_protocol_values_of_the_paper() -> None:
    """Paper §3: B/16 8 frames 3x1 views for K400; 32 frames for zero-/few-shot; K in {2,4,8,16}; 3 seeds x 16 shots.

    Read from each experiment's own command, composed as ``alt fit`` composes it (defaults included).
    """
    (sup_cmd, _) = header_commands(CONFIGS / "experiments" / "supervised_k400.yaml")
    sup = composed(_configs(sup_cmd))
    assert sup.model.init_args.model_name == "ViT-B-16"
    assert {k: sup.data.init_args[k] for k in ("num_frames", "test_clips", "test_crops")} == {
        "num_frames": 8,
        "test_clips": 3,
        "test_crops": 1,
    }
    for path in EXPERIMENTS:
        cmd = header_commands(path)[0]
        data = composed(_configs(cmd)).data
        init = data.init_args
        if path.name.startswith(("zero_shot", "few_shot", "base_to_novel")):
            assert init.num_frames == 32 and (init.test_clips, init.test_crops) == (1, 1), path.name
        text = " ".join(" ".join(c) for c in header_commands(path))
        if path.name.startswith("few_shot"):
            assert "--shots 2 4 8 16 --seeds 0 1 2" in text and init.few_shot is not None
        if path.name.startswith("base_to_novel"):
            assert "--seeds 0 1 2 --shots 16" in text and init.few_shot.shots == 16
            assert init.class_subset.subset == "base" and init.class_subset.classes is None  # halves of all classes
        if path.name.startswith("zero_shot") and "protocol" in text:
            assert "--splits 1 2 3" in text
        if path.name == "zero_shot_k600.yaml":
            assert init.version == 600 and init.class_subset.classes == "k600_zs_split1"
        if path.name.startswith(("zero_shot", "few_shot")) and "protocol" in text:
            assert init.features.splits == ("test",)  # the cache serves evaluation only: no augmentation lost


def test_no_experiment_restates_a_default() -> None:
    """Each experiment states only its differences: no value equal to what the pieces before it already give."""
    for path in EXPERIMENTS:
        configs = _configs(header_commands(path)[0])
        without = composed(configs[:-1])
        mine = yaml.safe_load(path.read_text())
        for section in ("model", "data"):
            for key, value in ((mine.get(section) or {}).get("init_args") or {}).items():
                before = without[section].init_args.get(key)
                before = before.as_dict() if hasattr(before, "as_dict") else before
                assert value != before, f"{path.name}: {section}.{key}: {value!r} is already the value"


# ----------------------------------------------------------------------------------------------- tiny datasets
def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists():
        os.symlink(src, dst)


@pytest.fixture(scope="session")
def official_roots(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny datasets in the official layouts; every video is a link to a synthetic test video."""
    videos = sorted((synthetic_root / "videos").rglob("*.mp4"))
    pick = iter(videos * 4)
    base = tmp_path_factory.mktemp("official")
    roots = {}

    def kinetics(name: str, classes: tuple[str, ...]) -> None:
        root = roots[name] = base / name
        (root / "annotations").mkdir(parents=True)
        for split, folder, n in (("train", "train", 2), ("validate", "val", 1)):
            with (root / "annotations" / f"{split}.csv").open("w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
                for c, label in enumerate(classes):
                    for k in range(n):
                        yid = f"y{c}{k}{split[:2]}"
                        w.writerow([label, yid, 0, 10, split])
                        _link(next(pick), root / folder / f"{yid}_000000_000010.mp4")

    kinetics("kinetics400", K400_CLASSES)
    kinetics("kinetics600", K600_CLASSES)

    ucf = roots["ucf101"] = base / "ucf101"
    lists = ucf / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(UCF_CLASSES, 1)))
    for cls in UCF_CLASSES:
        for g in range(1, 4):
            _link(next(pick), ucf / cls / f"v_{cls}_g{g:02d}_c01.avi")
    for split in (1, 2, 3):
        test_group = split  # each split tests another group
        train = [
            f"{c}/v_{c}_g{g:02d}_c01.avi {i}"
            for i, c in enumerate(UCF_CLASSES, 1)
            for g in (1, 2, 3)
            if g != test_group
        ]
        test = [f"{c}/v_{c}_g{test_group:02d}_c01.avi" for c in UCF_CLASSES]
        (lists / f"trainlist0{split}.txt").write_text("\n".join(train) + "\n")
        (lists / f"testlist0{split}.txt").write_text("\n".join(test) + "\n")

    hmdb = roots["hmdb51"] = base / "hmdb51"
    splits = hmdb / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    from alt_lightning.text.classes import class_names

    for cls in class_names("hmdb51"):
        for split in (1, 2, 3):
            lines = []
            if cls in HMDB_CLASSES:
                for k in range(3):
                    name = f"clip_{cls}_{k}.avi"
                    _link(next(pick), hmdb / cls / name)
                    lines.append(f"{name} {2 if k == split - 1 else 1}")
            (splits / f"{cls}_test_split{split}.txt").write_text("".join(f"{x}\n" for x in lines))

    ssv2 = roots["ssv2"] = base / "ssv2"
    ssv2.mkdir()
    (ssv2 / "labels.json").write_text(json.dumps({n: str(i) for i, n in enumerate(SSV2_LABELS)}))
    for split, n in (("train", 2), ("validation", 1)):
        items = []
        for c, name in enumerate(SSV2_LABELS):
            for k in range(n):
                vid = f"{c}{k}{len(split)}"
                template = name.replace("something", "[something]")
                items.append({"id": vid, "label": name.lower(), "template": template, "placeholders": ["something"]})
                _link(next(pick), ssv2 / "20bn-something-something-v2" / f"{vid}.webm")
        (ssv2 / f"{split}.json").write_text(json.dumps(items, indent=1))
    return roots


def _dataset_of(data: Any) -> str:
    cls, init = data.class_path.rsplit(".", 1)[-1], data.init_args
    if cls == "KineticsDataModule":
        return f"kinetics{init.version}"
    if cls == "UCFHMDBDataModule":
        return init.dataset
    return {"SSv2DataModule": "ssv2"}[cls]


def tiny_overrides(configs: list[str], roots: dict[str, Path], weights: Path, corpus: Path) -> list[str]:
    """alt-tiny backbone, the tiny dataset's root, 4 frames, 1 batch per stage."""
    data = "--data.init_args."
    return [
        "--model.init_args.model_name=alt-tiny",
        f"--model.init_args.pretrained={weights}",
        f"--model.init_args.corpus={corpus}",
        "--model.init_args.encoder.r=2",
        "--model.init_args.adapter.heads=4",
        f"{data}root={roots[_dataset_of(composed(configs).data)]}",
        f"{data}num_frames=4",
        f"{data}batch_size=2",
        f"{data}num_workers=0",
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        "--trainer.num_nodes=1",
        "--trainer.strategy=auto",
        "--trainer.precision=32-true",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=1",
        "--trainer.limit_val_batches=1",
        "--trainer.limit_test_batches=1",
        "--trainer.num_sanity_val_steps=0",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]


@pytest.fixture(scope="session")
def k400_checkpoint(
    official_roots: dict[str, Path], tiny_weights: Path, tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The zero-shot training command (zero_shot_k400_train.yaml) run on tiny K400: its checkpoint."""
    (cmd,) = header_commands(CONFIGS / "experiments" / "zero_shot_k400_train.yaml")
    return _run_fit(cmd, official_roots, tiny_weights, tiny_corpus, tmp_path_factory.mktemp("zs_train"))


def _configs(cmd: list[str]) -> list[str]:
    return [cmd[i + 1] for i, a in enumerate(cmd) if a == "--config"]


def _run_fit(cmd: list[str], roots: dict[str, Path], weights: Path, corpus: Path, tmp: Path) -> Path:
    assert cmd[0] == "fit"
    configs = _configs(cmd)
    args = [a for c in configs for a in ("--config", str(REPO / c))]
    overrides = tiny_overrides(configs, roots, weights, corpus)
    tmp.mkdir(parents=True, exist_ok=True)
    old = Path.cwd()
    os.chdir(tmp)
    try:
        assert main(["fit", *args, *overrides, "--trainer.logger=false", f"--trainer.default_root_dir={tmp}"]) == 0
    finally:
        os.chdir(old)
    ckpt = tmp / "checkpoints" / "best.ckpt"
    assert ckpt.is_file(), sorted(p.name for p in tmp.rglob("*.ckpt"))
    return ckpt


#: Run in the default suite (one of each protocol); the others are marked slow (the whole set takes ~90 s).
FAST = {"supervised_k400.yaml", "zero_shot_k600.yaml", "few_shot_ucf101.yaml", "base_to_novel_hmdb51.yaml"}
CASES = [
    pytest.param(p.name, i, id=f"{p.stem}-{i}", marks=() if p.name in FAST else pytest.mark.slow)
    for p in EXPERIMENTS
    for i in range(len(header_commands(p)))
]


@pytest.mark.parametrize(("name", "index"), CASES)
def test_experiment_command_runs(
    name: str,
    index: int,
    official_roots: dict[str, Path],
    tiny_weights: Path,
    tiny_corpus: Path,
    k400_checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    cmd = header_commands(CONFIGS / "experiments" / name)[index]
    monkeypatch.chdir(tmp_path)
    configs = _configs(cmd)
    overrides = tiny_overrides(configs, official_roots, tiny_weights, tiny_corpus)
    args = [str(REPO / a) if a in configs else a for a in cmd]
    if name == "zero_shot_k400_train.yaml":
        assert k400_checkpoint.is_file()  # the session fixture ran exactly this command
        return
    if cmd[0] == "fit":
        _run_fit(cmd, official_roots, tiny_weights, tiny_corpus, tmp_path)
        return
    if cmd[0] == "test":  # the checkpoint of the matching fit command
        fit_cmd = header_commands(CONFIGS / "experiments" / name)[0]
        ckpt = _run_fit(fit_cmd, official_roots, tiny_weights, tiny_corpus, tmp_path / "fit")
        args = [f"--ckpt_path={ckpt}" if a.startswith("runs/") else a for a in args if a != "--ckpt_path"]
        assert main([*args, *overrides, "--trainer.logger=false"]) == 0
        assert "test top-1:" in capsys.readouterr().out
        return
    assert cmd[:1] == ["protocol"]
    args = [str(k400_checkpoint) if a.startswith("runs/") else a for a in args]
    for flag, value in (("--shots", ["1"]), ("--seeds", ["0"])):  # 1 shot, 1 seed
        if flag in args:
            i = args.index(flag)
            j = i + 1
            while j < len(args) and not args[j].startswith("--"):
                j += 1
            args[i + 1 : j] = value
    out = tmp_path / "protocol"
    assert main([*args, "--out", str(out), "--", *overrides]) == 0
    results = json.loads((out / "results.json").read_text())
    units = results["units"]
    assert units and all(u["status"] == "done" for u in units.values())
    expected = {"zero-shot": 3, "few-shot": 1, "base-to-novel": 1}[cmd[1]]
    assert len(units) == expected
    kinds = {"zero-shot": [], "few-shot": ["few-shot"], "base-to-novel": ["class-subset"]}[cmd[1]]
    if name == "zero_shot_k600.yaml":
        kinds = ["class-subset"]
    for unit in units.values():
        assert 0 <= unit["metrics"]["top1" if cmd[1] != "base-to-novel" else "hm"] <= 100
        assert Path(unit["predictions"]).is_file()
        assert [m["kind"] for m in unit["manifests"]] == kinds  # the few-shot list and class subset it used
        if cmd[1] == "base-to-novel":  # trained on a few-shot draw of the base classes, tested on the novel ones
            assert [m["kind"] for m in unit["base_manifests"]] == ["few-shot", "class-subset"]
            assert unit["base_manifests"][1]["sha256"] != unit["manifests"][0]["sha256"]
    assert set(results["versions"]) >= {"torch", "lightning", "open_clip_torch", "alt-lightning"}


FAST_PIECES = {"model/alt_l14.yaml", "data/ssv2.yaml"}  # pieces that no fast experiment uses
#: Pieces that only add a logger whose package is an extra (tests/lightning/test_loggers.py parses and builds them):
#: the runs here have no logger (--trainer.logger=false), so they would test nothing.
LOGGER_PIECES = {"trainer/wandb.yaml", "trainer/mlflow.yaml"}
PIECES = [
    pytest.param(piece, marks=() if piece in FAST_PIECES else pytest.mark.slow)
    for piece in (
        *(f"model/{p.name}" for p in sorted((CONFIGS / "model").glob("*.yaml"))),
        *(f"data/{p.name}" for p in sorted((CONFIGS / "data").glob("*.yaml"))),
        *(f"trainer/{p.name}" for p in sorted((CONFIGS / "trainer").glob("*.yaml"))),
    )
    if piece not in LOGGER_PIECES
]


@pytest.mark.parametrize("piece", PIECES)
def test_piece_runs_in_a_small_combination(
    piece: str,
    official_roots: dict[str, Path],
    tiny_weights: Path,
    tiny_corpus: Path,
    tmp_path: Path,
) -> None:
    """Each piece with defaults for the other two kinds."""
    kind = piece.split("/")[0]
    combo = {"model": "model/tiny.yaml", "data": "data/ucf101.yaml", "trainer": "trainer/cpu_debug.yaml"}
    combo[kind] = piece
    configs = [f"configs/{combo[k]}" for k in ("model", "data", "trainer")]
    ckpt = _run_fit(
        ["fit", *(a for c in configs for a in ("--config", c))], official_roots, tiny_weights, tiny_corpus, tmp_path
    )
    assert ckpt.stat().st_size > 0


#: The paper's protocol per experiment family (paper §3): frames per clip and test views (clips x crops).
PROTOCOL_INPUT = {
    "supervised": (8, [3, 1]),
    "zero_shot": (32, [1, 1]),
    "few_shot": (32, [1, 1]),
    "base_to_novel": (32, [1, 1]),
}


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_flops_counts_the_experiments_frames_views_and_adapter(path: Path, capsys: pytest.CaptureFixture) -> None:
    """`alt flops` with an experiment's own --config list (backbone swapped for alt-tiny: fast) counts its input."""
    from dataclasses import asdict

    import yaml

    from alt_lightning.commands.flops import main as flops
    from alt_lightning.model.adapter import AdapterConfig

    frames, views = next(v for k, v in PROTOCOL_INPUT.items() if path.name.startswith(k))
    for cmd in header_commands(path):
        configs = _configs(cmd)
        assert (
            flops([*(a for c in configs for a in ("--config", str(REPO / c))), "--model_name", "alt-tiny", "--json"])
            == 0
        )
        out = json.loads(capsys.readouterr().out)
        assert (out["frames"], out["views"]) == (frames, views), cmd
        piece = next(c for c in configs if c.startswith("configs/model/"))
        adapter = yaml.safe_load((REPO / piece).read_text())["model"]["init_args"]["adapter"]
        assert out["config"]["adapter"] == asdict(AdapterConfig(**adapter)), cmd
        # The piece's r = 8 on alt-tiny (17 tokens, 2 blocks): 8 merged, then 4 (at most half of the non-cls tokens).
        assert out["config"]["encoder"]["r"] == 8 and out["tokens_per_frame"] == 17 - 8 - 4


# ----------------------------------------------------------------------------------------------- presets by name
def test_presets_are_the_repository_configs_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file of configs/ is a preset named by its path without .yaml; repo paths resolve from any folder."""
    from alt_lightning.lightning.presets import config_presets, resolve_config, resolve_config_args

    files = {p.relative_to(CONFIGS).with_suffix("").as_posix(): p for p in CONFIGS.rglob("*.yaml")}
    presets = config_presets()
    assert set(presets) == set(files) and len(presets) >= 26
    assert all(presets[name].samefile(path) for name, path in files.items())
    monkeypatch.chdir(tmp_path)  # another folder: no configs/ here
    for spec in ("experiments/few_shot_ucf101", "configs/experiments/few_shot_ucf101.yaml"):
        assert Path(resolve_config(spec)).samefile(CONFIGS / "experiments" / "few_shot_ucf101.yaml"), spec
    assert resolve_config("model/none") == "model/none"  # no such preset: left for the parser's error
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "demo.yaml").write_text("seed_everything: 1\n")  # a file of the user's wins
    assert resolve_config("configs/demo.yaml") == "configs/demo.yaml"
    argv = resolve_config_args(["fit", "--config", "demo", "-c", "model/tiny", "--config=trainer/gpu", "--x", "demo"])
    assert [Path(argv[i]).name for i in (2, 4)] == ["demo.yaml", "tiny.yaml"]
    assert argv[5].startswith("--config=") and argv[5].endswith("trainer/gpu.yaml") and argv[7] == "demo"


def test_configs_by_name_parse_as_their_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--config model/tiny --config data/ucf101 ...` from another folder: the same run as the repo paths."""
    names = ["model/tiny", "data/ucf101", "trainer/cpu_debug", "experiments/few_shot_ucf101"]
    by_path = composed([f"configs/{n}.yaml" for n in names])
    monkeypatch.chdir(tmp_path)
    by_name = parse_config(["fit", *(a for n in names for a in ("--config", n))])
    for section in ("model", "data", "trainer"):
        assert by_name[section] == by_path[section], section
    assert by_name.data.init_args.few_shot is not None and by_name.data.init_args.num_frames == 32
    with pytest.raises(ValueError, match="model/none"):
        parse_config(["fit", "--config", "model/none"])


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_built_wheel_runs_the_demo_by_name_from_another_folder(tmp_path: Path) -> None:
    """The wheel carries the presets, class lists and corpus; `alt fit --config demo` runs from the installed files.

    Only the package comes from the wheel (``pip install --no-deps --target``, first on ``PYTHONPATH``); its
    dependencies are this environment's (a fresh venv would download torch).
    """
    import importlib.util
    import subprocess
    import sys
    import zipfile

    from alt_lightning.lightning.presets import config_presets

    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(wheels)]
    if importlib.util.find_spec("setuptools") is not None:  # build with this environment's setuptools, offline
        build.append("--no-build-isolation")
    res = subprocess.run(build, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    (wheel,) = wheels.glob("alt_lightning-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"alt_lightning/configs/{n}.yaml" for n in config_presets()} <= names
    assert "alt_lightning/resources/corpus/alt-entities-v1.jsonl" in names
    assert "alt_lightning/resources/classes/hmdb51.txt" in names
    assert not any(n.startswith("configs/") for n in names)

    site = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site)]
    res = subprocess.run([*install, str(wheel)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "ALT_CACHE_DIR": str(tmp_path / "cache")}
    env["ALT_RUN_VERSION"] = "wheel"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, timeout=600)

    where = run(sys.executable, "-c", "import alt_lightning.lightning.presets as p; print(p.config_dir().resolve())")
    assert where.returncode == 0, where.stderr[-3000:]
    assert Path(where.stdout.strip()) == (site / "alt_lightning" / "configs").resolve()  # not src/ of the repo
    data = run(
        sys.executable,
        "-m",
        "alt_lightning.data.synthetic",
        "demo_data",
        "--seed",
        "0",
        "--train",
        "2",
        "--val",
        "1",
        "--test",
        "1",
    )
    assert data.returncode == 0, data.stderr[-3000:]
    alt = site / "bin" / "alt"  # the console script of the wheel's entry point
    assert alt.is_file()
    tiny = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"]
    fit = run(str(alt), "fit", "--config", "demo", *tiny, "--data.init_args.num_workers=0")
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert (work / "runs" / "demo" / "wheel" / "checkpoints" / "best.ckpt").is_file()
    assert (work / "runs" / "demo" / "latest").resolve() == (work / "runs" / "demo" / "wheel").resolve()
