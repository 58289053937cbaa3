"""Pictures of the alignment: sampled frames on top, below them every region coloured by the entity it matched.

How a picture is drawn (the same for ``alt predict --png-dir`` and the ``AlignmentHeatmapLogger`` callback):

* every patch is blended with its entity's colour, more opaque the more confident the match (relative to the image's
  most confident patch: over a corpus of ~1,000 entities the absolute confidences can all be small);
* where the entity changes, a two-pixel line, white then black, keeps regions apart on dark and light frames;
* every entity of a frame gets one opaque swatch of its colour framed in black, on its most central patch, so its
  colour can be read even where the frame itself has that colour (a green entity on grass);
* colours follow the video's evidence (most area first, :func:`~alt_lightning.explain.evidence.entity_evidence`) and
  the legend prints each entity's :meth:`~alt_lightning.explain.evidence.EntityEvidence.summary`: the share and
  confidence that ``alt predict`` prints on the console, computed once;
* the columns are titled with the sampled frame they show, the rows are labelled, and a caption says which frames
  (and which clip) are drawn and over what the legend's shares are counted.

matplotlib is optional (``pip install 'alt-lightning[viz]'``): without it the two rows are drawn with numpy only (no
text), and the :class:`Heatmap` still carries the title, caption, row labels and legend as data (the callback logs
them as TensorBoard text; ``alt predict`` says once that the PNGs have no text).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from alt_lightning.explain.evidence import EntityEvidence

#: Distinct colours (RGB 0-255) for the entities with the most area; the rest are drawn grey.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
)
OTHER_COLOUR = (128, 128, 128)
#: The name of the grey legend entry (entities beyond the palette).
OTHER_NAME = "other entities"
#: Lines between entities and the frame around each swatch (no palette colour is black).
DARK, LIGHT = (0, 0, 0), (255, 255, 255)
ROW_LABELS = ("frames", "regions → entities")
MATPLOTLIB_MISSING = (
    "matplotlib is not installed: the heatmaps are drawn without title, labels and legend "
    "(pip install 'alt-lightning[viz]')"
)


class LegendEntry(NamedTuple):
    """One coloured entity of a picture: its name, colour, share of the area and the legend's text for it."""

    name: str
    colour: tuple[int, int, int]
    share: float
    text: str


@dataclass
class Heatmap:
    """A drawn picture and what it says.

    Attributes:
        image: uint8 ``[H, W, 3]``.
        legend: The coloured entities (plus a grey ``other entities`` entry when some patches are grey).
        title: The figure's title.
        caption: Which frames are drawn and what the legend counts.
        row_labels: Labels of the frame row and the overlay row.
        column_labels: Title of each column (the sampled frame it shows).
        texts: Every string drawn into ``image`` (empty when drawn without matplotlib).
    """

    image: np.ndarray
    legend: list[LegendEntry]
    title: str
    caption: str
    row_labels: tuple[str, str]
    column_labels: list[str]
    texts: list[str]

    def legend_text(self) -> str:
        """The legend as markdown lines ``rgb(r, g, b): text`` (TensorBoard text)."""
        return "  \n".join(f"rgb{e.colour}: {e.text}" for e in self.legend)


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported (the ``viz`` extra)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def colour_assignment(entities: torch.Tensor, max_colours: int = len(PALETTE)) -> dict[int, tuple[int, int, int]]:
    """Colours for the ``max_colours`` most frequent entity ids (by patch count) of ``entities`` (any shape)."""
    ids, counts = torch.unique(entities.reshape(-1), return_counts=True)
    order = counts.argsort(descending=True, stable=True)
    return {int(ids[i]): PALETTE[j] for j, i in enumerate(order[:max_colours].tolist())}


def evidence_colours(
    evidence: Sequence[EntityEvidence], max_colours: int = len(PALETTE)
) -> dict[int, tuple[int, int, int]]:
    """Colours for the first ``max_colours`` entities of the evidence (most area first)."""
    return {e.entity_id: PALETTE[j] for j, e in enumerate(evidence[:max_colours])}


def _percent(share: float) -> str:
    return f"{100 * share:.0f}%"


