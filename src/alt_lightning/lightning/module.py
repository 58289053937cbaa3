"""ALTModule: the LightningModule around the pure-torch :class:`~alt_lightning.model.alt.ALT`.

It builds the model with :func:`~alt_lightning.model.build.build_alt` through the ``configure_*`` hooks it inherits
from :class:`~alt_lightning.model.build.ALTParts` (override one in a subclass to change one piece), wires the steps,
the loss, the metrics (multi-view scores aggregated per video, exact under DDP: :mod:`.metrics`), the optimizer and
the schedule, and keeps checkpoints small: the frozen backbone is rebuilt from ``(model_name, pretrained)`` and only
its fingerprint is stored.
"""

from __future__ import annotations

import inspect
import logging
import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, TypeVar

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities.types import LRSchedulerConfigType, OptimizerLRSchedulerConfig
from torch import nn
from torchmetrics import MetricCollection

import alt_lightning
from alt_lightning.errors import UserError
from alt_lightning.lightning.checkpoints import load_checkpoint
from alt_lightning.lightning.metrics import aggregate_views, count_videos, gather_variable, video_metrics
from alt_lightning.model.adapter import AdapterConfig
from alt_lightning.model.alignment import AlignmentConfig
from alt_lightning.model.alt import ALTOutput, EncoderConfig
from alt_lightning.model.backbone import PreprocessConfig, fingerprint, preprocess_config
from alt_lightning.model.build import ALTParts, build_alt, load_backbone
from alt_lightning.model.config import ALTConfig

log = logging.getLogger(__name__)

#: Video counts of an evaluation (``<stage>/videos_<name>``, see :meth:`ALTModule.video_counts`):
#: listed = evaluated + failed + missing + not_run.
VIDEO_COUNTS = ("listed", "evaluated", "failed", "missing", "not_run")


class CheckpointMismatchError(UserError, RuntimeError):
    """A checkpoint does not fit the model built to load it (other backbone, other class, other settings)."""


@dataclass
class ExpectedCheckpoint:
    """The checkpoint that the module being built will load, and the mismatch found while building, if any.

    Attributes:
        path: The checkpoint (named in the error).
        meta: Its ``"alt"`` entry (``model_name``, ``pretrained``, ``backbone_fingerprint``).
        error: The error raised by the constructor (kept here because config parsers such as jsonargparse wrap what
            a constructor raises into their own errors).
    """

    path: str
    meta: dict[str, Any]
    error: CheckpointMismatchError | None = None

    def fail(self, why: str) -> CheckpointMismatchError:
        """Record and return the error of a mismatch."""
        self.error = CheckpointMismatchError(f"{self.path}: {why}")
        return self.error


#: Set by the ``alt`` command around instantiation, so the backbone is checked before texts are embedded.
_EXPECTED_CHECKPOINT: ContextVar[ExpectedCheckpoint | None] = ContextVar("alt_expected_checkpoint", default=None)


@contextmanager
def expect_checkpoint(path: str, meta: dict[str, Any]) -> Iterator[ExpectedCheckpoint]:
    """Modules built in this block check their backbone against the checkpoint's ``alt`` meta as soon as it exists.

    Args:
        path: The checkpoint (named in the error).
        meta: Its ``"alt"`` entry.

    Yields:
        The :class:`ExpectedCheckpoint`, whose ``error`` is set when a constructor refused the checkpoint.
    """
    expected = ExpectedCheckpoint(path, meta)
    token = _EXPECTED_CHECKPOINT.set(expected)
    try:
        yield expected
    finally:
        _EXPECTED_CHECKPOINT.reset(token)


