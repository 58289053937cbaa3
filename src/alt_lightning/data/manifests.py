"""Seeded, hashed manifests: few-shot training lists (and later class subsets), reproducible byte for byte.

A manifest is a ``path label`` list with a header of ``#`` lines, which this package's list readers
(:func:`read_manifest`, :func:`~alt_lightning.data.parsers.lists.parse_path_label_list`) recognise by the first
line and skip; other tools need the header removed (``grep -v '^# '``)::

    # alt-lightning manifest v1
    # kind: few-shot
    # dataset: hmdb51
    # split: 1
    # subset: train
    # shots: 2
    # seed: 0
    # draw: per class, the 2 videos with the smallest sha256("<seed>|<video_id>")
    # classes: 51
    # entries: 102
    # sha256: 5f1c...   (of the body below, UTF-8)
    brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi 0
    ...

The body is canonical: one ``<path> <label>`` line per entry, sorted by label then path, paths relative to the
dataset root with ``/`` separators, LF line ends. The header holds no date or machine name, so the same
annotations and seed give the same bytes everywhere. Drawing ranks videos by a hash of ``(seed, video_id)``
instead of a random generator: the draw does not depend on NumPy's version, on the order the parser returned
records in, or on which other videos exist, and drawing 4 shots keeps the 2 of the 2-shot draw.

Lists other projects published (e.g. ViFi-CLIP's ``train1_few_shot_2.txt``: ``v_ApplyEyeMakeup_g24_c04.avi 0``)
read back as manifests without a header.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from alt_lightning.data.parsers import MANIFEST_MAGIC, AnnotationError, split_manifest_header
from alt_lightning.data.records import VideoRecord

__all__ = [
    "MANIFEST_MAGIC",
    "Manifest",
    "ManifestEntry",
    "draw_classes",
    "draw_per_class",
    "read_manifest",
    "relative_path",
    "write_manifest",
]


@dataclass(frozen=True)
class ManifestEntry:
    """One ``<item> <label>`` line: ``item`` is a video path (or a class name for class subsets)."""

    item: str
    label: int
    line: int = 0  # line number in the file read (0 when built in memory)


@dataclass
class Manifest:
    """A manifest's header (ordered ``key -> value``), its entries, and where it was read from."""

    entries: list[ManifestEntry]
    header: dict[str, str] = field(default_factory=dict)
    path: str | None = None

    @property
    def body(self) -> str:
        """The canonical body: entries sorted by (label, item), one ``item label`` line each."""
        return canonical_body(self.entries)

    @property
    def sha256(self) -> str:
        """Hash of the canonical body."""
        return hashlib.sha256(self.body.encode("utf-8")).hexdigest()

    def text(self) -> str:
        """The file content: magic line, header, ``sha256`` of the body, body."""
        head = [MANIFEST_MAGIC]
        head += [f"# {k}: {v}" for k, v in self.header.items() if k != "sha256"]
        head.append(f"# sha256: {self.sha256}")
        return "\n".join(head) + "\n" + self.body

    def per_class(self) -> dict[int, int]:
        """Entries per label."""
        counts: dict[int, int] = defaultdict(int)
        for e in self.entries:
            counts[e.label] += 1
        return dict(sorted(counts.items()))


def canonical_body(entries: Iterable[ManifestEntry]) -> str:
    """``item label`` lines sorted by (label, item), each ending in a line feed."""
    lines = []
    for e in sorted(entries, key=lambda e: (e.label, e.item)):
        if "\n" in e.item or "\r" in e.item or e.item != e.item.strip() or not e.item:
            raise ValueError(f"manifest item {e.item!r} is empty, has surrounding spaces or a line break")
        lines.append(f"{e.item} {e.label}\n")
    return "".join(lines)


def relative_path(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> str:
    """``path`` relative to ``root`` with ``/`` separators (portable); absolute when it lies outside ``root``."""
    p, r = os.path.abspath(os.fspath(path)), os.path.abspath(os.fspath(root))
    try:
        rel = os.path.relpath(p, r)
    except ValueError:  # other drive (Windows)
        return Path(p).as_posix()
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return Path(p).as_posix()
    return PurePosixPath(*Path(rel).parts).as_posix()


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}|{key}".encode()).hexdigest()


