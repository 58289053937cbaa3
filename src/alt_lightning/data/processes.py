"""Worker processes that start light: what ``alt check-data`` and ``alt prepare`` run their pools under."""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator

__all__ = ["main_module_hidden"]


@contextlib.contextmanager
def main_module_hidden() -> Iterator[None]:
    """Start worker processes without re-running the parent's ``__main__`` in them.

    A spawned or forkserver worker first runs the parent's main script as ``__mp_main__``. The ``alt`` script that pip
    writes imports ``alt_lightning.cli`` at its top; a main script that imports torch and Lightning costs about 750 MB
    more per worker, with one worker per core by default. ``python -m alt_lightning`` is spared (``__main__`` modules of
    packages are not re-run). Nothing a worker runs may live in ``__main__`` (workers get their function by its module
    path), so a bare stand-in is enough while the workers start.
    """
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")  # no __file__, no __spec__: nothing to re-run
    try:
        yield
    finally:
        sys.modules["__main__"] = main
