r"""The entity corpus: a shipped, versioned, validated and rebuildable list of visual entities.

ALT aligns every image region to its most similar *entity* of an offline text corpus (objects, body parts,
scenes, roles, primitive motions, attributes). This module holds the corpus records, reads and checks corpus
files, builds a corpus from per-label "answer" files (what an LLM, or a careful editor, answered to the
paper's question for each class label), merges a user's answers for a new dataset into a shipped corpus, and
reports coverage.

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
  (:data:`SOURCE_DATASETS`). Entities that are always present (body parts of ``_base.jsonl``) may have ``{}``.

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

Answer files (the authoring format, see ``corpus/README.md``)
--------------------------------------------------------------
JSON Lines, one line per class label::

    {"label": "playing tennis", "entities": [{"unit": "tennis racket", "kind": "object", "description": "."}]}

``"label": null`` marks entities that are always included, with no source label
(``corpus/answers/_base.jsonl``).
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

#: Shipped class lists whose labels may appear as corpus sources (file stems of ``resources/classes``).
SOURCE_DATASETS = ("kinetics400", "kinetics600", "kinetics700", "ucf101", "hmdb51", "ssv2")

#: Name of the corpus shipped in ``resources/corpus`` and used by default.
DEFAULT_CORPUS = "alt-entities-v1"

#: Version of the shipped corpus (semantic versioning: major = schema, minor = entities added,
#: patch = wording).
DEFAULT_VERSION = "1.0.0"

#: Header description of the shipped corpus.
DEFAULT_DESCRIPTION = (
    "Visual entities (objects, body parts, scenes, roles, motions, attributes) of the Kinetics-400/600/700, "
    "UCF101, HMDB51 and Something-Something v2 action classes, one record per entity, with the class labels "
    "each entity was given for."
)

#: How a record becomes the string the CLIP text encoder embeds. Our choice (paper silent: it embeds "the
#: entity and its description"); alternatives: the unit alone ("{unit}"), or the description alone.
#: Placeholders: ``{unit}``, ``{kind}``, ``{description}``.
DEFAULT_TEXT_TEMPLATE = "a photo of {unit}. {description}"

#: Longest unit accepted, in words (authors are asked for 1-4).
MAX_UNIT_WORDS = 6

#: Longest description accepted, in words (authors are asked for 6-25).
MAX_DESCRIPTION_WORDS = 40

#: Body-part units every corpus should use verbatim (``corpus/answers/_base.jsonl`` ships them all).
BODY_PARTS = (
    "hand", "fingers", "palm", "thumb", "wrist", "arm", "elbow", "shoulder", "head", "face", "eyes", "mouth",
    "lips", "teeth", "nose", "ear", "hair", "neck", "torso", "chest", "back", "hip", "leg", "knee", "foot",
    "toes", "ankle",
)  # fmt: skip

HEADER_KEYS = ("format", "version", "name", "description")
RECORD_KEYS = ("unit", "kind", "description", "sources")
ANSWER_KEYS = ("label", "entities")
ENTITY_KEYS = ("unit", "kind", "description")

#: The question put to an LLM (or an editor) per class label, after the paper's: "What are the identifying
#: visual characteristics -- objects, body parts, scenes, roles -- of a {label} video action?". Placeholders:
#: ``{label}`` (readable label), ``{label_json}`` (the exact label as a JSON string), ``{body_parts}``.
PROMPT_TEMPLATE = """\
What are the identifying visual characteristics -- objects, body parts, scenes, roles -- of a "{label}" \
video action?

List 4 to 6 entities that a viewer can actually see in such a video: objects, body parts, scenes, roles \
(kinds of person), primitive motions or visual attributes. For each entity give
- "unit": a short lowercase noun phrase of 1 to 4 words, ASCII only, no leading article, no final period;
- "kind": one of "object", "body part", "scene", "role", "motion", "attribute";
- "description": one plain sentence of 6 to 25 words saying what the entity looks like (shape, colour, \
material, where it is), ending with a period.
Rules: never restate the action name ("{label}") as a unit or inside one; describe the entity itself, not \
the action, so the description fits every action it may appear in; only what is visible (no sounds, smells, \
feelings or intentions); prefer plain common names shared by many actions ("water", "grass field", "table"); \
for body parts use these names verbatim: {body_parts}.
Reply with exactly one line of JSON and nothing else, in this form:
{{"label": {label_json}, "entities": [{{"unit": "...", "kind": "...", "description": "..."}}, ...]}}
"""

#: Line separating prompts in :func:`render_prompts`.
PROMPT_SEPARATOR = "-----"


# ----------------------------------------------------------------------------------------------------------
# Class lists and labels


def load_class_list(name: str) -> list[str]:
    """Class labels of a shipped list (``"kinetics400"``, ``"ucf101"``, ...), in the dataset's order."""
    from alt_lightning.text.classes import class_names  # the shipped-list reader lives there

    return class_names(name)


