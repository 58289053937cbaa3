"""The ``few_shot`` option of every DataModule: K training videos per class, drawn by seed or read back from a list."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from alt_lightning.data.manifests import Manifest, ManifestEntry, draw_per_class, relative_path
from alt_lightning.data.parsers import AnnotationError
from alt_lightning.data.records import VideoRecord

log = logging.getLogger(__name__)


@dataclass
class FewShot:
    """``shots`` training videos per class; validation and test stay the dataset's own.

    In a config, on any data piece (``configs/data/hmdb51.yaml`` then an experiment with)::

        data:
          init_args:
            few_shot: {shots: 2, seed: 0}

    The drawn list is written as a manifest (:mod:`alt_lightning.data.manifests`: header with dataset, split,
    shots, seed and the sha256 of the canonical list) that the same annotations and seed reproduce byte for byte.
    With ``manifest`` the list is read back instead: one of ours, or a ``path label`` list another project published
    (ViFi-CLIP's ``train1_few_shot_2.txt`` names videos without folders). Every listed video must be a training
    video of the dataset with the same label, so a list can never leak test videos. With a class subset the draw is
    from the subset's classes, labelled in the subset's order.

    Args:
        shots: Videos per class ``K`` (the protocol: 2, 4, 8, 16).
        seed: Draw seed (the protocol reports 3 draws or the published lists). Not the DataModule's ``seed``
            (shuffling and augmentation).
        manifest: Read this list instead of drawing (a path, relative to ``root`` when not found as given).
        manifest_out: Where to write the drawn manifest; default
            ``<log_dir>/few_shot_<dataset>[_split<k>]_<K>shot_seed<s>.txt`` (the working folder without a trainer).
        allow_fewer: Take every video of a class with fewer than ``shots`` instead of failing.
    """

    shots: int
    seed: int = 0
    manifest: str | None = None
    manifest_out: str | None = None
    allow_fewer: bool = False

    def __post_init__(self) -> None:
        if self.shots < 1:
            raise ValueError(f"few_shot.shots must be >= 1, got {self.shots}.")

    def file_name(self, dataset_name: str, split: int | None) -> str:
        """The default manifest name: ``few_shot_<dataset>[_split<k>]_<K>shot_seed<s>.txt``."""
        name = f"few_shot_{dataset_name}{f'_split{split}' if split is not None else ''}"
        return f"{name}_{self.shots}shot_seed{self.seed}.txt"

    def draw(
        self, records: list[VideoRecord], root: Path, dataset_name: str, split: int | None, num_classes: int
    ) -> tuple[list[VideoRecord], Manifest]:
        """Draw ``shots`` of ``records`` per class, and their manifest.

        The draw is from every listed training video, present on disk or not: it depends only on the annotations.

        Args:
            records: The labelled training records (after the class subset, if any).
            root: The dataset root (manifest paths are relative to it).
            dataset_name: For the header.
            split: The dataset's official split, if it has one (for the header).
            num_classes: Classes of the label space (for the header).
        """
        drawn = draw_per_class(records, self.shots, self.seed, allow_fewer=self.allow_fewer)
        entries = [ManifestEntry(relative_path(r.path, root), r.label) for r in drawn]
        header = {"kind": "few-shot", "dataset": dataset_name}
        if split is not None:
            header["split"] = str(split)
        header |= {
            "subset": "train",
            "shots": str(self.shots),
            "seed": str(self.seed),
            "draw": f'per class, the {self.shots} videos with the smallest sha256("<seed>|<video_id>")',
            "classes": str(num_classes),
            "entries": str(len(entries)),
        }
        return drawn, Manifest(entries, header)

    def listed(
        self, manifest: Manifest, records: list[VideoRecord], root: Path, class_names: list[str], dataset_name: str
    ) -> list[VideoRecord]:
        """The training ``records`` that ``manifest`` lists (by relative path, else file name, else stem).

        Raises:
            AnnotationError: A listed video that is not a training video, or whose label differs (the file and
                line are named).
            ValueError: The manifest's ``shots`` header differs from ``shots``.
        """
        where = manifest.path or "manifest"
        if "shots" in manifest.header and int(manifest.header["shots"]) != self.shots:
            raise ValueError(
                f"{where} holds {manifest.header['shots']} shots but shots={self.shots}; pass shots="
                f"{manifest.header['shots']} or another manifest."
            )
        by_key: dict[str, VideoRecord] = {}
        for r in records:
            name = os.path.basename(r.path)
            for key in (relative_path(r.path, root), name.lower(), os.path.splitext(name)[0].lower()):
                by_key.setdefault(key, r)
        out: list[VideoRecord] = []
        unknown: list[ManifestEntry] = []
        for e in manifest.entries:
            name = os.path.basename(e.item)
            found = by_key.get(e.item) or by_key.get(name.lower()) or by_key.get(os.path.splitext(name)[0].lower())
            if found is None:
                unknown.append(e)
                continue
            if found.label != e.label:
                given = class_names[found.label] if 0 <= found.label < len(class_names) else "?"
                raise AnnotationError(
                    f"{where}:{e.line}: {e.item} has label {e.label} but the dataset gives {found.label} ({given}). "
                    "The list uses another class order: pass the matching dataset (and class subset) or fix the labels"
                )
            out.append(found)
        if unknown:
            first = ", ".join(f"{e.item} (line {e.line})" for e in unknown[:5])
            raise AnnotationError(
                f"{where}: {len(unknown)} of {len(manifest.entries)} listed videos are not training videos of "
                f"{dataset_name}: {first}. Use the split the list was drawn from"
            )
        counts = manifest.per_class()
        log.info(
            "few-shot list %s: %d videos, %d-%d per class over %d classes",
            where,
            len(out),
            min(counts.values()),
            max(counts.values()),
            len(counts),
        )
        return out
