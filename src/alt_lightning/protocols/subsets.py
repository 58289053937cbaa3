"""Class subsets of a dataset: K600's zero-shot subsets, base and novel halves, seeded draws saved as manifests."""

from __future__ import annotations

import inspect
import logging
import os
from dataclasses import replace
from pathlib import Path

from alt_lightning.data.manifests import (
    MANIFEST_MAGIC,
    Manifest,
    ManifestEntry,
    draw_classes,
    read_manifest,
    write_manifest,
)
from alt_lightning.data.records import VideoRecord
from alt_lightning.datamodules.base import VideoDataModule, plain_base_hparams
from alt_lightning.text.classes import SHIPPED_LISTS, class_names, read_class_file

log = logging.getLogger(__name__)

#: ``subset`` values.
SUBSETS = ("all", "base", "novel")


def is_manifest(path: str | os.PathLike[str]) -> bool:
    """Whether a file starts with the manifest magic line (else it is a plain one-name-per-line list)."""
    with open(path, encoding="utf-8-sig") as f:
        return f.readline().strip() == MANIFEST_MAGIC


def resolve_class_list(spec: str | list[str], parent: list[str]) -> tuple[list[str], str | None]:
    """Class names of ``spec`` in ``parent``'s label order, and the manifest file they came from (if any).

    Args:
        spec: A shipped list name (``"k600_zs_split1"``, ``"k600_novel"``), a class manifest, a text file with one
            name per line, or a list of names.
        parent: The base dataset's class names.

    Raises:
        ValueError: If a name is not a class of the parent dataset (the first few are named).
    """
    source = None
    if isinstance(spec, (list, tuple)):
        names = list(spec)
    elif spec in SHIPPED_LISTS:
        names = class_names(spec)
    elif Path(spec).is_file() and is_manifest(spec):
        manifest = read_manifest(spec)
        names, source = [e.item for e in manifest.entries], str(spec)
    elif Path(spec).is_file():
        names = read_class_file(spec)
    else:
        raise ValueError(f"classes={spec!r} is neither a shipped list ({', '.join(SHIPPED_LISTS)}) nor a file.")
    index = {n: i for i, n in enumerate(parent)}
    unknown = [n for n in names if n not in index]
    if unknown:
        raise ValueError(
            f"{len(unknown)} of the {len(names)} classes of {spec if isinstance(spec, str) else 'classes'} are not "
            f"classes of the base dataset ({len(parent)} classes), e.g. {unknown[:3]}. Pass the matching base "
            "(e.g. Kinetics version 600 for the K600 subsets)."
        )
    return sorted(set(names), key=index.__getitem__), source


def split_halves(names: list[str], which: str) -> list[str]:
    """``"base"``: the first ``ceil(n / 2)`` classes in label order, ``"novel"``: the rest, ``"all"``: every one."""
    if which not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {which!r}.")
    half = (len(names) + 1) // 2
    return {"all": names, "base": names[:half], "novel": names[half:]}[which]


def class_manifest(names: list[str], parent: list[str], header: dict[str, str]) -> Manifest:
    """A manifest of a class subset: one ``<class name> <label in the parent dataset>`` line per class."""
    index = {n: i for i, n in enumerate(parent)}
    return Manifest([ManifestEntry(n, index[n]) for n in names], {"kind": "class-subset", **header})