def legend_entries(
    entity: torch.Tensor,
    colours: dict[int, tuple[int, int, int]],
    entity_names: Sequence[str],
    evidence: Sequence[EntityEvidence] | None = None,
) -> list[LegendEntry]:
    """The legend of a picture whose patches show ``entity`` ``[T, gh, gw]``, coloured by ``colours``.

    With ``evidence``, each coloured entity's share and text are its evidence's (the console's numbers), and the grey
    entry holds the other entities' total share. Without it, shares are patch shares of the drawn frames.
    """
    if evidence is not None:
        entries = [
            LegendEntry(e.name, colours[e.entity_id], e.share, e.summary()) for e in evidence if e.entity_id in colours
        ]
        rest = sum(e.share for e in evidence if e.entity_id not in colours)
    else:
        total = entity.numel()
        entries = []
        for e, c in colours.items():
            share = float((entity == e).sum()) / total
            entries.append(LegendEntry(entity_names[e], c, share, f"{entity_names[e]} {_percent(share)}"))
        rest = 1.0 - sum(x.share for x in entries)
    grey = not torch.isin(entity, torch.tensor(list(colours), dtype=entity.dtype)).all()
    if grey or rest > 1e-9:
        entries.append(
            LegendEntry(OTHER_NAME, OTHER_COLOUR, max(rest, 0.0), f"{OTHER_NAME} {_percent(max(rest, 0.0))}")
        )
    return entries


