"""What every annotation parser shares: the error type, file reading, path resolution and missing-file reasons.

Errors name the file and line and say what to do (:func:`annotation_error`); files are read as UTF-8 with or
without a BOM and with any newline convention (:func:`read_text`, :func:`numbered_lines`); paths that differ
from the disk only by case are found (:class:`CaseInsensitiveResolver`); records whose file is absent are found
and their absence explained (:func:`check_missing`, :func:`missing_reason`, :func:`os_error_reason`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from alt_lightning.data.records import VideoRecord

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


def annotation_error(path: PathLike, line: int | None, problem: str, fix: str) -> AnnotationError:
    """The error for ``problem`` at ``path:line`` (or ``path``), ending with the ``fix``."""
    where = f"{os.fspath(path)}:{line}" if line is not None else os.fspath(path)
    return AnnotationError(f"{where}: {problem}. {fix}")


def source_of(path: PathLike, line: int) -> str:
    """A record's ``meta["source"]``: ``"<file>:<line>"``."""
    return f"{os.fspath(path)}:{line}"


def read_text(path: PathLike, what: str) -> str:
    """Whole file as text (UTF-8, BOM tolerated, any newline convention)."""
    p = Path(path)
    if not p.is_file():
        raise annotation_error(p, None, f"{what} not found", "Check the path (and that the dataset is downloaded)")
    try:
        return p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise annotation_error(p, None, f"{what} is not UTF-8 text ({e})", "Pass the annotation file itself") from e


def numbered_lines(path: PathLike, what: str) -> Iterator[tuple[int, str]]:
    """``(line_number, stripped_line)`` of the non-blank lines (CRLF files, as UCF101's, work).

    No comment syntax: a line starting with ``#`` is data (HMDB-51 has such video names).
    """
    for n, raw in enumerate(read_text(path, what).splitlines(), start=1):
        line = raw.strip()
        if line:
            yield n, line


def join_root(root: PathLike | None, rel: str) -> str:
    """``root/rel``; ``rel`` as is when it is absolute or ``root`` is ``None``."""
    if root is None or os.path.isabs(rel):
        return rel
    return os.path.join(os.fspath(root), rel)


class CaseInsensitiveResolver:
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
