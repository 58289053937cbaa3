"""Explanations of ALT's predictions, for ``alt predict`` and the ``AlignmentHeatmapLogger`` callback alike.

* :mod:`~alt_lightning.explain.evidence`: the entities a video's regions matched (area share, confidence), those
  that explain a class, and the patch maps of a forward pass run with the source map kept.
* :mod:`~alt_lightning.explain.heatmap`: the pictures: frames, regions coloured by entity, legend, caption, PNG.

A layer of its own (see ``tests/test_layers.py``): it imports ``model/`` (and may import ``text/``, ``data/``), never
Lightning, so that both the command and the callback use it.
"""

from alt_lightning.explain.evidence import (
    ClassPrediction,
    EntityEvidence,
    alignment_maps,
    entity_evidence,
    entity_patch_map,
    explain_class,
    output_evidence,
    source_kept,
)
from alt_lightning.explain.heatmap import (
    MATPLOTLIB_MISSING,
    PALETTE,
    Heatmap,
    LegendEntry,
    clip_heatmap,
    colour_assignment,
    denormalize,
    matplotlib_available,
    overlay,
    pick_frames,
    render_alignment,
    write_png,
)

__all__ = [
    "MATPLOTLIB_MISSING",
    "PALETTE",
    "ClassPrediction",
    "EntityEvidence",
    "Heatmap",
    "LegendEntry",
    "alignment_maps",
    "clip_heatmap",
    "colour_assignment",
    "denormalize",
    "entity_evidence",
    "entity_patch_map",
    "explain_class",
    "matplotlib_available",
    "output_evidence",
    "overlay",
    "pick_frames",
    "render_alignment",
    "source_kept",
    "write_png",
]
