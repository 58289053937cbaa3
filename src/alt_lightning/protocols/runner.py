"""The protocol runner: every unit of a paper protocol through the same machinery as ``alt fit`` / ``alt test``.

* **zero-shot**: one ``alt test`` per split of a target (HMDB-51 / UCF-101 official splits 1-3, or K600's three
  160-class subsets of the 220 classes not in K400, or subsets drawn by seed), from one checkpoint, or from the
  backbone alone (no checkpoint: the adapter's residual weight is 0, so the video vector is CLIP's mean frame
  embedding).
* **few-shot**: ``alt fit`` then test for every ``K x seed`` (the draw and the training seed are both ``seed``).
* **base-to-novel**: per seed, fit on the base half with 16 shots, test on base, test the saved weights on novel;
  harmonic mean.

Each unit runs in-process through :func:`alt_lightning.lightning.cli.run_cli` (same parsing, checkpoint-restored
settings, callbacks and loggers as the ``alt`` command), logs into ``<out>/units/<unit>/``, and is stored in
``<out>/results.json`` as soon as it finishes; a second run skips finished units (a fit interrupted half way resumes
from its ``last.ckpt``). When every unit has run, the table is printed and the protocol's picture is written beside
the JSON (:mod:`alt_lightning.protocols.plots`).
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from alt_lightning.protocols.plots import write_plots
from alt_lightning.protocols.report import (
    B2N_METRICS,
    EVAL_METRICS,
    RESULTS_FORMAT,
    base_to_novel_metrics,
    eval_metrics,
    now,
    package_versions,
    print_results,
    summarize,
    write_json_atomic,
)

log = logging.getLogger(__name__)

PROTOCOLS = ("zero-shot", "few-shot", "base-to-novel")


@dataclass
class Unit:
    """One run of a protocol.

    Attributes:
        id: Stable identifier (the key in the results file and the log folder name).
        group: Units summarized together (a target dataset, a shot count).
        label: Row label in the table.
        kind: ``"test"``, ``"fit_test"`` or ``"base_to_novel"``.
        args: CLI arguments of this unit on top of the shared configs.
        novel_args: Arguments of the novel test (base-to-novel).
        seed: The unit's seed, if any.
    """

    id: str
    group: str
    label: str
    kind: str
    args: list[str] = field(default_factory=list)
    novel_args: list[str] = field(default_factory=list)
    seed: int | None = None


@dataclass
class ProtocolSpec:
    """Everything that decides a protocol's numbers (compared when a run resumes).

    Attributes:
        protocol: One of :data:`PROTOCOLS`.
        configs: ``--config`` files in order.
        out: Output folder.
        name: Name of the experiment (table title, default group).
        ckpt: Checkpoint tested (zero-shot) or ``None``.
        extra: Further CLI arguments for every unit (after ``--``).
        test_on: Weights tested after a fit: ``"last"`` (the protocols' choice: no model selection on test data) or
            ``"best"``.
    """

    protocol: str
    configs: list[str]
    out: Path
    name: str
    ckpt: str | None = None
    extra: list[str] = field(default_factory=list)
    test_on: str = "last"


# ----------------------------------------------------------------------------------------------- config helpers
def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_config(spec: ProtocolSpec) -> Any:
    """The composed ``data`` section of the protocol's configs and extra arguments, as ``alt fit`` parses it.

    Parsed by the CLI's own parser, nothing instantiated (:func:`alt_lightning.lightning.cli.parse_config`).
    """
    from alt_lightning.lightning.cli import parse_config

    return parse_config(["fit", *(a for c in spec.configs for a in ("--config", str(c))), *spec.extra]).data


def _has_class_subset(spec: ProtocolSpec) -> bool:
    return data_config(spec).init_args.get("class_subset") is not None


# ----------------------------------------------------------------------------------------------- planning
def plan_zero_shot(
    spec: ProtocolSpec, splits: Sequence[str] = ("1", "2", "3"), draw: int | None = None, split_key: str | None = None
) -> list[Unit]:
    """Units of a zero-shot protocol: one test per split (or per drawn class subset).

    For a dataset with a class subset (K600) a split ``k`` is the published subset ``k600_zs_split<k>``, any other
    value a class list or manifest; with ``draw`` each split is a seed drawing ``draw`` classes of ``k600_novel``
    (saved as a manifest under ``<out>/manifests``). Otherwise a split is the dataset's official split number
    (``--data.init_args.split``, or ``split_key``).
    """
    subset = split_key is None and _has_class_subset(spec)
    key = "--data.init_args.class_subset."
    units = []
    for s in splits:
        if subset and draw is not None:
            manifest = spec.out / "manifests" / f"classes_{spec.name}_{draw}_seed{s}.txt"
            args = [f"{key}classes=k600_novel", f"{key}draw={draw}", f"{key}draw_seed={s}"]
            args.append(f"{key}manifest_out={manifest}")
            label = f"draw {draw} (seed {s})"
        elif subset:
            classes = f"k600_zs_split{s}" if str(s).isdigit() else str(s)
            args, label = [f"{key}classes={classes}"], f"split {s}"
        else:
            args, label = [f"{split_key or '--data.init_args.split'}={s}"], f"split {s}"
        units.append(Unit(id=f"{spec.name}/split{s}", group=spec.name, label=label, kind="test", args=args))
    return units


def _few_shot_args(shots: int, seed: int) -> list[str]:
    """``K`` videos per class drawn with ``seed``, which also seeds the training."""
    key = "--data.init_args.few_shot."
    return [f"{key}shots={shots}", f"{key}seed={seed}", f"--seed_everything={seed}"]


def plan_few_shot(
    spec: ProtocolSpec, shots: Sequence[int], seeds: Sequence[int], manifest_pattern: str | None = None
) -> list[Unit]:
    """Units of a few-shot protocol: fit + test for every ``K x seed``.

    Args:
        spec: The protocol.
        shots: Values of ``K``.
        seeds: Draw (and training) seeds.
        manifest_pattern: Read published lists instead of drawing, e.g. ``lists/train1_few_shot_{shots}.txt``
            (``{shots}`` and ``{seed}`` are filled in).
    """
    units = []
    for k in shots:
        for s in seeds:
            args = _few_shot_args(k, s)
            if manifest_pattern:
                args.append(f"--data.init_args.few_shot.manifest={manifest_pattern.format(shots=k, seed=s)}")
            units.append(
                Unit(id=f"K{k}/seed{s}", group=f"K={k}", label=f"seed {s}", kind="fit_test", args=args, seed=s)
            )
    return units


def plan_base_to_novel(
    spec: ProtocolSpec, seeds: Sequence[int], shots: int = 16, subset_key: str | None = None
) -> list[Unit]:
    """Units of base-to-novel: per seed, fit on base classes (``shots`` per class), test base and novel."""
    if subset_key is None and not _has_class_subset(spec):
        raise ValueError(
            "base-to-novel needs a class subset (data.init_args.class_subset: {subset: base}) in the data config, "
            "e.g. configs/experiments/base_to_novel_hmdb51.yaml, or --subset-key naming the option to set to 'novel'."
        )
    key = subset_key or "--data.init_args.class_subset.subset"
    units = []
    for s in seeds:
        units.append(
            Unit(
                id=f"{spec.name}/seed{s}",
                group=spec.name,
                label=f"seed {s}",
                kind="base_to_novel",
                args=[*_few_shot_args(shots, s), f"{key}=base"],
                novel_args=[f"{key}=novel"],
                seed=s,
            )
        )
    return units


# ----------------------------------------------------------------------------------------------- running
def _logger_args(folder: Path) -> list[str]:
    """TensorBoard + CSV loggers writing straight into ``folder`` (no name/version sub-folders)."""
    loggers = [
        {
            "class_path": f"lightning.pytorch.loggers.{cls}",
            "init_args": {"save_dir": str(folder), "name": "", "version": ""},
        }
        for cls in ("TensorBoardLogger", "CSVLogger")
    ]
    return [f"--trainer.logger={json.dumps(loggers)}", f"--trainer.default_root_dir={folder}"]


def _manifests(datamodule: Any) -> list[dict[str, str]]:
    """The DataModule's few-shot list and class subset, with their sha256 (a shipped subset: its canonical manifest)."""
    from alt_lightning.data.manifests import read_manifest

    out = []
    path = getattr(datamodule, "few_shot_manifest", None)
    if path and Path(path).is_file():
        out.append({"kind": "few-shot", "path": str(path), "sha256": read_manifest(path).sha256})
    if getattr(datamodule, "class_subset", None) is not None:
        path = datamodule.class_subset_manifest
        if path and Path(path).is_file():
            out.append({"kind": "class-subset", "path": str(path), "sha256": read_manifest(path).sha256})
        else:
            out.append({"kind": "class-subset", "path": "", "sha256": datamodule.subset_manifest().sha256})
    return out


def _prediction_file(trainer: Any) -> str | None:
    from alt_lightning.lightning.callbacks import PredictionWriter

    for cb in trainer.callbacks:
        if isinstance(cb, PredictionWriter) and cb.last_path is not None:
            return str(cb.last_path)
    return None


class ProtocolRunner:
    """Runs (or resumes) the units of a protocol and keeps ``<out>/results.json`` up to date.

    Args:
        spec: What to run.
        units: The planned units.
        run_fn: Builds and runs the CLI on an argument list and returns it (:func:`alt_lightning.lightning.cli.run_cli`;
            tests inject a fake).
        console: Where tables and progress go.
    """

    def __init__(
        self,
        spec: ProtocolSpec,
        units: list[Unit],
        run_fn: Callable[[list[str]], Any] | None = None,
        console: Console | None = None,
    ) -> None:
        if run_fn is None:
            from alt_lightning.lightning.cli import run_cli

            run_fn = run_cli
        self.spec, self.units, self.run_fn = spec, units, run_fn
        self.console = console or Console()
        self.path = spec.out / "results.json"
        self.metrics = B2N_METRICS if spec.protocol == "base-to-novel" else EVAL_METRICS

    # -------------------------------------------------------------- state
    def signature(self) -> dict[str, Any]:
        """What must not change between a run and its resumption."""
        return {
            "protocol": self.spec.protocol,
            "configs": [{"path": str(p), "sha256": file_sha256(p)} for p in self.spec.configs],
            "ckpt": None if self.spec.ckpt is None else {"path": self.spec.ckpt, "sha256": file_sha256(self.spec.ckpt)},
            "extra": list(self.spec.extra),
            "test_on": self.spec.test_on,
        }

    def load_or_create(self) -> dict[str, Any]:
        """The results file, checked against this run's settings, or a fresh one.

        Raises:
            RuntimeError: If the existing file was made with other configs, checkpoint or arguments.
        """
        sig = self.signature()
        if self.path.is_file():
            results = json.loads(self.path.read_text(encoding="utf-8"))
            if results.get("format") != RESULTS_FORMAT:
                raise RuntimeError(
                    f"{self.path} has results format {results.get('format')}, this version writes {RESULTS_FORMAT} "
                    "(format 1 held class-averaged top-1/top-5): its finished units cannot be mixed with new ones. "
                    "Use another --out, or --restart to discard it."
                )
            if results.get("signature") != sig:
                raise RuntimeError(
                    f"{self.path} was written by a run with other settings (configs, their contents, checkpoint or "
                    "extra arguments). Use another --out, or --restart to discard it."
                )
            return results
        return {
            "format": RESULTS_FORMAT,
            "protocol": self.spec.protocol,
            "name": self.spec.name,
            "created": now(),
            "versions": package_versions(),
            "signature": sig,
            "configs": {
                "files": [
                    {"path": str(p), "sha256": file_sha256(p), "text": Path(p).read_text(encoding="utf-8")}
                    for p in self.spec.configs
                ],
                "extra_args": list(self.spec.extra),
                "ckpt": self.spec.ckpt,
                "backbone_only": self.spec.protocol == "zero-shot" and self.spec.ckpt is None,
            },
            "metrics": list(self.metrics),
            "units": {},
            "manifests": {},
            "summary": {},
        }

    def save(self, results: dict[str, Any]) -> None:
        """Recompute the summary and write the file atomically."""
        results["summary"] = summarize(results["units"], self.metrics)
        results["updated"] = now()
        results["path"] = str(self.path)
        write_json_atomic(self.path, results)

    # -------------------------------------------------------------- units
    def base_args(self, folder: Path) -> list[str]:
        """Shared configs, this unit's loggers, then the user's extra arguments (which win)."""
        configs = [a for c in self.spec.configs for a in ("--config", str(c))]
        return [*configs, *_logger_args(folder)]

    def _test(self, unit: Unit, folder: Path) -> tuple[dict[str, float], Any]:
        args = list(unit.args)
        if self.spec.ckpt:
            args.append(f"--ckpt_path={self.spec.ckpt}")
        elif self.spec.protocol == "zero-shot":
            # The backbone alone: z = mean frame cls embedding (CLIP's zero-shot classifier), not a random adapter.
            args.append("--zero_shot_from_clip")
        cli = self.run_fn(["test", *self.base_args(folder), *args, *self.spec.extra])
        return eval_metrics(cli.trainer.callback_metrics), cli

    def _fit(self, unit: Unit, folder: Path) -> Any:
        args = [*self.base_args(folder), *unit.args, *self.spec.extra]
        last = folder / "checkpoints" / "last.ckpt"
        if last.is_file():
            self.console.print(f"  resuming {unit.id} from {last}")
            args.append(f"--ckpt_path={last}")
        return self.run_fn(["fit", *args])

    def _fit_test(self, unit: Unit, folder: Path) -> tuple[dict[str, float], Any]:
        cli = self._fit(unit, folder)
        ckpt = "best" if self.spec.test_on == "best" else None  # None: the weights as training left them
        cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt)
        return eval_metrics(cli.trainer.callback_metrics), cli

    def _base_to_novel(self, unit: Unit, folder: Path) -> tuple[dict[str, float], Any, dict[str, Any]]:
        base, cli = self._fit_test(unit, folder)
        final = folder / "final.ckpt"
        cli.trainer.save_checkpoint(final)
        extra = {"base": base, "base_predictions": _prediction_file(cli.trainer), "final_ckpt": str(final)}
        extra["base_manifests"] = _manifests(cli.datamodule)  # the few-shot list trained on (the novel test has none)
        del cli
        gc.collect()
        novel_args = [f"--ckpt_path={final}", *unit.novel_args]
        ncli = self.run_fn(["test", *self.base_args(folder / "novel"), *novel_args, *self.spec.extra])
        novel = eval_metrics(ncli.trainer.callback_metrics)
        extra["novel"] = novel
        return base_to_novel_metrics(base, novel), ncli, extra

    def run_unit(self, unit: Unit) -> dict[str, Any]:
        """Run one unit; returns its record for the results file."""
        folder = self.spec.out / "units" / unit.id.replace("/", "__")
        folder.mkdir(parents=True, exist_ok=True)
        start = time.time()
        extra: dict[str, Any] = {}
        if unit.kind == "test":
            metrics, cli = self._test(unit, folder)
        elif unit.kind == "fit_test":
            metrics, cli = self._fit_test(unit, folder)
        elif unit.kind == "base_to_novel":
            metrics, cli, extra = self._base_to_novel(unit, folder)
        else:
            raise ValueError(f"unknown unit kind {unit.kind!r}")
        if not metrics:
            raise RuntimeError(f"unit {unit.id} logged no test metrics; check its data configuration.")
        record = {
            "group": unit.group,
            "label": unit.label,
            "kind": unit.kind,
            "seed": unit.seed,
            "args": unit.args,
            "status": "done",
            "metrics": metrics,
            "seconds": round(time.time() - start, 1),
            "log_dir": str(folder),
            "config_file": str(folder / "config.yaml"),
            "predictions": _prediction_file(cli.trainer),
            "manifests": _manifests(cli.datamodule),
            **extra,
        }
        del cli
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return record

    def run(self) -> dict[str, Any]:
        """Run every unit not yet done; print the table, write the protocol's picture; return the results."""
        results = self.load_or_create()
        # Unit ids do not encode every argument (published K600 subsets and seeded draws are both "split<k>", drawn
        # and published few-shot lists both "K<k>/seed<s>"): a finished unit counts only if it ran with these args.
        changed = [
            u.id
            for u in self.units
            if results["units"].get(u.id, {}).get("status") == "done" and results["units"][u.id].get("args") != u.args
        ]
        if changed:
            raise RuntimeError(
                f"{self.path} holds finished units {changed[:3]} that ran with other arguments (e.g. --draw or "
                "--manifest-pattern changed). Use another --out, or --restart to discard them."
            )
        todo = [u for u in self.units if results["units"].get(u.id, {}).get("status") != "done"]
        skipped = len(self.units) - len(todo)
        if skipped:
            self.console.print(f"{self.path}: {skipped} of {len(self.units)} units already done, skipped")
        for i, unit in enumerate(todo, 1):
            self.console.rule(f"[bold]{self.spec.protocol} {unit.id}[/bold] ({i}/{len(todo)})")
            results["units"][unit.id] = {
                "group": unit.group,
                "label": unit.label,
                "kind": unit.kind,
                "status": "running",
                "started": now(),
            }
            self.save(results)
            try:
                record = self.run_unit(unit)
            except BaseException as err:  # interrupted (SystemExit from Lightning's Ctrl-C handler) or failed
                status = "failed" if isinstance(err, Exception) else "interrupted"
                results["units"][unit.id].update({"status": status, "error": f"{type(err).__name__}: {err}"})
                self.save(results)
                raise
            results["units"][unit.id] = record
            results["manifests"][unit.id] = record["manifests"]
            self.save(results)
        print_results(results, self.console)
        for path in write_plots(results, self.spec.out, self.console):
            self.console.print(f"plot: {path}", markup=False)
        return results


def restart(out: Path) -> None:
    """Discard a previous run's results and unit folders."""
    if (out / "results.json").exists():
        (out / "results.json").unlink()
    if (out / "units").exists():
        shutil.rmtree(out / "units")
