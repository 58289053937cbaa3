"""``alt predict VIDEO [VIDEO...] --labels ...``: top-k classes of video files and the entities that explain them.

::

    alt predict clip.mp4 --labels "riding a bike,playing guitar" [--ckpt_path runs/alt/latest/checkpoints/best.ckpt]
    alt predict a.mp4 b.mp4 --labels kinetics400 --ckpt_path k400.ckpt --topk 5 --png-dir explain/
    alt predict clip.mp4 --labels my_labels.txt --config configs/model/alt_b16.yaml      # zero-shot, no weights

Without ``--ckpt_path`` (``--ckpt``, its older spelling) the prediction is zero-shot from the backbone alone: the
adapter's residual weight is set to 0, so the video vector is CLIP's mean frame embedding; the alignment (a frozen,
parameter-free head) still explains it.

Explanations come from the alignment (:mod:`alt_lightning.explain`, shared with the heatmap callback): every region of
every sampled frame was matched to one corpus entity with some confidence. For each entity the table reports how much
of the frames' area its regions cover (share) and their mean confidence, over all sampled frames and clips; the PNG's
legend prints the same numbers. An entity explains a class when regions matched it *and* its text embedding is closer
to that class's prompt than to the other labels' prompts (the scoring rule is in
:mod:`alt_lightning.explain.evidence`).

A video that cannot be read gets one line (``path: reason``) and costs the others nothing: their tables, JSON and
images are written, and the exit status is 1. ``alt predict --config fit.yaml`` with no video arguments is
LightningCLI's datamodule-based ``predict``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alt_lightning.commands import ArgumentParser
from alt_lightning.data.dataset import DECODE_ERRORS, SamplingConfig, VideoDataset, error_reason
from alt_lightning.data.records import VideoRecord
from alt_lightning.data.transforms import ClipTransform
from alt_lightning.explain import (
    MATPLOTLIB_MISSING,
    ClassPrediction,
    EntityEvidence,
    Heatmap,
    clip_heatmap,
    entity_patch_map,
    explain_class,
    matplotlib_available,
    output_evidence,
    source_kept,
    write_png,
)


@dataclass
class VideoPrediction:
    """The result for one video file; ``error`` (and no classes) when it could not be read.

    ``heatmap`` is the picture written to ``png`` (with its legend and caption as data); not part of the JSON.
    """

    path: str
    top: list[ClassPrediction]
    evidence: list[EntityEvidence]
    png: str | None = None
    error: str | None = None
    heatmap: Heatmap | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "path": self.path,
            "top": [
                {
                    "label": p.label,
                    "score": p.score,
                    "entities": [{**asdict(e), "relevance": r} for e, r in p.entities],
                }
                for p in self.top
            ],
            "evidence": [asdict(e) for e in self.evidence],
            "png": self.png,
            "error": self.error,
        }


# ----------------------------------------------------------------------------------------------- pure helpers
def parse_labels(spec: str) -> list[str]:
    """Class names from a file (one per line, or ``id,name`` CSV), a shipped list name, or a comma-separated list.

    Raises:
        ValueError: If the result is empty or has duplicates.
    """
    from alt_lightning.text.classes import SHIPPED_LISTS, read_class_file

    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix == ".csv":
            from alt_lightning.data.parsers import read_label_names_csv

            return read_label_names_csv(path)
        return read_class_file(path)
    if spec in SHIPPED_LISTS:
        from alt_lightning.text.classes import class_names

        return class_names(spec)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if len(names) < 2:
        raise ValueError(
            f"--labels {spec!r} is neither a file, a shipped list ({', '.join(SHIPPED_LISTS)}) nor a comma-separated "
            "list of at least two class names."
        )
    if len(set(names)) != len(names):
        raise ValueError(f"--labels has duplicate names: {sorted({n for n in names if names.count(n) > 1})}.")
    return names


def png_names(paths: Sequence[str | Path]) -> list[str]:
    """Distinct image file names for the inputs, in order.

    ``<stem>.png`` for a stem no other input has; ``<name>.png`` when stems clash (``test.avi``, ``test.mp4``);
    ``<name>-<position>.png`` when names clash too (``a/test.mp4``, ``b/test.mp4``). Names are compared without case,
    as case-insensitive file systems (macOS, Windows) would.
    """
    stems = Counter(Path(p).stem.lower() for p in paths)
    names = Counter(Path(p).name.lower() for p in paths)
    out: list[str | None] = [f"{Path(p).stem}.png" if stems[Path(p).stem.lower()] == 1 else None for p in paths]
    taken = {n.lower() for n in out if n is not None}
    for i, p in enumerate(paths):
        if out[i] is not None:
            continue
        name = Path(p).name
        candidate = f"{name}.png" if names[name.lower()] == 1 else f"{name}-{i + 1}.png"
        k = i + 1
        while candidate.lower() in taken:  # another input's plain name (``test.avi.mp4`` -> ``test.avi.png``)
            candidate = f"{name}-{k}.png"
            k += 1
        taken.add(candidate.lower())
        out[i] = candidate
    return [n for n in out if n is not None]


def _import(class_path: str) -> type:
    import importlib

    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


# ----------------------------------------------------------------------------------------------- model
def build_model(args: argparse.Namespace, labels: list[str] | None) -> tuple[Any, dict[str, Any]]:
    """The module (eval mode) and the data settings (``num_frames``, ``test_clips``) to sample with.

    The configs and the checkpoint are read as ``alt test --config ... --ckpt_path`` reads them (the CLI's parser,
    nothing else instantiated): the checkpoint's model settings under the configs', its data settings when the
    configs name no DataModule, its model class over a config's. The frame count is decided first (``--num_frames``,
    else the checkpoint's, else the data's), since it sizes the model's temporal tables.
    """
    from alt_lightning.lightning.checkpoints import read_checkpoint
    from alt_lightning.lightning.cli import parse_config
    from alt_lightning.lightning.module import expect_checkpoint

    overrides = {k: getattr(args, k) for k in ("model_name", "pretrained", "corpus") if getattr(args, k) is not None}
    saved = read_checkpoint(args.ckpt) if args.ckpt else None
    if saved is not None:
        labels = labels or saved.class_names
        if not labels:
            raise ValueError(f"{args.ckpt} stores no class names: pass --labels.")
    elif not labels:
        raise ValueError("--labels is required without --ckpt_path.")
    configs = [a for c in args.config or [] for a in ("--config", str(c))]
    cfg = parse_config(["predict", *configs, *([f"--ckpt_path={args.ckpt}"] if args.ckpt else [])])
    cls = _import(cfg.model.class_path)
    skip = ("optimizer", "scheduler", "class_names")
    init = {k: v for k, v in cfg.model.init_args.as_dict().items() if k not in skip}
    init.update(overrides)
    if args.r is not None:  # ToMe r has no weights of its own: entity-query checkpoints run at any r
        init["encoder"] = {**(init.get("encoder") or {}), "r": args.r}
    data = cfg.data.init_args.as_dict() if cfg.get("data") is not None else {}
    frames = getattr(args, "num_frames", None) or (saved.model_args.get("num_frames") if saved else None)
    data["num_frames"] = init["num_frames"] = frames or data.get("num_frames") or 8
    if saved is None:
        model = cls(class_names=labels, **init)
        adapter = model.model.adapter
        if getattr(adapter, "gamma", None) is not None:
            # No trained adapter: z = mean frame cls embedding, i.e. CLIP's own zero-shot classifier.
            adapter.gamma.data.zero_()
        else:
            print("warning: no checkpoint and no cls residual: the adapter is untrained (random).", file=sys.stderr)
    else:
        # The trainable weights come from the checkpoint (init_weights: checked against the backbone, as alt test).
        with expect_checkpoint(saved.path, saved.meta) as expected:
            try:
                model = cls(class_names=labels, **{**init, "init_weights": saved.path})
            except Exception:
                if expected.error is not None:
                    raise expected.error from None
                raise
    model.eval()
    return model, data


# ----------------------------------------------------------------------------------------------- prediction
def _video_dataset(paths: Sequence[str], model: Any, num_frames: int, clips: int) -> VideoDataset:
    cfg = model.preprocess_config
    records = [VideoRecord(path=str(p), label=-1, video_id=Path(p).stem) for p in paths]
    return VideoDataset(
        records,
        ClipTransform(cfg.image_size, cfg.mean, cfg.std, train=False),
        SamplingConfig(num_frames=num_frames, num_clips=clips),
        train=False,
        split="predict",
    )


@torch.no_grad()
def predict_videos(
    model: Any,
    paths: Sequence[str],
    *,
    num_frames: int = 8,
    clips: int = 1,
    topk: int = 5,
    entities: int = 3,
    png_dir: str | Path | None = None,
    png_frames: int | None = 8,
) -> list[VideoPrediction]:
    """Classify video files and explain the top-k classes with the entities their regions matched.

    Args:
        model: An ``ALTModule`` (eval mode).
        paths: Video files.
        num_frames: Frames per clip.
        clips: Temporal clips per video (scores averaged).
        topk: Classes per video.
        entities: Explaining entities per class.
        png_dir: Write ``<stem>.png`` (:func:`png_names`) with region-to-entity heatmaps there (``None``: none).
        png_frames: Frames of the first clip drawn per image, evenly spaced (``None``: all; the caption says which).

    Returns:
        One result per path, in order; a video that cannot be read has ``error`` set (its reason) and no classes.
    """
    ds = _video_dataset(paths, model, num_frames, clips)
    images = png_names(paths)
    names = list(getattr(model, "entity_units", []))
    aligner = model.model.aligner
    encoder = model.model.encoder
    draw = png_dir is not None and aligner is not None and model.model.region
    if draw and not matplotlib_available():
        print(f"warning: {MATPLOTLIB_MISSING}", file=sys.stderr)
    results = []
    with source_kept(encoder, draw):
        for i, path in enumerate(paths):
            try:
                views = ds.load_views(ds.records[i], range(ds.num_views))  # one open, one pass for every view
            except DECODE_ERRORS as err:  # one bad file must not cost the others their results
                results.append(VideoPrediction(str(path), [], [], error=error_reason(err)))
                continue
            video = torch.stack(views).to(model.device)  # [V, T, 3, S, S]
            out = model(video)
            probs = out.logits.float().softmax(-1).mean(0).cpu()  # [N]
            k = min(topk, probs.numel())
            scores, ids = probs.topk(k)
            # Over every frame of every view: what the table, the JSON and the PNG's legend all print.
            evidence = output_evidence(out, names, model.model.region) if aligner is not None else []
            top = []
            for c, s in zip(ids.tolist(), scores.tolist(), strict=True):
                expl = []
                if evidence:
                    expl = explain_class(
                        evidence,
                        aligner.entities.cpu(),
                        model.model.classifier.class_embeddings.cpu(),
                        c,
                        entities,
                    )
                top.append(ClassPrediction(model.class_names[c], float(s), expl))
            png, heatmap = None, None
            if draw and out.source is not None and png_dir is not None:
                ent, conf = entity_patch_map(
                    out.source[0].cpu(), out.entity_ids[0].cpu(), out.confidence[0].cpu(), encoder.grid_size
                )
                cfg = model.preprocess_config
                title = f"{Path(path).name}: {top[0].label} ({100 * top[0].score:.1f}%)"
                heatmap = clip_heatmap(
                    video[0].cpu(),
                    ent,
                    conf,
                    evidence,
                    names,
                    cfg.mean,
                    cfg.std,
                    max_frames=png_frames,
                    title=title,
                    view=(0, len(views)),
                )
                png = str(write_png(Path(png_dir) / images[i], heatmap.image))
            results.append(VideoPrediction(str(path), top, evidence, png, heatmap=heatmap))
    return results


def prediction_table(pred: VideoPrediction, show_evidence: int = 6) -> Table:
    """A rich table of one video's top-k classes with the explaining entities."""
    table = Table(title=escape(pred.path), title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("class")
    table.add_column("score", justify="right")
    table.add_column("entities that explain it (area share, confidence)")
    for i, p in enumerate(pred.top, 1):
        expl = ", ".join(f"{escape(e.name)} ({100 * e.share:.0f}%, {e.confidence:.2f})" for e, _ in p.entities)
        table.add_row(str(i), escape(p.label), f"{100 * p.score:.1f}%", expl or "–")
    if pred.evidence:
        matched = ", ".join(escape(e.summary()) for e in pred.evidence[:show_evidence])  # as the PNG's legend
        table.caption = f"regions matched: {matched}" + (f"\nheatmaps: {escape(pred.png)}" if pred.png else "")
        table.caption_justify = "left"
    return table


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``alt predict VIDEO...``."""
    p = ArgumentParser(
        prog="alt predict",
        description="Top-k classes of video files and the entities (from the region alignment) that explain them. "
        "Without --ckpt_path: zero-shot from the backbone alone.",
        epilog="exit status: 0 when every video was classified; 1 when some could not be read (each named on one "
        "line, the others' tables, JSON and images are still written); 2 on a usage error. Without VIDEO, alt predict "
        "is LightningCLI's predict over a DataModule (alt predict --config CONFIG --ckpt_path X.ckpt); "
        "`alt predict --config CONFIG --help` lists its options.",
    )
    p.add_argument("videos", nargs="*", metavar="VIDEO", help="video files")
    p.add_argument(
        "--videos", dest="more_videos", nargs="+", default=[], metavar="VIDEO", help="video files (alternative form)"
    )
    p.add_argument("--labels", help="class names: a file (one per line or id,name CSV), a shipped list, or a,b,c")
    p.add_argument(
        "--ckpt_path",
        dest="ckpt",
        metavar="CKPT",
        help="a checkpoint of `alt fit` or a folder of `alt export` (default: none, zero-shot from the backbone)",
    )
    p.add_argument("--ckpt", dest="ckpt", help=argparse.SUPPRESS)  # the older spelling, kept working
    p.add_argument("--config", action="append", help="fit config(s) to read the model settings from (repeatable)")
    p.add_argument("--model_name", help="open_clip architecture (default ViT-B-16, or the config's)")
    p.add_argument(
        "--pretrained",
        help="open_clip tag (needs a download once) or a local weights file (default openai, or the config's)",
    )
    p.add_argument("--corpus", help="entity corpus (default the model's)")
    p.add_argument("--r", type=int, help="ToMe merges per block (default the model's)")
    p.add_argument("--num_frames", type=int, help="frames per clip (default the checkpoint's/config's, else 8)")
    p.add_argument("--clips", type=int, default=1, help="temporal clips per video, scores averaged (default 1)")
    p.add_argument("--topk", type=int, default=5, help="classes per video (default 5)")
    p.add_argument("--entities", type=int, default=3, help="explaining entities per class (default 3)")
    p.add_argument("--png-dir", dest="png_dir", help="write <video>.png with region-to-entity heatmaps here")
    p.add_argument("--json", help="also write the results as JSON")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default cuda when available)")
    return p


def is_video_predict(argv: list[str]) -> bool:
    """``alt predict VIDEO ...`` (or an option only it has): per-video prediction; else LightningCLI's ``predict``.

    An option LightningCLI's ``predict`` lacks (``--labels``, ``--videos``, ``--png-dir``, ``--ckpt``, ...), an
    argument that names a video file (``alt predict --ckpt_path X.ckpt clip.mp4``: class names from the checkpoint)
    or a bare ``--help`` (this command's help; ``alt predict --config C --help`` is LightningCLI's) route here.
    """
    from alt_lightning.data.parsers import VIDEO_EXTENSIONS

    own = {o.replace("-", "_") for a in build_parser()._actions for o in a.option_strings}
    own -= {"__config", "__ckpt_path", "_h", "__help"}
    if any(a.split("=")[0].replace("-", "_") in own for a in argv if a.startswith("--")):
        return True
    if any(Path(a).suffix.lower() in VIDEO_EXTENSIONS for a in argv if not a.startswith("-")):
        return True
    if bool(argv) and all(a in ("-h", "--help") for a in argv):
        return True
    return bool(argv) and not argv[0].startswith("-")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``alt predict``: video files here, anything else LightningCLI's ``predict``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not is_video_predict(argv):
        from alt_lightning.commands.trainer import run_predict

        return run_predict(argv)
    args = build_parser().parse_args(argv)
    videos = [*args.videos, *args.more_videos]
    console = Console()
    if not videos:
        console.print("[red]no video files given[/red] (alt predict VIDEO [VIDEO...] --labels ...)")
        return 2
    if not any(Path(v).is_file() for v in videos):  # nothing to do: do not load a model for it
        console.print(f"[red]not found:[/red] {', '.join(escape(m) for m in videos)}")
        return 2
    if not args.ckpt and not args.config and args.model_name is None:
        args.model_name, args.pretrained = "ViT-B-16", args.pretrained or "openai"
    labels = parse_labels(args.labels) if args.labels else None
    from alt_lightning.lightning.checkpoints import CheckpointFormatError
    from alt_lightning.lightning.module import CheckpointMismatchError

    try:
        model, data = build_model(args, labels)
    except (CheckpointMismatchError, CheckpointFormatError) as err:  # as `alt test --ckpt_path` says it
        Console(stderr=True, highlight=False).print(escape("\n".join(err.lines("alt predict"))), soft_wrap=True)
        return 2
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    num_frames = args.num_frames or int(data.get("num_frames") or 8)
    results = predict_videos(
        model,
        videos,
        num_frames=num_frames,
        clips=args.clips,
        topk=args.topk,
        entities=args.entities,
        png_dir=args.png_dir,
    )
    mode = f"checkpoint {args.ckpt}" if args.ckpt else "zero-shot from the backbone alone (no checkpoint)"
    console.print(
        f"{escape(model.hparams.model_name)} ({escape(str(model.hparams.pretrained))}), {mode}, "
        f"{len(model.class_names)} labels, {num_frames} frames x {args.clips} clip(s)"
    )
    errors = Console(stderr=True, highlight=False)
    for r in results:
        if r.error is not None:
            errors.print(f"{escape(r.path)}: {escape(r.error)}", soft_wrap=True)
        else:
            console.print(prediction_table(r))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps([r.to_json() for r in results], indent=2) + "\n")
    failed = sum(r.error is not None for r in results)
    if failed:
        done = "the others' results are written"
        errors.print(f"{failed} of {len(results)} videos could not be read (named above); {done}", soft_wrap=True)
        return 1
    return 0
