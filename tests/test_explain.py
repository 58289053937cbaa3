"""Explanations (``alt_lightning.explain``): entity evidence, class explanations, patch maps, heatmap pictures."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from rich.console import Console

from alt_lightning.commands.predict import _video_dataset, predict_videos, prediction_table
from alt_lightning.data.synthetic import ClassSpec, render_clip, write_video
from alt_lightning.explain import (
    MATPLOTLIB_MISSING,
    PALETTE,
    EntityEvidence,
    clip_heatmap,
    entity_evidence,
    entity_patch_map,
    explain_class,
    overlay,
    pick_frames,
    render_alignment,
)
from alt_lightning.explain.heatmap import DARK, LIGHT, OTHER_COLOUR, OTHER_NAME, ROW_LABELS
from alt_lightning.lightning import ALTModule

GREEN = PALETTE[1]


# ------------------------------------------------------------------------------------------------ evidence


def test_entity_evidence_and_class_explanations_by_hand() -> None:
    names = ["hand", "ball", "grass"]
    ids = torch.tensor([[0, 1, 1, 2]])  # [T=1, R=4]
    conf = torch.tensor([[0.9, 0.6, 0.8, 0.5]])
    sizes = torch.tensor([[2.0, 1.0, 1.0, 4.0]])  # patches per region: 8 in all
    ev = entity_evidence(ids, conf, sizes, names)
    assert [(e.name, e.regions) for e in ev] == [("grass", 1), ("hand", 1), ("ball", 2)]
    assert [e.share for e in ev] == pytest.approx([0.5, 0.25, 0.25])
    assert [e.confidence for e in ev] == pytest.approx([0.5, 0.9, 0.7])
    assert [e.summary() for e in ev] == ["grass 50% (0.50)", "hand 25% (0.90)", "ball 25% (0.70)"]
    # Entity 1 ("ball") is the text closest to class 0, "grass" to class 1, "hand" is as close to both.
    ent = F.normalize(torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), dim=-1)
    cls = F.normalize(torch.tensor([[1.0, 0.0, 0.2], [0.0, 1.0, 0.2]]), dim=-1)
    top = explain_class(ev, ent, cls, class_index=0, top=3)
    assert [e.name for e, _ in top] == ["ball"]  # grass is specific to the other class, hand to neither
    spec = float(cls[0] @ ent[1] - (cls @ ent[1]).mean())
    assert top[0][1] == pytest.approx(0.25 * 0.7 * spec)
    assert [e.name for e, _ in explain_class(ev, ent, cls, class_index=1)] == ["grass"]
    assert explain_class([], ent, cls, 0) == []
    assert isinstance(ev[0], EntityEvidence)


def test_entity_patch_map_follows_the_source_map() -> None:
    # 2x2 patch grid; region 0 holds patches 0 and 1 (top row), region 1 patches 2 and 3; cls is token 0.
    source = torch.zeros(1, 3, 5)
    source[0, 0, 0] = 1
    source[0, 1, 1:3] = 1
    source[0, 2, 3:5] = 1
    entity, conf = entity_patch_map(source, torch.tensor([[5, 7]]), torch.tensor([[0.9, 0.4]]), (2, 2))
    assert entity.tolist() == [[[5, 5], [7, 7]]]
    assert torch.allclose(conf, torch.tensor([[[0.9, 0.9], [0.4, 0.4]]]))


# ------------------------------------------------------------------------------------------------ drawing


def _touches(mask: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour in ``other``."""
    near = np.zeros_like(other)
    near[1:] |= other[:-1]
    near[:-1] |= other[1:]
    near[:, 1:] |= other[:, :-1]
    near[:, :-1] |= other[:, 1:]
    return mask & near


def _swatch_visible(tile: np.ndarray, colour: tuple[int, int, int]) -> bool:
    """Whether ``tile`` has pixels of exactly ``colour`` next to black ones (a framed swatch)."""
    return bool(_touches((tile == colour).all(-1), (tile == DARK).all(-1)).any())


@pytest.mark.parametrize("frame_colour", [GREEN, (0, 0, 0), (255, 255, 255)])
def test_an_entity_coloured_like_its_frame_stays_visible(frame_colour: tuple[int, int, int]) -> None:
    # The old overlay blended the entity's colour into the frame: a green entity on a green frame drew nothing.
    frame = np.broadcast_to(np.array(frame_colour, np.uint8), (32, 32, 3)).copy()
    conf = np.full((2, 2), 0.5)
    one = overlay(frame, np.full((2, 2), 5), conf, {5: frame_colour if frame_colour == GREEN else PALETTE[0]})
    assert (one != frame).any(-1).sum() >= 4 * 4  # a framed swatch of at least 3x3 pixels plus its frame
    assert _swatch_visible(one, frame_colour if frame_colour == GREEN else PALETTE[0])
    # Two entities, both of the frame's colour: the line between them differs from the frame on every pixel of it.
    two = overlay(frame, np.array([[5, 5], [7, 7]]), conf, {5: GREEN, 7: GREEN})
    assert (two[15] == LIGHT).all() and (two[16] == DARK).all()  # patch rows 0 | 1 meet between pixel rows 15, 16
    boundary = np.concatenate([two[15], two[16]])
    assert ((boundary != np.array(frame_colour, np.uint8)).any(-1)).mean() >= 0.5  # white or black differs
    assert _swatch_visible(two, GREEN)
    if frame_colour == GREEN:  # nothing else is drawn: the fill of a green entity on green stays green
        assert ((two[:15] == GREEN).all(-1) | (two[:15] == DARK).all(-1)).all()


