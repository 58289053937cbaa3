"""ALTModule hooks: frozen weights stay out of the optimizer, injected optimizers, zero-shot swap, ablations train,
and a subclass overriding one configure_* hook trains through Lightning."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from alt_lightning.lightning import ALTModule
from alt_lightning.lightning.module import warmup_cosine
from alt_lightning.model.region_encoder import RegionEncoder

NAMES = ["ApplyEyeMakeup", "brush_hair", "playing guitar", "YoYo"]


def _batch(b: int = 2, t: int = 3, n: int = len(NAMES)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(b, t, 3, 64, 64, generator=g), torch.randint(0, n, (b,), generator=g)


def _manual_step(module: ALTModule) -> float:
    """One optimisation step outside a Trainer; returns the loss and checks that trainable weights moved."""
    optimizer = module.configure_optimizers()["optimizer"]
    before = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
    module.train()
    video, label = _batch()
    loss = module.loss_fn(module(video).logits, label)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    moved = [n for n, p in module.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert moved, "no trainable parameter changed"
    return loss.detach().item()


def test_frozen_weights_get_no_gradient_and_are_not_optimised(module_kwargs: dict) -> None:
    module = ALTModule(class_names=NAMES, **module_kwargs)
    optimizer = module.configure_optimizers()["optimizer"]
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    trainable = {id(p) for p in module.parameters() if p.requires_grad}
    assert in_optimizer == trainable and trainable
    assert not in_optimizer & {id(p) for p in module.model.encoder.parameters()}
    decay, no_decay = optimizer.param_groups
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 0.05
    assert all(p.ndim >= 2 for p in decay["params"])
    no_decay_ids = {id(p) for p in no_decay["params"]}
    named = dict(module.named_parameters())
    for name in ("model.adapter.gamma", "model.adapter.frame_pos", "model.adapter.norm_out.weight"):
        assert id(named[name]) in no_decay_ids, name

    assert math.isfinite(_manual_step(module))
    assert all(p.grad is None for p in module.model.encoder.parameters())
    missing = [n for n, p in module.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing


def test_unfrozen_last_block_is_optimised_and_earlier_ones_are_not(module_kwargs: dict) -> None:
    module = ALTModule(class_names=NAMES, **{**module_kwargs, "encoder": {"r": 2, "trainable_blocks": 1}})
    optimizer = module.configure_optimizers()["optimizer"]
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    visual = module.model.encoder.visual
    assert {id(p) for p in visual.transformer.resblocks[1].parameters()} <= in_optimizer
    assert id(visual.proj) in in_optimizer
    assert not in_optimizer & {id(p) for p in visual.transformer.resblocks[0].parameters()}
    assert math.isfinite(_manual_step(module))
    assert all(p.grad is None for p in visual.transformer.resblocks[0].parameters())
    assert visual.transformer.resblocks[1].mlp.c_fc.weight.grad is not None


def test_default_schedule_warms_up_then_decays() -> None:
    f = warmup_cosine(2, 10)
    assert [f(0), f(1), f(2), f(6), f(10)] == pytest.approx([0.5, 1.0, 1.0, 0.5, 0.0])


def test_injected_optimizer_and_scheduler(module_kwargs: dict) -> None:
    module = ALTModule(
        class_names=NAMES,
        optimizer=lambda params: torch.optim.SGD(params, lr=0.1, weight_decay=0.01),
        scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1),
        **module_kwargs,
    )
    config = module.configure_optimizers()
    assert isinstance(config["optimizer"], torch.optim.SGD)
    assert [g["weight_decay"] for g in config["optimizer"].param_groups] == [0.01, 0.0]
    assert isinstance(config["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.StepLR)
    plateau = ALTModule(
        class_names=NAMES, scheduler=lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt), **module_kwargs
    )
    assert plateau.configure_optimizers()["lr_scheduler"]["monitor"] == "val/top1"


def test_zero_shot_swap_equals_a_module_built_with_the_new_names(module_kwargs: dict) -> None:
    new = ["juggling balls", "ride_bike", "PlayingCello"]
    torch.manual_seed(0)
    trained = ALTModule(class_names=NAMES, **module_kwargs).eval()
    fresh = ALTModule(class_names=new, **module_kwargs).eval()
    fresh.load_state_dict(trained.state_dict())
    video, _ = _batch()
    with torch.no_grad():
        assert trained(video).logits.shape == (2, 4)
        trained.set_class_names(new)
        swapped = trained(video).logits
        assert swapped.shape == (2, 3)
        assert torch.allclose(swapped, fresh(video).logits, atol=1e-5)
    assert trained.model.classifier.class_names == new and trained.val_metrics["top1"].num_classes == 3


@pytest.mark.parametrize(
    "ablation",
    [{"align": False}, {"encoder": {"r": 0}}, {"region": False}, {"align": False, "region": False}],
    ids=["align=False", "r=0", "region=False", "no-align-no-region"],
)
def test_every_ablation_trains_one_step(module_kwargs: dict, ablation: dict) -> None:
    module = ALTModule(class_names=NAMES, **{**module_kwargs, **ablation})
    assert (module.model.aligner is None) == (ablation.get("align") is False)
    assert module.model.region == ablation.get("region", True)
    if "encoder" in ablation:
        assert module.model.encoder.num_regions == 16  # no merging: every patch of alt-tiny is a region
    assert math.isfinite(_manual_step(module))


class MeanClsAdapter(nn.Module):
    """A different adapter: a linear map of the mean frame cls token (ignores regions and entities)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, tokens: torch.Tensor, aligned: torch.Tensor | None = None, confidence: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.proj(tokens[:, :, 0].mean(1))  # [B, C]


