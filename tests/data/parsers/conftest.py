"""Helpers of the parser tests: writing placeholder video files and expecting an error at ``file:line``."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from alt_lightning.data.parsers.common import AnnotationError


@pytest.fixture
def touch() -> Callable[[Path], Path]:
    """Write a 1-byte placeholder at ``path`` (parent folders created); parsers only check that it exists."""

    def _touch(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        return path

    return _touch


@pytest.fixture
def raises_at() -> Callable[[Path, int], AbstractContextManager]:
    """``pytest.raises`` for an :class:`AnnotationError` naming ``path:line``."""

    def _raises_at(path: Path, line: int) -> AbstractContextManager:
        return pytest.raises(AnnotationError, match=re.escape(f"{path}:{line}:"))

    return _raises_at
