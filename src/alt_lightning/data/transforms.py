"""Clip transforms: one set of random parameters per clip, applied to all its frames.

Inputs are uint8 ``[T, H, W, 3]`` (as decoded); outputs float ``[T, 3, S, S]`` normalised with the backbone's own
mean and std (:class:`alt_lightning.model.backbone.PreprocessConfig`), never hard-coded ones.

Frames are cropped and resized while still uint8 (antialiased, as the float path did) and converted to float only at
the output size: resizing a 1080p clip in float32 cost ten times as much for the same picture. The difference is the
rounding of resized pixels to whole uint8 levels: at most one level (1/255) with bilinear; bicubic, which torch
rounds between its two separable passes, moves under 0.1 % of the pixels (edges of upsampled small crops) by up to
5 levels; the mean difference is about 0.0012 either way.
``tests/data/test_transforms.py`` compares the two paths on decoded frames; ``scripts/transform_speed.py`` times them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

_MODES = ("bilinear", "bicubic")


def _resize(x: torch.Tensor, h: int, w: int, mode: str = "bilinear") -> torch.Tensor:
    """Resize ``[T, 3, H, W]`` frames, uint8 or float (antialiased when shrinking)."""
    if x.shape[-2:] == (h, w):
        return x
    if mode not in _MODES:
        raise ValueError(f"interpolation must be one of {_MODES}, got {mode!r}.")
    out = F.interpolate(x, size=(h, w), mode=mode, antialias=True, align_corners=False)
    # Bicubic overshoots at edges; keep float pixel values in [0, 1] as an image loader would (uint8 saturates).
    return out.clamp_(0, 1) if mode == "bicubic" and out.is_floating_point() else out


def _channels_first(frames: torch.Tensor) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` -> a ``[T, 3, H, W]`` view (channels-last strides: torch's fast uint8 resize layout)."""
    return frames.permute(0, 3, 1, 2)


def _to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 ``[T, 3, H, W]`` -> float ``[T, 3, H, W]`` in ``[0, 1]``."""
    return x.float().div_(255)


def short_side_resize(x: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """Resize ``[T, 3, H, W]`` frames (uint8 or float) so that the shorter side is ``size``, keeping the aspect."""
    h, w = x.shape[-2:]
    if h <= w:
        return _resize(x, size, max(size, round(w * size / h)), mode)
    return _resize(x, max(size, round(h * size / w)), size, mode)


def spatial_crop(
    x: torch.Tensor, size: int, crop_index: int = 1, num_crops: int = 1, mode: str = "bilinear"
) -> torch.Tensor:
    """Short-side resize, then one of ``num_crops`` square crops along the longer side.

    ``num_crops=1`` is the centre crop; ``num_crops=3`` gives left/top (0), centre (1), right/bottom (2), the
    field's three-crop test. The three crops coincide when the frame is square.
    """
    if num_crops not in (1, 3):
        raise ValueError(f"num_crops must be 1 or 3, got {num_crops}.")
    if not 0 <= crop_index < 3:
        raise ValueError(f"crop_index must be 0, 1 or 2, got {crop_index}.")
    x = short_side_resize(x, size, mode)
    h, w = x.shape[-2:]
    if num_crops == 1:
        crop_index = 1
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
        scale: Area range of the random resized crop. Our choice (paper silent): ``(0.4, 1.0)``; X-CLIP uses
            multi-scale crops, ViFi-CLIP a short-side scale jitter.
        ratio: Aspect-ratio range of the random resized crop.
        flip: Probability of a horizontal flip. Our choice: 0.5; set 0 for direction-sensitive labels
            (Something-Something "from left to right", the synthetic demo).
        color_jitter: Probability of brightness/contrast/saturation jitter (0 disables; X-CLIP uses 0.8).
        grayscale: Probability of converting the clip to grayscale (X-CLIP uses 0.2).
        num_crops: Evaluation crops (1 = centre, 3 = three crops); ``crop_index`` picks one per call.
        interpolation: Resize filter, ``"bilinear"`` or ``"bicubic"``; the DataModule passes the backbone's
            (CLIP: bicubic).
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
    interpolation: str = "bilinear"

    def __call__(self, frames: np.ndarray, rng: np.random.Generator | None = None, crop_index: int = 1) -> torch.Tensor:
        """Transform uint8 ``[T, H, W, 3]`` frames into normalised float ``[T, 3, S, S]``."""
        u8 = torch.from_numpy(np.ascontiguousarray(frames))  # [T, H, W, 3] uint8
        if self.train:
            rng = rng or np.random.default_rng()
            x = self._random_resized_crop(u8, rng)  # [T, 3, S, S]
            if rng.random() < self.flip:
                x = x.flip(-1)
            if rng.random() < self.color_jitter:
                x = self._jitter(x, rng)
            if rng.random() < self.grayscale:
                x = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]).expand(-1, 3, -1, -1)
        else:
            x = _to_float(spatial_crop(_channels_first(u8), self.size, crop_index, self.num_crops, self.interpolation))
        mean = torch.tensor(self.mean, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(1, 3, 1, 1)
        return ((x - mean) / std).contiguous()

    def _random_resized_crop(self, u8: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Crop and resize uint8 ``[T, H, W, 3]``, then convert only the ``[T, 3, S, S]`` result to float."""
        h, w = u8.shape[1:3]
        area = h * w
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(math.log(self.ratio[0]), math.log(self.ratio[1])))
            cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < cw <= w and 0 < ch <= h:
                top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
                crop = _channels_first(u8[:, top : top + ch, left : left + cw])  # [T, 3, ch, cw] uint8
                return _to_float(_resize(crop, self.size, self.size, self.interpolation))
        # Centre crop, as torchvision does.
        return _to_float(spatial_crop(_channels_first(u8), self.size, mode=self.interpolation))

    @staticmethod
    def _jitter(x: torch.Tensor, rng: np.random.Generator, strength: float = 0.4) -> torch.Tensor:
        b, c, s = (1 + rng.uniform(-strength, strength) for _ in range(3))
        x = x * b
        mean = x.mean(dim=(-3, -2, -1), keepdim=True)
        x = (x - mean) * c + mean
        gray = 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]
        x = (x - gray) * s + gray
        return x.clamp_(0, 1)