def backbone_mismatch(
    meta: dict[str, Any], model_name: str, pretrained: str | None, fingerprint: str | None = None
) -> str | None:
    """Why a checkpoint's backbone (its ``alt`` meta) differs from this one, or ``None`` when it may be the same.

    Without ``fingerprint`` only the architecture is compared (another ``model_name`` cannot hold the same weights);
    with it, the frozen weights themselves.
    """
    saved_name, saved_fp = meta.get("model_name"), meta.get("backbone_fingerprint")
    if fingerprint is None:
        if saved_name is None or saved_name == model_name:
            return None
    elif saved_fp is None or saved_fp == fingerprint:
        return None
    now = f"model_name={model_name!r}, pretrained={pretrained!r}"
    if fingerprint:
        now += f", fingerprint {fingerprint}"
    return (
        f"the checkpoint was trained on the backbone model_name={saved_name!r}, pretrained={meta.get('pretrained')!r} "
        f"(fingerprint {saved_fp}) but the model has {now}: build it with the checkpoint's model_name and pretrained "
        "weights (drop the overriding --model.init_args.model_name / pretrained)."
    )


#: What :meth:`ALTModule.build_parts` sets: reading one before it ran builds the parts (see ``ALTModule.__getattr__``).
_BUILT_ATTRIBUTES = frozenset(
    {
        "model",
        "loss_fn",
        "train_metrics",
        "val_metrics",
        "test_metrics",
        "backbone_fingerprint",
        "preprocess_config",
        "corpus_info",
        "entity_units",
        "clip_logit_scale",
        "class_names",
        "last_eval",
        "_eval_outputs",
    }
)


_Built = TypeVar("_Built")


