"""Few-shot training: K videos per class of a base DataModule's training split, drawn by seed or read back."""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any

from alt_lightning.data.manifests import (
    Manifest,
    ManifestEntry,
    draw_per_class,
    read_manifest,
    relative_path,
    write_manifest,
)
from alt_lightning.data.parsers import AnnotationError
from alt_lightning.data.records import VideoRecord
from alt_lightning.datamodules.base import VideoDataModule, plain_base_hparams

log = logging.getLogger(__name__)


class FewShotDataModule(VideoDataModule):
    """``shots`` training videos per class of ``base``; validation and test are the base's own.

    Nothing new on disk: the base DataModule's layout (e.g. :class:`UCFHMDBDataModule`, split 1). In a config::

        data:
          class_path: alt_lightning.datamodules.FewShotDataModule
          init_args:
            shots: 2
            seed: 0
            base: {class_path: alt_lightning.datamodules.UCFHMDBDataModule,
                   init_args: {dataset: hmdb51, split: 1, root: data/hmdb51, num_frames: 32}}

    The drawn list is written as a manifest (:mod:`alt_lightning.data.manifests`: header with dataset, split,
    shots, seed and the sha256 of the canonical list) that the same annotations and seed reproduce byte for byte.
    With ``manifest`` the list is read back instead: one of ours, or a ``path label`` list another project
    published (ViFi-CLIP's ``train1_few_shot_2.txt`` names videos without folders). Every listed video must be in
    the base's training split with the same label, so a list can never leak test videos.

    Args:
        base: The dataset to draw from; its sampling, transform and loader settings are used.
        shots: Videos per class ``K`` (the protocol: 2, 4, 8, 16).
        seed: Draw seed (the protocol reports 3 draws or the published lists).
        manifest: Read this list instead of drawing.
        manifest_out: Where to write the drawn manifest; default
            ``<log_dir>/few_shot_<dataset>[_split<k>]_<K>shot_seed<s>.txt`` (the working folder without a trainer).
        allow_fewer: Take every video of a class with fewer than ``shots`` instead of failing.
        **kwargs: :class:`VideoDataModule` settings that override the base's (e.g. ``batch_size``).
    """

    def __init__(
        self,
        base: VideoDataModule,
        shots: int = 2,
        seed: int = 0,
        manifest: str | None = None,
        manifest_out: str | None = None,
        allow_fewer: bool = False,
        **kwargs: Any,
    ) -> None:
        settings = {**base.cfg, **kwargs}
        super().__init__(**settings)
        if shots < 1:
            raise ValueError(f"shots must be >= 1, got {shots}.")
        self.base, self.shots, self.seed = base, shots, seed
        self.manifest, self.manifest_out, self.allow_fewer = manifest, manifest_out, allow_fewer
        self.manifest_path: Path | None = None  # the manifest read or written by the latest `records("train")`
        plain_base_hparams(self, base, set(inspect.signature(FewShotDataModule.__init__).parameters) | set(kwargs))

    @property
    def class_names(self) -> list[str]:
        """The base's class names."""
        return self.base.class_names

    @property
    def dataset_name(self) -> str:
        """The base's name."""
        return self.base.dataset_name

    def _header(self, num_entries: int) -> dict[str, str]:
        split = getattr(self.base, "split", None)
        header = {"kind": "few-shot", "dataset": self.dataset_name}
        if split is not None:
            header["split"] = str(split)
        header |= {
            "subset": "train",
            "shots": str(self.shots),
            "seed": str(self.seed),
            "draw": f'per class, the {self.shots} videos with the smallest sha256("<seed>|<video_id>")',
            "classes": str(self.num_classes),
            "entries": str(num_entries),
        }
        return header

    def default_manifest_path(self) -> Path:
        """Where a drawn manifest goes when ``manifest_out`` is unset."""
        split = getattr(self.base, "split", None)
        name = f"few_shot_{self.dataset_name}{f'_split{split}' if split is not None else ''}"
        name += f"_{self.shots}shot_seed{self.seed}.txt"
        log_dir = getattr(getattr(self, "trainer", None), "log_dir", None)
        return Path(log_dir or ".") / name

    def draw(self) -> tuple[list[VideoRecord], Manifest]:
        """Draw the records and their manifest.

        The draw is from every listed training video, present on disk or not: it depends only on the annotations.
        """
        drawn = draw_per_class(self.base.records("train"), self.shots, self.seed, allow_fewer=self.allow_fewer)
        entries = [ManifestEntry(relative_path(r.path, self.base.root), r.label) for r in drawn]
        return drawn, Manifest(entries, self._header(len(entries)))

    def records(self, split: str) -> list[VideoRecord]:
        """The drawn (or listed) training videos; the base's records for validation and test."""
        if split != "train":
            return self.base.records(split)
        if self.manifest is not None:
            self.manifest_path = (
                self.resolve(self.manifest) if not os.path.isfile(self.manifest) else Path(self.manifest)
            )
            return self.from_manifest(read_manifest(self.manifest_path))
        drawn, manifest = self.draw()
        self.manifest_path = write_manifest(self.manifest_out or self.default_manifest_path(), manifest)
        log.info(
            "few-shot list (%d videos, sha256 %s) written to %s", len(drawn), manifest.sha256[:12], self.manifest_path
        )
        return drawn

    def missing_records(self, split: str, records: list[VideoRecord]) -> list[VideoRecord]:
        """The base's report for validation and test (e.g. Kinetics' own), a ``stat`` per drawn video."""
        if split == "train":
            return super().missing_records(split, records)
        return self.base.missing_records(split, records)

    def from_manifest(self, manifest: Manifest) -> list[VideoRecord]:
        """The base's training records that the manifest lists (by relative path, else file name, else stem).

        Raises:
            AnnotationError: A listed video that is not a base training video, or whose label differs (the file
                and line are named).
            ValueError: The manifest's ``shots`` header differs from ``shots``.
        """
        where = manifest.path or "manifest"
        if "shots" in manifest.header and int(manifest.header["shots"]) != self.shots:
            raise ValueError(
                f"{where} holds {manifest.header['shots']} shots but shots={self.shots}; pass shots="
                f"{manifest.header['shots']} or another manifest."
            )
        by_key: dict[str, VideoRecord] = {}
        for r in self.base.records("train"):
            name = os.path.basename(r.path)
            for key in (relative_path(r.path, self.base.root), name.lower(), os.path.splitext(name)[0].lower()):
                by_key.setdefault(key, r)
        out: list[VideoRecord] = []
        unknown: list[ManifestEntry] = []
        for e in manifest.entries:
            name = os.path.basename(e.item)
            r = by_key.get(e.item) or by_key.get(name.lower()) or by_key.get(os.path.splitext(name)[0].lower())
            if r is None:
                unknown.append(e)
                continue
            if r.label != e.label:
                names = self.class_names
                raise AnnotationError(
                    f"{where}:{e.line}: {e.item} has label {e.label} but the base dataset gives "
                    f"{r.label} ({names[r.label] if 0 <= r.label < len(names) else '?'}). The list uses another "
                    "class order: pass the matching base dataset or fix the labels"
                )
            out.append(r)
        if unknown:
            first = ", ".join(f"{e.item} (line {e.line})" for e in unknown[:5])
            raise AnnotationError(
                f"{where}: {len(unknown)} of {len(manifest.entries)} listed videos are not training videos of "
                f"{self.dataset_name}: {first}. Use the base split the list was drawn from"
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
