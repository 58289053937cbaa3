"""CLIP text embeddings computed once and cached on disk.

Corpus entities and class prompts are embedded by the frozen text encoder once per (backbone, weights, texts) and
kept in a cache folder (``$ALT_CACHE_DIR`` or ``~/.cache/alt_lightning``), never per step. The cache key holds the
model name, the pretrained tag, a fingerprint of the text tower's weights (so random or fine-tuned weights never
share an entry) and the hash of the exact strings embedded (so it changes with the corpus or the template).

The CLIP model comes from the caller (``model/build.py`` and ``alt corpus embed`` load it with
``model.backbone.load_clip``): text/ never imports model/. :func:`fingerprint`, the weights hash of the cache key,
is also the one ``model/backbone.py`` stores in checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$ALT_CACHE_DIR`` if set, else ``~/.cache/alt_lightning``."""
    return Path(os.environ.get("ALT_CACHE_DIR", Path.home() / ".cache" / "alt_lightning"))


def fingerprint(module: nn.Module) -> str:
    """A short hash of a module's parameters and buffers (names, shapes and values).

    Used to check at load time that a checkpoint meets the same frozen weights it was trained with, and to key the
    text-embedding cache.
    """
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        t = tensor.detach().to("cpu").contiguous()
        # Hash a strided subsample: full ViT-L weights are ~1 GB and a subsample already separates checkpoints.
        flat = t.reshape(-1)
        if flat.numel() > 4096:
            flat = flat[:: flat.numel() // 4096]
        h.update(flat.float().numpy().tobytes())
    return h.hexdigest()[:16]


def text_tower_fingerprint(clip_model: nn.Module) -> str:
    """Fingerprint of everything but the image tower (token embedding, transformer, projection)."""
    text_only = nn.ModuleDict({k: v for k, v in clip_model.named_children() if k != "visual"})
    h = hashlib.sha256(fingerprint(text_only).encode())
    for name, p in clip_model.named_parameters(recurse=False):  # text_projection, positional_embedding, ...
        h.update(name.encode())
        h.update(p.detach().float().reshape(-1)[:: max(1, p.numel() // 1024)].numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def encode_texts(clip_model: nn.Module, model_name: str, texts: list[str], batch_size: int = 256) -> torch.Tensor:
    """Embed strings with a CLIP text encoder.

    Returns:
        L2-normalised float32 embeddings ``[len(texts), C]`` on the CPU.
    """
    tokenizer = open_clip.get_tokenizer(model_name)
    device = next(clip_model.parameters()).device
    out = []
    for i in range(0, len(texts), batch_size):
        tokens = tokenizer(texts[i : i + batch_size]).to(device)  # [b, L]
        out.append(F.normalize(clip_model.encode_text(tokens).float(), dim=-1).cpu())  # [b, C]
    return torch.cat(out) if out else torch.zeros(0, clip_model.text_projection.shape[-1])


def cache_key(model_name: str, pretrained: str | None, tower_fp: str, texts: list[str]) -> str:
    """The cache file stem for one set of texts under one text tower."""
    h = hashlib.sha256(json.dumps([model_name, pretrained or "", tower_fp, texts]).encode()).hexdigest()[:20]
    return f"{model_name.replace('/', '_')}-{(Path(pretrained).name if pretrained else 'random')}-{h}"


def cached_text_embeddings(
    model_name: str,
    pretrained: str | None,
    texts: list[str],
    *,
    clip_model: nn.Module,
    cache_dir: str | Path | None = None,
    return_info: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, dict[str, object]]:
    """Embeddings of ``texts`` by the backbone's text encoder, from the cache when present.

    Args:
        model_name: open_clip architecture name.
        pretrained: Pretrained tag or weights file (part of the key).
        texts: The exact strings to embed.
        clip_model: The loaded CLIP model of that name and weights (its text tower's fingerprint is in the key).
        cache_dir: Cache folder; ``None`` uses :func:`default_cache_dir`.
        return_info: Also return ``{"path", "hit"}``.

    Returns:
        ``[len(texts), C]`` L2-normalised float32 embeddings (and the info dict when asked).
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = (
        folder
        / "text_embeddings"
        / f"{cache_key(model_name, pretrained, text_tower_fingerprint(clip_model), texts)}.pt"
    )
    hit = path.is_file()
    if hit:
        emb = torch.load(path, weights_only=True, map_location="cpu")
        log.debug("text embeddings from cache %s", path)
    else:
        emb = encode_texts(clip_model, model_name, texts)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(emb, tmp)
        tmp.replace(path)  # atomic: concurrent DDP ranks may write the same entry
    return (emb, {"path": str(path), "hit": hit}) if return_info else emb


def class_text_embeddings(
    model_name: str,
    pretrained: str | None,
    prompts: list[list[str]],
    *,
    clip_model: nn.Module,
    cache_dir: str | Path | None = None,
) -> torch.Tensor:
    """One embedding per class: the renormalised mean over its prompt templates.

    Args:
        model_name: open_clip architecture name.
        pretrained: Pretrained tag or weights file.
        clip_model: The loaded CLIP model of that name and weights.
        cache_dir: Cache folder; ``None`` uses :func:`default_cache_dir`.
        prompts: ``[N][P]`` prompts (see :func:`alt_lightning.text.prompts.build_prompts`).

    Returns:
        ``[N, C]`` L2-normalised embeddings.
    """
    n, p = len(prompts), len(prompts[0]) if prompts else 0
    flat = [s for group in prompts for s in group]
    emb = cached_text_embeddings(model_name, pretrained, flat, clip_model=clip_model, cache_dir=cache_dir)
    emb = emb.view(n, p, -1).mean(1)  # [N, C]
    return F.normalize(emb, dim=-1)
