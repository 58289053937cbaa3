"""ClipTransform: shapes, determinism at evaluation, the three crops, normalisation from the given mean/std."""

from __future__ import annotations

import math

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


# ------------------------------------------------------------------ uint8 resize vs the float32 path it replaced
# The reference below is the previous path's math, written here on its own: convert the whole uint8 clip to float in
# [0, 1], resize it in float (antialiased; bicubic clamped to [0, 1]), crop, normalise. The package now resizes in
# uint8 and converts only the result; the two differ by the rounding of resized pixels to whole uint8 levels.
IDENTITY = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # mean, std: outputs are pixel values in [0, 1]


def _float_resize(x: torch.Tensor, h: int, w: int, mode: str) -> torch.Tensor:
    if x.shape[-2:] == (h, w):
        return x
    out = torch.nn.functional.interpolate(x, size=(h, w), mode=mode, antialias=True, align_corners=False)
    return out.clamp(0, 1) if mode == "bicubic" else out


def _float_eval_reference(frames: np.ndarray, size: int, crop: int, num_crops: int, mode: str) -> torch.Tensor:
    x = torch.from_numpy(frames.astype(np.float32) / 255).permute(0, 3, 1, 2)  # [T, 3, H, W]
    h, w = x.shape[-2:]
    nh, nw = (size, max(size, round(w * size / h))) if h <= w else (max(size, round(h * size / w)), size)
    x = _float_resize(x, nh, nw, mode)
    crop = crop if num_crops == 3 else 1
    top = (0, (nh - size) // 2, nh - size)[crop] if nh > nw else (nh - size) // 2
    left = (0, (nw - size) // 2, nw - size)[crop] if nw >= nh else (nw - size) // 2
    return x[..., top : top + size, left : left + size]


def _float_train_reference(frames: np.ndarray, size: int, rng: np.random.Generator, mode: str) -> torch.Tensor:
    """Random resized crop (scale 0.4-1, ratio 3/4-4/3, the same draws in the same order) and a flip draw."""
    h, w = frames.shape[1:3]
    for _ in range(10):
        target = h * w * rng.uniform(0.4, 1.0)
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            crop = torch.from_numpy(frames[:, top : top + ch, left : left + cw].astype(np.float32) / 255)
            x = _float_resize(crop.permute(0, 3, 1, 2), size, size, mode)
            return x.flip(-1) if rng.random() < 0.5 else x
    raise AssertionError("the test frames always admit a crop within 10 draws")


@pytest.fixture(scope="module")
def decoded_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """Real decoded frames (h264 written by PyAV, read back by our decoder) at a large, a mid and a small size."""
    from alt_lightning.data.decode import decode_frames
    from alt_lightning.data.synthetic import ClassSpec, render_clip, write_video

    folder = tmp_path_factory.mktemp("transform_clips")
    out = {}
    for i, (w, h) in enumerate(((1920, 1080), (340, 256), (120, 160))):  # 1080p, mmaction2's 340x256, portrait
        frames = render_clip(ClassSpec("red", "disc", "right"), np.random.default_rng(i), 3, h, w)
        path = write_video(folder / f"{w}x{h}.mp4", frames, fps=30)
        out[f"{w}x{h}"] = decode_frames(path, [0, 1, 2], threads=1)
    return out


# In [0, 1] pixel units, before normalisation. Bilinear: each pixel within one uint8 level. Bicubic resizes in two
# separable passes and torch rounds (and saturates its overshoot) between them in uint8: a few pixels at sharp edges
# move by more, most when upsampling a small crop (measured over 30 seeds: 4.1 levels at most, on under 0.03 % of the
# pixels; at 1080p under one level everywhere).
TOLERANCE = {"bilinear": 1 / 255 + 1e-5, "bicubic": 5 / 255, "mean": 0.0015, "beyond_one_level": 0.001}


def _assert_close(new: torch.Tensor, ref: torch.Tensor, mode: str, what: object) -> None:
    diff = (new - ref).abs()
    beyond = (diff > 1 / 255 + 1e-5).float().mean()
    assert diff.max() <= TOLERANCE[mode], (what, diff.max() * 255)
    assert diff.mean() <= TOLERANCE["mean"] and beyond <= TOLERANCE["beyond_one_level"], (what, diff.mean(), beyond)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("size_name", ["1920x1080", "340x256", "120x160"])
def test_uint8_resize_matches_the_float_path_on_decoded_frames(decoded_clips, size_name, interpolation) -> None:
    frames = decoded_clips[size_name]
    for num_crops, crops in ((1, (1,)), (3, (0, 1, 2))):
        tf = ClipTransform(224, *IDENTITY, num_crops=num_crops, interpolation=interpolation)
        for crop in crops:
            new = tf(frames, None, crop)
            ref = _float_eval_reference(frames, 224, crop, num_crops, interpolation)
            assert new.shape == ref.shape == (3, 3, 224, 224)
            _assert_close(new, ref, interpolation, (num_crops, crop))
    train = ClipTransform(224, *IDENTITY, train=True, interpolation=interpolation)
    for seed in range(4):
        new = train(frames, np.random.default_rng(seed))
        ref = _float_train_reference(frames, 224, np.random.default_rng(seed), interpolation)
        _assert_close(new, ref, interpolation, seed)


@pytest.mark.parametrize("train", [False, True])
def test_resized_pixels_are_whole_uint8_levels(decoded_clips, train: bool) -> None:
    """Resizing happens before the float conversion: every output pixel is k/255 (the float path gave any value)."""
    frames = decoded_clips["340x256"]
    out = ClipTransform(224, *IDENTITY, train=train, interpolation="bicubic")(frames, np.random.default_rng(0))
    levels = out * 255
    assert torch.allclose(levels, levels.round(), atol=1e-3)
    assert not torch.allclose(_float_eval_reference(frames, 224, 1, 1, "bicubic") * 255, levels.round(), atol=1e-3)