def test_every_entity_of_a_frame_gets_one_swatch_and_grey_for_the_rest() -> None:
    frame = np.full((48, 48, 3), 100, np.uint8)
    entity = np.array([[1, 1, 2], [1, 3, 2], [4, 4, 4]])  # entity 4 has no colour: grey
    tile = overlay(frame, entity, np.full((3, 3), 0.7), {1: PALETTE[0], 2: PALETTE[1], 3: PALETTE[2]})
    for colour in (PALETTE[0], PALETTE[1], PALETTE[2], OTHER_COLOUR):
        assert _swatch_visible(tile, colour), colour
    assert not _swatch_visible(tile, PALETTE[3])


@pytest.mark.parametrize("use_matplotlib", [False, True])
def test_render_alignment(use_matplotlib: bool) -> None:
    frames = np.full((3, 32, 32, 3), 100, np.uint8)
    entity = torch.tensor([[[0, 1], [1, 2]]] * 3)  # [T, 2, 2]
    conf = torch.full((3, 2, 2), 0.5)
    heat = render_alignment(frames, entity, conf, ["a", "b", "c"], use_matplotlib=use_matplotlib)
    image = heat.image
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    if not use_matplotlib:
        assert image.shape == (2 * 32 + 2, 3 * 32 + 2 * 2, 3)
        assert (image[:32, :32] == 100).all()  # the frame itself is drawn unchanged on top
        assert not (image[34:, :32] == 100).all()  # the overlay is coloured
        assert heat.texts == []
    assert [name for name, _, _, _ in heat.legend] == ["b", "a", "c"]  # most patches first
    assert [s for _, _, s, _ in heat.legend] == pytest.approx([0.5, 0.25, 0.25])
    assert [e.text for e in heat.legend] == ["b 50%", "a 25%", "c 25%"]
    assert heat.column_labels == ["frame 1", "frame 2", "frame 3"] and heat.row_labels == ROW_LABELS


def _evidence(shares: list[float]) -> list[EntityEvidence]:
    return [EntityEvidence(i, f"e{i}", 1, s, 0.1 * (i + 1)) for i, s in enumerate(shares)]


def test_the_legend_prints_the_evidence_not_the_drawn_patches() -> None:
    # The drawn frame shows entities 0 and 1 half each, but over the video (all frames and clips) entity 11 (beyond
    # the palette's ten colours) and the others have other shares: the legend gives the video's numbers.
    shares = [0.3, 0.2, *([0.05] * 9), 0.05]
    evidence = _evidence(shares)
    entity = torch.tensor([[[0, 0], [1, 11]]])
    heat = render_alignment(
        np.zeros((1, 16, 16, 3), np.uint8), entity, torch.ones(1, 2, 2), [e.name for e in evidence], evidence
    )
    assert [e.name for e in heat.legend] == [f"e{i}" for i in range(10)] + [OTHER_NAME]
    assert [e.share for e in heat.legend] == pytest.approx([*shares[:10], 0.1])
    assert [e.text for e in heat.legend[:2]] == ["e0 30% (0.10)", "e1 20% (0.20)"]
    assert heat.legend[-1].text == f"{OTHER_NAME} 10%" and heat.legend[-1].colour == OTHER_COLOUR
    assert [e.colour for e in heat.legend[:10]] == list(PALETTE)
    assert set(heat.texts) >= {e.text for e in heat.legend}  # drawn (matplotlib is in the dev extra)


