"""Parsers of the annotation files that video datasets ship, each returning ``list[VideoRecord]``.

Every parser is a pure function of the files it reads (plus, for Kinetics, which video files exist).
Malformed input raises :class:`AnnotationError`, whose message names the file and line and says what
to do. Every record's ``meta["source"]`` is ``"<file>:<line>"`` so a bad sample can be traced back.

Labels are 0-based indices into the dataset's class-name list; ``-1`` means "no label" and only comes from
files that hold no ground truth at all (a Kinetics ``test.csv`` without labels, SSv2's ``test.json``); a file
whose rows are labelled except some is an error naming the first unlabelled row. Whether the labels fit the
run's class list (and whether an unlabelled split may be used: only for prediction) is checked once, by
:meth:`~alt_lightning.datamodules.base.VideoDataModule.dataset`.

Data files are data: none of the official formats read here (Kinetics CSVs, UCF-101 ``classInd.txt`` and lists,
HMDB-51 split files, SSv2 JSON, mmaction2-style ``path label`` lists, ``id,name`` CSVs) has a comment syntax,
and real names start with ``#`` (HMDB-51's ``#122_Cleaning_Up_The_Beach_In_Chiba__Japan_catch_...avi``), so no
line is skipped as a comment. Blank lines are skipped (they carry no record). The one ``#`` syntax is the
header of this package's own manifests (:data:`MANIFEST_MAGIC`, see :func:`split_manifest_header`).
"""

from __future__ import annotations

import csv
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from alt_lightning.data.records import VideoRecord

__all__ = [
    "MANIFEST_MAGIC",
    "VIDEO_EXTENSIONS",
    "AnnotationError",
    "KineticsParse",
    "check_missing",
    "hmdb51_split_classes",
    "missing_reason",
    "os_error_reason",
    "parse_class_folders",
    "parse_hmdb51_split",
    "parse_kinetics_csv",
    "parse_path_label_list",
    "parse_ssv2_json",
    "parse_ucf101_split",
    "read_label_names_csv",
    "read_ssv2_labels",
    "read_ucf101_classes",
    "split_manifest_header",
]

PathLike = str | os.PathLike[str]

VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4",
    ".avi",
    ".mkv",
    ".webm",
    ".mov",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".flv",
    ".wmv",
    ".ogv",
)


class AnnotationError(ValueError):
    """An annotation file is missing or malformed; the message names file, line and the fix."""


def _error(path: PathLike, line: int | None, problem: str, fix: str) -> AnnotationError:
    where = f"{os.fspath(path)}:{line}" if line is not None else os.fspath(path)
    return AnnotationError(f"{where}: {problem}. {fix}")


def _source(path: PathLike, line: int) -> str:
    return f"{os.fspath(path)}:{line}"


def _read_text(path: PathLike, what: str) -> str:
    """Whole file as text (UTF-8, BOM tolerated, any newline convention)."""
    p = Path(path)
    if not p.is_file():
        raise _error(p, None, f"{what} not found", "Check the path (and that the dataset is downloaded)")
    try:
        return p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise _error(p, None, f"{what} is not UTF-8 text ({e})", "Pass the annotation file itself") from e


def _lines(path: PathLike, what: str) -> Iterator[tuple[int, str]]:
    """``(line_number, stripped_line)`` of the non-blank lines (CRLF files, as UCF101's, work).

    No comment syntax: a line starting with ``#`` is data (HMDB-51 has such video names).
    """
    for n, raw in enumerate(_read_text(path, what).splitlines(), start=1):
        line = raw.strip()
        if line:
            yield n, line


#: First line of every manifest this package writes (:mod:`alt_lightning.data.manifests`).
MANIFEST_MAGIC = "# alt-lightning manifest v1"

_HEADER_LINE = re.compile(r"#\s+([^\s:]+):(.*)")