def shipped_class_lists(names: Sequence[str] = SOURCE_DATASETS) -> dict[str, list[str]]:
    """``{name: labels}`` for the shipped class lists named (default: all corpus source datasets)."""
    return {n: load_class_list(n) for n in names}


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


_RESTATE_HINT = "name something seen in such a video instead (an object, body part, scene, role, motion or attribute)"


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


def _split_lines(data: bytes, path: str | None) -> tuple[list[str], list[CorpusIssue]]:
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


def _parse_object(raw: str, lineno: int, path: str | None, issues: list[CorpusIssue]) -> dict[str, Any] | None:
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


def _check_keys(
    obj: dict[str, Any], expected: Sequence[str], lineno: int, unit: str | None, path: str | None
) -> list[CorpusIssue]:
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
    bad = _check_keys(obj, HEADER_KEYS, 1, None, path)
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
    bad = _check_keys(obj, RECORD_KEYS, lineno, unit, path)
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
                        f"unit restates class label {label!r} of {dataset}; {_RESTATE_HINT}",
                        path,
                    )
                )
    if bad:
        issues.extend(bad)
        return None
    return EntityRecord(unit=unit, kind=obj["kind"], description=obj["description"], sources=sources)


def _read_corpus_bytes(
    data: bytes, path: str | None
) -> tuple[dict[str, str] | None, list[EntityRecord], list[CorpusIssue]]:
    lines, issues = _split_lines(data, path)
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
    header = _check_header(_parse_object(lines[0], 1, path, issues), path, issues)
    records: list[EntityRecord] = []
    first_line: dict[str, int] = {}
    previous: tuple[str, int] | None = None
    for lineno, raw in enumerate(lines[1:], start=2):
        if not raw.strip():
            continue  # blank lines carry nothing; the canonical writer never emits them
        obj = _parse_object(raw, lineno, path, issues)
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
    _, _, issues = _read_corpus_bytes(Path(path).read_bytes(), str(path))
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
    header, records, issues = _read_corpus_bytes(path.read_bytes(), str(path))
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


# ----------------------------------------------------------------------------------------------------------
# Answer files and building


@dataclass(frozen=True)
class AnswerEntity:
    """One entity of an answer line."""

    unit: str
    kind: str
    description: str


@dataclass(frozen=True)
class Answer:
    """One answer line: the entities given for a class label (``label=None``: always included).

    Attributes:
        label: The class label, byte for byte as in its class list, or ``None``.
        entities: The entities, in the order given.
        path: The answer file.
        line: 1-based line number in ``path``.
    """

    label: str | None
    entities: tuple[AnswerEntity, ...]
    path: str
    line: int


