r"""The entity corpus: a shipped, versioned, validated and rebuildable list of visual entities.

ALT aligns every image region to its most similar *entity* of an offline text corpus (objects, body parts,
scenes, roles, primitive motions, attributes). This module is what training and inference need: the corpus
records, their canonical hash, and reading, checking and writing corpus files (shipped or a user's).

Corpus file schema (``alt-entity-corpus``, version 1)
-----------------------------------------------------
JSON Lines, ASCII only, one JSON object per line, ``"\n"`` line ends (``"\r\n"`` is read the same).

Line 1 is the header, with exactly these keys::

    {"format": "alt-entity-corpus", "version": "1.0.0", "name": "alt-entities-v1", "description": "..."}

Every further line is one record, with exactly these keys::

    {"description": "...", "kind": "object", "sources": {"kinetics400": ["playing tennis"]},
     "unit": "tennis racket"}

(shown on two lines here; one line in the file)

- ``unit``: the entity, a lowercase noun phrase of 1 to 6 words with single spaces (the key of the record).
- ``kind``: one of :data:`KINDS`.
- ``description``: one sentence (at most 40 words) saying what the entity looks like.
- ``sources``: dataset name -> the class labels (byte for byte as in that dataset's class list) whose answers
  listed this entity. Shipped dataset names are the class-list stems in ``resources/classes``
  (:data:`~alt_lightning.text.corpus_authoring.SOURCE_DATASETS`). Entities that are always present (body parts
  of ``_base.jsonl``) may have ``{}``.

Records are sorted by ``unit`` (plain code-point order) and units are unique. A unit must not equal or contain
one of its own source labels (made readable: ``"ApplyEyeMakeup"`` -> ``"apply eye makeup"``): an entity names
something seen in the video, not the action.

Canonical form and hash
-----------------------
A record's canonical line is ``json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)``
with each source's labels sorted and de-duplicated. :attr:`Corpus.hash` is the sha256 of the canonical lines
of the records, sorted by unit, each followed by ``"\n"``. It does not cover the header, the file's line ends,
the key order inside a line or the order of source labels, so it is the same for any file that means the same
records, on any platform. :func:`write_corpus` writes exactly the canonical lines, so two builds from the same
answers give the same bytes. Text-embedding caches are keyed by the strings embedded (:meth:`Corpus.texts`),
which change whenever the hash does.

Answer files, building, merging, coverage and the LLM prompt (the authoring tools of ``alt corpus``)
live in :mod:`alt_lightning.text.corpus_authoring`; nothing here imports them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

#: The ``format`` value of a corpus file's header.
FORMAT = "alt-entity-corpus"

#: Entity kinds. role = a kind of person ("referee"); motion = a primitive visible movement ("forward roll");
#: attribute = a visual property ("wet surface").
KINDS = ("object", "body part", "scene", "role", "motion", "attribute")

#: Name of the corpus shipped in ``resources/corpus`` and used by default.
DEFAULT_CORPUS = "alt-entities-v1"

#: How a record becomes the string the CLIP text encoder embeds. Our choice (paper silent: it embeds "the
#: entity and its description"); alternatives: the unit alone ("{unit}"), or the description alone.
#: Placeholders: ``{unit}``, ``{kind}``, ``{description}``.
DEFAULT_TEXT_TEMPLATE = "a photo of {unit}. {description}"

#: Longest unit accepted, in words (authors are asked for 1-4).
MAX_UNIT_WORDS = 6

#: Longest description accepted, in words (authors are asked for 6-25).
MAX_DESCRIPTION_WORDS = 40

HEADER_KEYS = ("format", "version", "name", "description")
RECORD_KEYS = ("unit", "kind", "description", "sources")


# ----------------------------------------------------------------------------------------------------------
# Labels and entity fields


def readable_label(name: str) -> str:
    """A class label as lowercase words: ``"ApplyEyeMakeup"`` -> ``"apply eye makeup"``, ``"brush_hair"`` ->
    ``"brush hair"``, ``"Playing Tennis"`` -> ``"playing tennis"``."""  # noqa: D205, D209
    from alt_lightning.text.prompts import readable_name  # one CamelCase/snake_case splitter for the package

    return " ".join(readable_name(name).lower().split())


def unit_key(unit: str) -> str:
    """The normal form of a unit, which is its identity: lowercase, whitespace collapsed, stripped."""
    return " ".join(unit.lower().split())


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _contains_run(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return n > 0 and any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def restates_label(unit: str, label: str) -> bool:
    """Whether ``unit`` restates the class ``label`` instead of naming something seen.

    Compared as lowercase words of the readable label: the unit restates it if it contains the label's whole
    word sequence (``"guitar playing"`` does not contain ``"playing guitar"``, but ``"playing guitar lesson"``
    does), or if it equals the label without its parenthesised qualifier (``"backflip"`` for
    ``"backflip (human)"``). Whole words only: ``"chewing gum"`` does not restate ``"chew"``.
    """
    u = _words(unit)
    readable = readable_label(label)
    core = _words(re.sub(r"\([^)]*\)", " ", readable))
    return _contains_run(u, _words(readable)) or (bool(core) and u == core)


#: The fix suggested when a unit restates a class label (corpus and answer files alike).
RESTATE_HINT = "name something seen in such a video instead (an object, body part, scene, role, motion or attribute)"


def _non_ascii(text: str) -> str | None:
    """A description of the first non-ASCII character of ``text``, or ``None``."""
    for ch in text:
        if ord(ch) > 127:
            return f"non-ASCII character {ch!r} (U+{ord(ch):04X})"
    return None


_SENTENCE_BREAK = re.compile(r"[.!?][\"')\]]*\s+\S")


def entity_problems(unit: str, kind: str, description: str) -> list[str]:
    """What is wrong with one entity's fields (already known to be strings); each says what to do."""
    problems = []
    n_unit = len(unit.split())
    if n_unit == 0:
        problems.append("unit is empty; give a short noun phrase naming what is seen, e.g. 'tennis racket'")
    elif n_unit > MAX_UNIT_WORDS:
        problems.append(f"unit has {n_unit} words (at most {MAX_UNIT_WORDS}); shorten it to the thing's name")
    if kind not in KINDS:
        problems.append(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    n_desc = len(description.split())
    if n_desc == 0:
        problems.append("description is empty; write one sentence saying what the entity looks like")
    elif n_desc > MAX_DESCRIPTION_WORDS:
        problems.append(f"description has {n_desc} words (at most {MAX_DESCRIPTION_WORDS}); shorten it to one sentence")
    if _SENTENCE_BREAK.search(description.strip()):
        problems.append("description has more than one sentence; keep one sentence (one final period)")
    for key, value in (("unit", unit), ("kind", kind), ("description", description)):
        bad = _non_ascii(value)
        if bad:
            problems.append(f"{key} contains {bad}; use plain ASCII")
    return problems


# ----------------------------------------------------------------------------------------------------------
# Records, corpus, issues


def _sorted_sources(sources: Mapping[str, Iterable[str]]) -> dict[str, tuple[str, ...]]:
    return {d: tuple(sorted(set(labels))) for d, labels in sorted(sources.items()) if labels}


@dataclass(frozen=True)
class EntityRecord:
    """One corpus entity.

    Attributes:
        unit: The entity's name, its identity in the corpus (lowercase noun phrase).
        kind: One of :data:`KINDS`.
        description: One sentence saying what it looks like.
        sources: Dataset name -> class labels whose answers listed this entity (sorted, normalised on init;
            empty label lists are dropped).
    """

    unit: str
    kind: str
    description: str
    sources: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", _sorted_sources(self.sources))

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object."""
        return {
            "unit": self.unit,
            "kind": self.kind,
            "description": self.description,
            "sources": {d: list(labels) for d, labels in self.sources.items()},
        }

    def canonical_line(self) -> str:
        """The canonical serialisation (sorted keys, no spaces, ASCII), without line end."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    def __hash__(self) -> int:  # the dict field would make the generated hash fail
        return hash(self.canonical_line())


def records_hash(records: Iterable[EntityRecord]) -> str:
    """sha256 (hex) of the canonical lines of ``records`` sorted by unit, each followed by a newline."""
    h = hashlib.sha256()
    for record in sorted(records, key=lambda r: r.unit):
        h.update(record.canonical_line().encode("ascii") + b"\n")
    return h.hexdigest()


@dataclass(frozen=True)
class Corpus:
    """An entity corpus: records sorted by unit (row ``i`` of its embedding matrix is ``records[i]``).

    Attributes:
        name: Corpus name, e.g. ``"alt-entities-v1"``.
        version: Version string, e.g. ``"1.0.0"`` (``"1.0.0+<hash8>"`` after :func:`merge_corpus`).
        records: The entities; sorted by unit on init, units must be unique.
        description: Free text for the file header.
    """

    name: str
    version: str
    records: tuple[EntityRecord, ...]
    description: str = ""

    def __post_init__(self) -> None:
        records = tuple(sorted(self.records, key=lambda r: r.unit))
        for a, b in itertools.pairwise(records):
            if a.unit == b.unit:
                raise ValueError(f"Corpus {self.name!r}: unit {a.unit!r} appears twice; merge the two records.")
        object.__setattr__(self, "records", records)

    @cached_property
    def hash(self) -> str:
        """sha256 (hex) of the canonical records (see the module docstring); not of name or version."""
        return records_hash(self.records)

    @property
    def short_hash(self) -> str:
        """First 12 hex digits of :attr:`hash`."""
        return self.hash[:12]

    @property
    def units(self) -> list[str]:
        """The units, in record order."""
        return [r.unit for r in self.records]

    def texts(self, template: str = DEFAULT_TEXT_TEMPLATE) -> list[str]:
        """The strings the CLIP text encoder embeds, one per record, in record order.

        Args:
            template: Format string with ``{unit}``, ``{description}`` and/or ``{kind}``
                (default :data:`DEFAULT_TEXT_TEMPLATE`).
        """
        try:
            return [template.format(unit=r.unit, kind=r.kind, description=r.description) for r in self.records]
        except (KeyError, IndexError) as e:
            raise ValueError(
                f"Corpus text template {template!r} has an unknown placeholder {e}; "
                "use only {unit}, {kind} and {description}."
            ) from e

    def header(self) -> dict[str, str]:
        """The file header object."""
        return {"format": FORMAT, "version": self.version, "name": self.name, "description": self.description}

    def to_jsonl(self) -> str:
        """The canonical file contents: header line, then one canonical line per record, LF line ends."""
        lines = [json.dumps(self.header(), separators=(",", ":"), ensure_ascii=True)]
        lines += [r.canonical_line() for r in self.records]
        return "\n".join(lines) + "\n"

    def __len__(self) -> int:
        return len(self.records)


@dataclass(frozen=True)
class CorpusIssue:
    """One problem found in a corpus or answer file.

    Attributes:
        line: 1-based line number (``None`` for problems of the whole file).
        unit: The unit concerned, if known.
        message: What is wrong and what to do.
        path: The file, if known.
    """

    line: int | None
    unit: str | None
    message: str
    path: str | None = None

    def __str__(self) -> str:
        where = self.path or "<corpus>"
        if self.line is not None:
            where += f":{self.line}"
        unit = f" unit {self.unit!r}:" if self.unit is not None else ""
        return f"{where}:{unit} {self.message}"


class CorpusError(ValueError):
    """A corpus or answer file is malformed; ``issues`` lists every problem found."""

    def __init__(self, issues: Sequence[CorpusIssue], what: str = "corpus") -> None:
        self.issues = list(issues)
        listed = "\n".join(f"  {i}" for i in self.issues)
        super().__init__(f"Invalid {what} ({len(self.issues)} issue(s)):\n{listed}")


# ----------------------------------------------------------------------------------------------------------
# Reading and validating corpus files


def shipped_corpus_dir() -> Path:
    """The package folder holding shipped corpora (``alt_lightning/resources/corpus``)."""
    return Path(str(resources.files("alt_lightning") / "resources" / "corpus"))


def shipped_corpus_path(name: str = DEFAULT_CORPUS) -> Path:
    """Path of a shipped corpus file by name (it may not exist yet before the first build)."""
    return shipped_corpus_dir() / f"{name}.jsonl"


def shipped_corpora() -> list[str]:
    """Names of the corpora shipped with the package."""
    folder = shipped_corpus_dir()
    return sorted(p.stem for p in folder.glob("*.jsonl")) if folder.is_dir() else []


def resolve_corpus_spec(spec: str | Path) -> Path:
    """The file of a corpus spec: an existing path, or the name of a shipped corpus.

    Raises:
        FileNotFoundError: If ``spec`` is neither.
    """
    path = Path(spec)
    if path.is_file():
        return path
    if isinstance(spec, str) and "/" not in spec and "\\" not in spec:
        shipped = shipped_corpus_path(spec.removesuffix(".jsonl"))
        if shipped.is_file():
            return shipped
    raise FileNotFoundError(
        f"Corpus {str(spec)!r} is neither a file nor a shipped corpus "
        f"(shipped: {shipped_corpora() or 'none'}); pass a path to a .jsonl corpus, "
        "or build the shipped one with `alt corpus build`."
    )


def split_lines(data: bytes, path: str | None) -> tuple[list[str], list[CorpusIssue]]:
    """Decode ``data`` as UTF-8 and split into lines (a trailing CR is dropped: CRLF reads as LF)."""
    issues = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        issues.append(CorpusIssue(line, None, "bytes are not valid UTF-8; save the file as ASCII/UTF-8", path))
        text = data.decode("utf-8", errors="replace")
    lines = [ln.removesuffix("\r") for ln in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines, issues


def parse_object(raw: str, lineno: int, path: str | None, issues: list[CorpusIssue]) -> dict[str, Any] | None:
    """One line's JSON object, or ``None`` after appending to ``issues`` why it is not one."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as e:
        issues.append(CorpusIssue(lineno, None, f"bad JSON ({e.msg} at column {e.colno}); fix the line's syntax", path))
        return None
    if not isinstance(obj, dict):
        issues.append(CorpusIssue(lineno, None, f"wrong type: expected a JSON object, got {_json_type(obj)}", path))
        return None
    return obj


def _json_type(value: object) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
    }.get(type(value), "null")


def check_keys(
    obj: dict[str, Any], expected: Sequence[str], lineno: int, unit: str | None, path: str | None
) -> list[CorpusIssue]:
    """Issues for keys of ``obj`` missing from or not in ``expected`` (corpus and answer lines alike)."""
    issues = []
    missing = [k for k in expected if k not in obj]
    unknown = [k for k in obj if k not in expected]
    if missing:
        issues.append(CorpusIssue(lineno, unit, f"missing key(s) {missing}; every line needs {list(expected)}", path))
    if unknown:
        issues.append(CorpusIssue(lineno, unit, f"unknown key(s) {unknown}; allowed keys are {list(expected)}", path))
    return issues


def _check_header(obj: dict[str, Any] | None, path: str | None, issues: list[CorpusIssue]) -> dict[str, str] | None:
    if obj is None:
        return None
    if "unit" in obj and "format" not in obj:
        issues.append(
            CorpusIssue(
                1,
                None,
                f"bad header: line 1 is a record, not the header; add first a line "
                f'{{"format": "{FORMAT}", "version": ..., "name": ..., "description": ...}}',
                path,
            )
        )
        return None
    bad = check_keys(obj, HEADER_KEYS, 1, None, path)
    for key in HEADER_KEYS:
        if key in obj and not isinstance(obj[key], str):
            bad.append(CorpusIssue(1, None, f"bad header: {key!r} must be a string", path))
        elif isinstance(obj.get(key), str) and _non_ascii(obj[key]):
            bad.append(CorpusIssue(1, None, f"bad header: {key!r} contains {_non_ascii(obj[key])}", path))
    if isinstance(obj.get("format"), str) and obj["format"] != FORMAT:
        bad.append(CorpusIssue(1, None, f"bad header: format is {obj['format']!r}, expected {FORMAT!r}", path))
    for key in ("name", "version"):
        if isinstance(obj.get(key), str) and not obj[key].strip():
            bad.append(CorpusIssue(1, None, f"bad header: {key!r} is empty", path))
    issues.extend(dataclasses.replace(i, message=_header_msg(i.message)) for i in bad)
    return None if bad else {k: obj[k] for k in HEADER_KEYS}


def _header_msg(message: str) -> str:
    return message if message.startswith("bad header") else f"bad header: {message}"


def _check_record(obj: dict[str, Any], lineno: int, path: str | None, issues: list[CorpusIssue]) -> EntityRecord | None:
    unit = obj.get("unit") if isinstance(obj.get("unit"), str) else None
    bad = check_keys(obj, RECORD_KEYS, lineno, unit, path)
    for key in ("unit", "kind", "description"):
        if key in obj and not isinstance(obj[key], str):
            bad.append(
                CorpusIssue(lineno, unit, f"wrong type: {key!r} must be a string, got {_json_type(obj[key])}", path)
            )
    sources = obj.get("sources", {})
    if not isinstance(sources, dict) or not all(
        isinstance(d, str) and isinstance(ls, list) and all(isinstance(x, str) for x in ls) for d, ls in sources.items()
    ):
        bad.append(
            CorpusIssue(
                lineno,
                unit,
                "wrong type: 'sources' must be an object {dataset: [label, ...]} of strings",
                path,
            )
        )
    if bad:
        issues.extend(bad)
        return None
    assert unit is not None  # a string, checked above
    for problem in entity_problems(unit, obj["kind"], obj["description"]):
        bad.append(CorpusIssue(lineno, unit, problem, path))
    if unit.strip() and unit != unit_key(unit):
        bad.append(
            CorpusIssue(
                lineno,
                unit,
                f"unit is not normalised; write {unit_key(unit)!r} (lowercase, single spaces)",
                path,
            )
        )
    for dataset, labels in sources.items():
        for text in (dataset, *labels):
            if _non_ascii(text):
                bad.append(CorpusIssue(lineno, unit, f"source {text!r} contains {_non_ascii(text)}", path))
        for label in labels:
            if restates_label(unit, label):
                bad.append(
                    CorpusIssue(
                        lineno,
                        unit,
                        f"unit restates class label {label!r} of {dataset}; {RESTATE_HINT}",
                        path,
                    )
                )
    if bad:
        issues.extend(bad)
        return None
    return EntityRecord(unit=unit, kind=obj["kind"], description=obj["description"], sources=sources)


def read_corpus_bytes(
    data: bytes, path: str | None
) -> tuple[dict[str, str] | None, list[EntityRecord], list[CorpusIssue]]:
    """Header (``None`` if bad), the valid records and every issue of a corpus file's bytes."""
    lines, issues = split_lines(data, path)
    if not lines or not lines[0].strip():
        issues.append(
            CorpusIssue(
                1,
                None,
                f"bad header: file is empty or line 1 is blank; line 1 must be the "
                f'header {{"format": "{FORMAT}", ...}}',
                path,
            )
        )
        return None, [], issues
    header = _check_header(parse_object(lines[0], 1, path, issues), path, issues)
    records: list[EntityRecord] = []
    first_line: dict[str, int] = {}
    previous: tuple[str, int] | None = None
    for lineno, raw in enumerate(lines[1:], start=2):
        if not raw.strip():
            continue  # blank lines carry nothing; the canonical writer never emits them
        obj = parse_object(raw, lineno, path, issues)
        if obj is None:
            continue
        record = _check_record(obj, lineno, path, issues)
        unit = obj.get("unit") if isinstance(obj.get("unit"), str) else None
        if unit is None:
            continue
        key = unit_key(unit)
        if key in first_line:
            issues.append(
                CorpusIssue(
                    lineno,
                    unit,
                    f"duplicate unit (first at line {first_line[key]}); merge the two records",
                    path,
                )
            )
            continue
        first_line[key] = lineno
        if previous is not None and unit < previous[0]:
            issues.append(
                CorpusIssue(
                    lineno,
                    unit,
                    f"records not sorted by unit: {unit!r} comes after {previous[0]!r} (line {previous[1]}); "
                    "sort the records (or rewrite the file with `alt corpus build` / write_corpus)",
                    path,
                )
            )
        previous = (unit, lineno)
        if record is not None:
            records.append(record)
    return header, records, issues


def validate_corpus_file(path: str | Path) -> list[CorpusIssue]:
    """Every problem of a corpus file (empty when valid); each names the line, the unit and what to do."""
    _, _, issues = read_corpus_bytes(Path(path).read_bytes(), str(path))
    return issues


def load_corpus(spec: str | Path = DEFAULT_CORPUS) -> Corpus:
    """Load and validate a corpus.

    Args:
        spec: A shipped corpus name (``"alt-entities-v1"``, looked up in the package's
            ``resources/corpus``) or the path of a corpus file.

    Raises:
        CorpusError: With every issue found, if the file is malformed.
        FileNotFoundError: If ``spec`` names no file and no shipped corpus.
    """
    path = resolve_corpus_spec(spec)
    header, records, issues = read_corpus_bytes(path.read_bytes(), str(path))
    if issues or header is None:
        raise CorpusError(issues, what=f"corpus file {path}")
    return Corpus(
        name=header["name"],
        version=header["version"],
        records=tuple(records),
        description=header["description"],
    )


def write_corpus(corpus: Corpus, path: str | Path) -> Path:
    """Write ``corpus`` in canonical form (byte-identical for equal corpora); creates parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(corpus.to_jsonl().encode("ascii"))
    return path