def split_manifest_header(lines: list[tuple[int, str]]) -> tuple[dict[str, str], list[tuple[int, str]]]:
    """Split numbered, stripped, non-blank lines into our manifest header and the data lines.

    The header exists only in files whose first line is :data:`MANIFEST_MAGIC` (our own format): the magic line
    and the ``# key: value`` lines right after it (``#``, white space, a key without spaces, ``:``). It ends at
    the first other line; from there on every line is data, ``#`` or not. A file without the magic line has no
    header and no comments.

    Returns:
        ``(header, data_lines)``.
    """
    if not lines or lines[0][1] != MANIFEST_MAGIC:
        return {}, lines
    header: dict[str, str] = {}
    k = 1
    while k < len(lines) and (m := _HEADER_LINE.fullmatch(lines[k][1])):
        header[m.group(1)] = m.group(2).strip()
        k += 1
    return header, lines[k:]


def _join(root: PathLike | None, rel: str) -> str:
    if root is None or os.path.isabs(rel):
        return rel
    return os.path.join(os.fspath(root), rel)


class _CaseInsensitiveResolver:
    """Finds ``root/rel`` even when the case of some path components differs on disk.

    UCF101 is the motivating case: folder ``HandstandPushups`` holds ``v_HandStandPushups_*.avi``, and
    re-packaged copies rename one or the other; on case-sensitive file systems the list file's path
    then does not exist as written.
    """

    def __init__(self, root: PathLike) -> None:
        self.root = os.fspath(root)
        self._listing: dict[str, dict[str, str] | None] = {}

    def _entries(self, directory: str) -> dict[str, str] | None:
        if directory not in self._listing:
            try:
                names = os.listdir(directory)
            except OSError:
                self._listing[directory] = None
            else:
                self._listing[directory] = {n.lower(): n for n in sorted(names, reverse=True)}
        return self._listing[directory]

    def resolve(self, rel: str) -> str:
        """Existing path of ``root/rel`` (exact match first), else the path as written."""
        exact = os.path.join(self.root, rel)
        if os.path.exists(exact):
            return exact
        current = self.root
        for part in Path(rel).parts:
            entries = self._entries(current)
            if entries is None or part.lower() not in entries:
                return exact
            current = os.path.join(current, entries[part.lower()])
        return current


