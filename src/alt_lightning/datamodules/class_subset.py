"""The ``class_subset`` option of every DataModule: K600's zero-shot subsets, base and novel halves, seeded draws."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from alt_lightning.data.manifests import MANIFEST_MAGIC, Manifest, ManifestEntry, draw_classes, read_manifest
from alt_lightning.text.classes import SHIPPED_LISTS, class_names, read_class_file

#: ``subset`` values.
SUBSETS = ("all", "base", "novel")


@dataclass
class ClassSubset:
    """Only some classes of the dataset, relabelled ``0..n-1`` in the dataset's label order.

    Used for the zero-shot K600 protocol (the 3 published 160-class subsets of the 220 classes not in K400, or new
    ones drawn by seed) and for base-to-novel (first or second half of the classes). In a config, on any data piece
    (``configs/data/k600.yaml`` then an experiment with)::

        data:
          init_args:
            class_subset: {classes: k600_zs_split1}     # or {classes: k600_novel, draw: 160, draw_seed: 0}

    Records of other classes are counted and logged per split, never dropped unseen; unlabelled records are kept
    (the label check then names them, or the predict stage serves them).

    Args:
        classes: The classes to keep: a shipped list name (``"k600_zs_split1"``, ``"k600_novel"``), a class manifest
            (see :func:`class_manifest`), a file with one name per line, or a list; ``None`` keeps every class.
        subset: ``"all"``, or ``"base"`` / ``"novel"``: the first / second half of ``classes`` in label order. Our
            choice for base-to-novel (ViFi-CLIP does not publish its halves in this form): halves in the dataset's
            label order; alternative: draw the base half with ``draw`` and ``draw_seed``.
        draw: Draw this many of ``classes`` by ``draw_seed`` (hash-ranked, see
            :func:`alt_lightning.data.manifests.draw_classes`) and save the draw as a manifest.
        draw_seed: Seed of the draw.
        manifest_out: Where the drawn manifest goes; default ``<log_dir>/classes_<dataset>_<n>of<m>_seed<s>.txt``
            (the working folder without a trainer).
    """

    classes: str | list[str] | None = None
    subset: str = "all"
    draw: int | None = None
    draw_seed: int = 0
    manifest_out: str | None = None

    def __post_init__(self) -> None:
        if self.subset not in SUBSETS:
            raise ValueError(f"class_subset.subset must be one of {SUBSETS}, got {self.subset!r}.")

    def select(self, parent: list[str]) -> tuple[list[str], list[str], str | None]:
        """The kept class names (in ``parent``'s order), the names they were chosen from, and the source manifest.

        Raises:
            ValueError: A class not in ``parent``, or fewer than 2 classes kept.
        """
        source: str | None = None
        names = list(parent)
        if self.classes is not None:
            names, source = resolve_class_list(self.classes, parent)
        chosen = draw_classes(names, self.draw, self.draw_seed) if self.draw is not None else names
        kept = split_halves(chosen, self.subset)
        if len(kept) < 2:
            raise ValueError(
                f"The {self.subset} subset of {len(chosen)} classes has {len(kept)} class(es); a classifier needs at "
                "least 2: pass more classes."
            )
        return kept, names, None if self.draw is not None else source

    def file_name(self, dataset_name: str, num_source: int) -> str:
        """The default name of a drawn subset's manifest."""
        return f"classes_{dataset_name}_{self.draw}of{num_source}_seed{self.draw_seed}.txt"

    def manifest(self, kept: list[str], parent: list[str], dataset_name: str, num_source: int) -> Manifest:
        """The kept classes as a manifest (what a drawn subset is saved as)."""
        header = {"dataset": dataset_name, "subset": self.subset, "from": str(num_source), "classes": str(len(kept))}
        if self.draw is not None:
            header |= {
                "seed": str(self.draw_seed),
                "draw": f'the {self.draw} classes with the smallest sha256("<seed>|<class name>")',
            }
        return class_manifest(kept, parent, header)


def is_manifest(path: str | os.PathLike[str]) -> bool:
    """Whether a file starts with the manifest magic line (else it is a plain one-name-per-line list)."""
    with open(path, encoding="utf-8-sig") as f:
        return f.readline().strip() == MANIFEST_MAGIC


def resolve_class_list(spec: str | list[str], parent: list[str]) -> tuple[list[str], str | None]:
    """Class names of ``spec`` in ``parent``'s label order, and the manifest file they came from (if any).

    Args:
        spec: A shipped list name (``"k600_zs_split1"``, ``"k600_novel"``), a class manifest, a text file with one
            name per line, or a list of names.
        parent: The dataset's class names.

    Raises:
        ValueError: If a name is not a class of the dataset (the first few are named).
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
            f"classes of the dataset ({len(parent)} classes), e.g. {unknown[:3]}. Pass the matching dataset "
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
