"""Synthetic, learnable video datasets written as real encoded files (PyAV), for the demo, tests and users.

Each class is a coloured shape moving in one direction over a noisy background, so classes differ in colour, shape
and direction of motion: a frame-level model can learn the first two, only a model that orders frames can learn the
third. Files are real containers (h264 ``.mp4`` by default) and the annotation files are in a real format
(mmaction2-style ``path label`` lists and a label-name CSV ``id,name``), so the whole data path is exercised.

Layout written under ``root``::

    root/videos/<class_slug>/<split>_<class_idx:02d>_<n:03d>.mp4
    root/train.txt, root/val.txt, root/test.txt     # "videos/<class_slug>/<file> <label>"
    root/classes.txt                                # one class name per line
    root/label_names.csv                            # "id,name"
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 80, 230),
    "yellow": (230, 210, 40),
    "white": (240, 240, 240),
    "magenta": (210, 50, 200),
}
SHAPES = ("square", "disc", "triangle")
DIRECTIONS: dict[str, tuple[float, float]] = {"right": (1, 0), "left": (-1, 0), "up": (0, -1), "down": (0, 1)}

#: Default classes of the demo: pairs that differ only in direction force temporal modelling.
DEFAULT_CLASSES = (
    ("red", "square", "right"),
    ("red", "square", "left"),
    ("green", "disc", "up"),
    ("green", "disc", "down"),
    ("blue", "triangle", "right"),
    ("yellow", "square", "down"),
    ("white", "disc", "left"),
    ("magenta", "triangle", "up"),
)

#: Codec, pixel format and file suffix per container choice.
CODECS: dict[str, tuple[str, str, str]] = {
    "h264": ("libx264", "yuv420p", ".mp4"),
    "mpeg4": ("mpeg4", "yuv420p", ".avi"),
    "vp9": ("libvpx-vp9", "yuv420p", ".webm"),
    "mjpeg": ("mjpeg", "yuvj420p", ".avi"),
}


@dataclass(frozen=True)
class ClassSpec:
    """One synthetic action: a ``colour`` ``shape`` moving ``direction``."""

    colour: str
    shape: str
    direction: str

    @property
    def name(self) -> str:
        """Class name as a sentence, e.g. ``"red square moving right"``."""
        return f"{self.colour} {self.shape} moving {self.direction}"

    @property
    def slug(self) -> str:
        """Folder-safe name."""
        return self.name.replace(" ", "_")


def render_clip(
    spec: ClassSpec, rng: np.random.Generator, num_frames: int = 24, height: int = 64, width: int = 64
) -> np.ndarray:
    """Render one clip of a class with random start, speed, size and background.

    Returns:
        uint8 frames ``[T, H, W, 3]``.
    """
    bg = rng.integers(0, 90, size=(1, 1, 3)) + rng.integers(0, 40, size=(height, width, 3))  # [H, W, 3]
    size = int(rng.integers(max(6, height // 6), max(8, height // 3)))
    dx, dy = DIRECTIONS[spec.direction]
    travel = (width if dx else height) - size - 2
    speed = rng.uniform(0.6, 1.0) * travel / max(1, num_frames - 1)
    # Start on the side the shape moves away from, at a random position across the motion.
    x0 = (1 if dx > 0 else width - size - 1) if dx else int(rng.integers(1, width - size - 1))
    y0 = (1 if dy > 0 else height - size - 1) if dy else int(rng.integers(1, height - size - 1))
    yy, xx = np.mgrid[0:size, 0:size]
    if spec.shape == "square":
        mask = np.ones((size, size), bool)
    elif spec.shape == "disc":
        c = (size - 1) / 2
        mask = (yy - c) ** 2 + (xx - c) ** 2 <= (size / 2) ** 2
    else:  # triangle pointing up
        mask = xx >= (size - 1 - yy) / 2
        mask &= xx <= (size - 1 + yy) / 2
    colour = np.array(COLOURS[spec.colour])
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        frame = bg.copy()
        x, y = round(x0 + dx * speed * t), round(y0 + dy * speed * t)
        region = frame[y : y + size, x : x + size]
        region[mask[: region.shape[0], : region.shape[1]]] = colour
        frames[t] = np.clip(frame + rng.integers(-6, 7, size=frame.shape), 0, 255)
    return frames


def write_video(path: str | Path, frames: np.ndarray, fps: int = 12, codec: str = "h264") -> Path:
    """Encode ``frames`` ``[T, H, W, 3]`` uint8 into a real video file with PyAV."""
    codec_name, pix_fmt, _ = CODECS[codec]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec_name, rate=fps)
        if not isinstance(stream, av.VideoStream):
            raise ValueError(f"{codec_name!r} is not a video codec")
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        if codec == "h264":
            stream.options = {"crf": "18", "preset": "veryfast", "g": "12"}
        for arr in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_synthetic_dataset(
    root: str | Path,
    *,
    classes: tuple[tuple[str, str, str], ...] | list[tuple[str, str, str]] = DEFAULT_CLASSES,
    videos_per_class: dict[str, int] | None = None,
    num_frames: int = 24,
    height: int = 64,
    width: int = 64,
    fps: int = 12,
    codec: str = "h264",
    seed: int = 0,
) -> dict[str, Path]:
    """Write a synthetic action dataset (videos + annotation files); deterministic for a seed.

    Args:
        root: Output folder (created).
        classes: ``(colour, shape, direction)`` triples.
        videos_per_class: Videos per class per split; default ``{"train": 16, "val": 4, "test": 6}``.
        num_frames: Frames per video.
        height: Frame height in pixels.
        width: Frame width in pixels.
        fps: Frame rate written into the container.
        codec: One of :data:`CODECS`.
        seed: Random seed; the same seed writes the same frames.

    Returns:
        Paths of the written annotation files: ``{"train", "val", "test", "classes", "label_names"}``.
    """
    root = Path(root)
    videos_per_class = videos_per_class or {"train": 16, "val": 4, "test": 6}
    specs = [ClassSpec(*c) for c in classes]
    rng = np.random.default_rng(seed)
    suffix = CODECS[codec][2]
    out: dict[str, Path] = {}
    root.mkdir(parents=True, exist_ok=True)
    for split, n in videos_per_class.items():
        lines = []
        for label, spec in enumerate(specs):
            for k in range(n):
                rel = Path("videos") / spec.slug / f"{split}_{label:02d}_{k:03d}{suffix}"
                write_video(root / rel, render_clip(spec, rng, num_frames, height, width), fps, codec)
                lines.append(f"{rel.as_posix()} {label}")
        out[split] = root / f"{split}.txt"
        out[split].write_text("\n".join(lines) + "\n")
    out["classes"] = root / "classes.txt"
    out["classes"].write_text("".join(f"{s.name}\n" for s in specs))
    out["label_names"] = root / "label_names.csv"
    with out["label_names"].open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "name"])
        w.writerows((i, s.name) for i, s in enumerate(specs))
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m alt_lightning.data.synthetic ROOT [--seed N] [--codec h264]``: write the demo dataset."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("root")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--codec", default="h264", choices=sorted(CODECS))
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--train", type=int, default=16, help="videos per class in train")
    p.add_argument("--val", type=int, default=4)
    p.add_argument("--test", type=int, default=6)
    a = p.parse_args(argv)
    paths = write_synthetic_dataset(
        a.root,
        videos_per_class={"train": a.train, "val": a.val, "test": a.test},
        num_frames=a.frames,
        height=a.size,
        width=a.size,
        codec=a.codec,
        seed=a.seed,
    )
    n = sum(len(paths[k].read_text().splitlines()) for k in ("train", "val", "test"))
    print(f"wrote {n} videos and annotation files under {a.root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
