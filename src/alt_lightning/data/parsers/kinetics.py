"""Kinetics-400/600/700 CSVs (``train.csv``, ``validate.csv``, ``test.csv``).

On-disk format, as DeepMind's readme of the Kinetics releases describes it: one CSV per split with a header line
and one row per clip; the columns are ``label`` (the class name: lowercase words, spaces and ``'``; names with a
comma are quoted; withheld, so absent or empty, in the test set), ``youtube_id``, ``time_start`` and ``time_end``
(integer seconds into the YouTube video) and ``split``; the Kinetics-400 files add ``is_cc``::

    label,youtube_id,time_start,time_end,split
    abseiling,-3B32lodo2M,59,69,train
    "passing American football (in game)",-5Bdf1nY2rE,12,22,train

The videos are not part of the release: the usual downloaders store each clip as
``<youtube_id>_<time_start:06d>_<time_end:06d>.mp4``, either flat or in one folder per class (the class name as
written, or with ``_`` for spaces). Class ids are positions in the class list (``resources/classes``).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from alt_lightning.data.parsers.common import AnnotationError, PathLike, annotation_error, read_text, source_of
from alt_lightning.data.records import VideoRecord


@dataclass
class KineticsParse:
    """Result of :func:`parse_kinetics_csv`.

    Attributes:
        records: Records to use (with ``missing="keep"`` these include the missing ones).
        missing: Records whose video file was not found under ``video_root``.
        num_rows: Data rows read (after the ``split`` filter).
        csv_path: The CSV read.
        video_root: The folder searched.
    """

    records: list[VideoRecord]
    missing: list[VideoRecord] = field(default_factory=list)
    num_rows: int = 0
    csv_path: str = ""
    video_root: str = ""

    def summary(self, max_items: int = 5) -> str:
        """One paragraph: how many videos are missing and the first few, or that none are."""
        if not self.missing:
            return f"{self.csv_path}: all {self.num_rows} videos found under {self.video_root}"
        first = ", ".join(f"{os.path.basename(r.path)} ({r.meta['source']})" for r in self.missing[:max_items])
        more = f" and {len(self.missing) - max_items} more" if len(self.missing) > max_items else ""
        return (
            f"{self.csv_path}: {len(self.missing)} of {self.num_rows} videos are missing under "
            f"{self.video_root}: {first}{more}. Kinetics videos disappear from YouTube; if the count is "
            f"small, train without them; otherwise check video_root, layout and ext."
        )


def _norm_label(name: str) -> str:
    """Comparable form of a class name: ``"Air_Drumming"`` and ``"air drumming"`` agree."""
    return " ".join(name.replace("_", " ").strip().strip('"').split()).lower()


_SPLIT_ALIASES = {"val": "val", "validate": "val", "validation": "val", "train": "train", "test": "test"}


class _VideoIndex:
    """Which video files exist under a Kinetics root, listed once per folder (fast on big trees)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.files: set[str] = set()
        self.dirs: dict[str, str] = {}  # normalised class name -> folder name
        self._dir_files: dict[str, set[str]] = {}
        self._everywhere: dict[str, str] | None = None
        if os.path.isdir(root):
            with os.scandir(root) as it:
                for e in it:
                    if e.is_dir():
                        self.dirs.setdefault(_norm_label(e.name), e.name)
                    else:
                        self.files.add(e.name)

    def in_dir(self, folder: str) -> set[str]:
        if folder not in self._dir_files:
            try:
                self._dir_files[folder] = set(os.listdir(os.path.join(self.root, folder)))
            except OSError:
                self._dir_files[folder] = set()
        return self._dir_files[folder]

    def anywhere(self, name: str) -> str | None:
        """Path of ``name`` in the root or any class folder (for rows without a usable label)."""
        if self._everywhere is None:
            self._everywhere = {}
            for folder in sorted(self.dirs.values()):
                for f in self.in_dir(folder):
                    self._everywhere.setdefault(f, os.path.join(self.root, folder, f))
        if name in self.files:
            return os.path.join(self.root, name)
        return self._everywhere.get(name)

    def lookup(self, name: str, label: str | None, layout: str) -> tuple[str, bool]:
        """``(path, exists)`` of the video ``name`` of class ``label`` under ``layout``."""
        folder = self.dirs.get(_norm_label(label)) if label else None
        flat = os.path.join(self.root, name)
        per_class = os.path.join(self.root, folder if folder else (label or ""), name)
        if layout == "flat":
            return flat, name in self.files
        if layout == "per_class":
            return per_class, folder is not None and name in self.in_dir(folder)
        if name in self.files:
            return flat, True
        if folder is not None and name in self.in_dir(folder):
            return per_class, True
        found = self.anywhere(name)
        if found is not None:
            return found, True
        return (per_class if self.dirs and label else flat), False


