"""Generic DataModule over ``path label`` list files (mmaction2 / X-CLIP style)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alt_lightning.data.annotations import parse_path_label_list, read_label_names_csv
from alt_lightning.data.records import VideoRecord
from alt_lightning.datamodules.base import VideoDataModule
from alt_lightning.text.classes import class_names as load_class_names


class VideoListDataModule(VideoDataModule):
    """Videos listed as ``<path> <label>`` lines, one file per split.

    Args:
        root: Folder the listed paths are relative to (absolute paths are kept).
        train_list: Training list file (relative to ``root`` or absolute).
        val_list: Validation list file.
        test_list: Test list file; defaults to ``val_list``.
        classes: Class names: a shipped list name (``"kinetics400"``), a text file with one name per line, or a
            label-name CSV ``id,name``.
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
        spec = self._resolve(classes) if not Path(classes).is_absolute() and (self.root / classes).exists() else classes
        self._class_names = (
            read_label_names_csv(spec) if str(spec).endswith(".csv") else load_class_names(spec)
        )

    def _resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.root / p

    @property
    def class_names(self) -> list[str]:
        """Class names from ``classes``."""
        return self._class_names

    def records(self, split: str) -> list[VideoRecord]:
        """Records of one list file."""
        records = parse_path_label_list(self._resolve(self.lists[split]), root=self.root)
        bad = [r for r in records if not 0 <= r.label < len(self._class_names)]
        if bad:
            raise ValueError(
                f"{bad[0].meta.get('source', self.lists[split])}: label {bad[0].label} is outside the "
                f"{len(self._class_names)} classes of {self.hparams.get('classes', 'the class list')}."
            )
        return records
