"""ClipTransform: shapes, determinism at evaluation, the three crops, normalisation from the given mean/std."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alt_lightning.data.transforms import ClipTransform, short_side_resize, spatial_crop

MEAN = (0.25, 0.5, 0.75)
STD = (0.5, 0.25, 0.125)


def _frames(t: int = 4, h: int = 48, w: int = 96, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def _columns(t: int = 2, h: int = 32, w: int = 96) -> np.ndarray:
    """Frames whose red channel is the column index (0..w-1), to tell where a crop came from."""
    x = np.zeros((t, h, w, 3), np.uint8)
    x[..., 0] = np.arange(w, dtype=np.uint8)[None, None, :]
    return x


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_output_shape_dtype_and_range(train: bool, interpolation: str) -> None:
    tf = ClipTransform(32, MEAN, STD, train=train, color_jitter=1.0, grayscale=0.5, interpolation=interpolation)
    out = tf(_frames(), np.random.default_rng(0))
    assert out.shape == (4, 3, 32, 32) and out.dtype == torch.float32 and out.is_contiguous()
    # Inputs were in [0, 1] before normalisation, so outputs lie in [(0-m)/s, (1-m)/s] per channel.
    lo = (0 - torch.tensor(MEAN)) / torch.tensor(STD)
    hi = (1 - torch.tensor(MEAN)) / torch.tensor(STD)
    per_channel = out.transpose(0, 1).reshape(3, -1)
    assert (per_channel.min(1).values >= lo - 1e-5).all() and (per_channel.max(1).values <= hi + 1e-5).all()


def test_normalisation_uses_the_given_mean_and_std() -> None:
    frames = np.full((2, 40, 40, 3), 51, np.uint8)  # 0.2 everywhere: resizing a constant keeps it
    out = ClipTransform(40, MEAN, STD)(frames)
    expected = (0.2 - torch.tensor(MEAN)) / torch.tensor(STD)
    assert torch.allclose(out[:, :, 5, 7], expected.expand(2, 3), atol=1e-6)
    other = ClipTransform(40, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))(frames)
    assert torch.allclose(other, torch.full_like(other, 0.2), atol=1e-6)


def test_evaluation_is_deterministic_and_ignores_the_rng() -> None:
    tf = ClipTransform(32, MEAN, STD, train=False, num_crops=3)
    x = _frames()
    for crop in range(3):
        a = tf(x, np.random.default_rng(1), crop)
        b = tf(x, np.random.default_rng(2), crop)
        assert torch.equal(a, b)


def test_training_is_a_function_of_the_rng() -> None:
    tf = ClipTransform(32, MEAN, STD, train=True, color_jitter=0.5, grayscale=0.2)
    x = _frames()
    a, b = tf(x, np.random.default_rng(7)), tf(x, np.random.default_rng(7))
    assert torch.equal(a, b)
    outs = [tf(x, np.random.default_rng(s)) for s in range(5)]
    assert len({o.sum().item() for o in outs}) == 5  # different seeds, different crops


def test_one_crop_per_clip_applies_to_every_frame() -> None:
    x = np.repeat(_frames(1), 3, axis=0)  # three identical frames
    out = ClipTransform(32, MEAN, STD, train=True, color_jitter=1.0)(x, np.random.default_rng(3))
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])


def test_three_crops_cover_left_centre_right() -> None:
    tf = ClipTransform(32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), num_crops=3)
    x = _columns(h=32, w=96)  # short side already 32: no resize, crops are exact column ranges
    cols = [tf(x, None, c)[0, 0, 0] * 255 for c in range(3)]  # red channel, first row
    assert [round(float(c[0])) for c in cols] == [0, 32, 64]
    assert [round(float(c[-1])) for c in cols] == [31, 63, 95]
    # num_crops=1 is the centre crop whatever crop_index says.
    centre = ClipTransform(32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), num_crops=1)(x, None, 0)
    assert torch.equal(centre, tf(x, None, 1))


def test_three_crops_of_a_portrait_frame_go_top_to_bottom() -> None:
    x = np.transpose(_columns(h=32, w=96), (0, 2, 1, 3)).copy()  # [T, 96, 32, 3]: red = row index
    tf = ClipTransform(32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), num_crops=3)
    tops = [round(float(tf(x, None, c)[0, 0, 0, 0] * 255)) for c in range(3)]
    assert tops == [0, 32, 64]


def test_short_side_resize_keeps_the_aspect_ratio() -> None:
    x = torch.rand(2, 3, 48, 96)
    assert short_side_resize(x, 24).shape[-2:] == (24, 48)
    assert short_side_resize(x.transpose(-1, -2), 24).shape[-2:] == (48, 24)
    assert spatial_crop(x, 24, 2, 3).shape[-2:] == (24, 24)
    with pytest.raises(ValueError, match="num_crops"):
        spatial_crop(x, 24, 0, 2)


def test_training_flip_mirrors_the_crop() -> None:
    x = _columns(t=1, h=32, w=32)
    never = ClipTransform(32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), train=True, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=0)
    always = ClipTransform(32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), train=True, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=1)
    a, b = never(x, np.random.default_rng(0)), always(x, np.random.default_rng(0))
    assert round(float(a[0, 0, 0, 0]) * 255) == 0 and round(float(b[0, 0, 0, 0]) * 255) == 31
    assert torch.equal(a.flip(-1), b)
