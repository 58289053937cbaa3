"""UCF-101 and HMDB-51 with their official three train/test splits."""

from __future__ import annotations

from typing import Any

from alt_lightning.data.annotations import parse_hmdb51_split, parse_ucf101_split, read_ucf101_classes
from alt_lightning.data.records import VideoRecord
from alt_lightning.datamodules.base import VideoDataModule
from alt_lightning.text.classes import class_names as load_class_names

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

    Args:
        dataset: ``"ucf101"`` or ``"hmdb51"``.
        split: Official split 1, 2 or 3.
        root: Folder with one sub-folder of videos per class.
        splits_dir: Folder of the split files (relative to ``root`` or absolute); default the official name.
        **kwargs: Sampling, transform and loader settings of :class:`VideoDataModule`.
    """

    def __init__(
        self, dataset: str = "ucf101", split: int = 1, root: str = ".", splits_dir: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(root=root, **kwargs)
        if dataset not in SPLIT_DIRS or split not in (1, 2, 3):
            raise ValueError(f"dataset must be 'ucf101' or 'hmdb51' and split 1, 2 or 3; got {dataset!r}, {split}.")
        self.name, self.split = dataset, split
        self.splits_dir = self.resolve(splits_dir or SPLIT_DIRS[dataset])
        # UCF's classInd.txt is the label order of its lists; HMDB labels follow the (sorted) shipped list.
        class_ind = self.splits_dir / "classInd.txt"
        self._class_names = (
            read_ucf101_classes(self.splits_dir)
            if dataset == "ucf101" and class_ind.is_file()
            else load_class_names(dataset)
        )

    @property
    def class_names(self) -> list[str]:
        """The dataset's class names as published (prompts make them readable)."""
        return self._class_names

    @property
    def dataset_name(self) -> str:
        """``ucf101`` or ``hmdb51``."""
        return self.name

    def records(self, split: str) -> list[VideoRecord]:
        """The official train list for ``"train"``, the test list for ``"val"`` and ``"test"``."""
        subset = "train" if split == "train" else "test"
        if self.name == "ucf101":
            return parse_ucf101_split(self.splits_dir, self.root, self.split, subset)
        return parse_hmdb51_split(self.splits_dir, self.root, self.split, subset, self._class_names)