# ----------------------------------------------------------------------------------------- Kinetics


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
        raise _error(root, None, "video_root is not a folder", "Pass the folder holding the videos (or missing='keep')")
    by_name: dict[str, int] = {}
    for i, name in enumerate(class_names):
        by_name.setdefault(_norm_label(name), i)
    want_split = _SPLIT_ALIASES.get(split.lower(), split.lower()) if split is not None else None

    rows = csv.reader(_read_text(csv_path, "Kinetics CSV").splitlines())
    header = next(rows, None)
    if header is None:
        raise _error(csv_path, 1, "the file is empty", "Pass a Kinetics CSV with a header line")
    columns = {h.strip().lower(): i for i, h in enumerate(header)}
    for required in ("youtube_id", "time_start", "time_end"):
        if required not in columns:
            raise _error(
                csv_path,
                1,
                f"header {header!r} has no '{required}' column",
                "Kinetics CSVs start with 'label,youtube_id,time_start,time_end,split'; add that header",
            )
    if want_split is not None and "split" not in columns:
        raise _error(csv_path, 1, "split filter given but the CSV has no 'split' column", "Pass split=None")

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
            raise _error(
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
            raise _error(csv_path, n, "empty youtube_id", "Fill it in or delete the row")
        try:
            start, end = int(float(col("time_start"))), int(float(col("time_end")))
        except ValueError:
            raise _error(
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
                raise _error(
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
                "source": _source(csv_path, n),
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
        raise _error(
            csv_path,
            first_unlabelled,
            f"the label is empty, while {labelled} other rows are labelled",
            "Fill in the label or delete the row (only a CSV without any label, as a test.csv, is read as unlabelled)",
        )
    result = KineticsParse(records=records, missing=absent, num_rows=num_rows, csv_path=csv_path, video_root=root)
    if absent and missing == "error":
        raise AnnotationError(result.summary())
    return result


# ------------------------------------------------------------------------------ path-label lists


def read_label_names_csv(path: PathLike) -> list[str]:
    """Read a label-name CSV: ``id,name`` per line, optional header, ids ``0..K-1`` in any order.

    On-disk format::

        id,name
        0,abseiling
        1,air drumming
        2,"passing American football (in game)"

    An unquoted name containing commas is taken whole (everything after the first comma). Only the first
    row may be a header (a non-integer id); there are no comments.

    Returns:
        The names ordered by id.

    Raises:
        AnnotationError: Bad id, duplicate id or name, gap in the ids.
    """
    path = os.fspath(path)
    names: dict[int, tuple[str, int]] = {}
    lines_of: dict[str, int] = {}
    rows = csv.reader(_read_text(path, "label-name CSV").splitlines())
    first = True
    for row in rows:
        n = rows.line_num
        if not row or all(not c.strip() for c in row):
            continue
        try:
            i = int(row[0].strip())
        except ValueError:
            if first:  # a header line such as "id,name"
                first = False
                continue
            raise _error(path, n, f"id {row[0]!r} is not an integer", "Each line must be '<id>,<name>'") from None
        first = False
        if len(row) < 2 or not ",".join(row[1:]).strip():
            raise _error(path, n, "no name after the id", "Each line must be '<id>,<name>'")
        if i in names:
            raise _error(path, n, f"id {i} already given on line {names[i][1]}", "Give each id once")
        name = ",".join(row[1:]).strip()
        if name in lines_of:
            raise _error(
                path,
                n,
                f"name {name!r} already given on line {lines_of[name]}",
                "Class names must be unique (two ids with one name make their predictions indistinguishable)",
            )
        lines_of[name] = n
        names[i] = (name, n)
    if not names:
        raise _error(path, None, "no label names found", "Each line must be '<id>,<name>'")
    gaps = sorted(set(range(len(names))) - set(names))
    if gaps:
        raise _error(
            path,
            None,
            f"ids must be 0..{len(names) - 1} without gaps; id {gaps[0]} is missing",
            "Use 0-based consecutive ids",
        )
    return [names[i][0] for i in range(len(names))]


def parse_path_label_list(
    list_path: PathLike,
    root: PathLike | None = None,
    *,
    label_names_csv: PathLike | None = None,
) -> list[VideoRecord]:
    """Parse an mmaction2 / X-CLIP style video list: ``<path> <label>`` per line.

    On-disk format (blank lines are skipped; the label is the *last* whitespace-separated field, so paths may
    contain spaces)::

        abseiling/-3B32lodo2M_000059_000069.mp4 0
        my videos/clip one.mp4 17
        #122_Cleaning_Up_The_Beach_In_Chiba__Japan_catch_f_cm_np1_fr_med_0.avi 5

    This is other projects' format, so it has no comments: a line starting with ``#`` is a path like any
    other. Only a manifest this package wrote (first line :data:`MANIFEST_MAGIC`) has a header, which is
    skipped (see :func:`split_manifest_header`).

    Args:
        list_path: The list file.
        root: Prefix of relative paths (absolute paths are kept).
        label_names_csv: Optional ``id,name`` CSV (see :func:`read_label_names_csv`); when given, labels
            are checked against it and ``meta["label_name"]`` is filled. Read the names themselves with
            :func:`read_label_names_csv`.

    Returns:
        Records with ``video_id`` = the path as written in the list.

    Raises:
        AnnotationError: A line without a label, a non-integer or out-of-range label.
    """
    names = read_label_names_csv(label_names_csv) if label_names_csv is not None else None
    records: list[VideoRecord] = []
    _, lines = split_manifest_header(list(_lines(list_path, "video list")))
    for n, line in lines:
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            raise _error(
                list_path,
                n,
                f"expected '<path> <label>', got {line!r}",
                "Add the integer class label after the path, separated by a space",
            )
        rel, label_text = parts
        try:
            label = int(label_text)
        except ValueError:
            raise _error(
                list_path,
                n,
                f"label {label_text!r} is not an integer",
                "Each line must be '<path> <integer label>' (the label is the last field)",
            ) from None
        if label < 0 or (names is not None and label >= len(names)):
            bound = f" (the label-name CSV has {len(names)} names)" if names is not None else ""
            raise _error(list_path, n, f"label {label} is out of range{bound}", "Labels are 0-based class indices")
        meta: dict[str, object] = {"source": _source(list_path, n)}
        if names is not None:
            meta["label_name"] = names[label]
        records.append(VideoRecord(path=_join(root, rel), label=label, video_id=rel, meta=meta))
    return records


# ------------------------------------------------------------------------------------------ UCF101


def read_ucf101_classes(split_dir: PathLike) -> list[str]:
    """Read UCF101's ``classInd.txt`` (``1 ApplyEyeMakeup`` ... ``101 YoYo``, 1-based ids).

    Returns:
        The 101 CamelCase class names in label order (label = id - 1).
    """
    path = os.path.join(os.fspath(split_dir), "classInd.txt")
    names: dict[int, str] = {}
    for n, line in _lines(path, "UCF101 classInd.txt"):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise _error(
                path,
                n,
                f"expected '<id> <ClassName>', got {line!r}",
                "Fix the line (e.g. '1 ApplyEyeMakeup')",
            )
        i = int(parts[0])
        if i in names:
            raise _error(path, n, f"id {i} already given to {names[i]!r}", "Use the official classInd.txt")
        if parts[1] in names.values():
            raise _error(path, n, f"class {parts[1]!r} listed twice", "Use the official classInd.txt")
        names[i] = parts[1]
    if sorted(names) != list(range(1, len(names) + 1)):
        raise _error(path, None, "ids must be 1..K without gaps", "Use the official classInd.txt")
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
    resolver = _CaseInsensitiveResolver(video_root)
    records: list[VideoRecord] = []
    for n, line in _lines(list_path, f"UCF101 {subset}list0{split}.txt"):
        parts = line.rsplit(None, 1)
        given: int | None = None
        rel = line
        if len(parts) == 2 and parts[1].isdigit():
            rel, given = parts[0], int(parts[1]) - 1
        rel = rel.replace("\\", "/")
        if "/" not in rel:
            raise _error(
                list_path,
                n,
                f"path {rel!r} has no class folder",
                "Lines must be '<Class>/<file>.avi[ <label>]' as in the official lists",
            )
        folder = rel.split("/", 1)[0]
        label = by_lower.get(folder.lower())
        if label is None:
            raise _error(
                list_path,
                n,
                f"folder {folder!r} is not a class of classInd.txt",
                "Use classInd.txt from the same ucfTrainTestlist release",
            )
        if given is not None and given != label:
            if not 0 <= given < len(classes):
                raise _error(list_path, n, f"label {given + 1} is not in 1..{len(classes)}", "Fix the label")
            raise _error(
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
                    "source": _source(list_path, n),
                    "label_name": classes[label],
                    "group": int(group.group(1)) if group else None,
                },
            )
        )
    return records


# ------------------------------------------------------------------------------------------ HMDB51

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
        raise _error(split_dir, None, "split folder not found", "Pass the testTrainMulti_7030_splits folder") from None
    names = sorted(f[: -len(suffix)] for f in files if f.endswith(suffix))
    if not names:
        raise _error(split_dir, None, f"no '*{suffix}' files", "Pass the testTrainMulti_7030_splits folder")
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
    resolver = _CaseInsensitiveResolver(video_root)
    flag = _HMDB_FLAGS[subset]
    records: list[VideoRecord] = []
    for label, cls in enumerate(class_names):
        path = os.path.join(split_dir, f"{cls}{suffix}")
        if not os.path.isfile(path):
            raise _error(
                path,
                None,
                f"split file of class {cls!r} not found",
                f"Expected one '<class>{suffix}' per class",
            )
        for n, line in _lines(path, "HMDB51 split file"):
            parts = line.rsplit(None, 1)
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise _error(
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
                    meta={"source": _source(path, n), "label_name": cls},
                )
            )
    return records


