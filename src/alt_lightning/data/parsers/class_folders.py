"""A folder per class: ``root/<class>/**/<video>``, for a user's own videos.

On-disk format: not a published dataset format but the folder-per-class convention of torchvision's
``DatasetFolder``: every sub-folder of ``root`` is a class (hidden folders skipped) and its videos are the files
below it, at any depth, with a video extension (:data:`~alt_lightning.data.parsers.common.VIDEO_EXTENSIONS`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from alt_lightning.data.parsers.common import VIDEO_EXTENSIONS, PathLike, annotation_error
from alt_lightning.data.records import VideoRecord


def parse_class_folders(root: PathLike, exts: Iterable[str] = VIDEO_EXTENSIONS) -> tuple[list[VideoRecord], list[str]]:
    """Records of a class-per-folder tree: ``root/<class>/**/<video>``.

    On-disk format: every sub-folder of ``root`` is a class (hidden folders skipped); its videos are
    the files below it (any depth) whose extension is in ``exts`` (any case). Class names are the
    sorted folder names; a folder without videos still counts as a class.

    Returns:
        ``(records, class_names)``; records sorted by path, ``video_id`` = path relative to ``root``
        without extension, ``meta["source"]`` = that relative path.

    Raises:
        AnnotationError: ``root`` is not a folder or has no class folders.
    """
    root_s = os.fspath(root)
    if not os.path.isdir(root_s):
        raise annotation_error(root_s, None, "not a folder", "Pass the folder holding one sub-folder per class")
    wanted = {e.lower() if e.startswith(".") else "." + e.lower() for e in exts}
    classes = sorted(d.name for d in os.scandir(root_s) if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise annotation_error(root_s, None, "no class folders", "Lay the videos out as <root>/<class>/<video>")
    records: list[VideoRecord] = []
    for label, cls in enumerate(classes):
        base = Path(root_s, cls)
        files = sorted(p for p in base.rglob("*") if p.is_file() and p.suffix.lower() in wanted)
        for p in files:
            rel = p.relative_to(root_s).as_posix()
            records.append(
                VideoRecord(
                    path=str(p),
                    label=label,
                    video_id=rel[: -len(p.suffix)],
                    meta={"source": rel, "label_name": cls},
                )
            )
    return records, classes
