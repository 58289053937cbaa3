"""Building ALT from an :class:`~alt_lightning.model.config.ALTConfig`: the one place where the model is assembled.

::

    config = ALTConfig.preset("alt-b16-8f")
    model = build_alt(config, ["riding a bike", "playing guitar"])  # CLIP weights, corpus and prompts embedded
    flops_model = build_alt(config, 400, corpus_size=2270, clip=random_clip)  # random texts: no text tower runs

Four parts are built, in pipeline order, by four hooks: ``configure_backbone(clip)``, ``configure_aligner()``,
``configure_adapter(encoder)`` and ``configure_classifier()``. :class:`ALTParts` implements them from the config;
``ALTModule`` inherits them (it is an :class:`ALTParts`) and passes itself, so that a subclass that overrides one
hook changes that part wherever the module is built.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any, Protocol

import torch

from alt_lightning.model.adapter import QueryAdapter
from alt_lightning.model.alignment import EntityAligner
from alt_lightning.model.alt import ALT
from alt_lightning.model.backbone import ClipModel, load_clip
from alt_lightning.model.classifier import TextClassifier, class_prompts
from alt_lightning.model.config import ALTConfig
from alt_lightning.model.region_encoder import RegionEncoder
from alt_lightning.text.embeddings import cached_text_embeddings, class_text_embeddings


class PartHooks(Protocol):
    """What builds ALT's four parts (:class:`ALTParts`, or an ``ALTModule`` and its subclasses)."""

    def configure_backbone(self, clip: ClipModel) -> RegionEncoder:
        """The region encoder around ``clip.visual``."""
        ...

    def configure_aligner(self) -> EntityAligner:
        """The alignment head over the corpus (called only with ``config.align``)."""
        ...

    def configure_adapter(self, encoder: RegionEncoder) -> QueryAdapter:
        """The adapter from frame tokens to one video vector."""
        ...

    def configure_classifier(self) -> TextClassifier:
        """The classifier over the class names."""
        ...


def load_backbone(config: ALTConfig, device: str | torch.device = "cpu", image_size: int | None = None) -> ClipModel:
    """The open_clip CLIP model of ``config`` (``pretrained=None``: random weights, seed 0).

    Args:
        config: Gives ``model_name`` and ``pretrained``.
        device: ``"meta"`` builds shapes only (FLOP counting: no memory, no weights, no download).
        image_size: Another input side than the architecture's (random weights only).
    """
    if device == "meta" or image_size is not None:
        if config.pretrained:
            raise ValueError("A meta-device or resized backbone has random weights: set pretrained=None.")
        import open_clip

        from alt_lightning.model.backbone import register_model_configs

        register_model_configs()
        kwargs: dict[str, Any] = {} if image_size is None else {"force_image_size": image_size}
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)  # open_clip warns that no pretrained weights were loaded: that is the point
        try:
            with torch.device(device):
                return open_clip.create_model(config.model_name, device=device, **kwargs).eval()
        finally:
            logging.disable(previous)
    return load_clip(config.model_name, config.pretrained, device=device)


def clip_logit_scale(clip: ClipModel) -> float:
    """CLIP's ``exp(logit_scale)`` (100 for OpenAI weights; 100 for a model without one or on ``meta``)."""
    scale = getattr(clip, "logit_scale", None)
    if not isinstance(scale, torch.Tensor) or scale.is_meta:
        return 100.0
    return float(scale.exp().item())


