"""Numerical precision helpers shared by the model's components."""

from __future__ import annotations

import contextlib

import torch


def autocast_off(device: torch.device) -> contextlib.AbstractContextManager:
    """Switch autocast off on ``device`` so that a product of float32 inputs really runs in float32.

    Autocast (bf16 training/evaluation) casts every matmul to bf16 even when its inputs are float32; decisions taken
    by ranking similarities (ToMe matching, entity argmax, class scores) would then see rounded, often tied values.
    Devices without autocast (``meta``, used for FLOP counting) get a no-op.
    """
    if device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()