class ClassSubsetDataModule(VideoDataModule):
    """Only some classes of a base DataModule, relabelled ``0..n-1`` in the base's label order.

    Used for the zero-shot K600 protocol (the 3 published 160-class subsets of the 220 classes not in K400, or
    new ones drawn by seed) and for base-to-novel (first or second half of the classes). In a config::

        data:
          class_path: alt_lightning.protocols.ClassSubsetDataModule
          init_args:
            classes: k600_zs_split1          # or k600_novel with draw: 160, draw_seed: 0
            base: {class_path: alt_lightning.datamodules.KineticsDataModule, init_args: {version: 600, root: ...}}

    Args:
        base: The full dataset; its sampling, transform and loader settings are used.
        classes: The classes to keep: a shipped list name, a class manifest (see :func:`class_manifest`), a file
            with one name per line, or a list; ``None`` keeps every class of the base.
        subset: ``"all"``, or ``"base"`` / ``"novel"``: the first / second half of ``classes`` in label order.
            Our choice for base-to-novel (ViFi-CLIP does not publish its halves in this form): halves in the
            dataset's label order; alternative: draw the base half with ``draw`` and ``draw_seed``.
        draw: Draw this many of ``classes`` by ``draw_seed`` (hash-ranked, see
            :func:`alt_lightning.data.manifests.draw_classes`) and save the draw as a manifest.
        draw_seed: Seed of the draw.
        manifest_out: Where the drawn manifest goes; default
            ``<log_dir>/classes_<dataset>_<n>of<m>_seed<s>.txt`` (the working folder without a trainer).

    Sampling, transform and loader settings are the base's (set them under ``base.init_args``).
    """

    def __init__(
        self,
        base: VideoDataModule,
        classes: str | list[str] | None = None,
        subset: str = "all",
        draw: int | None = None,
        draw_seed: int = 0,
        manifest_out: str | None = None,
    ) -> None:
        super().__init__(**base.cfg)
        self.base = base
        self.subset, self.draw, self.draw_seed, self.manifest_out = subset, draw, draw_seed, manifest_out
        parent = list(base.class_names)
        names, self.manifest_path = resolve_class_list(classes, parent) if classes is not None else (parent, None)
        self.source_classes = names
        if draw is not None:
            names = draw_classes(names, draw, draw_seed)
        self._class_names = split_halves(names, subset)
        if len(self._class_names) < 2:
            raise ValueError(
                f"The {subset} subset of {len(names)} classes has {len(self._class_names)} class(es); a classifier "
                "needs at least 2: pass more classes."
            )
        self.parent_labels = [parent.index(n) for n in self._class_names]
        self._relabel = {p: i for i, p in enumerate(self.parent_labels)}
        self._base_records: dict[str, list[VideoRecord]] = {}
        if draw is not None:
            self.manifest_path = None  # written on first use, when the trainer's log folder is known
        plain_base_hparams(self, base, set(inspect.signature(ClassSubsetDataModule.__init__).parameters))

    @property
    def class_names(self) -> list[str]:
        """The kept classes, in the base's label order."""
        return self._class_names

    @property
    def dataset_name(self) -> str:
        """The base's name."""
        return self.base.dataset_name

    @property
    def split(self) -> int | None:
        """The base's official split, if it has one (few-shot manifests record it)."""
        return getattr(self.base, "split", None)

    def default_manifest_path(self) -> Path:
        """Where a drawn class manifest goes when ``manifest_out`` is unset."""
        log_dir = getattr(getattr(self, "trainer", None), "log_dir", None)
        name = f"classes_{self.dataset_name}_{self.draw}of{len(self.source_classes)}_seed{self.draw_seed}.txt"
        return Path(log_dir or ".") / name

    def manifest(self) -> Manifest:
        """The kept classes as a manifest (what a drawn subset is saved as)."""
        header = {
            "dataset": self.dataset_name,
            "subset": self.subset,
            "from": str(len(self.source_classes)),
            "classes": str(len(self._class_names)),
        }
        if self.draw is not None:
            header |= {
                "seed": str(self.draw_seed),
                "draw": f'the {self.draw} classes with the smallest sha256("<seed>|<class name>")',
            }
        return class_manifest(self._class_names, list(self.base.class_names), header)

    def records(self, split: str) -> list[VideoRecord]:
        """The base's records of the kept classes, relabelled; unlabelled records are dropped."""
        if self.draw is not None and self.manifest_path is None:
            self.manifest_path = str(write_manifest(self.manifest_out or self.default_manifest_path(), self.manifest()))
            log.info("class subset (%d classes) written to %s", len(self._class_names), self.manifest_path)
        base_records = self.base.records(split)
        self._base_records[split] = base_records
        out = []
        for r in base_records:
            if r.label in self._relabel:
                meta = {**r.meta, "parent_label": r.label}
                out.append(replace(r, label=self._relabel[r.label], meta=meta))
        return out

    def missing_records(self, split: str, records: list[VideoRecord]) -> list[VideoRecord]:
        """The base's report, restricted to the kept records."""
        base_records = self._base_records.get(split)
        if base_records is None:
            return super().missing_records(split, records)
        absent = {r.path for r in self.base.missing_records(split, base_records)}
        return [r for r in records if r.path in absent]