def read_answers(path: str | Path) -> list[Answer]:
    """Read and check an answer file (see ``corpus/README.md``).

    Raises:
        CorpusError: Listing every problem as ``file:line``.
    """
    path_s = str(path)
    lines, issues = _split_lines(Path(path).read_bytes(), path_s)
    answers: list[Answer] = []
    seen_labels: dict[str, int] = {}
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        obj = _parse_object(raw, lineno, path_s, issues)
        if obj is None:
            continue
        bad = _check_keys(obj, ANSWER_KEYS, lineno, None, path_s)
        label = obj.get("label")
        if label is not None and (not isinstance(label, str) or not label.strip()):
            bad.append(CorpusIssue(lineno, None, "wrong type: 'label' must be a non-empty string or null", path_s))
            label = None
        if isinstance(label, str):
            if label in seen_labels:
                bad.append(
                    CorpusIssue(
                        lineno,
                        None,
                        f"label {label!r} already answered at line {seen_labels[label]}; keep one line per label",
                        path_s,
                    )
                )
            seen_labels.setdefault(label, lineno)
        raw_entities = obj.get("entities", [])
        if not isinstance(raw_entities, list) or not raw_entities:
            bad.append(CorpusIssue(lineno, None, "'entities' must be a non-empty array of entity objects", path_s))
            raw_entities = []
        entities: list[AnswerEntity] = []
        seen_units: set[str] = set()
        for i, ent in enumerate(raw_entities, start=1):
            if not isinstance(ent, dict):
                bad.append(CorpusIssue(lineno, None, f"wrong type: entity {i} must be an object", path_s))
                continue
            unit = ent.get("unit") if isinstance(ent.get("unit"), str) else None
            ent_bad = _check_keys(ent, ENTITY_KEYS, lineno, unit, path_s)
            for key in ENTITY_KEYS:
                if key in ent and not isinstance(ent[key], str):
                    ent_bad.append(
                        CorpusIssue(lineno, unit, f"wrong type: entity {i}'s {key!r} must be a string", path_s)
                    )
            if ent_bad:
                bad.extend(ent_bad)
                continue
            assert unit is not None
            ent_bad = [
                CorpusIssue(lineno, unit, p, path_s) for p in entity_problems(unit, ent["kind"], ent["description"])
            ]
            if isinstance(label, str) and restates_label(unit, label):
                ent_bad.append(CorpusIssue(lineno, unit, f"unit restates the label {label!r}; {_RESTATE_HINT}", path_s))
            if unit_key(unit) in seen_units:
                ent_bad.append(CorpusIssue(lineno, unit, "unit listed twice for this label; keep one", path_s))
            seen_units.add(unit_key(unit))
            if ent_bad:
                bad.extend(ent_bad)
                continue
            entities.append(AnswerEntity(unit=unit_key(unit), kind=ent["kind"], description=ent["description"]))
        issues.extend(bad)
        if not bad:
            answers.append(Answer(label=label, entities=tuple(entities), path=path_s, line=lineno))
    if issues:
        raise CorpusError(issues, what=f"answer file {path_s}")
    return answers


@dataclass
class _Entry:
    kind: str
    description: str
    origin: str  # "file:line" of the first occurrence, for messages
    sources: dict[str, set[str]] = field(default_factory=dict)