class ALTParts:
    """ALT's four parts as the config describes them (the default :class:`PartHooks`).

    Texts become CLIP text embeddings of this backbone (cached on disk), unless sizes are given instead: then the
    corpus and class embeddings are random, and no text tower runs (FLOP counts, benchmarks, tests). ``ALTModule``
    inherits these hooks (and :meth:`embed_texts` / :meth:`class_embeddings`), so a subclass overrides any of them.

    Args:
        config: The model's settings.
        clip: The open_clip model (its text tower embeds the texts; its logit scale scales the similarities). Kept
            outside any module tree: a module that inherits this class neither moves it nor checkpoints it.
        class_names: Class names in label order, or a number of classes (random embeddings).
        corpus_size: ``None`` embeds ``config.corpus``; a number draws that many random entity embeddings.
        cache_dir: Text-embedding cache folder (``None``: ``$ALT_CACHE_DIR`` or ``~/.cache/alt_lightning``).

    Attributes:
        corpus_info: ``name``, ``version``, ``hash`` and ``size`` of the embedded corpus (empty until it is).
        entity_units: The corpus entities by id (empty for a random corpus).
        clip_logit_scale: CLIP's ``exp(logit_scale)``, the scale of the classifier (and of the alignment by default).
    """

    _clip: ClipModel  # set with object.__setattr__: never a submodule

    def __init__(
        self,
        config: ALTConfig,
        clip: ClipModel,
        class_names: Sequence[str] | int,
        corpus_size: int | None = None,
        cache_dir: str | None = None,
    ) -> None:
        self.config = config
        object.__setattr__(self, "_clip", clip)  # not a submodule when this is mixed into an nn.Module
        self.class_names = class_names if isinstance(class_names, int) else list(class_names)
        self.corpus_size = corpus_size
        self.cache_dir = cache_dir
        self.clip_logit_scale = clip_logit_scale(clip)
        self.corpus_info: dict[str, Any] = {}
        self.entity_units: list[str] = []

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        """CLIP text embeddings ``[len(texts), C]`` of arbitrary strings (cached on disk)."""
        c = self.config
        return cached_text_embeddings(
            c.model_name, c.pretrained, texts, clip_model=self._clip, cache_dir=self.cache_dir
        )

    def class_embeddings(self, class_names: list[str]) -> torch.Tensor:
        """Prompt embeddings ``[N, C]`` of class names (readable names in every template; cached on disk)."""
        c = self.config
        prompts = class_prompts(class_names, c.prompt_templates)
        return class_text_embeddings(
            c.model_name, c.pretrained, prompts, clip_model=self._clip, cache_dir=self.cache_dir
        )

    def entity_embeddings(self) -> torch.Tensor:
        """``[K, C]`` embeddings of the corpus entities (``corpus_size`` random ones), filling :attr:`corpus_info`."""
        if self.corpus_size is not None:
            return torch.randn(self.corpus_size, _joint_width(self._clip))
        from alt_lightning.text.corpus import load_corpus

        corpus = load_corpus(self.config.corpus)
        self.corpus_info = {"name": corpus.name, "version": corpus.version, "hash": corpus.hash, "size": len(corpus)}
        self.entity_units = list(corpus.units)
        return self.embed_texts(corpus.texts(self.config.entity_template))  # [K, C]

    def configure_backbone(self, clip: ClipModel) -> RegionEncoder:
        """The region encoder around the CLIP vision tower."""
        c = self.config.encoder
        return RegionEncoder(
            clip.visual,
            r=c.r,
            trainable_blocks=c.trainable_blocks,
            keep_source=c.keep_source,
            proportional_attention=c.proportional_attention,
            attention=c.attention,
            compile=c.compile,
        )

    def configure_aligner(self) -> EntityAligner:
        """The alignment head over the corpus's text embeddings."""
        return EntityAligner(self.entity_embeddings(), self.config.alignment, clip_logit_scale=self.clip_logit_scale)

    def configure_adapter(self, encoder: RegionEncoder) -> QueryAdapter:
        """The query adapter, as wide as the joint space (one token per frame in the cls-only ablation)."""
        c = self.config
        return QueryAdapter(
            encoder.out_dim,
            c.adapter,
            num_regions=encoder.num_regions if c.region else 1,
            entity_queries=c.align,
            num_frames=c.num_frames,
        )

    def configure_classifier(self) -> TextClassifier:
        """The text classifier over the class names (random embeddings for a number of classes)."""
        if isinstance(self.class_names, int):
            return TextClassifier(
                torch.randn(self.class_names, _joint_width(self._clip)), logit_scale=self.clip_logit_scale
            )
        names = list(self.class_names)
        return TextClassifier(self.class_embeddings(names), logit_scale=self.clip_logit_scale, class_names=names)


def _joint_width(clip: ClipModel) -> int:
    """Width ``C`` of the joint image-text space (the visual projection's output)."""
    visual = clip.visual
    proj = getattr(visual, "proj", None)
    return int(proj.shape[1]) if proj is not None else int(visual.transformer.width)


def build_alt(
    config: ALTConfig,
    class_names: Sequence[str] | int,
    *,
    corpus_size: int | None = None,
    clip: ClipModel | None = None,
    parts: PartHooks | None = None,
    encoder: RegionEncoder | None = None,
    cache_dir: str | None = None,
) -> ALT:
    """Build ALT: region encoder -> alignment (with ``config.align``) -> adapter -> classifier.

    Args:
        config: The model's settings.
        class_names: Class names in label order, or a number of classes (random class embeddings).
        corpus_size: ``None`` embeds ``config.corpus`` with CLIP's text tower; a number draws that many random
            entity embeddings instead.
        clip: The open_clip model; ``None`` loads ``(config.model_name, config.pretrained)``.
        parts: What builds the parts; ``None``: :class:`ALTParts` of the arguments above.
        encoder: The region encoder when already built (``ALTModule`` checks the backbone's fingerprint against a
            checkpoint's before the corpus and prompts are embedded); ``None``: ``parts.configure_backbone(clip)``.
        cache_dir: Text-embedding cache folder (default ``$ALT_CACHE_DIR`` or ``~/.cache/alt_lightning``).

    Returns:
        The :class:`ALT` module, on the backbone's device (``meta`` for a meta-device backbone).
    """
    if encoder is None:
        clip = load_backbone(config) if clip is None else clip
        parts = parts or ALTParts(config, clip, class_names, corpus_size=corpus_size, cache_dir=cache_dir)
        encoder = parts.configure_backbone(clip)
    elif parts is None:
        raise ValueError("build_alt: an already built encoder needs the parts that build the rest (parts=...).")
    device = next(encoder.parameters()).device
    # A meta-device backbone (FLOP counting): the other parts are built there too, with no memory.
    with contextlib.nullcontext() if device.type == "cpu" else torch.device(device):
        aligner = parts.configure_aligner() if config.align else None
        adapter = parts.configure_adapter(encoder)
        classifier = parts.configure_classifier()
    return ALT(encoder, aligner, adapter, classifier, region=config.region)
