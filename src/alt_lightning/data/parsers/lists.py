"""Video lists ``<path> <label>`` (mmaction2 / X-CLIP style), ``id,name`` label CSVs, and our manifests' header.

On-disk formats:

- Video list, as mmaction2's ``VideoDataset`` documents it: "each line indicates a sample video with the
  filepath and label, which are split with a whitespace". Labels are 0-based class ids. There is no comment
  syntax, so a path starting with ``#`` is a path::

      abseiling/-3B32lodo2M_000059_000069.mp4 0
      my videos/clip one.mp4 17

- Label-name CSV, as X-CLIP ships them (``labels/kinetics_400_labels.csv``): an ``id,name`` header, then one
  ``<0-based id>,<class name>`` row per class::

      id,name
      0,abseiling
      1,air drumming

- This package's own manifests (:mod:`alt_lightning.data.manifests`) are video lists whose first line is
  :data:`MANIFEST_MAGIC`, followed by ``# key: value`` header lines (:func:`split_manifest_header`); the only
  ``#`` syntax read anywhere.
"""

from __future__ import annotations

import csv
import os
import re

from alt_lightning.data.parsers.common import (
    PathLike,
    annotation_error,
    join_root,
    numbered_lines,
    read_text,
    source_of,
)
from alt_lightning.data.records import VideoRecord

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
    rows = csv.reader(read_text(path, "label-name CSV").splitlines())
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
            raise annotation_error(
                path, n, f"id {row[0]!r} is not an integer", "Each line must be '<id>,<name>'"
            ) from None
        first = False
        if len(row) < 2 or not ",".join(row[1:]).strip():
            raise annotation_error(path, n, "no name after the id", "Each line must be '<id>,<name>'")
        if i in names:
            raise annotation_error(path, n, f"id {i} already given on line {names[i][1]}", "Give each id once")
        name = ",".join(row[1:]).strip()
        if name in lines_of:
            raise annotation_error(
                path,
                n,
                f"name {name!r} already given on line {lines_of[name]}",
                "Class names must be unique (two ids with one name make their predictions indistinguishable)",
            )
        lines_of[name] = n
        names[i] = (name, n)
    if not names:
        raise annotation_error(path, None, "no label names found", "Each line must be '<id>,<name>'")
    gaps = sorted(set(range(len(names))) - set(names))
    if gaps:
        raise annotation_error(
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
    _, lines = split_manifest_header(list(numbered_lines(list_path, "video list")))
    for n, line in lines:
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            raise annotation_error(
                list_path,
                n,
                f"expected '<path> <label>', got {line!r}",
                "Add the integer class label after the path, separated by a space",
            )
        rel, label_text = parts
        try:
            label = int(label_text)
        except ValueError:
            raise annotation_error(
                list_path,
                n,
                f"label {label_text!r} is not an integer",
                "Each line must be '<path> <integer label>' (the label is the last field)",
            ) from None
        if label < 0 or (names is not None and label >= len(names)):
            bound = f" (the label-name CSV has {len(names)} names)" if names is not None else ""
            raise annotation_error(
                list_path, n, f"label {label} is out of range{bound}", "Labels are 0-based class indices"
            )
        meta: dict[str, object] = {"source": source_of(list_path, n)}
        if names is not None:
            meta["label_name"] = names[label]
        records.append(VideoRecord(path=join_root(root, rel), label=label, video_id=rel, meta=meta))
    return records