class CountingLoss(nn.CrossEntropyLoss):
    calls = 0

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        CountingLoss.calls += 1
        return super().forward(logits, target)


class CustomALT(ALTModule):
    def configure_adapter(self, encoder: RegionEncoder) -> nn.Module:
        return MeanClsAdapter(encoder.out_dim)

    def configure_loss(self) -> nn.Module:
        return CountingLoss(label_smoothing=0.1)


def test_subclass_overriding_hooks_trains_with_lightning(list_datamodule, module_kwargs: dict, tmp_path) -> None:
    dm = list_datamodule
    module = CustomALT(class_names=dm.class_names, **module_kwargs)
    assert isinstance(module.model.adapter, MeanClsAdapter)
    before = module.model.adapter.proj.weight.detach().clone()
    CountingLoss.calls = 0
    trainer = pl.Trainer(
        accelerator="cpu",
        fast_dev_run=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, dm)
    assert CountingLoss.calls == 1
    assert not torch.equal(module.model.adapter.proj.weight, before)
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))


class ScaledAdapterALT(ALTModule):
    """The natural subclass pattern: its own argument, set after ``super().__init__()``, read by a hook."""

    def __init__(self, adapter_scale: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.adapter_scale = adapter_scale

    def configure_adapter(self, encoder: RegionEncoder) -> nn.Module:
        adapter = MeanClsAdapter(encoder.out_dim)
        with torch.no_grad():
            adapter.proj.weight.fill_(self.adapter_scale)  # reads the subclass's attribute
        return adapter


class TouchesModelInInit(ALTModule):
    """A subclass that changes a built part in its own constructor (the parts are built on first use)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model.adapter.requires_grad_(False)


def test_a_hook_reads_a_subclass_attribute_set_after_super_init(module_kwargs: dict, tmp_path) -> None:
    module = ScaledAdapterALT(adapter_scale=0.25, class_names=NAMES, **module_kwargs)
    assert isinstance(module.model.adapter, MeanClsAdapter)
    weight = module.model.adapter.proj.weight
    assert torch.equal(weight, torch.full_like(weight, 0.25))
    assert module.hparams.adapter_scale == 0.25  # saved with the checkpoint, so load_from_checkpoint restores it
    # Parameters, the init_weights path and checkpoints see the built model.
    assert any(n.startswith("model.adapter.proj") for n, _ in module.named_parameters())
    frozen = TouchesModelInInit(class_names=NAMES, **module_kwargs)
    assert not any(p.requires_grad for p in frozen.model.adapter.parameters())
    assert frozen.model.adapter is frozen.model.adapter  # built once
