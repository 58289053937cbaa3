"""UCF-101's official train/test splits (``ucfTrainTestlist``).

On-disk format, as the split archive released with UCF101 (Soomro, Zamir and Shah, 2012;
``UCF101TrainTestSplits-RecognitionTask.zip``) holds it: ``classInd.txt`` numbers the 101 classes from 1,
``trainlist0<k>.txt`` lists ``<Class>/<file>.avi <1-based id>``, ``testlist0<k>.txt`` lists ``<Class>/<file>.avi``
only (the class is the folder), for the three splits ``k = 1, 2, 3``; lines end with CRLF::

    classInd.txt     1 ApplyEyeMakeup
    trainlist01.txt  ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1
    testlist01.txt   ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi

Videos are ``UCF-101/<Class>/v_<Class>_g<group>_c<clip>.avi``; the clips of one group come from one long video.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from alt_lightning.data.parsers.common import (
    CaseInsensitiveResolver,
    PathLike,
    annotation_error,
    numbered_lines,
    source_of,
)
from alt_lightning.data.records import VideoRecord


def read_ucf101_classes(split_dir: PathLike) -> list[str]:
    """Read UCF101's ``classInd.txt`` (``1 ApplyEyeMakeup`` ... ``101 YoYo``, 1-based ids).

    Returns:
        The 101 CamelCase class names in label order (label = id - 1).
    """
    path = os.path.join(os.fspath(split_dir), "classInd.txt")
    names: dict[int, str] = {}
    for n, line in numbered_lines(path, "UCF101 classInd.txt"):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise annotation_error(
                path,
                n,
                f"expected '<id> <ClassName>', got {line!r}",
                "Fix the line (e.g. '1 ApplyEyeMakeup')",
            )
        i = int(parts[0])
        if i in names:
            raise annotation_error(path, n, f"id {i} already given to {names[i]!r}", "Use the official classInd.txt")
        if parts[1] in names.values():
            raise annotation_error(path, n, f"class {parts[1]!r} listed twice", "Use the official classInd.txt")
        names[i] = parts[1]
    if sorted(names) != list(range(1, len(names) + 1)):
        raise annotation_error(path, None, "ids must be 1..K without gaps", "Use the official classInd.txt")
    return [names[i] for i in range(1, len(names) + 1)]


_UCF_GROUP = re.compile(r"_g(\d+)_c(\d+)", re.IGNORECASE)


def parse_ucf101_split(split_dir: PathLike, video_root: PathLike, split: int, subset: str) -> list[VideoRecord]:
    """Parse an official UCF101 split (``ucfTrainTestlist``).

    On-disk format, in ``split_dir``::

        classInd.txt     1 ApplyEyeMakeup
        trainlist01.txt  ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1     (1-based label)
        testlist01.txt   ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi       (class from the folder)

    Videos are ``video_root/<Class>/<file>.avi``. When a path does not exist as written it is resolved
    case-insensitively (the ``HandstandPushups`` folder holds ``v_HandStandPushups_*`` files, and some
    copies rename them).

    Args:
        split_dir: Folder with ``classInd.txt`` and the list files.
        video_root: Folder with one sub-folder per class.
        split: 1, 2 or 3.
        subset: ``"train"`` or ``"test"``.

    Returns:
        Records with 0-based labels, ``video_id`` = file stem, ``meta`` with ``label_name`` and the
        UCF ``group`` (clips of one group come from one long video).

    Raises:
        AnnotationError: Malformed lines, unknown class folders, label/folder disagreement.
    """
    if split not in (1, 2, 3):
        raise ValueError(f"UCF101 has splits 1, 2, 3; got {split}")
    if subset not in ("train", "test"):
        raise ValueError(f"subset must be 'train' or 'test', got {subset!r}")
    classes = read_ucf101_classes(split_dir)
    by_lower = {c.lower(): i for i, c in enumerate(classes)}
    list_path = os.path.join(os.fspath(split_dir), f"{subset}list0{split}.txt")
    resolver = CaseInsensitiveResolver(video_root)
    records: list[VideoRecord] = []
    for n, line in numbered_lines(list_path, f"UCF101 {subset}list0{split}.txt"):
        parts = line.rsplit(None, 1)
        given: int | None = None
        rel = line
        if len(parts) == 2 and parts[1].isdigit():
            rel, given = parts[0], int(parts[1]) - 1
        rel = rel.replace("\\", "/")
        if "/" not in rel:
            raise annotation_error(
                list_path,
                n,
                f"path {rel!r} has no class folder",
                "Lines must be '<Class>/<file>.avi[ <label>]' as in the official lists",
            )
        folder = rel.split("/", 1)[0]
        label = by_lower.get(folder.lower())
        if label is None:
            raise annotation_error(
                list_path,
                n,
                f"folder {folder!r} is not a class of classInd.txt",
                "Use classInd.txt from the same ucfTrainTestlist release",
            )
        if given is not None and given != label:
            if not 0 <= given < len(classes):
                raise annotation_error(list_path, n, f"label {given + 1} is not in 1..{len(classes)}", "Fix the label")
            raise annotation_error(
                list_path,
                n,
                f"label {given + 1} ({classes[given]}) disagrees with folder {folder!r}",
                "classInd.txt and the list file come from different releases; use matching files",
            )
        group = _UCF_GROUP.search(rel)
        records.append(
            VideoRecord(
                path=resolver.resolve(rel),
                label=label,
                video_id=Path(rel).stem,
                meta={
                    "source": source_of(list_path, n),
                    "label_name": classes[label],
                    "group": int(group.group(1)) if group else None,
                },
            )
        )
    return records