def _label_index(class_lists: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    index: dict[str, list[str]] = {}
    for dataset, labels in class_lists.items():
        for label in labels:
            index.setdefault(label, []).append(dataset)
    return index


def _add_answers(
    entries: dict[str, _Entry],
    answers: Iterable[Answer],
    class_lists: Mapping[str, Sequence[str]],
    *,
    unknown_dataset: str | None,
    issues: list[CorpusIssue],
    warnings_out: list[str] | None,
) -> None:
    """Fold ``answers`` into ``entries`` (first occurrence fixes kind and description)."""
    index = _label_index(class_lists)
    for answer in answers:
        datasets: list[str] = []
        if answer.label is not None:
            datasets = index.get(answer.label, [])
            if not datasets and unknown_dataset is not None:
                datasets = [unknown_dataset]
            if not datasets:
                issues.append(
                    CorpusIssue(
                        answer.line,
                        None,
                        f"label {answer.label!r} is in no class list "
                        f"({', '.join(class_lists) or 'none given'}); fix its spelling (labels must match "
                        "the list byte for byte), or for a new dataset pass allow_unknown_labels with a "
                        "dataset name (or use merge_corpus)",
                        answer.path,
                    )
                )
                continue
        for ent in answer.entities:
            origin = f"{answer.path}:{answer.line}"
            entry = entries.get(ent.unit)
            if entry is None:
                entry = entries[ent.unit] = _Entry(kind=ent.kind, description=ent.description, origin=origin)
            elif entry.kind != ent.kind and warnings_out is not None:
                warnings_out.append(
                    f"{origin}: unit {ent.unit!r} has kind {ent.kind!r} here but {entry.kind!r} at "
                    f"{entry.origin}; kept {entry.kind!r} (first occurrence wins)"
                )
            for dataset in datasets:
                entry.sources.setdefault(dataset, set()).add(answer.label)  # type: ignore[arg-type]


def _entries_to_records(entries: Mapping[str, _Entry]) -> tuple[EntityRecord, ...]:
    return tuple(
        EntityRecord(unit=u, kind=e.kind, description=e.description, sources=e.sources) for u, e in entries.items()
    )


def _checked_corpus(corpus: Corpus) -> Corpus:
    """Validate a built corpus through its canonical file text (the same checks as :func:`load_corpus`)."""
    _, _, issues = _read_corpus_bytes(corpus.to_jsonl().encode("ascii"), f"<built {corpus.name}>")
    if issues:
        raise CorpusError(issues, what=f"built corpus {corpus.name}")
    return corpus


def build_corpus(
    answer_paths: Sequence[str | Path],
    class_lists: Mapping[str, Sequence[str]],
    *,
    name: str = DEFAULT_CORPUS,
    version: str = DEFAULT_VERSION,
    description: str = DEFAULT_DESCRIPTION,
    allow_unknown_labels: bool = False,
    dataset: str | None = None,
    warnings_out: list[str] | None = None,
) -> Corpus:
    """Build a corpus from answer files, deterministically.

    One record per unit (the unit key: lowercase, whitespace collapsed). The first occurrence, in the order of
    ``answer_paths`` then of lines and entities, fixes kind and description. A label's entities are sourced to
    every class list that holds that exact label string (a label in K400 and K700 gives both).

    Args:
        answer_paths: Answer files, in priority order (``_base.jsonl`` first).
        class_lists: Dataset name -> class labels (e.g. :func:`shipped_class_lists`).
        name: Corpus name for the header.
        version: Corpus version for the header.
        description: Header description.
        allow_unknown_labels: Accept labels in no class list, sourcing them to ``dataset`` (a user's dataset).
        dataset: Dataset name for unknown labels; required with ``allow_unknown_labels``.
        warnings_out: If given, receives one message per kind conflict (a unit given two kinds).

    Raises:
        CorpusError: Listing every malformed answer and every unknown label as ``file:line``.
        ValueError: If ``allow_unknown_labels`` is set without ``dataset``.
    """
    if allow_unknown_labels and not dataset:
        raise ValueError("allow_unknown_labels needs a dataset name to put the unknown labels under.")
    issues: list[CorpusIssue] = []
    answers: list[Answer] = []
    for p in answer_paths:
        try:
            answers += read_answers(p)
        except CorpusError as e:
            issues += e.issues
    entries: dict[str, _Entry] = {}
    _add_answers(
        entries,
        answers,
        class_lists,
        unknown_dataset=dataset if allow_unknown_labels else None,
        issues=issues,
        warnings_out=warnings_out,
    )
    if issues:
        raise CorpusError(issues, what="answers")
    corpus = Corpus(name=name, version=version, records=_entries_to_records(entries), description=description)
    return _checked_corpus(corpus)


def merge_corpus(
    base: Corpus,
    additions: Sequence[str | Path],
    dataset: str,
    class_names: Sequence[str],
    *,
    warnings_out: list[str] | None = None,
) -> Corpus:
    """Extend ``base`` with a user's answers for a new dataset.

    Same rules as :func:`build_corpus`, with ``base``'s records first (they keep their kind and description);
    the answers' labels must be in ``class_names`` and go under ``sources[dataset]``.

    Versioning: the result is named ``"<base name>+<dataset>"`` and versioned ``"<base version>+<hash8>"``,
    where ``<hash8>`` is the first 8 hex digits of the merged records' hash (a previous ``+...`` local part of
    the base version is replaced), so two different extensions never share a version.

    Args:
        base: The corpus to extend (e.g. ``load_corpus("alt-entities-v1")``).
        additions: Answer files for the new dataset's labels.
        dataset: Name of the new dataset (letters, digits, ``_``, ``-``, ``.``).
        class_names: The new dataset's class labels.
        warnings_out: If given, receives one message per kind conflict.

    Raises:
        CorpusError: Listing every malformed answer and every label not in ``class_names``.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", dataset):
        raise ValueError(f"Dataset name {dataset!r} must use only letters, digits, '_', '-' and '.'.")
    entries = {
        r.unit: _Entry(
            kind=r.kind,
            description=r.description,
            origin=f"{base.name} (base corpus)",
            sources={d: set(ls) for d, ls in r.sources.items()},
        )
        for r in base.records
    }
    issues: list[CorpusIssue] = []
    answers: list[Answer] = []
    for p in additions:
        try:
            answers += read_answers(p)
        except CorpusError as e:
            issues += e.issues
    _add_answers(
        entries,
        answers,
        {dataset: list(class_names)},
        unknown_dataset=None,
        issues=issues,
        warnings_out=warnings_out,
    )
    if issues:
        raise CorpusError(issues, what=f"answers for {dataset}")
    name = base.name if base.name.endswith(f"+{dataset}") else f"{base.name}+{dataset}"
    merged = Corpus(
        name=name,
        version=base.version,
        records=_entries_to_records(entries),
        description=f"{base.description} Extended with entities for the {dataset} dataset.".strip(),
    )
    merged = dataclasses.replace(merged, version=f"{base.version.split('+')[0]}+{merged.hash[:8]}")
    return _checked_corpus(merged)


# ----------------------------------------------------------------------------------------------------------
# Coverage and statistics


def coverage(corpus: Corpus, class_lists: Mapping[str, Sequence[str]]) -> dict[str, dict[str, int]]:
    """Entities linked to each class: ``{dataset: {label: count}}``, counting records whose sources hold it.

    Entities with no sources (always-present body parts) are linked to no class.
    """
    counts = {d: dict.fromkeys(labels, 0) for d, labels in class_lists.items()}
    for record in corpus.records:
        for dataset, labels in record.sources.items():
            if dataset in counts:
                for label in labels:
                    if label in counts[dataset]:
                        counts[dataset][label] += 1
    return counts


@dataclass(frozen=True)
class DatasetCoverage:
    """Coverage of one dataset's classes.

    Attributes:
        dataset: Dataset name.
        classes: Number of classes in its list.
        covered: Classes linked to at least one entity.
        min_entities: Fewest entities linked to one class.
        mean_entities: Mean entities per class.
        fewest: ``(label, count)`` of the classes with fewest entities, fewest first.
    """

    dataset: str
    classes: int
    covered: int
    min_entities: int
    mean_entities: float
    fewest: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class CorpusStats:
    """Summary of a corpus against class lists (see :func:`corpus_stats`)."""

    name: str
    version: str
    hash: str
    units: int
    units_per_kind: dict[str, int]
    datasets: dict[str, DatasetCoverage]
    fewest: tuple[tuple[str, str, int], ...]  # (dataset, label, count) over all datasets, fewest first


def corpus_stats(corpus: Corpus, class_lists: Mapping[str, Sequence[str]], n_fewest: int = 10) -> CorpusStats:
    """Units per kind and per-dataset coverage (classes covered, min/mean entities, classes with fewest)."""
    per_kind = dict.fromkeys(KINDS, 0)
    for record in corpus.records:
        per_kind[record.kind] = per_kind.get(record.kind, 0) + 1
    cov = coverage(corpus, class_lists)
    datasets = {}
    for dataset, counts in cov.items():
        ranked = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]))
        values = list(counts.values())
        datasets[dataset] = DatasetCoverage(
            dataset=dataset,
            classes=len(values),
            covered=sum(v > 0 for v in values),
            min_entities=min(values, default=0),
            mean_entities=sum(values) / len(values) if values else 0.0,
            fewest=tuple(ranked[:n_fewest]),
        )
    overall = sorted(
        ((d, lbl, n) for d, counts in cov.items() for lbl, n in counts.items()),
        key=lambda t: (t[2], t[0], t[1]),
    )
    return CorpusStats(
        name=corpus.name,
        version=corpus.version,
        hash=corpus.hash,
        units=len(corpus),
        units_per_kind=per_kind,
        datasets=datasets,
        fewest=tuple(overall[:n_fewest]),
    )


# ----------------------------------------------------------------------------------------------------------
# Prompts for a user's own LLM or editor


def render_prompts(labels: Iterable[str], template: str = PROMPT_TEMPLATE) -> str:
    """The question of :data:`PROMPT_TEMPLATE` for each label, separated by lines of :data:`PROMPT_SEPARATOR`.

    Each prompt asks for exactly one answer line (the answer-file format), so the replies, one per line, form
    an answer file for :func:`merge_corpus` / ``alt corpus merge``.
    """
    prompts = [
        template.format(label=readable_label(label), label_json=json.dumps(label), body_parts=", ".join(BODY_PARTS))
        for label in labels
    ]
    return f"\n{PROMPT_SEPARATOR}\n".join(p.rstrip("\n") + "\n" for p in prompts)