def test_clip_heatmap_labels_rows_columns_and_says_which_frames() -> None:
    t = 6
    video = torch.zeros(t, 3, 16, 16)
    entity = torch.zeros(t, 2, 2, dtype=torch.long)
    evidence = _evidence([1.0])
    args = (video, entity, torch.ones(t, 2, 2), evidence, ["e0"], (0.5,) * 3, (0.25,) * 3)
    heat = clip_heatmap(*args, max_frames=3, title="clip.mp4: e0 (90%)", view=(0, 2))
    assert pick_frames(t, 3) == [0, 2, 5]
    assert heat.column_labels == ["frame 1/6", "frame 3/6", "frame 6/6"]
    assert "frames 1, 3, 6 of the 6 sampled, clip 1 of 2" in heat.caption
    assert "over all 6 frames x 2 clips" in heat.caption
    drawn = [" ".join(x.split()) for x in heat.texts]  # the caption is wrapped into lines
    for text in [*heat.column_labels, *heat.row_labels, heat.title, " ".join(heat.caption.split()), "e0 100% (0.10)"]:
        assert text in drawn, text
    every = clip_heatmap(*args, max_frames=None)
    assert every.column_labels == [f"frame {i}/6" for i in range(1, 7)]
    assert "Top: frames 1-6 of the 6 sampled." in every.caption and "over all 6 frames." in every.caption
    numpy_only = clip_heatmap(*args, max_frames=3, use_matplotlib=False)
    assert numpy_only.texts == [] and numpy_only.caption == heat.caption.replace(", clip 1 of 2", "").replace(
        " x 2 clips", ""
    )
    assert numpy_only.image.shape == (2 * 16 + 2, 3 * 16 + 2 * 2, 3)


# ------------------------------------------------------------------------------------------------ alt predict


@pytest.fixture
def predicted(module_kwargs: dict, tmp_path: Path) -> tuple[ALTModule, str, list]:
    video = write_video(
        tmp_path / "clip.mp4", render_clip(ClassSpec("red", "square", "right"), np.random.default_rng(1), 12)
    )
    model = ALTModule(class_names=["red square", "green disc", "blue triangle"], **module_kwargs).eval()
    results = predict_videos(model, [str(video)], num_frames=4, clips=2, png_dir=tmp_path / "png", png_frames=2)
    return model, str(video), results


def test_the_legend_shares_are_the_consoles_and_the_source_maps(predicted: tuple) -> None:
    model, video, (pred,) = predicted
    heat = pred.heatmap
    assert heat is not None and Path(pred.png).read_bytes()[:4] == b"\x89PNG"
    assert heat.column_labels == ["frame 1/4", "frame 4/4"] and "clip 1 of 2" in heat.caption
    # Reference shares, sharing no code with the package: run the same two clips with the source map kept and count
    # the patches of each entity over every frame of both clips (each patch belongs to the region holding it).
    ds = _video_dataset([video], model, 4, 2)
    clips = torch.stack([ds.load_clip(ds.records[0], v, None) for v in range(2)])  # [V, T, 3, S, S]
    encoder = model.model.encoder
    encoder.keep_source = True
    with torch.no_grad():
        out = model(clips)
    encoder.keep_source = False
    region = out.source[:, :, 1:, 1:].argmax(dim=2)  # [V, T, P]: the region of each patch
    patch_entity = out.entity_ids.gather(2, region)  # [V, T, P]
    counts = Counter(patch_entity.flatten().tolist())
    coloured = [e for e in heat.legend if e.name != OTHER_NAME]
    names = model.entity_units
    for e in coloured:
        assert e.share == pytest.approx(counts[names.index(e.name)] / patch_entity.numel(), abs=1e-6), e.name
    assert sum(e.share for e in heat.legend) == pytest.approx(1.0)
    # The drawn frames alone (view 0, frames 1 and 4: what the old legend counted) give other shares.
    first = Counter(patch_entity[0, [0, 3]].flatten().tolist())
    assert any(abs(first[names.index(e.name)] / patch_entity[0, [0, 3]].numel() - e.share) > 0.01 for e in coloured)
    # The console prints the same numbers, in the same words, as the picture's legend.
    console = Console(width=1000, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(prediction_table(pred))
    text = console.export_text()
    matched = re.search(r"regions matched: (.*?)\s*heatmaps:", text, re.DOTALL)  # rich wraps the caption
    assert matched is not None, text
    printed = " ".join(matched.group(1).split()).split(", ")
    assert len(printed) == 6
    assert printed == [e.text for e in coloured[: len(printed)]]
    assert set(printed) <= set(heat.texts)  # and they are drawn in the PNG


def test_predict_without_matplotlib_says_so_and_still_writes_the_png(
    module_kwargs: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    video = write_video(
        tmp_path / "clip.mp4", render_clip(ClassSpec("red", "square", "right"), np.random.default_rng(1), 8)
    )
    model = ALTModule(class_names=["red square", "green disc"], **module_kwargs).eval()
    (pred,) = predict_videos(model, [str(video)], num_frames=4, png_dir=tmp_path / "png")
    assert capsys.readouterr().err.strip() == f"warning: {MATPLOTLIB_MISSING}"
    assert Path(pred.png).read_bytes()[:4] == b"\x89PNG"
    assert pred.heatmap.texts == [] and pred.heatmap.legend  # the legend is still data
    with pytest.raises(ImportError, match=r"pip install 'alt-lightning\[viz\]'"):
        render_alignment(
            np.zeros((1, 8, 8, 3), np.uint8), torch.zeros(1, 1, 1), torch.ones(1, 1, 1), ["a"], use_matplotlib=True
        )
