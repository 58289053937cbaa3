"""Kinetics-400/600/700 from the official CSVs (or ``path label`` lists)."""

from __future__ import annotations

from typing import Any

from alt_lightning.data.parsers import parse_kinetics_csv, parse_path_label_list
from alt_lightning.data.records import VideoRecord
from alt_lightning.datamodules.base import VideoDataModule
from alt_lightning.text.classes import class_names as load_class_names

#: Annotation CSV names per split, first match wins: CVDF's names, then the short and the crawler's (kinetics-400_*).
CSV_NAMES = {
    "train": ("train.csv", "kinetics-{version}_train.csv"),
    "val": ("validate.csv", "val.csv", "kinetics-{version}_val.csv"),
    "test": ("test.csv", "kinetics-{version}_test.csv"),
}


class KineticsDataModule(VideoDataModule):
    """Kinetics-400, -600 or -700.

    On-disk layout (CVDF / ActivityNet downloader conventions; each name is an argument)::

        root/annotations/train.csv      label,youtube_id,time_start,time_end,split
        root/annotations/validate.csv   abseiling,-3B32lodo2M,59,69,validate   (or val.csv, kinetics-400_val.csv)
        root/annotations/test.csv
        root/train/<youtube_id>_<start:06d>_<end:06d>.mp4            layout "flat"
        root/train/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4    layout "per_class" ("auto" finds either)
        root/val/...  root/test/...

    Or, with ``lists`` (mmaction2 / X-CLIP style), ``path label`` files relative to ``root``, e.g.
    ``{"train": "k400_train.txt", "val": "k400_val.txt"}``. Videos that the annotations list but the disk lacks
    (YouTube takedowns) are reported as a count and the first few (see ``missing``), never dropped silently.

    Args:
        root: Dataset folder.
        version: 400, 600 or 700; picks the shipped class list.
        annotations: Folder of the CSVs (relative to ``root`` or absolute).
        video_dirs: Video folder per CSV split; default ``{"train": "train", "val": "val", "test": "test"}``.
        test_split: Which annotations the test loader uses: ``"val"`` (the field's protocol: K400 results are on
            ``validate.csv``) or ``"test"`` (a ``test.csv`` without labels serves the predict stage only; testing on
            it stops before decoding, naming its first row).
        layout: ``"auto"``, ``"flat"`` or ``"per_class"``.
        ext: Video file extension.
        classes: Another class list (shipped name or file) instead of ``kinetics<version>``.
        lists: ``path label`` list per split instead of the CSVs.
        **kwargs: Sampling, transform and loader settings of :class:`VideoDataModule`.
    """

    def __init__(
        self,
        root: str = ".",
        version: int = 400,
        annotations: str = "annotations",
        video_dirs: dict[str, str] | None = None,
        test_split: str = "val",
        layout: str = "auto",
        ext: str = ".mp4",
        classes: str | None = None,
        lists: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(root=root, **kwargs)
        if version not in (400, 600, 700):
            raise ValueError(f"version must be 400, 600 or 700, got {version}.")
        if test_split not in ("val", "test") or layout not in ("auto", "flat", "per_class"):
            raise ValueError(
                f"test_split must be 'val' or 'test' and layout auto|flat|per_class: {test_split}, {layout}"
            )
        self.version, self.annotations, self.test_split = version, annotations, test_split
        self.video_dirs = {"train": "train", "val": "val", "test": "test", **(video_dirs or {})}
        self.layout, self.ext, self.lists = layout, ext, lists
        self.dataset_classes = load_class_names(classes or f"kinetics{version}")
        self._csv_missing: dict[str, list[VideoRecord]] = {}

    @property
    def dataset_name(self) -> str:
        """``kinetics400`` / ``kinetics600`` / ``kinetics700``."""
        return f"kinetics{self.version}"

    def records(self, split: str) -> list[VideoRecord]:
        """Every row of the split's CSV (or list), missing videos included (reported by the base class).

        A ``test.csv`` without labels gives label ``-1``: the base class accepts it for prediction only.
        """
        source = self.test_split if split == "test" else split
        if self.lists is not None:
            if source not in self.lists:
                raise ValueError(f"lists has no {source!r} entry; give one 'path label' file per split.")
            return parse_path_label_list(self.resolve(self.lists[source]), root=self.root)  # labels: check_labels
        folder = self.resolve(self.annotations)
        names = [n.format(version=self.version) for n in CSV_NAMES[source]]
        csv_path = next((folder / n for n in names if (folder / n).is_file()), folder / names[0])
        parsed = parse_kinetics_csv(
            csv_path,
            self.resolve(self.video_dirs[source]),
            self.dataset_classes,
            layout=self.layout,
            ext=self.ext,
            missing="keep",
        )
        self._csv_missing[split] = parsed.missing  # the parser already listed each folder once
        return parsed.records

    def missing_records(self, split: str, records: list[VideoRecord]) -> list[VideoRecord]:
        """The parser's own report (CSV mode), else one ``stat`` per video."""
        if split in self._csv_missing and self.lists is None:
            return self._csv_missing[split]
        return super().missing_records(split, records)