def draw_per_class(
    records: Sequence[VideoRecord], shots: int, seed: int, *, allow_fewer: bool = False
) -> list[VideoRecord]:
    """``shots`` records of every label: those with the smallest ``sha256(f"{seed}|{video_id}")``.

    Args:
        records: Candidate records (a labelled training split).
        shots: Videos per class ``K``.
        seed: Draw seed.
        allow_fewer: Take all videos of a class that has fewer than ``shots`` instead of raising.

    Returns:
        The drawn records, sorted by (label, video_id).

    Raises:
        ValueError: ``shots < 1``, an unlabelled record (label ``< 0``: it belongs to no class, so it could never be
            drawn, and skipping it would drop it unseen), duplicate video ids, or a class with fewer than ``shots``
            videos.
    """
    if shots < 1:
        raise ValueError(f"shots must be >= 1, got {shots}")
    by_label: dict[int, list[VideoRecord]] = defaultdict(list)
    seen: set[tuple[int, str]] = set()
    for r in records:
        if r.label < 0:
            where = r.meta.get("source", r.video_id)
            raise ValueError(
                f"{where}: video {r.video_id!r} has no label; a few-shot draw needs a labelled training split"
            )
        if (r.label, r.video_id) in seen:
            raise ValueError(f"video id {r.video_id!r} appears twice in class {r.label}; ids must be unique")
        seen.add((r.label, r.video_id))
        by_label[r.label].append(r)
    drawn: list[VideoRecord] = []
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda r: (_rank(seed, r.video_id), r.video_id))
        if len(group) < shots and not allow_fewer:
            raise ValueError(
                f"class {label} has only {len(group)} videos, fewer than shots={shots}; "
                "pass allow_fewer=True to take them all"
            )
        drawn += sorted(group[:shots], key=lambda r: r.video_id)
    return drawn


def draw_classes(class_names: Sequence[str], k: int, seed: int) -> list[str]:
    """``k`` of ``class_names`` drawn by seed (hash-ranked, as :func:`draw_per_class`), in their original order.

    For class subsets such as Kinetics-600's zero-shot evaluation (3 subsets of 160 of the 220 novel classes).
    """
    if not 0 < k <= len(class_names):
        raise ValueError(f"k must be in 1..{len(class_names)}, got {k}")
    if len(set(class_names)) != len(class_names):
        raise ValueError("class names must be unique")
    chosen = set(sorted(class_names, key=lambda c: (_rank(seed, c), c))[:k])
    return [c for c in class_names if c in chosen]


def write_manifest(path: str | os.PathLike[str], manifest: Manifest) -> Path:
    """Write ``manifest`` (atomically: several DDP ranks may write the same bytes at once)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(manifest.text().encode("utf-8"))
    os.replace(tmp, path)
    return path


def read_manifest(path: str | os.PathLike[str], *, verify: bool = True) -> Manifest:
    """Read a manifest, or a plain ``<path> <label>`` list (no header).

    The header (our format only: the :data:`MANIFEST_MAGIC` line and the ``# key: value`` lines right after it)
    is read as :func:`~alt_lightning.data.parsers.lists.split_manifest_header` defines; every other non-blank line
    is an entry, ``#`` or not (plain lists are other projects' data, and HMDB-51 names start with ``#``). The
    label is the last whitespace-separated field (paths may hold spaces).

    Args:
        path: The file.
        verify: Check the ``sha256`` header against the body (catches edited or re-sorted files).

    Raises:
        AnnotationError: Missing file, a line without an integer label (file and line named), a hash mismatch.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise AnnotationError(f"{path}: manifest not found. Check the path (or draw one by leaving it unset)")
    text = Path(path).read_text(encoding="utf-8-sig")
    lines = [(n, raw.strip()) for n, raw in enumerate(text.splitlines(), start=1) if raw.strip()]
    header, body = split_manifest_header(lines)
    entries: list[ManifestEntry] = []
    for n, line in body:
        parts = line.rsplit(None, 1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise AnnotationError(
                f"{path}:{n}: expected '<path> <integer label>', got {line!r}. Fix the line or the file"
            )
        entries.append(ManifestEntry(parts[0].replace("\\", "/"), int(parts[1]), n))
    if not entries:
        raise AnnotationError(f"{path}: the manifest lists no videos. Pass a non-empty list")
    manifest = Manifest(entries, header, path)
    expected = header.get("sha256")
    if verify and expected and expected != manifest.sha256:
        raise AnnotationError(
            f"{path}: sha256 of the list is {manifest.sha256[:16]}..., the header says {expected[:16]}...: the "
            "file was edited after it was written. Restore it, draw it again, or remove the sha256 line"
        )
    return manifest
