"""HMDB-51's official splits (``testTrainMulti_7030_splits``).

On-disk format, as the split archive released with HMDB51 (Kuehne et al., 2011; ``test_train_splits.rar``)
holds it: one file per class and split, ``<class>_test_split<k>.txt`` (``k = 1, 2, 3``), with one line
``<video>.avi <flag> `` (a trailing space) per video of the class, flag ``1`` = train, ``2`` = test,
``0`` = unused (70 train and 30 test videos per class). Video names may start with ``#``
(``catch_test_split1.txt``)::

    April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1
    #122_Cleaning_Up_The_Beach_In_Chiba__Japan_catch_f_cm_np1_fr_med_0.avi 2

Videos are ``<video_root>/<class>/<video>.avi`` (the per-class ``.rar`` archives, unpacked).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from alt_lightning.data.parsers.common import (
    CaseInsensitiveResolver,
    PathLike,
    annotation_error,
    numbered_lines,
    source_of,
)
from alt_lightning.data.records import VideoRecord

_HMDB_FLAGS = {"train": "1", "test": "2"}


def hmdb51_split_classes(split_dir: PathLike, split: int) -> list[str]:
    """Sorted class names of the ``<class>_test_split<split>.txt`` files in ``split_dir``.

    Raises:
        AnnotationError: The folder does not exist or holds no split file of ``split``.
    """
    split_dir = os.fspath(split_dir)
    suffix = f"_test_split{split}.txt"
    try:
        files = os.listdir(split_dir)
    except OSError:
        raise annotation_error(
            split_dir, None, "split folder not found", "Pass the testTrainMulti_7030_splits folder"
        ) from None
    names = sorted(f[: -len(suffix)] for f in files if f.endswith(suffix))
    if not names:
        raise annotation_error(split_dir, None, f"no '*{suffix}' files", "Pass the testTrainMulti_7030_splits folder")
    return names


def parse_hmdb51_split(
    split_dir: PathLike,
    video_root: PathLike,
    split: int,
    subset: str,
    class_names: Sequence[str] | None = None,
) -> list[VideoRecord]:
    """Parse an official HMDB51 split (``testTrainMulti_7030_splits``).

    On-disk format: one file per class and split, ``<class>_test_split<k>.txt``, lines
    ``<video>.avi <flag>`` with flag ``0`` (unused), ``1`` (train), ``2`` (test)::

        April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1
        Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi 2
        #122_Cleaning_Up_The_Beach_In_Chiba__Japan_catch_f_cm_np1_fr_med_0.avi 1

    (lines end with a space; names may start with ``#``: no line is a comment). Videos are
    ``video_root/<class>/<video>.avi``.

    Args:
        split_dir: Folder with the split files.
        video_root: Folder with one sub-folder per class.
        split: 1, 2 or 3.
        subset: ``"train"`` or ``"test"``.
        class_names: Classes in label order (e.g. ``hmdb51.txt``), each needing its split file; ``None``
            takes the sorted class names of the split files present (:func:`hmdb51_split_classes`).

    Returns:
        Records (label = position in ``class_names``), ``video_id`` = file stem.

    Raises:
        AnnotationError: A missing split file or a malformed line.
    """
    if split not in (1, 2, 3):
        raise ValueError(f"HMDB51 has splits 1, 2, 3; got {split}")
    if subset not in _HMDB_FLAGS:
        raise ValueError(f"subset must be 'train' or 'test', got {subset!r}")
    split_dir = os.fspath(split_dir)
    suffix = f"_test_split{split}.txt"
    if class_names is None:
        class_names = hmdb51_split_classes(split_dir, split)
    resolver = CaseInsensitiveResolver(video_root)
    flag = _HMDB_FLAGS[subset]
    records: list[VideoRecord] = []
    for label, cls in enumerate(class_names):
        path = os.path.join(split_dir, f"{cls}{suffix}")
        if not os.path.isfile(path):
            raise annotation_error(
                path,
                None,
                f"split file of class {cls!r} not found",
                f"Expected one '<class>{suffix}' per class",
            )
        for n, line in numbered_lines(path, "HMDB51 split file"):
            parts = line.rsplit(None, 1)
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise annotation_error(
                    path,
                    n,
                    f"expected '<video>.avi <0|1|2>', got {line!r}",
                    "Flags are 0 (unused), 1 (train), 2 (test); use the official split files",
                )
            if parts[1] != flag:
                continue
            records.append(
                VideoRecord(
                    path=resolver.resolve(f"{cls}/{parts[0]}"),
                    label=label,
                    video_id=Path(parts[0]).stem,
                    meta={"source": source_of(path, n), "label_name": cls},
                )
            )
    return records
