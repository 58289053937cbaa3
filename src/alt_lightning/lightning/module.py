"""ALTModule: the LightningModule around the pure-torch :class:`~alt_lightning.model.alt.ALT`.

It builds the model through ``configure_*`` hooks (override one in a subclass to change one piece), wires the
steps, the loss, the metrics (multi-view scores aggregated per video, exact under DDP), the optimizer and the
schedule, and keeps checkpoints small: the frozen backbone is rebuilt from ``(model_name, pretrained)`` and only
its fingerprint is stored.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, is_dataclass
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

import alt_lightning
from alt_lightning.model.adapter import AdapterConfig, QueryAdapter
from alt_lightning.model.alignment import AlignmentConfig, EntityAligner
from alt_lightning.model.alt import ALT, ALTOutput, EncoderConfig
from alt_lightning.model.backbone import PreprocessConfig, fingerprint, load_clip, preprocess_config
from alt_lightning.model.classifier import TextClassifier, class_prompts
from alt_lightning.model.region_encoder import RegionEncoder
from alt_lightning.text.embeddings import cached_text_embeddings, class_text_embeddings

log = logging.getLogger(__name__)


def _as_config(value: Any, cls: type) -> Any:
    """Accept a config dataclass, a dict of its fields, or ``None`` (defaults)."""
    if value is None:
        return cls()
    if isinstance(value, dict):
        return cls(**value)
    return value


class ALTModule(pl.LightningModule):
    """ALT for supervised, zero-shot and few-shot video action recognition.

    Args:
        class_names: Class names in label order (linked from the DataModule by the CLI).
        model_name: open_clip architecture (``ViT-B-16``, ``ViT-L-14``, ``alt-tiny``).
        pretrained: open_clip tag (``openai``), a weights file, or ``None`` for random weights.
        encoder: :class:`EncoderConfig` (ToMe ``r``, unfreezing).
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
        label_smoothing: Cross-entropy label smoothing (our choice 0.0; X-CLIP uses 0.1 with mixup).
        optimizer: Optimizer factory taking parameter groups (only trainable parameters; norms, biases, scales,
            position tables and learnable queries in a group without weight decay). Our choice (paper silent):
            ``None`` gives AdamW, lr 1e-3, weight decay 0.05; alternatives: any ``torch.optim`` class in the config.
        scheduler: LR scheduler factory taking the optimizer (stepped per epoch, as Lightning does by default).
            Our choice: ``None`` gives linear warmup then cosine decay per step over
            ``trainer.estimated_stepping_batches``.
        warmup_fraction: Share of all steps used for warmup by the default schedule (our choice 0.1).
        cache_dir: Text-embedding cache folder (default ``$ALT_CACHE_DIR`` or ``~/.cache/alt_lightning``).
        init_weights: A checkpoint whose trainable weights initialise this model (e.g. few-shot "from the K400
            model" instead of from CLIP). Unlike ``--ckpt_path`` it restores no optimizer, epoch or schedule.
    """

    def __init__(
        self,
        class_names: list[str] | None = None,
        model_name: str = "ViT-B-16",
        pretrained: str | None = "openai",
        encoder: EncoderConfig | None = None,
        alignment: AlignmentConfig | None = None,
        adapter: AdapterConfig | None = None,
        corpus: str = "alt-entities-v1",
        entity_template: str = "a photo of {unit}. {description}",
        prompt_templates: str | list[str] = "single",
        align: bool = True,
        region: bool = True,
        label_smoothing: float = 0.0,
        optimizer: OptimizerCallable | None = None,
        scheduler: LRSchedulerCallable | None = None,
        warmup_fraction: float = 0.1,
        cache_dir: str | None = None,
        init_weights: str | None = None,
    ) -> None:
        super().__init__()
        # Hyper-parameters must load with weights_only=True: plain data only (dataclasses as dicts, no callables).
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        for key in ("encoder", "alignment", "adapter"):
            if is_dataclass(self.hparams.get(key)):
                self.hparams[key] = asdict(self.hparams[key])
        self.encoder_config = _as_config(encoder, EncoderConfig)
        self.alignment_config = _as_config(alignment, AlignmentConfig)
        self.adapter_config = _as_config(adapter, AdapterConfig)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.class_names = list(class_names or [])
        if not self.class_names:
            raise ValueError(
                "ALTModule needs class_names: the CLI links them from the DataModule; in Python pass the list."
            )
        clip = load_clip(model_name, pretrained)
        # The CLIP text tower is needed only to embed texts; keep it outside the module tree (not moved to the GPU,
        # not checkpointed) so zero-shot class swaps can embed new names.
        object.__setattr__(self, "_clip", clip)
        self.preprocess_config: PreprocessConfig = preprocess_config(clip)
        self.clip_logit_scale = float(clip.logit_scale.exp().item()) if hasattr(clip, "logit_scale") else 100.0
        self.corpus_info: dict[str, Any] = {}

        encoder_module = self.configure_backbone(clip)
        self.backbone_fingerprint = fingerprint(encoder_module.visual)
        self.model = ALT(
            encoder=encoder_module,
            aligner=self.configure_aligner() if align else None,
            adapter=self.configure_adapter(encoder_module),
            classifier=self.configure_classifier(),
            region=region,
        )
        self.loss_fn = self.configure_loss()
        metrics = self.configure_metrics(len(self.class_names))
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self._eval_outputs: list[dict[str, torch.Tensor]] = []
        self.last_eval: dict[str, Any] = {}
        if init_weights:
            self.load_trainable_weights(init_weights)

    def load_trainable_weights(self, path: str) -> None:
        """Copy the trainable weights of a checkpoint into this model (same backbone, corpus may differ).

        Raises:
            RuntimeError: If the checkpoint's backbone differs, or its weights do not fit this model.
        """
        checkpoint = torch.load(path, weights_only=True, map_location="cpu")
        meta = checkpoint.get("alt", {})
        if meta.get("backbone_fingerprint") not in (None, self.backbone_fingerprint):
            raise RuntimeError(
                f"init_weights={path} was trained on backbone fingerprint {meta.get('backbone_fingerprint')}, this "
                f"model has {self.backbone_fingerprint} ({self.hparams.model_name}, {self.hparams.pretrained!r})."
            )
        self.on_load_checkpoint(checkpoint)  # fills in the frozen weights, warns on another corpus
        result = self.load_state_dict(checkpoint["state_dict"], strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise RuntimeError(
                f"init_weights={path} does not fit this model: missing {result.missing_keys[:5]}, unexpected "
                f"{result.unexpected_keys[:5]} (different adapter settings or ablation switches?)."
            )
        log.info("initialised trainable weights from %s", path)

    # ------------------------------------------------------------------ configure_* hooks (override these)
    def configure_backbone(self, clip: nn.Module) -> RegionEncoder:
        """The region encoder around the CLIP vision tower."""
        c = self.encoder_config
        return RegionEncoder(
            clip.visual,
            r=c.r,
            trainable_blocks=c.trainable_blocks,
            keep_source=c.keep_source,
            proportional_attention=c.proportional_attention,
        )

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        """CLIP text embeddings ``[len(texts), C]`` of arbitrary strings (cached on disk)."""
        h = self.hparams
        return cached_text_embeddings(h.model_name, h.pretrained, texts, clip_model=self._clip, cache_dir=h.cache_dir)

    def configure_aligner(self) -> EntityAligner:
        """The alignment head over the corpus's text embeddings."""
        from alt_lightning.text.corpus import load_corpus

        corpus = load_corpus(self.hparams.corpus)
        self.corpus_info = {
            "name": corpus.name,
            "version": corpus.version,
            "hash": corpus.hash,
            "size": len(corpus),
        }
        embeddings = self.embed_texts(corpus.texts(self.hparams.entity_template))  # [K, C]
        self.entity_units = list(corpus.units)
        return EntityAligner(embeddings, self.alignment_config, clip_logit_scale=self.clip_logit_scale)

    def configure_adapter(self, encoder: RegionEncoder) -> QueryAdapter:
        """The query adapter, as wide as the joint space (one token per frame in the cls-only ablation)."""
        num_regions = encoder.num_regions if self.hparams.region else 1
        return QueryAdapter(
            encoder.out_dim, self.adapter_config, num_regions=num_regions, entity_queries=self.hparams.align
        )

    def class_embeddings(self, class_names: list[str]) -> torch.Tensor:
        """Prompt embeddings ``[N, C]`` of class names (readable names in every template; cached on disk)."""
        h = self.hparams
        return class_text_embeddings(
            h.model_name,
            h.pretrained,
            class_prompts(class_names, h.prompt_templates),
            clip_model=self._clip,
            cache_dir=h.cache_dir,
        )

    def configure_classifier(self) -> TextClassifier:
        """The text classifier over the class names."""
        return TextClassifier(
            self.class_embeddings(self.class_names), logit_scale=self.clip_logit_scale, class_names=self.class_names
        )

    def configure_loss(self) -> nn.Module:
        """Cross-entropy (with the configured label smoothing)."""
        return nn.CrossEntropyLoss(label_smoothing=self.hparams.label_smoothing)

    def configure_metrics(self, num_classes: int) -> MetricCollection:
        """Top-1, top-5 and mean-class accuracy."""
        return MetricCollection(
            {
                "top1": MulticlassAccuracy(num_classes, top_k=1),
                "top5": MulticlassAccuracy(num_classes, top_k=min(5, num_classes)),
                "mean_class": MulticlassAccuracy(num_classes, average="macro"),
            }
        )

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Trainable parameters only; no weight decay on norms, biases, scales and position tables."""
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim <= 1 or name.endswith(("_pos", "queries")) else decay).append(p)
        if not decay and not no_decay:
            raise ValueError(
                "ALTModule has no trainable parameters: the adapter returned by configure_adapter has none and the "
                "backbone is frozen (encoder.trainable_blocks=0)."
            )
        groups = [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
        return [g for g in groups if g["params"]]

    def configure_optimizers(self) -> dict[str, Any]:
        """Injected optimizer/scheduler factories, or AdamW with warmup + cosine per step."""
        groups = self.parameter_groups()
        if self.optimizer_factory is not None:
            optimizer = self.optimizer_factory(groups)
        else:
            optimizer = torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.05)
        if self.scheduler_factory is not None:
            scheduler = self.scheduler_factory(optimizer)
            config: dict[str, Any] = {"scheduler": scheduler}
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                config["monitor"] = "val/top1"  # the only metric every validation epoch logs
            return {"optimizer": optimizer, "lr_scheduler": config}
        total = max(1, int(self.trainer.estimated_stepping_batches)) if self._trainer is not None else 1
        warmup = int(self.hparams.warmup_fraction * total)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # ------------------------------------------------------------------ label space
    def set_class_names(self, class_names: list[str]) -> None:
        """Swap the label space (zero-shot): new prompt embeddings, same weights."""
        self.class_names = list(class_names)
        self.model.classifier.set_class_embeddings(self.class_embeddings(self.class_names), self.class_names)
        metrics = self.configure_metrics(len(self.class_names)).to(self.device)
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.train_metrics = metrics.clone(prefix="train/")

    # ------------------------------------------------------------------ steps
    def cast_frozen_weights(self) -> None:
        """With ``encoder.cast_frozen_bf16`` on a GPU with bf16 precision, store the frozen backbone in bf16 once."""
        trainer = self._trainer
        precision = str(getattr(trainer, "precision", "")) if trainer is not None else ""
        if self.encoder_config.cast_frozen_bf16 and self.device.type == "cuda" and precision.startswith("bf16"):
            self.model.encoder.cast_frozen_(torch.bfloat16)

    def on_fit_start(self) -> None:  # noqa: D102
        self.cast_frozen_weights()

    def on_test_start(self) -> None:  # noqa: D102
        self.cast_frozen_weights()

    def on_predict_start(self) -> None:  # noqa: D102
        self.cast_frozen_weights()

    def forward(self, video: torch.Tensor) -> ALTOutput:
        """Run ALT on clips ``[B, T, 3, S, S]``."""
        return self.model(video)

    def _forward_batch(self, batch: dict[str, Any]) -> ALTOutput:
        """ALT on a batch of decoded clips (``"video"``) or of cached frozen-backbone tokens (``"tokens"``).

        Batches from :class:`~alt_lightning.datamodules.CachedFeatureDataModule` carry the region encoder's output
        ``[B, T, 1+R, C]`` (stored once, since the backbone is frozen), so the encoder is skipped.
        """
        if "tokens" not in batch:
            return self(batch["video"])
        tokens = batch["tokens"]  # [B, T, 1+R, C]
        if tokens.dtype in (torch.float16, torch.bfloat16):
            tokens = tokens.float()  # stored in half precision; the trainable head runs as on decoded clips
        z, ids, confidence = self.model.forward_features(tokens)
        return ALTOutput(self.model.classifier(z), z, ids, confidence, batch.get("sizes"), batch.get("source"))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Cross-entropy on one batch of clips."""
        out = self._forward_batch(batch)
        loss = self.loss_fn(out.logits, batch["label"])
        self.train_metrics.update(out.logits.detach(), batch["label"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["label"]))
        return loss

    def on_train_epoch_end(self) -> None:
        """Log the epoch's training accuracy."""
        self.log_dict(self.train_metrics.compute(), sync_dist=True)
        self.train_metrics.reset()

    def _eval_step(self, batch: dict[str, Any]) -> None:
        out = self._forward_batch(batch)
        self._eval_outputs.append(
            {
                "index": batch["index"].detach(),
                "label": batch["label"].detach(),
                "ok": batch["ok"].detach(),
                "probs": out.logits.detach().float().softmax(-1),
            }
        )

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Collect per-view scores (aggregated per video at epoch end)."""
        self._eval_step(batch)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Collect per-view scores (aggregated per video at epoch end)."""
        self._eval_step(batch)

    def on_validation_epoch_start(self) -> None:  # noqa: D102
        self._eval_outputs = []

    on_test_epoch_start = on_validation_epoch_start

    def on_validation_epoch_end(self) -> None:  # noqa: D102
        self._finish_eval(self.val_metrics, "val")

    def on_test_epoch_end(self) -> None:  # noqa: D102
        self._finish_eval(self.test_metrics, "test")

    def _finish_eval(self, metrics: MetricCollection, stage: str) -> None:
        """Gather every rank's views, average the scores of each video's decoded views, compute metrics."""
        n = len(self.class_names)

        def cat(key: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
            if self._eval_outputs:
                return torch.cat([o[key] for o in self._eval_outputs])
            return torch.zeros(shape, dtype=dtype, device=self.device)  # a rank with no items still gathers

        index = gather_variable(self, cat("index", (0,), torch.long))
        label = gather_variable(self, cat("label", (0,), torch.long))
        ok = gather_variable(self, cat("ok", (0,), torch.bool))
        probs = gather_variable(self, cat("probs", (0, n), torch.float))
        self._eval_outputs = []
        if index.numel() == 0:
            return
        result = aggregate_views(index, label, ok, probs)
        metrics.reset()
        if result["label"].numel():
            metrics.update(result["probs"], result["label"])
            values = {k: v for k, v in metrics.compute().items()}
        else:
            values = {f"{stage}/{k}": torch.tensor(0.0) for k in ("top1", "top5", "mean_class")}
        values[f"{stage}/videos"] = torch.tensor(float(result["num_videos"]))
        values[f"{stage}/failed_videos"] = torch.tensor(float(result["num_failed"]))
        if result["num_failed"]:
            warnings.warn(
                f"{result['num_failed']} of {result['num_videos']} {stage} videos could not be decoded and are not "
                "scored; see bad_videos.csv in the log folder.",
                stacklevel=1,
            )
        self.last_eval = {
            "stage": stage,
            **{k: v for k, v in result.items() if k != "probs"},
            "probs": result["probs"],
        }
        # Every rank holds identical gathered values, so no further reduction is needed.
        self.log_dict(values, prog_bar=stage == "val", sync_dist=False, rank_zero_only=False)
        metrics.reset()

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Scores and alignment explanations per clip."""
        out = self._forward_batch(batch)
        return {
            "video_id": batch["video_id"],
            "index": batch["index"],
            "probs": out.logits.float().softmax(-1),
            "entity_ids": out.entity_ids,
            "confidence": out.confidence,
        }

    # ------------------------------------------------------------------ checkpoints
    def frozen_keys(self) -> list[str]:
        """State-dict keys of frozen backbone weights (never written to checkpoints)."""
        return [f"model.encoder.{k}" for k, p in self.model.encoder.named_parameters() if not p.requires_grad] + [
            f"model.encoder.{k}" for k, _ in self.model.encoder.named_buffers()
        ]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Drop frozen weights; record backbone fingerprint, corpus and class names."""
        if checkpoint.get("hyper_parameters", {}).get("init_weights"):
            # The weights are in this checkpoint; loading it must not need the file they first came from.
            checkpoint["hyper_parameters"]["init_weights"] = None
        frozen = set(self.frozen_keys())
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k not in frozen}
        checkpoint["alt"] = {
            "package_version": alt_lightning.__version__,
            "model_name": self.hparams.model_name,
            "pretrained": self.hparams.pretrained,
            "backbone_fingerprint": self.backbone_fingerprint,
            "corpus": dict(self.corpus_info),
            "class_names": list(self.class_names),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Check the backbone and corpus, and fill in the frozen weights from the rebuilt backbone."""
        meta = checkpoint.get("alt", {})
        saved_fp = meta.get("backbone_fingerprint")
        if saved_fp is not None and saved_fp != self.backbone_fingerprint:
            raise RuntimeError(
                f"This checkpoint was trained on backbone {meta.get('model_name')} (pretrained="
                f"{meta.get('pretrained')!r}, fingerprint {saved_fp}) but the model now has fingerprint "
                f"{self.backbone_fingerprint} ({self.hparams.model_name}, pretrained={self.hparams.pretrained!r}). "
                "Build the module with the checkpoint's model_name and pretrained weights."
            )
        saved_corpus = meta.get("corpus") or {}
        if saved_corpus and self.corpus_info and saved_corpus.get("hash") != self.corpus_info.get("hash"):
            warnings.warn(
                f"Checkpoint corpus {saved_corpus.get('name')} {saved_corpus.get('version')} "
                f"({str(saved_corpus.get('hash'))[:12]}) differs from the loaded corpus {self.corpus_info.get('name')} "
                f"{self.corpus_info.get('version')} ({str(self.corpus_info.get('hash'))[:12]}): entity queries will "
                "differ from training.",
                stacklevel=1,
            )
        state = checkpoint["state_dict"]
        own = self.state_dict()
        for key in self.frozen_keys():
            state.setdefault(key, own[key])


def warmup_cosine(warmup_steps: int, total_steps: int, final: float = 0.0) -> Callable[[int], float]:
    """LR multiplier: linear warmup to 1, then cosine decay to ``final``."""

    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def gather_variable(module: pl.LightningModule, tensor: torch.Tensor) -> torch.Tensor:
    """All-gather tensors whose first dimension differs between ranks (evaluation without padding)."""
    if module._trainer is None or module.trainer.world_size == 1:
        return tensor
    size = torch.tensor([tensor.shape[0]], device=module.device)
    sizes = module.all_gather(size).reshape(-1)  # [W]
    padded = torch.zeros((int(sizes.max()), *tensor.shape[1:]), dtype=tensor.dtype, device=module.device)
    padded[: tensor.shape[0]] = tensor
    gathered = module.all_gather(padded)  # [W, max, ...]
    return torch.cat([gathered[r, : int(s)] for r, s in enumerate(sizes.tolist())])


def aggregate_views(index: torch.Tensor, label: torch.Tensor, ok: torch.Tensor, probs: torch.Tensor) -> dict[str, Any]:
    """Average the scores of each video's decoded views.

    Args:
        index: ``[V]`` video (record) index of each view.
        label: ``[V]`` label of each view.
        ok: ``[V]`` whether the view decoded.
        probs: ``[V, N]`` class probabilities of each view.

    Returns:
        ``probs`` ``[M, N]`` and ``label`` ``[M]`` of the ``M`` videos with at least one decoded view, their
        ``index``, the ``views`` counted per video, and ``num_videos``/``num_failed`` counts.

    Raises:
        RuntimeError: If a view was scored twice (a sampler that pads or duplicates would bias the metrics).
    """
    videos = torch.unique(index)
    n_views = torch.bincount(index - index.min(), minlength=1)
    views_per_video = n_views[n_views > 0]
    if views_per_video.min() != views_per_video.max():
        raise RuntimeError(
            f"Videos were scored with different numbers of views ({views_per_video.min()}-{views_per_video.max()}): "
            "a sampler padded or dropped items. Evaluation must see every view exactly once."
        )
    sums = torch.zeros(len(videos), probs.shape[1], device=probs.device)
    counts = torch.zeros(len(videos), device=probs.device)
    pos = torch.searchsorted(videos, index)
    okf = ok.float()
    sums.index_add_(0, pos, probs * okf[:, None])
    counts.index_add_(0, pos, okf)
    labels = torch.zeros(len(videos), dtype=torch.long, device=probs.device)
    labels[pos] = label
    good = counts > 0
    return {
        "index": videos[good],
        "probs": sums[good] / counts[good, None],
        "label": labels[good],
        "views": int(views_per_video[0]),
        "num_videos": len(videos),
        "num_failed": int((~good).sum()),
    }


def trainable_parameters(module: nn.Module) -> Iterable[nn.Parameter]:
    """Parameters that receive gradients."""
    return (p for p in module.parameters() if p.requires_grad)
