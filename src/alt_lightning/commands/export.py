"""``alt export CKPT OUT/``: a trained head as a folder laid out like a Hugging Face model repository.

::

    alt export runs/demo/latest/checkpoints/best.ckpt heads/demo/
    huggingface-cli upload <user>/<repo> heads/demo/ .        # done by the user; nothing here uses the network

The folder holds

- ``model.safetensors``: the checkpoint's ``state_dict``, which is the trainable head only (``ALTModule`` never saves
  the frozen backbone: it is rebuilt from ``model_name``/``pretrained`` and checked against its fingerprint). The
  safetensors format is tensors behind a JSON header, with no pickled code, so loading a shared head runs nothing.
- ``config.json``: what rebuilds the model around those weights: the backbone (``model_name``, ``pretrained``,
  fingerprint), the corpus (name, version, hash), the class names, the model class and its arguments (prompts,
  frames, adapter, ...), the DataModule class and arguments of the run, its epoch and step.
- ``README.md``: the model card, with the YAML front matter the Hub reads (licence, library, tags, pipeline).
- ``model_card.json``: the card's facts as data (backbone, corpus, classes, configuration, weights, metrics).

``alt test --ckpt_path OUT/``, ``alt predict VIDEO --ckpt OUT/`` and ``model.init_args.init_weights: OUT/`` load the
folder as they load the checkpoint (:func:`alt_lightning.lightning.checkpoints.load_checkpoint` reads both).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import yaml

from alt_lightning.commands import parse_or_exit_code

#: The files ``alt export`` writes (and refuses to overwrite without ``--force``).
CARD = "README.md"
CARD_JSON = "model_card.json"
#: The Hub's model-card metadata (YAML front matter of README.md).
FRONT_MATTER: dict[str, Any] = {
    "license": "apache-2.0",
    "library_name": "alt-lightning",
    "tags": ["video-classification", "action-recognition", "alt", "clip"],
    "pipeline_tag": "video-classification",
}
NOT_RECORDED = "not recorded"
#: The metrics of a run the card reports (logged by ``ALTModule``); throughput and learning rates are left out.
METRIC_PREFIXES = ("train/", "val/", "test/")


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``alt export``."""
    p = argparse.ArgumentParser(
        prog="alt export",
        description="Write a checkpoint's trainable head as model.safetensors + config.json + a model card (README.md "
        "with Hub metadata, model_card.json): a folder laid out as a Hugging Face model repository, loadable by "
        "`alt test --ckpt_path OUT/`, `alt predict VIDEO --ckpt OUT/` and model.init_args.init_weights.",
    )
    p.add_argument("ckpt", help="a checkpoint of `alt fit` (e.g. runs/<name>/latest/checkpoints/best.ckpt)")
    p.add_argument("out", help="the folder to write (created; other files in it are left alone)")
    p.add_argument("--force", action="store_true", help="overwrite the exported files of an earlier export in OUT")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``alt export``."""
    args = parse_or_exit_code(build_parser(), argv)
    if isinstance(args, int):
        return args
    try:
        summary = export_head(args.ckpt, args.out, force=args.force)
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"alt export: {err}", file=sys.stderr)
        return 1
    weights = summary["weights"]
    print(
        f"wrote {Path(args.out) / weights['file']}: {weights['tensors']} tensors, {weights['parameters']:,} "
        f"parameters, {weights['bytes'] / 1e6:.3f} MB ({weights['bytes']:,} bytes); config.json, {CARD}, {CARD_JSON} "
        "beside it"
    )
    return 0


# ----------------------------------------------------------------------------------------------- export
def export_head(ckpt: str | Path, out: str | Path, force: bool = False) -> dict[str, Any]:
    """Write the folder of a checkpoint's head (see the module docstring).

    Args:
        ckpt: A checkpoint file of ``alt fit``.
        out: The folder to write (created).
        force: Overwrite the files of an earlier export.

    Returns:
        The model card's facts (what ``model_card.json`` holds).

    Raises:
        FileNotFoundError: If ``ckpt`` is not a file.
        FileExistsError: If ``out`` holds exported files already and ``force`` is off.
        ValueError: If ``ckpt`` is a folder (already exported) or holds no ``alt`` settings.
    """
    from safetensors.torch import save

    from alt_lightning.lightning.checkpoints import (
        HEAD_CONFIG,
        HEAD_FORMAT,
        HEAD_FORMAT_VERSION,
        HEAD_WEIGHTS,
        load_checkpoint,
        saved_run,
    )

    ckpt, out = Path(ckpt), Path(out)
    if ckpt.is_dir():
        raise ValueError(f"{ckpt} is a folder (already exported?): export a .ckpt file of `alt fit`.")
    checkpoint = load_checkpoint(ckpt)
    saved = saved_run(checkpoint, ckpt)
    meta = saved.meta
    if not meta.get("model_name") or not saved.class_names:
        raise ValueError(
            f"{ckpt} has no `alt` settings (backbone, classes): not saved by ALTModule, so it cannot be exported."
        )
    existing = [n for n in (HEAD_WEIGHTS, HEAD_CONFIG, CARD, CARD_JSON) if (out / n).exists()]
    if existing and not force:
        raise FileExistsError(f"{out} already holds {', '.join(existing)}: pass --force to overwrite them.")
    # The state_dict is the trainable head (frozen weights are dropped on save). Each tensor gets its own memory:
    # safetensors refuses tensors that share storage.
    state = {k: v.detach().cpu().contiguous().clone() for k, v in checkpoint["state_dict"].items()}
    data = save(state, metadata={"format": "pt", "alt_lightning": HEAD_FORMAT})
    out.mkdir(parents=True, exist_ok=True)
    (out / HEAD_WEIGHTS).write_bytes(data)

    import alt_lightning

    model_args = {k: v for k, v in saved.model_args.items() if k != "class_names"}
    config: dict[str, Any] = {
        "format": HEAD_FORMAT,
        "format_version": HEAD_FORMAT_VERSION,
        "package_version": meta.get("package_version"),
        "exported_by": f"alt_lightning {alt_lightning.__version__}",
        "backbone": {
            "model_name": meta.get("model_name"),
            "pretrained": meta.get("pretrained"),
            "fingerprint": meta.get("backbone_fingerprint"),
        },
        "corpus": dict(meta.get("corpus") or {}),
        "class_names": saved.class_names,
        "model": {"class_path": saved.model_class, "init_args": model_args},
        "data": {"class_path": saved.data_class, "init_args": saved.data_args} if saved.data_class else None,
        "epoch": int(checkpoint.get("epoch", 0)),
        "global_step": saved.global_step,
    }
    (out / HEAD_CONFIG).write_text(json.dumps(config, indent=2) + "\n")

    card = {
        "backbone": config["backbone"],
        "corpus": config["corpus"],
        "num_classes": len(saved.class_names),
        "class_names": saved.class_names,
        "config": {
            "model_class": saved.model_class,
            "num_frames": model_args.get("num_frames"),
            "prompt_templates": model_args.get("prompt_templates"),
            "entity_template": model_args.get("entity_template"),
            "align": model_args.get("align"),
            "region": model_args.get("region"),
            "encoder": model_args.get("encoder"),
            "adapter": model_args.get("adapter"),
        },
        "weights": {
            "file": HEAD_WEIGHTS,
            "tensors": len(state),
            "parameters": sum(math.prod(v.shape) for v in state.values()),
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
        "training": {"epoch": config["epoch"], "global_step": saved.global_step, "source": ckpt.name},
        "metrics": run_metrics(checkpoint, ckpt),
    }
    (out / CARD_JSON).write_text(json.dumps(card, indent=2) + "\n")
    (out / CARD).write_text(model_card(card))
    return card


def run_metrics(checkpoint: dict[str, Any], ckpt: Path) -> dict[str, Any]:
    """The metrics of the run at the checkpoint, from what was recorded; empty when nothing was.

    Two sources: the checkpoint callback's state (the monitored metric's value when this checkpoint was written, and
    the best value so far), and the run's ``metrics.csv`` (the CSV logger's file in the run folder, the parent of the
    ``checkpoints/`` folder): the last value of each ``train/``, ``val/`` and ``test/`` metric logged in the
    checkpoint's epoch.

    Returns:
        ``{"monitor": {"name", "value", "best"}, "logged": {metric: value}, "epoch": int, "source": path}``, each key
        present only when found.
    """
    out: dict[str, Any] = {}
    for state in (checkpoint.get("callbacks") or {}).values():
        if isinstance(state, dict) and state.get("monitor") and state.get("current_score") is not None:
            best = state.get("best_model_score")
            out["monitor"] = {
                "name": state["monitor"],
                "value": float(state["current_score"]),
                "best": None if best is None else float(best),
            }
            break
    csv_path = ckpt.parent.parent / "metrics.csv" if ckpt.parent.name == "checkpoints" else None
    if csv_path is not None and csv_path.is_file():
        epoch = int(checkpoint.get("epoch", 0))
        logged: dict[str, float] = {}
        with csv_path.open(newline="") as f:
            for row in csv.DictReader(f):
                if row.get("epoch") not in (str(epoch), f"{epoch}.0"):
                    continue
                for key, value in row.items():
                    if key and key.startswith(METRIC_PREFIXES) and value not in ("", None):
                        logged[key] = float(value)
        if logged:
            out.update(logged=dict(sorted(logged.items())), epoch=epoch, source=str(csv_path))
    return out


# ----------------------------------------------------------------------------------------------- the card
def _fmt(value: Any) -> str:
    """A setting as the card's table shows it."""
    if value is None:
        return "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items() if v is not None) or "defaults"
    if isinstance(value, (list, tuple)):
        return "; ".join(_fmt(v) for v in value)
    return str(value)


