"""Generic DataModule over ``path label`` list files (mmaction2 / X-CLIP style)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alt_lightning.data.parsers import parse_path_label_list, read_label_names_csv
from alt_lightning.data.records import VideoRecord
from alt_lightning.datamodules.base import VideoDataModule
from alt_lightning.errors import UserError
from alt_lightning.text.classes import SHIPPED_LISTS
from alt_lightning.text.classes import class_names as load_class_names


class VideoListDataModule(VideoDataModule):
    """Videos listed as ``<path> <label>`` lines, one file per split.

    On-disk layout (paths in the lists are relative to ``root``; absolute ones are kept)::

        root/train.txt        videos/abseiling/a1.mp4 0
        root/val.txt          videos/air drumming/b 7.mp4 1      (paths may hold spaces: the label is last)
        root/classes.txt      one class name per line (or label_names.csv: "id,name")
        root/videos/...

    The lists are other projects' format, so they have no comments: a path may start with ``#`` (HMDB-51 names
    do). Our own few-shot manifests may be given too: their header is recognised by its first line and skipped.
    A blank line in ``classes.txt`` before a name is an error (it would shift the labels after it). Labels must
    index the class names (checked before decoding).

    Args:
        root: Folder the listed paths are relative to (absolute paths are kept).
        classes: Class names: a shipped list name (``"kinetics400"``), a text file with one name per line, or a
            label-name CSV ``id,name`` (relative to ``root`` or absolute).
        train_list: Training list file (relative to ``root`` or absolute).
        val_list: Validation list file.
        test_list: Test list file; defaults to ``val_list``.
        **kwargs: Sampling, transform and loader settings of :class:`VideoDataModule`.
    """

    def __init__(
        self,
        root: str,
        classes: str,
        train_list: str = "train.txt",
        val_list: str = "val.txt",
        test_list: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(root=root, **kwargs)
        self.lists = {"train": train_list, "val": val_list, "test": test_list or val_list}
        self.classes_spec = classes
        local = self.resolve(classes)
        spec = local if not Path(classes).is_absolute() and local.exists() else classes
        if not Path(spec).is_file() and str(spec) not in SHIPPED_LISTS:  # name the path it was looked for at
            raise UserError(
                f"classes file {local} not found (classes={classes!r}, relative to the data root {root})",
                f"put the class names there (one per line), or give a file path or a shipped list "
                f"({', '.join(SHIPPED_LISTS)}).",
            )
        self.dataset_classes = read_label_names_csv(spec) if str(spec).endswith(".csv") else load_class_names(spec)

    @property
    def dataset_name(self) -> str:
        """The root folder's name (a list DataModule has no fixed dataset)."""
        return self.root.resolve().name or "list"

    def records(self, split: str) -> list[VideoRecord]:
        """Records of one list file (labels are checked against ``classes`` by the base class)."""
        return parse_path_label_list(self.resolve(self.lists[split]), root=self.root)