# ------------------------------------------------------------------------ Something-Something v2


def _json_load(path: PathLike, what: str) -> tuple[object, str]:
    text = _read_text(path, what)
    try:
        return json.loads(text), text
    except json.JSONDecodeError as e:
        raise _error(path, e.lineno, f"invalid JSON ({e.msg}, column {e.colno})", "Re-download the file") from None


def read_ssv2_labels(labels_json: PathLike) -> list[str]:
    """Read SSv2 ``labels.json`` (``{"Approaching something with your camera": "0", ...}``).

    Returns:
        The 174 template names (brackets removed) ordered by their index.
    """
    data, _ = _json_load(labels_json, "SSv2 labels.json")
    if not isinstance(data, dict):
        raise _error(labels_json, 1, "expected an object {template: index}", "Pass SSv2's labels.json")
    by_index: dict[int, str] = {}
    for name, idx in data.items():
        try:
            i = int(idx)
        except (TypeError, ValueError):
            raise _error(
                labels_json, None, f"index {idx!r} of {name!r} is not an integer", "Pass SSv2's labels.json"
            ) from None
        if i in by_index:
            raise _error(labels_json, None, f"index {i} used twice", "Pass SSv2's labels.json")
        by_index[i] = name
    if sorted(by_index) != list(range(len(by_index))):
        raise _error(labels_json, None, "indices must be 0..K-1", "Pass SSv2's labels.json")
    return [by_index[i] for i in range(len(by_index))]


