"""Clip transforms: one set of random parameters per clip, applied to all its frames.

Inputs are uint8 ``[T, H, W, 3]`` (as decoded); outputs float ``[T, 3, S, S]`` normalised with the backbone's own
mean and std (:class:`alt_lightning.model.backbone.PreprocessConfig`), never hard-coded ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812


def _resize(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Resize ``[T, 3, H, W]`` float frames (antialiased bilinear)."""
    if x.shape[-2:] == (h, w):
        return x
    return F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)


def short_side_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so that the shorter side is ``size``, keeping the aspect ratio."""
    h, w = x.shape[-2:]
    if h <= w:
        return _resize(x, size, max(size, round(w * size / h)))
    return _resize(x, max(size, round(h * size / w)), size)


def spatial_crop(x: torch.Tensor, size: int, crop_index: int = 1, num_crops: int = 1) -> torch.Tensor:
    """Short-side resize, then one of ``num_crops`` square crops along the longer side.

    ``num_crops=1`` is the centre crop; ``num_crops=3`` gives left/top (0), centre (1), right/bottom (2), the
    field's three-crop test.
    """
    x = short_side_resize(x, size)
    h, w = x.shape[-2:]
    if num_crops == 1:
        crop_index = 1
        num_crops = 3
    if num_crops != 3:
        raise ValueError(f"num_crops must be 1 or 3, got {num_crops}.")
    top = [0, (h - size) // 2, h - size][crop_index] if h > w else (h - size) // 2
    left = [0, (w - size) // 2, w - size][crop_index] if w >= h else (w - size) // 2
    return x[..., top : top + size, left : left + size]


@dataclass
class ClipTransform:
    """Training or evaluation transform of a clip.

    Args:
        size: Output side ``S`` (the backbone's input size).
        mean: Per-channel mean of the backbone's preprocessing (0-1 scale).
        std: Per-channel std of the backbone's preprocessing.
        train: Random augmentation when ``True``; deterministic resize + crop otherwise.
        scale: Area range of the random resized crop (our choice: ``(0.4, 1.0)``; X-CLIP uses multi-scale crops).
        ratio: Aspect-ratio range of the random resized crop.
        flip: Probability of a horizontal flip. Our choice: 0.5; set 0 for direction-sensitive labels
            (Something-Something "from left to right", the synthetic demo).
        color_jitter: Probability of brightness/contrast/saturation jitter (0 disables; X-CLIP uses 0.8).
        grayscale: Probability of converting the clip to grayscale (X-CLIP uses 0.2).
        num_crops: Evaluation crops (1 = centre, 3 = three crops); ``crop_index`` picks one per call.
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    train: bool = False
    scale: tuple[float, float] = (0.4, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: float = 0.5
    color_jitter: float = 0.0
    grayscale: float = 0.0
    num_crops: int = 1

    def __call__(self, frames: np.ndarray, rng: np.random.Generator | None = None, crop_index: int = 1) -> torch.Tensor:
        """Transform uint8 ``[T, H, W, 3]`` frames into normalised float ``[T, 3, S, S]``."""
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255)  # [T, 3, H, W]
        if self.train:
            rng = rng or np.random.default_rng()
            x = self._random_resized_crop(x, rng)
            if rng.random() < self.flip:
                x = x.flip(-1)
            if rng.random() < self.color_jitter:
                x = self._jitter(x, rng)
            if rng.random() < self.grayscale:
                x = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]).expand(-1, 3, -1, -1)
        else:
            x = spatial_crop(x, self.size, crop_index, self.num_crops)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return ((x - mean) / std).contiguous()

    def _random_resized_crop(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        h, w = x.shape[-2:]
        area = h * w
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1])))
            cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
                return _resize(x[..., top : top + ch, left : left + cw], self.size, self.size)
        return spatial_crop(x, self.size)  # fall back to the centre crop, as torchvision does

    @staticmethod
    def _jitter(x: torch.Tensor, rng: np.random.Generator, strength: float = 0.4) -> torch.Tensor:
        b, c, s = (1 + rng.uniform(-strength, strength) for _ in range(3))
        x = x * b
        mean = x.mean(dim=(-3, -2, -1), keepdim=True)
        x = (x - mean) * c + mean
        gray = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:])
        x = (x - gray) * s + gray
        return x.clamp_(0, 1)
