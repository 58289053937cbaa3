"""ALT's settings as one dataclass, and the named presets of the paper's models.

:class:`ALTConfig` gathers everything that decides the model: the backbone, the settings of each component, the
ablation switches, the entity corpus, the class prompts and the frame count.
:func:`~alt_lightning.model.build.build_alt` builds an :class:`~alt_lightning.model.alt.ALT` from it. ``ALTModule``
takes the same fields as flat arguments (so configs and checkpoints stay flat) and assembles an ``ALTConfig`` from
them. ``configs/model/*.yaml`` hold the presets as YAML (tested equal), without the frame count, which the CLI links
from ``data.num_frames``.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

from alt_lightning.model.adapter import AdapterConfig
from alt_lightning.model.alignment import AlignmentConfig
from alt_lightning.model.alt import EncoderConfig


@dataclass
class ALTConfig:
    """Everything that decides an ALT model.

    Args:
        model_name: open_clip architecture (``ViT-B-16``, ``ViT-L-14``, ``alt-tiny``).
        pretrained: open_clip tag (``openai``), a weights file, or ``None`` for random weights.
        encoder: :class:`EncoderConfig` (ToMe ``r``, unfreezing); a dict of its fields is accepted.
        alignment: :class:`AlignmentConfig` (scale, Gumbel temperature, hard assignment).
        adapter: :class:`AdapterConfig` (layers, heads, top-M, temporal conv, cls residual).
        corpus: Entity corpus: a shipped name (``alt-entities-v1``) or a corpus file.
        entity_template: How a corpus entity becomes text for CLIP. Our choice (paper silent): unit plus its
            description; alternatives: ``"{unit}"`` alone, or ``"a photo of {unit}."``.
        prompt_templates: Class prompt: ``"single"`` (``"a video of a person {}."``), ``"ensemble"`` (our
            8-template ensemble, embeddings averaged), one template or a list of templates with ``{}``. Our choice
            (paper silent): ``"single"``, as X-CLIP and ViFi-CLIP.
        align: Entity queries (paper) or learnable queries (ablation ``align``).
        region: Region tokens (paper) or frame cls tokens only (ablation ``region``).
        num_frames: Frames per clip ``T``: the rows of the adapter's frame and temporal position tables (unless
            ``adapter.max_frames`` sets them, as checkpoints written before this field did). Under the ``alt``
            command it is linked from ``data.num_frames``, so it is given once.
    """

    model_name: str = "ViT-B-16"
    pretrained: str | None = "openai"
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    corpus: str = "alt-entities-v1"
    entity_template: str = "a photo of {unit}. {description}"
    prompt_templates: str | list[str] = "single"
    align: bool = True
    region: bool = True
    num_frames: int = 8

    def __post_init__(self) -> None:
        for name, cls in (("encoder", EncoderConfig), ("alignment", AlignmentConfig), ("adapter", AdapterConfig)):
            value = getattr(self, name)
            if value is None:
                setattr(self, name, cls())
            elif isinstance(value, dict):
                setattr(self, name, cls(**value))
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}.")

    @classmethod
    def preset(cls, name: str) -> ALTConfig:
        """A named preset (a fresh copy): one of :data:`PRESETS`.

        Raises:
            ValueError: For an unknown name (the known ones are listed).
        """
        if name not in PRESETS:
            raise ValueError(f"Unknown ALT preset {name!r}; known: {', '.join(PRESETS)}.")
        return copy.deepcopy(PRESETS[name])

    @classmethod
    def for_backbone(cls, model_name: str) -> ALTConfig:
        """The preset of a backbone (``ViT-B-16`` -> ``alt-b16-8f``), or the defaults with that backbone."""
        for name, preset in PRESETS.items():
            if preset.model_name == model_name:
                return cls.preset(name)
        return cls(model_name=model_name)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (component settings as dicts): the flat model arguments of ``ALTModule``."""
        return asdict(self)


#: The paper's models (README, "Reference results") and the tiny random-weight model of the tests and the demo.
#: ALT-B/16 takes 8 frames on Kinetics-400 (paper) and 32 in the zero-/few-shot protocols (as the peers do);
#: 32 frames for ALT-L/14 is our reading of its 4947 GFLOPs (the paper does not state its input). ToMe r = 8 is our
#: reading of the paper's 328 GFLOPs; the adapter's width is the backbone's joint space, its heads divide it.
PRESETS: dict[str, ALTConfig] = {
    "alt-b16-8f": ALTConfig(),
    "alt-b16-32f": ALTConfig(num_frames=32),
    "alt-l14": ALTConfig(model_name="ViT-L-14", adapter=AdapterConfig(heads=12), num_frames=32),
    "alt-tiny": ALTConfig(
        model_name="alt-tiny", pretrained=None, encoder=EncoderConfig(r=2), adapter=AdapterConfig(heads=4)
    ),
}