_JSON_ID = re.compile(r'"id"\s*:\s*"?([^",}\s]+)')


def _id_lines(text: str) -> dict[str, int]:
    """Line number of the first ``"id": ...`` occurrence of every id (for error messages and sources)."""
    out: dict[str, int] = {}
    line, pos = 1, 0
    for m in _JSON_ID.finditer(text):
        line += text.count("\n", pos, m.start())
        pos = m.start()
        out.setdefault(m.group(1), line)
    return out


def parse_ssv2_json(
    labels_json: PathLike,
    annotations_json: PathLike,
    video_root: PathLike,
    ext: str = ".webm",
) -> list[VideoRecord]:
    """Parse Something-Something v2 annotations.

    On-disk format: ``labels.json`` maps template (brackets removed) to index as a string::

        {"Approaching something with your camera": "0", "Attaching something to something": "1", ...}

    ``train.json`` / ``validation.json`` are lists of::

        {"id": "78687", "label": "holding potato next to vicks vaporub bottle",
         "template": "Holding [something] next to [something]", "placeholders": ["potato", "vicks ..."]}

    (``test.json`` holds only ``{"id": ...}``: label ``-1``, no ground truth, for prediction only; a record
    without ``template`` in a file whose other records have one is an error). The class is
    ``labels[template with "[" and "]" removed]``; videos are ``video_root/<id><ext>``.

    Returns:
        Records with ``video_id`` = the SSv2 id and ``meta`` with ``template``, ``label_text``
        (the filled-in caption) and ``placeholders``.

    Raises:
        AnnotationError: Invalid JSON, a record without ``id``, a template not in ``labels.json``, a record
            without ``template`` among records with one.
    """
    names = read_ssv2_labels(labels_json)
    by_name = {n: i for i, n in enumerate(names)}
    by_lower = {n.lower(): i for i, n in enumerate(names)}
    data, text = _json_load(annotations_json, "SSv2 annotation JSON")
    if not isinstance(data, list):
        raise _error(annotations_json, 1, "expected a JSON list of records", "Pass train.json / validation.json")
    lines = _id_lines(text)
    root = os.fspath(video_root)
    records: list[VideoRecord] = []
    labelled, first_unlabelled = 0, None  # (record index, line): unlabelled only if every record is
    for k, item in enumerate(data):
        if not isinstance(item, dict) or "id" not in item:
            raise _error(
                annotations_json,
                None,
                f"record #{k} has no 'id'",
                "Every record needs an 'id'; re-download the file",
            )
        vid = str(item["id"])
        n = lines.get(vid)
        label = -1
        template = item.get("template")
        if template is None:
            first_unlabelled = first_unlabelled or (k, n, vid)
        else:
            labelled += 1
            key = str(template).replace("[", "").replace("]", "")
            label = by_name.get(key, by_lower.get(key.lower(), -2))
            if label == -2:
                raise _error(
                    annotations_json,
                    n,
                    f"template {template!r} of video {vid} is not in {os.fspath(labels_json)}",
                    "Use labels.json from the same SSv2 release",
                )
        records.append(
            VideoRecord(
                path=os.path.join(root, vid + ext),
                label=label,
                video_id=vid,
                meta={
                    "source": _source(annotations_json, n if n is not None else 0),
                    "template": template,
                    "label_text": item.get("label"),
                    "placeholders": item.get("placeholders"),
                    "label_name": names[label] if label >= 0 else None,
                },
            )
        )
    if labelled and first_unlabelled is not None:
        k, n, vid = first_unlabelled
        raise _error(
            annotations_json,
            n,
            f"record #{k} (video {vid}) has no 'template', while {labelled} other records have one",
            "Re-download the file (only a file without any template, as test.json, is read as unlabelled)",
        )
    return records


