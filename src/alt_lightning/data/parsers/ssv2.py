"""Something-Something v2's JSON annotations.

On-disk format, as the label archive of the Something-Something v2 download (Goyal et al., 2017; TwentyBN, now
Qualcomm AI Research) holds it, each file named ``<name>.json`` or ``something-something-v2-<name>.json``
depending on the release: ``labels.json`` maps each of the 174 templates, brackets removed, to its id as a
string; ``train.json`` and ``validation.json`` are lists of records with ``id``, ``label`` (the filled-in
caption), ``template`` (with ``[something]`` placeholders) and ``placeholders``; ``test.json`` holds only
``{"id": ...}``::

    {"Approaching something with your camera": "0", "Attaching something to something": "1", ...}
    [{"id": "78687", "label": "holding potato next to vicks vaporub bottle",
      "template": "Holding [something] next to [something]", "placeholders": ["potato", "vicks vaporub bottle"]}]

The class is the template with ``[`` and ``]`` removed; videos are ``20bn-something-something-v2/<id>.webm``.
"""

from __future__ import annotations

import json
import os
import re

from alt_lightning.data.parsers.common import PathLike, annotation_error, read_text, source_of
from alt_lightning.data.records import VideoRecord


def _json_load(path: PathLike, what: str) -> tuple[object, str]:
    text = read_text(path, what)
    try:
        return json.loads(text), text
    except json.JSONDecodeError as e:
        raise annotation_error(
            path, e.lineno, f"invalid JSON ({e.msg}, column {e.colno})", "Re-download the file"
        ) from None


def read_ssv2_labels(labels_json: PathLike) -> list[str]:
    """Read SSv2 ``labels.json`` (``{"Approaching something with your camera": "0", ...}``).

    Returns:
        The 174 template names (brackets removed) ordered by their index.
    """
    data, _ = _json_load(labels_json, "SSv2 labels.json")
    if not isinstance(data, dict):
        raise annotation_error(labels_json, 1, "expected an object {template: index}", "Pass SSv2's labels.json")
    by_index: dict[int, str] = {}
    for name, idx in data.items():
        try:
            i = int(idx)
        except (TypeError, ValueError):
            raise annotation_error(
                labels_json, None, f"index {idx!r} of {name!r} is not an integer", "Pass SSv2's labels.json"
            ) from None
        if i in by_index:
            raise annotation_error(labels_json, None, f"index {i} used twice", "Pass SSv2's labels.json")
        by_index[i] = name
    if sorted(by_index) != list(range(len(by_index))):
        raise annotation_error(labels_json, None, "indices must be 0..K-1", "Pass SSv2's labels.json")
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
        raise annotation_error(
            annotations_json, 1, "expected a JSON list of records", "Pass train.json / validation.json"
        )
    lines = _id_lines(text)
    root = os.fspath(video_root)
    records: list[VideoRecord] = []
    labelled, first_unlabelled = 0, None  # (record index, line): unlabelled only if every record is
    for k, item in enumerate(data):
        if not isinstance(item, dict) or "id" not in item:
            raise annotation_error(
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
                raise annotation_error(
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
                    "source": source_of(annotations_json, n if n is not None else 0),
                    "template": template,
                    "label_text": item.get("label"),
                    "placeholders": item.get("placeholders"),
                    "label_name": names[label] if label >= 0 else None,
                },
            )
        )
    if labelled and first_unlabelled is not None:
        k, n, vid = first_unlabelled
        raise annotation_error(
            annotations_json,
            n,
            f"record #{k} (video {vid}) has no 'template', while {labelled} other records have one",
            "Re-download the file (only a file without any template, as test.json, is read as unlabelled)",
        )
    return records
