"""UCF-101 and HMDB-51 with their official three train/test splits."""

from __future__ import annotations

import logging
from typing import Any

from alt_lightning.data.parsers import (
    AnnotationError,
    hmdb51_split_classes,
    parse_hmdb51_split,
    parse_ucf101_split,
    read_ucf101_classes,
)
from alt_lightning.data.records import VideoRecord
from alt_lightning.datamodules.base import VideoDataModule
from alt_lightning.text.classes import class_names as load_class_names

log = logging.getLogger(__name__)

#: Folder names of the official split archives, the default ``splits_dir`` under ``root``.
SPLIT_DIRS = {"ucf101": "ucfTrainTestlist", "hmdb51": "testTrainMulti_7030_splits"}


class UCFHMDBDataModule(VideoDataModule):
    """UCF-101 or HMDB-51, split 1, 2 or 3.

    On-disk layout (as the official archives unpack)::

        UCF-101:  root/<Class>/v_<Class>_g08_c01.avi
                  root/ucfTrainTestlist/classInd.txt            1 ApplyEyeMakeup
                  root/ucfTrainTestlist/trainlist0{1,2,3}.txt   ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1
                  root/ucfTrainTestlist/testlist0{1,2,3}.txt    ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi
        HMDB-51:  root/<class>/<video>.avi
                  root/testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt   <video>.avi <0|1|2>

    The official splits have no validation set: validation uses the split's test list (our choice, as X-CLIP and
    ViFi-CLIP do; the zero-shot protocol never trains here, and few-shot runs report the last epoch).

    Label space (the same rule for both datasets): the classes the split archive defines, in the official order.
    UCF-101: the lines of ``classInd.txt``; HMDB-51 (no index file): the classes with a
    ``<class>_test_split<k>.txt`` file, in the sorted order of ``hmdb51.txt`` (any unofficial class after them).
    With the complete archive that is the full official list (101 / 51 classes, in the order of the shipped
    ``ucf101.txt`` / ``hmdb51.txt``), so checkpoints and zero-shot scores stay comparable. With a partial archive
    the run still works, on the classes present, and a warning names the absent official classes (and any
    unofficial ones): its scores and checkpoints are then not comparable with the full dataset. Labels always
    index :attr:`dataset_classes` (the model's class names unless a class subset is set). Without the split
    archive at all, ``dataset_classes`` is the shipped list (zero-shot prompts need no videos) and reading records
    names the missing file. Videos listed but absent on disk are the ``missing`` policy's business (reported, never
    dropped silently).

    Args:
        dataset: ``"ucf101"`` or ``"hmdb51"``.
        split: Official split 1, 2 or 3.
        root: Folder with one sub-folder of videos per class.
        splits_dir: Folder of the split files (relative to ``root`` or absolute); default the official name.
        **kwargs: Sampling, transform and loader settings of :class:`VideoDataModule`.
    """

    name: str  # "ucf101" or "hmdb51" (LightningDataModule declares it optional)

    def __init__(
        self, dataset: str = "ucf101", split: int = 1, root: str = ".", splits_dir: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(root=root, **kwargs)
        if dataset not in SPLIT_DIRS or split not in (1, 2, 3):
            raise ValueError(f"dataset must be 'ucf101' or 'hmdb51' and split 1, 2 or 3; got {dataset!r}, {split}.")
        self.name, self.split = dataset, split
        self.splits_dir = self.resolve(splits_dir or SPLIT_DIRS[dataset])
        self.dataset_classes = self._label_space()

    def _label_space(self) -> list[str]:
        """The classes the split archive defines (see the class docstring); warns when it is not the full list."""
        official = load_class_names(self.name)
        if self.name == "ucf101":
            where, unit = self.splits_dir / "classInd.txt", "line in classInd.txt"
            if not where.is_file():
                return official  # records() names the missing file
            names = read_ucf101_classes(self.splits_dir)
        else:
            where, unit = self.splits_dir, f"split file <class>_test_split{self.split}.txt"
            try:
                present = set(hmdb51_split_classes(self.splits_dir, self.split))
            except AnnotationError:
                return official  # records() names the missing folder or files
            names = [c for c in official if c in present] + sorted(present - set(official))
        have = {n.lower() for n in names}
        absent = [c for c in official if c.lower() not in have]
        extra = [n for n in names if n.lower() not in {c.lower() for c in official}]
        if absent or extra:
            title = {"ucf101": "UCF-101", "hmdb51": "HMDB-51"}[self.name]
            parts = []
            if absent:
                parts.append(f"{len(absent)} of the {len(official)} {title} classes have no {unit}: {_few(absent)}")
            if extra:
                parts.append(f"{len(extra)} classes are not {title}'s: {_few(extra)}")
            log.warning(
                "%s: %s. The label space is the %d classes present, so scores and checkpoints are not comparable "
                "with the full %s; unpack the complete %s archive for the official benchmark.",
                where,
                "; ".join(parts),
                len(names),
                title,
                SPLIT_DIRS[self.name],
            )
        return names

    @property
    def dataset_name(self) -> str:
        """``ucf101`` or ``hmdb51``."""
        return self.name

    def records(self, split: str) -> list[VideoRecord]:
        """The official train list for ``"train"``, the test list for ``"val"`` and ``"test"``."""
        subset = "train" if split == "train" else "test"
        if self.name == "ucf101":
            return parse_ucf101_split(self.splits_dir, self.root, self.split, subset)
        return parse_hmdb51_split(self.splits_dir, self.root, self.split, subset, self.dataset_classes)


def _few(names: list[str], k: int = 5) -> str:
    """The first ``k`` names and how many more."""
    more = f" and {len(names) - k} more" if len(names) > k else ""
    return ", ".join(names[:k]) + more
