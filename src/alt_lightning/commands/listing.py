"""``alt list [WHAT]``: what ships with the package, by the names the other commands take.

::

    alt list              # backbones, corpora, class lists and config presets
    alt list presets      # only the --config preset names

Backbones are ``model_name`` values (``ALTModule``, ``alt predict --model_name``): the ALT presets of
``alt_lightning.model.config``, open_clip's CLIP ViTs with OpenAI weights, and our own model configs (random weights).
Corpora are ``corpus`` values, class lists ``classes`` / ``--labels`` values, config presets ``--config`` values.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from alt_lightning.commands import ArgumentParser

SECTIONS = ("backbones", "corpora", "classes", "presets")


def build_parser() -> ArgumentParser:
    """Arguments of ``alt list``."""
    p = ArgumentParser(prog="alt list", description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("what", nargs="*", metavar="WHAT", help=f"sections to print: {', '.join(SECTIONS)} (default: all)")
    return p


def backbone_lines() -> list[str]:
    """``model_name`` values: ALT presets, CLIP ViTs with OpenAI weights, our model configs."""
    import open_clip

    from alt_lightning.model.backbone import model_config_dir
    from alt_lightning.model.config import PRESETS

    lines = ["ALT presets (alt bench/flops --preset; model_name, pretrained, frames):"]
    for name, cfg in PRESETS.items():
        lines.append(f"  {name:<14} {cfg.model_name} ({cfg.pretrained or 'random weights'}), {cfg.num_frames} frames")
    vits = sorted({m for m, tag in open_clip.list_pretrained() if tag == "openai" and m.startswith("ViT-")})
    lines.append("open_clip CLIP ViTs with OpenAI weights (model_name, pretrained: openai; other tags: open_clip's):")
    lines += [f"  {m}" for m in vits]
    lines.append("our model configs (random weights unless pretrained names a file):")
    lines += [f"  {p.stem}" for p in sorted(model_config_dir().glob("*.json"))]
    return lines


def corpus_lines() -> list[str]:
    """Shipped entity corpora (``corpus`` values) with their entity counts."""
    from alt_lightning.text.corpus import load_corpus, shipped_corpora

    lines = []
    for name in shipped_corpora():
        corpus = load_corpus(name)
        lines.append(f"  {name:<20} {len(corpus.records)} entities, version {corpus.version}")
    return lines


def class_lines() -> list[str]:
    """Shipped class lists (``classes`` / ``--labels`` values) with their class counts."""
    from alt_lightning.text.classes import SHIPPED_LISTS, class_names

    return [f"  {name:<16} {len(class_names(name))} classes" for name in SHIPPED_LISTS]


def preset_lines() -> list[str]:
    """Config presets (``--config`` values) with the first comment line of each file."""
    from alt_lightning.lightning.presets import config_presets

    lines = []
    for name, path in config_presets().items():
        lines.append(f"  {name:<32} {_first_comment(path)}".rstrip())
    return lines


def _first_comment(path: Path, width: int = 90) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            text = line.lstrip("# ").strip()
            return text if len(text) <= width else text[: width - 3] + "..."
        if line.strip():
            break
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``alt list``."""
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    unknown = [w for w in args.what if w not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    wanted = args.what or list(SECTIONS)
    makers = {
        "backbones": ("backbones (model_name)", backbone_lines),
        "corpora": ("entity corpora (corpus)", corpus_lines),
        "classes": ("class lists (classes, --labels)", class_lines),
        "presets": ("config presets (--config NAME)", preset_lines),
    }
    blocks = []
    for section in SECTIONS:
        if section in wanted:
            title, make = makers[section]
            blocks.append("\n".join([f"{title}:", *make()]))
    print("\n\n".join(blocks))
    return 0
