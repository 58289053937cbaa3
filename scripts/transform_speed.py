"""Time the clip transforms before and after the uint8 resize (issue 14, item 0), on the same decoded frames.

Writes camera-style h264 videos (``alt loader-bench --synthetic_style camera``: footage-like bitrate, a keyframe every
250 frames) at 1920x1080 and 340x256, decodes the 8 frames of one clip from each, and times, one thread:

- ``before``: the previous path, kept here as the reference: the whole uint8 clip converted to float32, resized in
  float (antialiased, bicubic clamped), then cropped;
- ``after``: :class:`~alt_lightning.data.transforms.ClipTransform` (crop and resize in uint8, float at the end);

for the evaluation transform (short-side resize to 224, centre crop) and the training transform (random resized
crop, the same random draws for both), and the whole evaluation clip (open, decode 8 frames, transform). Before and
after alternate within each repeat (a shared machine loads both alike); prints the median of ``--repeats`` runs of
each and the largest and mean differences between the two outputs::

    python scripts/transform_speed.py [--repeats 11] [--frames 150] [--json out.json]

Not a test: the figures depend on the machine (``tests/data/test_transforms.py`` checks the outputs agree).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from alt_lightning.commands.loader_bench import write_camera_videos
from alt_lightning.data.decode import VideoReader
from alt_lightning.data.sampling import view_indices
from alt_lightning.data.transforms import ClipTransform

MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)  # CLIP's
SIZE = 224


def _float_resize(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    if x.shape[-2:] == (h, w):
        return x
    return F.interpolate(x, size=(h, w), mode="bicubic", antialias=True, align_corners=False).clamp_(0, 1)


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return ((x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)).contiguous()


def before_eval(frames: np.ndarray) -> torch.Tensor:
    """The previous evaluation transform: float32 first, then short-side resize and centre crop."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255)
    h, w = x.shape[-2:]
    nh, nw = (SIZE, max(SIZE, round(w * SIZE / h))) if h <= w else (max(SIZE, round(h * SIZE / w)), SIZE)
    x = _float_resize(x, nh, nw)
    top, left = (nh - SIZE) // 2, (nw - SIZE) // 2
    return _normalise(x[..., top : top + SIZE, left : left + SIZE])


def before_train(frames: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """The previous training transform: uint8 crop, float32, float resize (same draws as ClipTransform)."""
    u8 = torch.from_numpy(np.ascontiguousarray(frames))
    h, w = u8.shape[1:3]
    for _ in range(10):
        target = h * w * rng.uniform(0.4, 1.0)
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            x = u8[:, top : top + ch, left : left + cw].permute(0, 3, 1, 2).float().div_(255)
            x = _float_resize(x, SIZE, SIZE)
            return _normalise(x.flip(-1) if rng.random() < 0.5 else x)
    raise RuntimeError("no crop in 10 draws")


def _paired_ms(before: Callable[[], Any], after: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median ms of each; the two alternate (and swap order) within every repeat, so both see the same load."""
    before(), after()  # warm-up
    times: tuple[list[float], list[float]] = ([], [])
    for k in range(repeats):
        order = ((0, before), (1, after)) if k % 2 == 0 else ((1, after), (0, before))
        for i, fn in order:
            t = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t)
    return 1000 * statistics.median(times[0]), 1000 * statistics.median(times[1])


def _clip(path: Path, transform: Callable[[np.ndarray], torch.Tensor]) -> torch.Tensor:
    with VideoReader(path, threads=1) as r:
        frames = r.get(view_indices(r.info.num_frames, 8, 0, 1))
    return transform(frames)


def main() -> None:
    """Write the videos, time both paths, print (and optionally save) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--frames", type=int, default=150, help="frames per video (30 fps)")
    parser.add_argument("--json", type=str, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    after_eval = ClipTransform(SIZE, MEAN, STD, interpolation="bicubic")
    after_train = ClipTransform(SIZE, MEAN, STD, train=True, interpolation="bicubic")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for w, h in ((1920, 1080), (340, 256)):
            path = Path(write_camera_videos(Path(tmp) / f"{w}x{h}", 1, args.frames, (w, h), gop=250)[0].path)
            with VideoReader(path, threads=1) as r:
                frames = r.get(view_indices(r.info.num_frames, 8, 0, 1))  # [8, H, W, 3]
            row: dict[str, Any] = {"size": f"{w}x{h}"}
            row["eval_before_ms"], row["eval_after_ms"] = _paired_ms(
                lambda f=frames: before_eval(f), lambda f=frames: after_eval(f), args.repeats
            )
            row["train_before_ms"], row["train_after_ms"] = _paired_ms(
                lambda f=frames: before_train(f, np.random.default_rng(0)),
                lambda f=frames: after_train(f, np.random.default_rng(0)),
                args.repeats,
            )
            row["eval_clip_before_ms"], row["eval_clip_after_ms"] = _paired_ms(
                lambda p=path: _clip(p, before_eval), lambda p=path: _clip(p, after_eval), args.repeats
            )
            # Differences in [0, 1] pixel units (normalised outputs times std).
            std = torch.tensor(STD).view(1, 3, 1, 1)
            d_eval = ((after_eval(frames) - before_eval(frames)) * std).abs()
            d_train = max(
                float(
                    (
                        (after_train(frames, np.random.default_rng(s)) - before_train(frames, np.random.default_rng(s)))
                        * std
                    )
                    .abs()
                    .max()
                )
                for s in range(5)
            )
            row.update(eval_max_diff=float(d_eval.max()), eval_mean_diff=float(d_eval.mean()), train_max_diff=d_train)
            rows.append(row)
            print(
                f"{w}x{h}: eval {row['eval_before_ms']:.1f} -> {row['eval_after_ms']:.1f} ms "
                f"({row['eval_before_ms'] / row['eval_after_ms']:.1f}x); train {row['train_before_ms']:.1f} -> "
                f"{row['train_after_ms']:.1f} ms ({row['train_before_ms'] / row['train_after_ms']:.1f}x); whole eval "
                f"clip (decode included) {row['eval_clip_before_ms']:.0f} -> {row['eval_clip_after_ms']:.0f} ms "
                f"({row['eval_clip_before_ms'] / row['eval_clip_after_ms']:.2f}x); eval diff max "
                f"{row['eval_max_diff'] * 255:.2f}/255 mean {row['eval_mean_diff']:.4f}, train diff max "
                f"{row['train_max_diff'] * 255:.2f}/255"
            )
    if args.json:
        meta = {"machine": platform.platform(), "processor": platform.processor(), "torch": torch.__version__}
        meta["date"] = time.strftime("%Y-%m-%d")
        Path(args.json).write_text(json.dumps({**meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