# --------------------------------------------------------------------------------- class folders


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
        raise _error(root_s, None, "not a folder", "Pass the folder holding one sub-folder per class")
    wanted = {e.lower() if e.startswith(".") else "." + e.lower() for e in exts}
    classes = sorted(d.name for d in os.scandir(root_s) if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise _error(root_s, None, "no class folders", "Lay the videos out as <root>/<class>/<video>")
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


def check_missing(records: Iterable[VideoRecord]) -> list[VideoRecord]:
    """The records whose ``path`` is not an existing file (report these before training).

    A file the process may not reach (a folder without execute permission) is listed too, since it cannot be
    used; :func:`missing_reason` tells the two apart.
    """
    return [r for r in records if not os.path.isfile(r.path)]


def os_error_reason(err: OSError) -> str:
    """The report reason of a file that fails to open: ``"missing file"``, or ``"unreadable (<OS message>)"``.

    A badly mounted dataset (``Permission denied``, ``Stale file handle``, ``Input/output error``) must not read
    as "missing": the fix is a mount or a ``chmod``, not a new download.
    """
    if isinstance(err, (FileNotFoundError, NotADirectoryError)):
        return "missing file"
    return f"unreadable ({err.strerror or err})"


def missing_reason(path: PathLike) -> str:
    """Why ``path`` was found absent: ``"missing file"``, ``"unreadable (<OS message>)"`` or ``"not a file"``.

    One ``stat``, asked only for the absent records. A file that is there after all was hidden by its folder's
    listing (the Kinetics parser lists folders): ``"unreadable folder (<OS message>)"``.
    """
    try:
        st = os.stat(path)
    except OSError as e:
        return os_error_reason(e)
    if not stat.S_ISREG(st.st_mode):
        return "not a file"
    try:
        os.listdir(os.path.dirname(os.fspath(path)) or ".")
    except OSError as e:
        return f"unreadable folder ({e.strerror or e})"
    return "missing file"  # it appeared since the check