def _detached(state: torch.Tensor | list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
    """A copy on the CPU of a metric state (a tensor, or a list of them for concatenating states)."""
    if isinstance(state, torch.Tensor):
        return state.detach().cpu().clone()
    return [t.detach().cpu().clone() for t in state]


class BuildAfterInit(type):
    """Metaclass of :class:`ALTModule`: ``Cls(...)`` runs the whole constructor chain, then ``build_parts()``.

    So the ``configure_*`` hooks run after a subclass's own ``__init__`` has set its attributes, whatever the order
    of its lines. Each class keeps its constructor's signature (``__signature__``), which config parsers
    (jsonargparse, ``LightningCLI``) and ``inspect.signature`` read.
    """

    def __init__(cls, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(name, bases, namespace, **kwargs)
        # Without it, inspect.signature(cls) would show this metaclass's __call__(*args, **kwargs).
        sig = inspect.signature(cls.__init__)  # type: ignore[misc]  # read on the class itself, not an instance
        cls.__signature__ = sig.replace(parameters=list(sig.parameters.values())[1:])

    def __call__(cls: type[_Built], *args: Any, **kwargs: Any) -> _Built:
        """Construct, then build the parts."""
        # type.__call__, not super(): this frame must not look like a constructor to Lightning's
        # save_hyperparameters, which collects the arguments of the chain of __init__ frames above it.
        obj: Any = type.__call__(cls, *args, **kwargs)
        obj.build_parts()
        return obj


class ALTModule(pl.LightningModule, ALTParts, metaclass=BuildAfterInit):
    """ALT for supervised, zero-shot and few-shot video action recognition.

    Subclassing: override a ``configure_*`` hook to change one part. The parts are built by :meth:`build_parts`
    after the whole constructor chain has run (:class:`BuildAfterInit`), so a subclass may take its own arguments in
    the natural way and its hooks may read them::

        class ScaledALT(ALTModule):
            def __init__(self, scale: float = 0.1, **kwargs):
                super().__init__(**kwargs)
                self.scale = scale  # set after super().__init__(): configure_adapter still sees it

            def configure_adapter(self, encoder):
                return MyAdapter(encoder.out_dim, scale=self.scale)

    Its arguments are hyper-parameters like ALT's own: set from a config (``model.init_args.scale``), saved in
    checkpoints and restored by ``alt test --ckpt_path`` / ``load_from_checkpoint``. Inside a constructor, reading a
    built part (``self.model``, ``self.loss_fn``, the metrics) builds the parts there and then, with the attributes
    set so far.

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
        num_frames: Frames per clip: the rows of the adapter's position tables. The ``alt`` command links it from
            ``data.num_frames`` (never set it in a config); in Python pass the DataModule's.
        label_smoothing: Cross-entropy label smoothing (our choice 0.0; X-CLIP uses 0.1 with mixup).
        optimizer: Optimizer factory taking parameter groups (only trainable parameters; norms, biases, scales,
            position tables and learnable queries in a group without weight decay). Our choice (paper silent):
            ``None`` gives AdamW, lr 1e-3, weight decay 0.05; alternatives: any ``torch.optim`` class in the config.
        scheduler: LR scheduler factory taking the optimizer (stepped per epoch, as Lightning does by default).
            Our choice: ``None`` gives linear warmup then cosine decay per step over
            ``trainer.estimated_stepping_batches``.
        warmup_fraction: Share of all steps used for warmup by the default schedule (our choice 0.1).
        cache_dir: Text-embedding cache folder (default ``$ALT_CACHE_DIR`` or ``~/.cache/alt_lightning``).
        init_weights: A checkpoint (``.ckpt`` file or ``alt export`` folder) whose trainable weights initialise this
            model (e.g. few-shot "from the K400 model" instead of from CLIP). Unlike ``--ckpt_path`` it restores no
            optimizer, epoch or schedule.
    """

    class_names: list[str]  # always names here (ALTParts also takes a number of classes)

    #: The constructor arguments that are not :class:`~alt_lightning.model.config.ALTConfig` fields.
    NON_CONFIG_ARGS = (
        "class_names",
        "label_smoothing",
        "optimizer",
        "scheduler",
        "warmup_fraction",
        "cache_dir",
        "init_weights",
    )

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
        num_frames: int = 8,
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
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        class_names = list(class_names or [])
        if not class_names:
            raise ValueError(
                "ALTModule needs class_names: the CLI links them from the DataModule; in Python pass the list."
            )
        config = ALTConfig(
            model_name=model_name,
            pretrained=pretrained,
            encoder=encoder if encoder is not None else EncoderConfig(),  # a dataclass or a dict of its fields
            alignment=alignment if alignment is not None else AlignmentConfig(),
            adapter=adapter if adapter is not None else AdapterConfig(),
            align=align,
            region=region,
            corpus=corpus,
            entity_template=entity_template,
            prompt_templates=prompt_templates,
            num_frames=num_frames,
        )
        self.config = config
        self.cache_dir = cache_dir
        # The parts are built by build_parts(), after the whole constructor chain (see the class docstring).
        self._pending_build: tuple[list[str], str | None] | None = (class_names, init_weights)

    def build_parts(self) -> None:
        """Build the model from the ``configure_*`` hooks (once; called right after the whole constructor ran).

        :class:`BuildAfterInit` calls it when the outermost ``__init__`` (a subclass's) has returned, so a hook may
        read attributes a subclass sets after ``super().__init__()``. Reading ``model``, ``loss_fn`` or the metrics
        inside a constructor builds the parts there and then (with the attributes set so far).

        Raises:
            CheckpointMismatchError: If the module is built to load a checkpoint (``alt test --ckpt_path``) whose
                backbone differs (checked before the corpus and class prompts are embedded).
        """
        pending = self.__dict__.get("_pending_build")
        if pending is None:
            return
        self._pending_build = None
        class_names, init_weights = pending
        config: ALTConfig = self.config
        model_name, pretrained = config.model_name, config.pretrained
        expected = _EXPECTED_CHECKPOINT.get()
        if expected is not None and (why := backbone_mismatch(expected.meta, model_name, pretrained)):
            raise expected.fail(why)  # another architecture: not even built
        # The CLIP text tower is needed only to embed texts: ALTParts keeps it outside the module tree (not moved to
        # the GPU, not checkpointed), so zero-shot class swaps can embed new names.
        clip = load_backbone(config)
        ALTParts.__init__(self, config, clip, class_names, cache_dir=self.cache_dir)
        self.preprocess_config: PreprocessConfig = preprocess_config(clip)

        encoder_module = self.configure_backbone(clip)
        self.backbone_fingerprint = fingerprint(encoder_module.visual)
        # Checked here, before the corpus and class prompts are embedded (minutes for ViT-B/16 on a CPU).
        if expected is not None and (
            why := backbone_mismatch(expected.meta, model_name, pretrained, self.backbone_fingerprint)
        ):
            raise expected.fail(why)
        self.model = build_alt(config, class_names, parts=self, encoder=encoder_module)
        self.loss_fn = self.configure_loss()
        metrics = self.configure_metrics(len(self.class_names))
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self._eval_outputs: list[dict[str, torch.Tensor]] = []
        self.last_eval: dict[str, Any] = {}
        if init_weights:
            self.load_trainable_weights(init_weights)

    def __getattr__(self, name: str) -> Any:
        """A built part read before :meth:`build_parts` ran (inside a subclass's constructor) builds the parts."""
        if name in _BUILT_ATTRIBUTES and self.__dict__.get("_pending_build") is not None:
            self.build_parts()
            return getattr(self, name)
        return super().__getattr__(name)

    def load_trainable_weights(self, path: str) -> None:
        """Copy the trainable weights of a checkpoint into this model (same backbone, corpus may differ).

        Args:
            path: A ``.ckpt`` file or an ``alt export`` folder (read by
                :func:`~alt_lightning.lightning.checkpoints.load_checkpoint`).

        Raises:
            RuntimeError: If the checkpoint's backbone differs, or its weights do not fit this model.
        """
        checkpoint = load_checkpoint(path)
        try:
            self.on_load_checkpoint(checkpoint)  # checks backbone and keys, fills in frozen weights, warns on corpus
        except CheckpointMismatchError as err:
            raise CheckpointMismatchError(f"init_weights={path}: {err}") from None
        result = self.load_state_dict(checkpoint["state_dict"], strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise RuntimeError(
                f"init_weights={path} does not fit this model: missing {result.missing_keys[:5]}, unexpected "
                f"{result.unexpected_keys[:5]} (different adapter settings or ablation switches?)."
            )
        log.info("initialised trainable weights from %s", path)

    # ------------------------------------------------------------------ configure_* hooks (override these)
    # configure_backbone(clip), configure_aligner(), configure_adapter(encoder) and configure_classifier() build the
    # model's parts, embed_texts(texts) and class_embeddings(names) its texts: all inherited from ALTParts.

    def configure_loss(self) -> nn.Module:
        """Cross-entropy (with the configured label smoothing)."""
        return nn.CrossEntropyLoss(label_smoothing=self.hparams["label_smoothing"])

    def configure_metrics(self, num_classes: int) -> MetricCollection:
        """Top-1, top-5 and mean-class accuracy over videos (:func:`~alt_lightning.lightning.metrics.video_metrics`).

        Evaluation scores are averaged over each video's views first; ``top1``/``top5`` are micro averages (the share
        of videos), ``mean_class`` the mean recall over the classes present
        (:class:`~alt_lightning.lightning.metrics.MeanClassAccuracy`).
        """
        return video_metrics(num_classes)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Trainable parameters only; no weight decay on norms, biases, scales and position tables."""
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim <= 1 or name.endswith(("_pos", "queries")) else decay).append(p)
        if not decay and not no_decay:
            raise ValueError(
                "ALTModule has no trainable parameters: the adapter returned by configure_adapter has none and the "
                "backbone is frozen (encoder.trainable_blocks=0)."
            )
        groups: list[dict[str, Any]] = [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
        return [g for g in groups if g["params"]]

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        """Injected optimizer/scheduler factories, or AdamW with warmup + cosine per step."""
        groups = self.parameter_groups()
        if self.optimizer_factory is not None:
            optimizer = self.optimizer_factory(groups)
        else:
            optimizer = torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.05)
        if self.scheduler_factory is not None:
            scheduler = self.scheduler_factory(optimizer)
            config: LRSchedulerConfigType = {"scheduler": scheduler}
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                config["monitor"] = "val/top1"  # the only metric every validation epoch logs
            return {"optimizer": optimizer, "lr_scheduler": config}
        total = max(1, int(self.trainer.estimated_stepping_batches)) if self._trainer is not None else 1
        warmup = int(self.hparams["warmup_fraction"] * total)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def use_clip_zero_shot(self) -> None:
        """Evaluate CLIP's own zero-shot classifier: the adapter's residual weight becomes 0.

        The video vector is then the mean frame cls embedding, scored against the class prompts (no trained weights
        are used: ``alt test --zero_shot_from_clip``).

        Raises:
            ValueError: If the adapter has no cls residual (``adapter.cls_residual=false``): its output would be an
                untrained adapter's.
        """
        gamma = getattr(self.model.adapter, "gamma", None)
        if gamma is None:
            raise ValueError(
                "zero-shot from CLIP needs the adapter's cls residual (adapter.cls_residual=true); without it the "
                "video vector is an untrained adapter's output."
            )
        with torch.no_grad():
            gamma.zero_()

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
    def setup(self, stage: str) -> None:
        """Check that the attached DataModule's clips have the frames this model was built for.

        Raises:
            ValueError: If they differ (the ``alt`` command links them; in Python pass the DataModule's).
        """
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        frames = getattr(dm, "num_frames", None)
        if isinstance(frames, int) and frames != self.config.num_frames:
            raise ValueError(
                f"The DataModule gives {frames}-frame clips (data.num_frames) but {type(self).__name__} was built "
                f"with num_frames={self.config.num_frames}: build it with num_frames={frames} (the alt command links "
                "data.num_frames to the model)."
            )
        rows = self.config.adapter.max_frames
        if rows is not None and rows < self.config.num_frames:  # tables sized by a checkpoint older than num_frames
            raise ValueError(
                f"The adapter's temporal tables hold {rows} frames (adapter.max_frames, from an older checkpoint) but "
                f"data.num_frames={self.config.num_frames}: set data.num_frames to {rows} or fewer."
            )

    def cast_frozen_weights(self) -> None:
        """With ``encoder.cast_frozen_bf16`` on a GPU with bf16 precision, store the frozen backbone in bf16 once."""
        trainer = self._trainer
        precision = str(getattr(trainer, "precision", "")) if trainer is not None else ""
        if self.config.encoder.cast_frozen_bf16 and self.device.type == "cuda" and precision.startswith("bf16"):
            self.model.encoder.cast_frozen_(torch.bfloat16)

    def on_fit_start(self) -> None:  # noqa: D102
        self.cast_frozen_weights()

    def on_train_start(self) -> None:
        """Warn, by name, about modules in eval mode outside the frozen backbone (which is in eval mode on purpose).

        Lightning's own warning counts every module in eval mode; the ``alt`` command silences it
        (:mod:`~alt_lightning.lightning.console`) because ALT's frozen backbone layers always are.
        """
        backbone = {id(m) for m in self.model.encoder.modules()}  # RegionEncoder.train() sets its frozen layers' mode
        others = [n for n, m in self.named_modules() if not m.training and id(m) not in backbone]
        if others:
            warnings.warn(
                f"{len(others)} module(s) outside the frozen backbone are in eval mode at the start of training "
                f"({', '.join(others[:5])}): dropout and normalisation statistics behave as in evaluation there.",
                stacklevel=1,
            )

    def on_test_start(self) -> None:  # noqa: D102
        self.cast_frozen_weights()

    def on_predict_start(self) -> None:  # noqa: D102
        self.cast_frozen_weights()

    def forward(self, video: torch.Tensor) -> ALTOutput:
        """Run ALT on clips ``[B, T, 3, S, S]``."""
        return self.model(video)

    def _forward_batch(self, batch: dict[str, Any]) -> ALTOutput:
        """ALT on a batch of decoded clips (``"video"``) or of cached frozen-backbone tokens (``"tokens"``).

        Batches of splits read from the feature cache (the DataModules' ``features`` option) carry the encoder's output
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

    def on_train_epoch_start(self) -> None:
        """Start the epoch's training accuracy from zero (not called when a run resumes mid-epoch)."""
        self.train_metrics.reset()

    def on_train_epoch_end(self) -> None:
        """Log the epoch's training accuracy."""
        self.log_dict(self.train_metrics.compute(), sync_dist=True)
        self.train_metrics.reset()

    def train_metric_counts(self) -> dict[str, dict[str, torch.Tensor | list[torch.Tensor]]]:
        """The training metrics' counts so far this epoch, summed over ranks (every rank must call it under DDP)."""
        out = {}
        for name, metric in self.train_metrics.items(keep_base=True, copy_state=False):
            with metric.sync_context(should_unsync=True):
                out[name] = {k: _detached(v) for k, v in metric.metric_state.items()}
        return out

    def restore_train_metric_counts(self, counts: dict[str, dict[str, torch.Tensor]]) -> None:
        """Continue an interrupted epoch's training accuracy: rank 0 takes the saved totals, other ranks start at 0."""
        if self._trainer is not None and self.trainer.global_rank != 0:
            return
        for name, metric in self.train_metrics.items(keep_base=True, copy_state=False):
            for key, value in counts.get(name, {}).items():
                current = getattr(metric, key)
                if isinstance(current, torch.Tensor) and current.shape == value.shape:
                    setattr(metric, key, value.to(current.device, current.dtype))

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
        counts = self.video_counts(stage, result)
        values.update({f"{stage}/videos_{k}": torch.tensor(float(v)) for k, v in counts.items()})
        if counts["failed"] or counts["missing"]:
            warnings.warn(
                f"{stage}: {counts['failed']} of {counts['listed']} listed videos could not be decoded and "
                f"{counts['missing']} are missing; neither is scored (see bad_videos.csv in the log folder).",
                stacklevel=1,
            )
        if counts["not_run"]:
            warnings.warn(
                f"{stage}: {counts['not_run']} of {counts['listed']} listed videos were not run (limit_{stage}_batches "
                "or an interrupted loop); the metrics cover the other videos only.",
                stacklevel=1,
            )
        self.last_eval = {
            "stage": stage,
            **{k: v for k, v in result.items() if k != "probs"},
            "probs": result["probs"],
            "counts": counts,
        }
        # Every rank holds identical gathered values: the "max" reduction over ranks returns them exactly (and tells
        # Lightning that these epoch-level values are synchronised, so it does not warn under DDP).
        self.log_dict(values, prog_bar=stage == "val", sync_dist=True, reduce_fx="max")
        metrics.reset()

    def video_counts(self, stage: str, result: dict[str, Any]) -> dict[str, int]:
        """What became of every video the annotations list: ``listed = evaluated + failed + missing + not_run``.

        Args:
            stage: ``"val"`` or ``"test"`` (the DataModule's split of the same name).
            result: :func:`aggregate_views` of the gathered views.

        Returns:
            :func:`~alt_lightning.lightning.metrics.count_videos` with the attached DataModule's ``split_accounting``
            (``listed`` records, ``missing`` files); without such a DataModule, what the loader held.
        """
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        split_accounting = getattr(dm, "split_accounting", None)
        accounting = split_accounting(stage) if callable(split_accounting) else None
        return count_videos(result, accounting)

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
        # A checkpoint saved mid-epoch carries the epoch's training-accuracy counts, so that a resumed epoch logs the
        # train/top1 of an uninterrupted one (torchmetrics states are not part of the state_dict).
        checkpoint["alt_train_metrics"] = self.train_metric_counts()
        checkpoint["alt"] = {
            "package_version": alt_lightning.__version__,
            "model_name": self.hparams["model_name"],
            "pretrained": self.hparams["pretrained"],
            "backbone_fingerprint": self.backbone_fingerprint,
            "corpus": dict(self.corpus_info),
            "class_names": list(self.class_names),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Check the backbone, corpus and weights, and fill in the frozen weights from the rebuilt backbone.

        Raises:
            CheckpointMismatchError: Another backbone, or trainable weights of another class or other settings.
        """
        meta = checkpoint.get("alt", {})
        why = backbone_mismatch(meta, self.hparams["model_name"], self.hparams["pretrained"], self.backbone_fingerprint)
        if why:
            raise CheckpointMismatchError(why)
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
        self.fit_temporal_tables(state)
        fitting = self._trainer is not None and self.trainer.state.fn == "fit"
        if fitting and checkpoint.get("alt_train_metrics"):
            self.restore_train_metric_counts(checkpoint["alt_train_metrics"])
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        reshaped = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
        if missing or unexpected or reshaped:
            hparams = checkpoint.get("hyper_parameters") or {}
            saved = str(hparams.get("_class_path") or "")
            mine = f"{type(self).__module__}.{type(self).__qualname__}"
            differ = weight_setting_differences(hparams, dict(self.hparams))
            if saved and saved.rsplit(".", 1)[-1] != type(self).__qualname__:
                fix = f"test it with --model.class_path {saved}"
            else:
                fix = "build the model with the checkpoint's settings (adapter layers/heads, align, region)"
            if differ and not (saved and saved.rsplit(".", 1)[-1] != type(self).__qualname__):
                settings = "; ".join(f"{k}: checkpoint {a!r}, this model {b!r}" for k, a, b in differ)
                raise CheckpointMismatchError(
                    f"the model settings differ from the checkpoint's: {settings}",
                    "set them as the checkpoint has them (or leave them out: alt test/predict restore them from the "
                    "checkpoint).",
                )
            if reshaped and not (missing or unexpected):
                k = reshaped[0]
                raise CheckpointMismatchError(
                    f"the checkpoint's weights do not fit {mine}: {k} is {tuple(state[k].shape)} there, "
                    f"{tuple(own[k].shape)} here; {fix}."
                )
            raise CheckpointMismatchError(
                f"the checkpoint's weights (class {saved or 'unrecorded'}) do not fit {mine}: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}; {fix}."
            )

    def fit_temporal_tables(self, state: dict[str, torch.Tensor]) -> None:
        """Use the first rows of a checkpoint's per-frame position tables; refuse tables shorter than this run's.

        A model trained on 32 frames tests on 8 with the first 8 rows of its tables (the rows of frames 0-7, as a
        clip of 8 frames uses them); one trained on 8 cannot test on 32 (there are no trained rows for frames 8-31).

        Raises:
            CheckpointMismatchError: If a table holds fewer rows than this model's (``data.num_frames``).
        """
        adapter = self.model.adapter
        for name in getattr(adapter, "temporal_tables", ()):
            key = f"model.adapter.{name}"
            saved, own = state.get(key), getattr(adapter, name, None)
            if saved is None or own is None or saved.shape[0] == own.shape[0]:
                continue
            if saved.shape[0] < own.shape[0]:
                raise CheckpointMismatchError(
                    f"the checkpoint's temporal tables hold {saved.shape[0]} frames (the frame count it was trained "
                    f"with) but data.num_frames={own.shape[0]}: set data.num_frames to {saved.shape[0]} or fewer."
                )
            state[key] = saved[: own.shape[0]]


#: Model arguments that shape the trainable weights (compared by :func:`weight_setting_differences`).
WEIGHT_SETTINGS = ("model_name", "encoder", "alignment", "adapter", "align", "region")


def weight_setting_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(setting, checkpoint's value, this model's value)`` for the weight-shaping settings that differ.

    Nested settings are compared key by key (``adapter.mlp_ratio``); a setting the checkpoint does not record is not
    compared (older checkpoints), nor are settings without weights (ToMe ``r``, dropout, pooling, ...),
    ``adapter.max_frames`` and the frame count (tables are cut to the run's frames, see
    :meth:`ALTModule.fit_temporal_tables`).
    """

    def flat(value: Any, prefix: str) -> dict[str, Any]:
        if is_dataclass(value) and not isinstance(value, type):
            value = asdict(value)
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for k, v in value.items():
                out.update(flat(v, f"{prefix}.{k}"))
            return out
        return {prefix: value}

    configs = {"encoder": EncoderConfig, "alignment": AlignmentConfig, "adapter": AdapterConfig}

    def full(key: str, value: Any) -> Any:  # a partial dict or None as its dataclass with the defaults filled in
        cls = configs.get(key)
        if cls is None or is_dataclass(value):
            return value
        try:
            return cls(**dict(value or {}))
        except (TypeError, ValueError):
            return value

    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    for key in WEIGHT_SETTINGS:
        if key in saved and key in current:
            a.update(flat(full(key, saved[key]), key))
            b.update(flat(full(key, current[key]), key))
    skip = {
        "adapter.max_frames",
        "adapter.dropout",
        "adapter.residual_init",
        "adapter.top_m",
        "adapter.pool",
        "encoder.r",
    }
    return [(k, a[k], b[k]) for k in a if k in b and k not in skip and a[k] != b[k]]


def warmup_cosine(warmup_steps: int, total_steps: int, final: float = 0.0) -> Callable[[int], float]:
    """LR multiplier: linear warmup to 1, then cosine decay to ``final``."""

    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))

    return f
