"""Shipped class lists: the K600 novel classes computed with the renamings equal the shipped list and the splits."""

from __future__ import annotations

import re

import pytest

from alt_lightning.data.parsers import AnnotationError
from alt_lightning.text.classes import K400_TO_K600_RENAMES, class_names, k600_novel_classes, read_class_file


def test_k600_novel_classes_are_the_220_shipped_ones() -> None:
    novel = k600_novel_classes()
    assert len(novel) == 220 and len(set(novel)) == 220
    assert novel == class_names("k600_novel")
    k400, k600 = set(class_names("kinetics400")), set(class_names("kinetics600"))
    assert not set(novel) & k400 and set(novel) <= k600
    # Plain string difference gives 232: the 12 renamed K400 classes are not novel.
    assert len(k600 - k400) == 232 and len(K400_TO_K600_RENAMES) == 12
    assert set(K400_TO_K600_RENAMES) <= k400 and set(K400_TO_K600_RENAMES.values()) <= k600
    assert (k600 - k400) - set(novel) == set(K400_TO_K600_RENAMES.values())


@pytest.mark.parametrize("split", [1, 2, 3])
def test_published_zero_shot_subsets_are_160_novel_classes(split: int) -> None:
    subset = class_names(f"k600_zs_split{split}")
    assert len(subset) == 160 and set(subset) <= set(k600_novel_classes())
    assert subset == sorted(subset, key=k600_novel_classes().index)  # label order of the novel list


def test_published_subsets_overlap_as_documented() -> None:
    s1, s2, s3 = (set(class_names(f"k600_zs_split{i}")) for i in (1, 2, 3))
    assert (len(s1 & s2), len(s1 & s3), len(s2 & s3)) == (110, 116, 117)
    assert len(s1 | s2 | s3) == 217 and len(s1 & s2 & s3) == 80


def test_class_file_blank_line_before_a_name_is_an_error_naming_the_line(tmp_path) -> None:
    path = tmp_path / "classes.txt"
    # Skipping line 3 would make 'c' label 2, where line 4 says label 3.
    path.write_bytes(b"a\r\nb\r\n\r\nc\r\n")
    with pytest.raises(AnnotationError, match=re.escape(f"{path}:3: blank line among the class names")):
        read_class_file(path)
    path.write_text("\na\nb\n")
    with pytest.raises(AnnotationError, match=re.escape(f"{path}:1:")):
        read_class_file(path)
    path.write_text("a\n  \nb\n")  # white space only is blank
    with pytest.raises(AnnotationError, match=re.escape(f"{path}:2:")):
        read_class_file(path)


def test_class_file_trailing_blank_lines_bom_and_hash_names(tmp_path) -> None:
    path = tmp_path / "classes.txt"
    path.write_bytes("\ufeffa b\r\n#hashtag dance\r\nc\r\n\r\n\n".encode())
    assert read_class_file(path) == ["a b", "#hashtag dance", "c"]  # no comment syntax, BOM dropped
    path.write_text("a\nb\na\n")
    with pytest.raises(AnnotationError, match=re.escape(f"{path}:3: class 'a' appears twice (lines 1 and 3)")):
        read_class_file(path)