def denormalize(frames: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Normalised frames ``[T, 3, S, S]`` back to uint8 ``[T, S, S, 3]``."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    x = (frames.detach().float().cpu() * s + m).clamp(0, 1)
    return (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


def pick_frames(num_frames: int, max_frames: int | None) -> list[int]:
    """Indices of up to ``max_frames`` evenly spaced frames of ``num_frames`` (``None``: all of them)."""
    n = num_frames if max_frames is None else min(max_frames, num_frames)
    return np.linspace(0, num_frames - 1, n).round().astype(int).tolist()


def frames_caption(picked: Sequence[int], num_frames: int, view: tuple[int, int] = (0, 1)) -> str:
    """``frames 1-8 of the 8 sampled`` or ``frames 1, 4, 8 of the 8 sampled, clip 1 of 3`` (1-based)."""
    if list(picked) == list(range(num_frames)):
        which = f"frames 1-{num_frames}" if num_frames > 1 else "frame 1"
    else:
        which = ("frames " if len(picked) > 1 else "frame ") + ", ".join(str(i + 1) for i in picked)
    clip = f", clip {view[0] + 1} of {view[1]}" if view[1] > 1 else ""
    return f"{which} of the {num_frames} sampled{clip}"


def swatch_cells(entity: np.ndarray) -> dict[int, tuple[int, int]]:
    """For each entity of a frame ``[gh, gw]``, the patch ``(row, col)`` of it nearest to its patches' centroid."""
    out = {}
    for e in np.unique(entity).tolist():
        cells = np.argwhere(entity == e)  # [n, 2], row-major order
        d = ((cells - cells.mean(axis=0)) ** 2).sum(axis=1)
        r, c = cells[int(d.argmin())]
        out[int(e)] = (int(r), int(c))
    return out


def overlay(
    frame: np.ndarray,
    entity: np.ndarray,
    conf: np.ndarray,
    colours: dict[int, tuple[int, int, int]],
    alpha: tuple[float, float] = (0.3, 0.75),
    conf_max: float | None = None,
) -> np.ndarray:
    """Colour each patch of ``frame`` by its entity, with lines between entities and one swatch per entity.

    Args:
        frame: uint8 ``[S, S, 3]``.
        entity: ``[gh, gw]`` entity id per patch.
        conf: ``[gh, gw]`` confidence per patch (0-1).
        colours: Entity id -> RGB; other entities are grey.
        alpha: Opacity of the fill at the lowest and the highest confidence. Opacity follows confidence relative to
            ``conf_max``, because over a corpus of ~1000 entities absolute confidences can all be small.
        conf_max: Confidence drawn most opaque (default: the maximum of ``conf``).

    Returns:
        uint8 ``[S, S, 3]``.
    """
    s_h, s_w = frame.shape[:2]
    gh, gw = entity.shape
    rows = np.arange(s_h) * gh // s_h  # patch row of each pixel row
    cols = np.arange(s_w) * gw // s_w
    ent = entity[rows][:, cols]  # [S, S]
    top = float(conf.max()) if conf_max is None else conf_max
    rel = np.clip(conf / max(top, 1e-12), 0.0, 1.0)
    a = (alpha[0] + (alpha[1] - alpha[0]) * rel)[rows][:, cols][..., None]  # [S, S, 1]
    lut = {int(e): colours.get(int(e), OTHER_COLOUR) for e in np.unique(entity)}
    colour = np.zeros((s_h, s_w, 3), np.float32)
    for e, c in lut.items():
        colour[ent == e] = c
    out = ((1 - a) * frame.astype(np.float32) + a * colour).round().clip(0, 255).astype(np.uint8)
    # Where the entity changes: white on the first side, black on the second, visible on any frame.
    down = ent[1:] != ent[:-1]  # [S-1, S]: pixel row i+1 starts another entity than row i
    right = ent[:, 1:] != ent[:, :-1]  # [S, S-1]
    light = np.zeros((s_h, s_w), bool)
    dark = np.zeros((s_h, s_w), bool)
    light[:-1] |= down
    light[:, :-1] |= right
    dark[1:] |= down
    dark[:, 1:] |= right
    out[light] = LIGHT
    out[dark] = DARK
    # One opaque swatch per entity, framed in black: its colour never blends into a frame of the same colour.
    ph, pw = s_h / gh, s_w / gw
    side = max(3, int(min(ph, pw) * 0.5))
    for e, (r, c) in swatch_cells(entity).items():
        y0 = int((r + 0.5) * ph) - side // 2
        x0 = int((c + 0.5) * pw) - side // 2
        out[max(y0 - 1, 0) : y0 + side + 1, max(x0 - 1, 0) : x0 + side + 1] = DARK
        out[max(y0, 0) : y0 + side, max(x0, 0) : x0 + side] = lut[e]
    return out


def render_alignment(
    frames: np.ndarray,
    entity: torch.Tensor,
    conf: torch.Tensor,
    entity_names: Sequence[str],
    evidence: Sequence[EntityEvidence] | None = None,
    title: str = "",
    caption: str = "",
    column_labels: Sequence[str] | None = None,
    use_matplotlib: bool | None = None,
) -> Heatmap:
    """Draw frames (top row) and their region-to-entity overlays (bottom row) into one image.

    Args:
        frames: uint8 ``[T, S, S, 3]``.
        entity: ``[T, gh, gw]`` entity id per patch.
        conf: ``[T, gh, gw]`` confidence per patch.
        entity_names: Entity id -> name (``ALTModule.entity_units``).
        evidence: The video's evidence: colours go to its first entities and the legend prints its numbers. ``None``:
            colours by patch count of these frames, and the legend gives those patch shares.
        title: Figure title.
        caption: Text under the legend (which frames, what the shares count).
        column_labels: One title per frame (default ``frame 1``, ``frame 2``, ...).
        use_matplotlib: ``None``: when importable; ``False`` draws with numpy only (no text).

    Returns:
        The :class:`Heatmap`.

    Raises:
        ImportError: If ``use_matplotlib=True`` and matplotlib is not installed.
    """
    colours = evidence_colours(evidence) if evidence is not None else colour_assignment(entity)
    legend = legend_entries(entity, colours, entity_names, evidence)
    conf_max = float(conf.max())
    tiles = [
        overlay(f, e.numpy(), c.numpy(), colours, conf_max=conf_max)
        for f, e, c in zip(frames, entity, conf, strict=True)
    ]
    t, s_h, s_w = frames.shape[:3]
    labels = list(column_labels) if column_labels is not None else [f"frame {i + 1}" for i in range(t)]
    if use_matplotlib is None:
        use_matplotlib = matplotlib_available()
    elif use_matplotlib and not matplotlib_available():
        raise ImportError(MATPLOTLIB_MISSING)
    if not use_matplotlib:
        gap = 2
        image = np.full((2 * s_h + gap, t * s_w + (t - 1) * gap, 3), 255, np.uint8)
        for i in range(t):
            x = i * (s_w + gap)
            image[:s_h, x : x + s_w] = frames[i]
            image[s_h + gap :, x : x + s_w] = tiles[i]
        return Heatmap(image, legend, title, caption, ROW_LABELS, labels, [])
    image, texts = _draw_figure(frames, tiles, legend, title, caption, labels)
    return Heatmap(image, legend, title, caption, ROW_LABELS, labels, texts)


def _draw_figure(
    frames: np.ndarray,
    tiles: Sequence[np.ndarray],
    legend: Sequence[LegendEntry],
    title: str,
    caption: str,
    column_labels: Sequence[str],
) -> tuple[np.ndarray, list[str]]:
    """The matplotlib figure of :func:`render_alignment`: the image and every string drawn in it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    t = len(frames)
    tile, left = 2.1, 0.35  # inches: one frame, the row labels
    width = left + tile * t + 0.1
    ncol = max(1, min(len(legend), int(width // 1.8)))
    legend_rows = -(-len(legend) // ncol) if legend else 0
    caption = textwrap.fill(caption, width=max(40, int(width * 15))) if caption else ""
    caption_lines = caption.count("\n") + 1 if caption else 0
    bottom = 0.1 + 0.2 * legend_rows + 0.16 * caption_lines  # inches under the tiles
    title = textwrap.fill(title, width=max(30, int(width * 12))) if title else ""
    top = 0.25 + (0.12 + 0.17 * (title.count("\n") + 1) if title else 0.0)  # column titles, figure title
    height = 2 * tile + 0.1 + bottom + top
    fig = Figure(figsize=(width, height), dpi=100)
    canvas = FigureCanvasAgg(fig)
    axes = fig.subplots(2, t, squeeze=False)
    for i in range(t):
        axes[0, i].imshow(frames[i])
        axes[1, i].imshow(tiles[i])
        axes[0, i].set_title(column_labels[i], fontsize=8)
        for row in (0, 1):
            axes[row, i].axis("off")
    for row, label in enumerate(ROW_LABELS):
        axes[row, 0].text(
            -0.04, 0.5, label, rotation=90, ha="right", va="center", fontsize=8, transform=axes[row, 0].transAxes
        )
    drawn = [*(ax.title for ax in axes[0]), *(x for ax in axes[:, 0] for x in ax.texts)]
    if legend:
        handles = [Patch(facecolor=np.array(e.colour) / 255, edgecolor="black", label=e.text) for e in legend]
        box = fig.legend(
            handles=handles,
            loc="lower center",
            bbox_to_anchor=(0.5, (0.04 + 0.16 * caption_lines) / height),
            ncol=ncol,
            fontsize=7,
            frameon=False,
        )
        drawn += box.get_texts()
    if caption:
        drawn.append(fig.text(0.5, 0.04 / height, caption, ha="center", va="bottom", fontsize=7, color="0.25"))
    if title:
        drawn.append(fig.suptitle(title, fontsize=9, y=1 - 0.06 / height, va="top"))
    fig.subplots_adjust(
        left=left / width,
        right=1 - 0.1 / width,
        bottom=bottom / height,
        top=1 - top / height,
        wspace=0.04,
        hspace=0.1 / tile,
    )
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    # What was drawn, read back from the figure's own text objects (the tick labels of the hidden axes are not).
    texts = [x.get_text() for x in drawn if x.get_visible() and x.get_text() and x.get_figure() is fig]
    return image, texts


def clip_heatmap(
    video: torch.Tensor,
    entity: torch.Tensor,
    conf: torch.Tensor,
    evidence: Sequence[EntityEvidence],
    entity_names: Sequence[str],
    mean: Sequence[float],
    std: Sequence[float],
    *,
    max_frames: int | None = 8,
    title: str = "",
    view: tuple[int, int] = (0, 1),
    use_matplotlib: bool | None = None,
) -> Heatmap:
    """The picture of one clip: up to ``max_frames`` of its sampled frames, evenly spaced, with their overlays.

    Args:
        video: ``[T, 3, S, S]`` normalised clip.
        entity: ``[T, gh, gw]`` entity id per patch (:func:`~alt_lightning.explain.evidence.entity_patch_map`).
        conf: ``[T, gh, gw]`` confidence per patch.
        evidence: The evidence of the clip, or of every clip of its video (``view`` says how many): colours and legend.
        entity_names: Entity id -> name.
        mean: Normalisation mean of the clip.
        std: Normalisation std of the clip.
        max_frames: Frames drawn at most (``None``: every sampled frame).
        title: Figure title.
        view: ``(clip index, clips of the video)`` the evidence was counted over.
        use_matplotlib: As :func:`render_alignment`.
    """
    t = video.shape[0]
    picked = pick_frames(t, max_frames)
    scope = f"all {t} frames" + (f" x {view[1]} clips" if view[1] > 1 else "")
    caption = (
        f"Top: {frames_caption(picked, t, view)}. Bottom: each region in its entity's colour (stronger: more "
        f"confident), one framed swatch per entity. Legend: area share (mean confidence) over {scope}."
    )
    return render_alignment(
        denormalize(video[picked], mean, std),
        entity[picked],
        conf[picked],
        entity_names,
        evidence=evidence,
        title=title,
        caption=caption,
        column_labels=[f"frame {i + 1}/{t}" for i in picked],
        use_matplotlib=use_matplotlib,
    )


def write_png(path: Path, image: np.ndarray) -> Path:
    """Write uint8 ``[H, W, 3]`` as PNG (torchvision's encoder: no matplotlib or PIL needed)."""
    from torchvision.io import write_png as _write_png

    path.parent.mkdir(parents=True, exist_ok=True)
    _write_png(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1), str(path))
    return path
