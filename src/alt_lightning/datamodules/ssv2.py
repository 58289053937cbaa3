"""Something-Something v2 from its JSON annotations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alt_lightning.data.parsers import parse_ssv2_json, read_ssv2_labels
from alt_lightning.data.records import VideoRecord
from alt_lightning.datamodules.base import VideoDataModule

#: Prefix of the file names in the official download (``something-something-v2-labels.json``, ...).
OFFICIAL_PREFIX = "something-something-v2-"


class SSv2DataModule(VideoDataModule):
    """Something-Something v2 (174 template classes).

    On-disk layout (the short names, or the official ``something-something-v2-<name>`` ones, are found)::

        root/labels.json        {"Approaching something with your camera": "0", ...}
        root/train.json         [{"id": "78687", "label": "...", "template": "Holding [something] ...", ...}, ...]
        root/validation.json
        root/20bn-something-something-v2/<id>.webm

    Labels say "from left to right", so ``flip`` defaults to 0 here: a flip would swap classes.

    Args:
        root: Dataset folder.
        videos: Video folder (relative to ``root`` or absolute).
        labels: ``labels.json``.
        train_json: Training annotations.
        val_json: Validation annotations.
        test_json: Test annotations; ``None`` uses ``val_json`` (the field's protocol: SSv2 results are on the
            validation set, the test labels are not public: the official ``test.json`` serves the predict stage only).
        ext: Video file extension.
        flip: Horizontal-flip probability in training (0: direction labels).
        **kwargs: Sampling, transform and loader settings of :class:`VideoDataModule`.
    """

    def __init__(
        self,
        root: str = ".",
        videos: str = "20bn-something-something-v2",
        labels: str = "labels.json",
        train_json: str = "train.json",
        val_json: str = "validation.json",
        test_json: str | None = None,
        ext: str = ".webm",
        flip: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(root=root, flip=flip, **kwargs)
        self.videos, self.ext = videos, ext
        self.files = {"train": train_json, "val": val_json, "test": test_json or val_json}
        self.labels_json = self._find(labels)
        self.dataset_classes = read_ssv2_labels(self.labels_json)  # the 174 templates in index order

    def _find(self, name: str) -> Path:
        """``root/name``, else the official ``root/something-something-v2-name`` when only that exists."""
        path = self.resolve(name)
        official = path.with_name(OFFICIAL_PREFIX + path.name)
        return official if not path.exists() and official.exists() else path

    @property
    def dataset_name(self) -> str:
        """``ssv2``."""
        return "ssv2"

    def records(self, split: str) -> list[VideoRecord]:
        """Records of the split's JSON."""
        return parse_ssv2_json(self.labels_json, self._find(self.files[split]), self.resolve(self.videos), self.ext)
