"""Class-name lists shipped with the package, exactly as the datasets publish them.

See ``resources/classes/README`` in the repository's shared notes for their sources. Line ``i`` of a list is
label id ``i - 1``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alt_lightning.data.parsers import AnnotationError
from alt_lightning.errors import UserError

#: Names of the shipped lists (file stems under ``resources/classes``).
SHIPPED_LISTS = (
    "kinetics400",
    "kinetics600",
    "kinetics700",
    "ucf101",
    "hmdb51",
    "ssv2",
    "k600_novel",
    "k600_zs_split1",
    "k600_zs_split2",
    "k600_zs_split3",
)

#: K400 classes that Kinetics-600 renamed or re-scoped (K400 name -> K600 name). They are not novel in K600.
K400_TO_K600_RENAMES: dict[str, str] = {
    "baby waking up": "waking up",
    "balloon blowing": "inflating balloons",
    "changing wheel": "changing wheel (not on bike)",
    "cooking sausages": "cooking sausages (not on barbeque)",
    "dying hair": "dyeing hair",
    "garbage collecting": "person collecting garbage",
    "hugging": "hugging (not baby)",
    "making bed": "making the bed",
    "opening bottle": "opening bottle (not wine)",
    "passing American football (not in game)": "passing american football (not in game)",
    "throwing ball": "throwing ball (not baseball or American football)",
    "tying tie": "tying necktie",
}


def read_class_file(path: str | Path) -> list[str]:
    """Read a class-name file: line ``i`` is the name of label ``i - 1``.

    Blank lines at the end are ignored; a blank line before a name is refused, since skipping it would give every
    later class the label of the line above (and leaving it would make an empty class name). There is no comment
    syntax: a line is a name. UTF-8 (with or without BOM), any newline convention.

    Raises:
        AnnotationError: (a ``ValueError``) naming ``file:line`` for a blank line before a name or a duplicate name.
    """
    lines = [line.strip() for line in Path(path).read_text(encoding="utf-8-sig").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    seen: dict[str, int] = {}
    for i, n in enumerate(lines, 1):
        if not n:
            raise AnnotationError(
                f"{path}:{i}: blank line among the class names; line i names label i-1, so a blank line would "
                "shift every class after it. Delete the line (or put the missing name there)."
            )
        if n in seen:
            raise AnnotationError(
                f"{path}:{i}: class {n!r} appears twice (lines {seen[n]} and {i}); names must be unique."
            )
        seen[n] = i
    return lines


def class_names(spec: str | Path) -> list[str]:
    """Class names of a shipped list (``"kinetics400"``, ``"ucf101"``, ...) or of a text file.

    Raises:
        UserError: If ``spec`` is neither a shipped list nor an existing file (a ``ValueError``).
    """
    if str(spec) in SHIPPED_LISTS:
        return read_class_file(Path(str(resources.files("alt_lightning") / "resources" / "classes")) / f"{spec}.txt")
    if Path(spec).is_file():
        return read_class_file(spec)
    raise UserError(
        f"classes file {spec} not found (and {spec!r} is no shipped class list)",
        f"give an existing file (one class name per line) or a shipped list: {', '.join(SHIPPED_LISTS)}.",
    )


def k600_novel_classes() -> list[str]:
    """The 220 Kinetics-600 classes absent from Kinetics-400, computed from the shipped lists.

    Exact string difference gives 232; the 12 renamed K400 classes (``K400_TO_K600_RENAMES``) are not novel.
    """
    k400 = set(class_names("kinetics400"))
    renamed = set(K400_TO_K600_RENAMES.values())
    return sorted(c for c in class_names("kinetics600") if c not in k400 and c not in renamed)