def _percent(name: str, value: float) -> str:
    """Accuracies (``top1``, ``top5``, ``mean_class``) as percentages, counts and losses as they are."""
    leaf = name.rsplit("/", 1)[-1]
    return f"{100 * value:.2f}%" if leaf in ("top1", "top5", "mean_class") else f"{value:g}"


def model_card(card: dict[str, Any]) -> str:
    """``README.md``: YAML front matter (:data:`FRONT_MATTER`) and the card's facts for people."""
    backbone, corpus, weights, cfg = card["backbone"], card["corpus"], card["weights"], card["config"]
    n = card["num_classes"]
    pretrained = backbone["pretrained"] if backbone["pretrained"] is not None else "none: random weights"
    lines = [
        "---",
        yaml.safe_dump(FRONT_MATTER, sort_keys=False).rstrip(),
        "---",
        "",
        f"# ALT head: {n} classes on {backbone['model_name']} ({pretrained})",
        "",
        "The trainable head of ALT (*Align before Adapt*, CVPR 2024) trained with "
        "alt-lightning: the entity-to-region alignment's adapter and classifier settings. The "
        "frozen CLIP backbone is **not** in this folder: alt-lightning rebuilds it from open_clip's `model_name` and "
        "`pretrained` and refuses to load the head on a backbone whose fingerprint differs.",
        "",
        "| | |",
        "|---|---|",
        f"| backbone | open_clip `{backbone['model_name']}`, pretrained `{pretrained}` |",
        f"| backbone fingerprint | `{backbone['fingerprint']}` |",
        f"| corpus | {corpus.get('name')} {corpus.get('version')} (sha256 `{corpus.get('hash')}`) |",
        f"| classes | {n} |",
        f"| frames per clip | {cfg['num_frames']} |",
        f"| class prompts | {_fmt(cfg['prompt_templates'])} |",
        f"| entity template | `{cfg['entity_template']}` |",
        f"| alignment | align={cfg['align']}, region={cfg['region']} |",
        f"| encoder | {_fmt(cfg['encoder'])} |",
        f"| adapter | {_fmt(cfg['adapter'])} |",
        f"| weights | `{weights['file']}`: {weights['tensors']} tensors, {weights['parameters']:,} parameters, "
        f"{weights['bytes'] / 1e6:.3f} MB |",
        f"| trained | epoch {card['training']['epoch']}, {card['training']['global_step']} optimizer steps "
        f"(`{card['training']['source']}`) |",
        "",
        "## Metrics of the run",
        "",
    ]
    metrics = card["metrics"]
    if not metrics:
        lines.append(f"{NOT_RECORDED.capitalize()}: the checkpoint holds no monitored metric and no metrics.csv "
                     "was found beside its run.")  # fmt: skip
    if "monitor" in metrics:
        m = metrics["monitor"]
        best = f" (best of the run: {_percent(m['name'], m['best'])})" if m.get("best") is not None else ""
        lines.append(f"- monitored `{m['name']}` when this checkpoint was written: {_percent(m['name'], m['value'])}"
                     f"{best}")  # fmt: skip
    if "logged" in metrics:
        lines.append(f"- logged in epoch {metrics['epoch']} (`metrics.csv` of the run):")
        lines.extend(f"  - `{k}`: {_percent(k, v)}" for k, v in metrics["logged"].items())
    lines += [
        "",
        f"## Classes ({n})",
        "",
        *(f"{i}. {name}" for i, name in enumerate(card["class_names"], 1)),
        "",
        "## Use",
        "",
        "```bash",
        "pip install alt-lightning",
        "alt test --ckpt_path <this folder> [--config <data config>]",
        "alt predict clip.mp4 --ckpt <this folder>",
        "```",
        "",
        "or start a run from it with `model.init_args.init_weights: <this folder>`.",
        "",
        "## Files",
        "",
        "- `model.safetensors`: the trainable weights (safetensors: no code runs on load).",
        "- `config.json`: the settings that rebuild the model (backbone, corpus, classes, model and data arguments).",
        f"- `{CARD_JSON}`: this card's facts as JSON.",
        "",
    ]
    return "\n".join(lines)