def parse_kinetics_csv(
    csv_path: PathLike,
    video_root: PathLike,
    class_names: Sequence[str],
    *,
    split: str | None = None,
    layout: str = "auto",
    ext: str = ".mp4",
    missing: str = "report",
) -> KineticsParse:
    """Parse a Kinetics-400/600/700 CSV (``train.csv``, ``validate.csv``, ``test.csv``).

    On-disk format (header line required, column order free, extra columns ignored)::

        label,youtube_id,time_start,time_end,split
        abseiling,-3B32lodo2M,59,69,train
        "passing American football (in game)",-5Bdf1nY2rE,12,22,train

    ``test.csv`` may have no ``label`` column (or an empty one in every row): records get label ``-1``
    (no ground truth: usable for prediction only). An empty label in a file whose other rows are labelled is
    an error naming its line. Videos are
    named ``<youtube_id>_<time_start:06d>_<time_end:06d><ext>`` and lie either flat in ``video_root``
    or in one folder per label; the folder may be the label as written or with spaces replaced by
    underscores (any case).

    Args:
        csv_path: The CSV file.
        video_root: Folder holding the videos.
        class_names: Class names in label-index order (e.g. ``kinetics400.txt``); CSV labels are matched
            ignoring case and ``_`` vs space.
        split: Keep only rows whose ``split`` column equals this (``"val"``, ``"validate"`` and
            ``"validation"`` are the same); ``None`` keeps all rows.
        layout: ``"flat"``, ``"per_class"`` or ``"auto"`` (look flat, then in the label folder, then in
            any folder).
        ext: Video file extension.
        missing: What to do with rows whose video is absent: ``"report"`` (drop them from ``records``
            and list them in ``missing``), ``"error"`` (raise :class:`AnnotationError` with the count
            and the first few), ``"keep"`` (keep them in ``records`` too, e.g. to parse without videos).

    Returns:
        :class:`KineticsParse`; its ``summary()`` says what is missing.

    Raises:
        AnnotationError: Missing file or header column, unknown label, an empty label among labelled rows,
            bad number; or missing videos with ``missing="error"``.
    """
    if layout not in ("auto", "flat", "per_class"):
        raise ValueError(f"layout must be 'auto', 'flat' or 'per_class', got {layout!r}")
    if missing not in ("report", "error", "keep"):
        raise ValueError(f"missing must be 'report', 'error' or 'keep', got {missing!r}")
    csv_path = os.fspath(csv_path)
    root = os.fspath(video_root)
    if missing != "keep" and not os.path.isdir(root):
        raise annotation_error(
            root, None, "video_root is not a folder", "Pass the folder holding the videos (or missing='keep')"
        )
    by_name: dict[str, int] = {}
    for i, name in enumerate(class_names):
        by_name.setdefault(_norm_label(name), i)
    want_split = _SPLIT_ALIASES.get(split.lower(), split.lower()) if split is not None else None

    rows = csv.reader(read_text(csv_path, "Kinetics CSV").splitlines())
    header = next(rows, None)
    if header is None:
        raise annotation_error(csv_path, 1, "the file is empty", "Pass a Kinetics CSV with a header line")
    columns = {h.strip().lower(): i for i, h in enumerate(header)}
    for required in ("youtube_id", "time_start", "time_end"):
        if required not in columns:
            raise annotation_error(
                csv_path,
                1,
                f"header {header!r} has no '{required}' column",
                "Kinetics CSVs start with 'label,youtube_id,time_start,time_end,split'; add that header",
            )
    if want_split is not None and "split" not in columns:
        raise annotation_error(csv_path, 1, "split filter given but the CSV has no 'split' column", "Pass split=None")

    index = _VideoIndex(root)
    records: list[VideoRecord] = []
    absent: list[VideoRecord] = []
    num_rows = 0
    labelled, first_unlabelled = 0, None  # an unlabelled row is legitimate only if every row is
    for row in rows:
        n = rows.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise annotation_error(
                csv_path,
                n,
                f"{len(row)} fields where the header has {len(header)}",
                "Quote labels that contain commas, or fix the row",
            )

        def col(name: str, row: list[str] = row) -> str:
            return row[columns[name]].strip() if name in columns else ""

        if want_split is not None and _SPLIT_ALIASES.get(col("split").lower(), col("split").lower()) != want_split:
            continue
        num_rows += 1
        yid = col("youtube_id")
        if not yid:
            raise annotation_error(csv_path, n, "empty youtube_id", "Fill it in or delete the row")
        try:
            start, end = int(float(col("time_start"))), int(float(col("time_end")))
        except ValueError:
            raise annotation_error(
                csv_path,
                n,
                f"time_start/time_end {col('time_start')!r}/{col('time_end')!r} are not numbers",
                "They must be seconds, e.g. 59,69",
            ) from None
        label_text = col("label")
        label = -1
        if not label_text:
            first_unlabelled = first_unlabelled or n
        else:
            labelled += 1
            label = by_name.get(_norm_label(label_text), -2)
            if label == -2:
                raise annotation_error(
                    csv_path,
                    n,
                    f"label {label_text!r} is not one of the {len(class_names)} class names",
                    "Pass the class list of this dataset (e.g. resources/classes/kinetics400.txt for K400)",
                )
        video_id = f"{yid}_{start:06d}_{end:06d}"
        path, exists = index.lookup(video_id + ext, label_text or None, layout)
        rec = VideoRecord(
            path=path,
            label=label,
            video_id=video_id,
            meta={
                "source": source_of(csv_path, n),
                "youtube_id": yid,
                "time_start": start,
                "time_end": end,
                "split": col("split") or None,
                "label_name": class_names[label] if label >= 0 else None,
            },
        )
        if exists or missing == "keep":
            records.append(rec)
        if not exists:
            absent.append(rec)
    if labelled and first_unlabelled is not None:
        raise annotation_error(
            csv_path,
            first_unlabelled,
            f"the label is empty, while {labelled} other rows are labelled",
            "Fill in the label or delete the row (only a CSV without any label, as a test.csv, is read as unlabelled)",
        )
    result = KineticsParse(records=records, missing=absent, num_rows=num_rows, csv_path=csv_path, video_root=root)
    if absent and missing == "error":
        raise AnnotationError(result.summary())
    return result
