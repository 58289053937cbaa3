r"""Authoring the entity corpus: answer files, build, merge, coverage and the per-label question.

The tools behind ``alt corpus`` (see ``corpus/README.md``): build a corpus from per-label "answer" files (what
an LLM, or a careful editor, answered to the paper's question for each class label), merge a user's answers
for a new dataset into a shipped corpus, report coverage, and render the question for a user's own LLM. The
corpus records, the file schema and its validation are in :mod:`alt_lightning.text.corpus` (the runtime
module, which never imports this one).

Answer files (the authoring format, see ``corpus/README.md``)
--------------------------------------------------------------
JSON Lines, one line per class label::

    {"label": "playing tennis", "entities": [{"unit": "tennis racket", "kind": "object", "description": "."}]}

``"label": null`` marks entities that are always included, with no source label
(``corpus/answers/_base.jsonl``).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from alt_lightning.text.corpus import (
    DEFAULT_CORPUS,
    KINDS,
    RESTATE_HINT,
    Corpus,
    CorpusError,
    CorpusIssue,
    EntityRecord,
    check_keys,
    entity_problems,
    parse_object,
    read_corpus_bytes,
    readable_label,
    restates_label,
    split_lines,
    unit_key,
)

#: Shipped class lists whose labels may appear as corpus sources (file stems of ``resources/classes``).
SOURCE_DATASETS = ("kinetics400", "kinetics600", "kinetics700", "ucf101", "hmdb51", "ssv2")

#: Version of the shipped corpus (semantic versioning: major = schema, minor = entities added,
#: patch = wording).
DEFAULT_VERSION = "1.0.0"

#: Header description of the shipped corpus.
DEFAULT_DESCRIPTION = (
    "Visual entities (objects, body parts, scenes, roles, motions, attributes) of the Kinetics-400/600/700, "
    "UCF101, HMDB51 and Something-Something v2 action classes, one record per entity, with the class labels "
    "each entity was given for."
)

#: Body-part units every corpus should use verbatim (``corpus/answers/_base.jsonl`` ships them all).
BODY_PARTS = (
    "hand", "fingers", "palm", "thumb", "wrist", "arm", "elbow", "shoulder", "head", "face", "eyes", "mouth",
    "lips", "teeth", "nose", "ear", "hair", "neck", "torso", "chest", "back", "hip", "leg", "knee", "foot",
    "toes", "ankle",
)  # fmt: skip

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
# Class lists


def load_class_list(name: str) -> list[str]:
    """Class labels of a shipped list (``"kinetics400"``, ``"ucf101"``, ...), in the dataset's order."""
    from alt_lightning.text.classes import class_names  # the shipped-list reader lives there

    return class_names(name)


def shipped_class_lists(names: Sequence[str] = SOURCE_DATASETS) -> dict[str, list[str]]:
    """``{name: labels}`` for the shipped class lists named (default: all corpus source datasets)."""
    return {n: load_class_list(n) for n in names}


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
    lines, issues = split_lines(Path(path).read_bytes(), path_s)
    answers: list[Answer] = []
    seen_labels: dict[str, int] = {}
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        obj = parse_object(raw, lineno, path_s, issues)
        if obj is None:
            continue
        bad = check_keys(obj, ANSWER_KEYS, lineno, None, path_s)
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
            ent_bad = check_keys(ent, ENTITY_KEYS, lineno, unit, path_s)
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
                ent_bad.append(CorpusIssue(lineno, unit, f"unit restates the label {label!r}; {RESTATE_HINT}", path_s))
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
            for dataset in datasets:  # empty for an answer without a label
                entry.sources.setdefault(dataset, set()).add(answer.label or "")


def _entries_to_records(entries: Mapping[str, _Entry]) -> tuple[EntityRecord, ...]:
    return tuple(
        EntityRecord(
            unit=u, kind=e.kind, description=e.description, sources={d: tuple(v) for d, v in e.sources.items()}
        )
        for u, e in entries.items()
    )


def _checked_corpus(corpus: Corpus) -> Corpus:
    """Validate a built corpus through its canonical file text (the same checks as :func:`load_corpus`)."""
    _, _, issues = read_corpus_bytes(corpus.to_jsonl().encode("ascii"), f"<built {corpus.name}>")
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
