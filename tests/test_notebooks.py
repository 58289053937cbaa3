"""The notebooks in notebooks/ are stored without outputs and run from top to bottom on the tiny offline kit.

Each notebook is executed with nbclient in a fresh ``python3`` kernel of this interpreter (the kernelspec that
ipykernel installs into the venv; jupyter_client maps its ``python`` to ``sys.executable``), in a temporary working
folder; the notebooks write their synthetic videos and runs into their own temporary folder and delete it at the end.
The quickest notebook runs in the default suite, the others (each 15-50 s on 2 shared CPU cores) are ``slow``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
ANSI = re.compile(r"\x1b\[[0-9;]*m")

#: Text each notebook must print (the evidence that it did what it says), and how many figures it must draw.
EXPECTED = {
    "01_quickstart.ipynb": (["best checkpoint:", "test top-1:", "explained by:"], 1),
    "02_zero_shot_new_labels.ipynb": (
        [
            "top-1 with paraphrased names:",
            "state dict unchanged; class embeddings now (4, 64)",
            "zero-shot from the backbone alone",
            "test top-1:",
        ],
        0,
    ),
    "03_alignment_visualised.ipynb": (
        ["32 regions per frame", "source      (1, 4, 33, 65)", "entities by share of each frame's area"],
        3,
    ),
    "04_extend_by_subclassing.ipynb": (
        [
            "trainable parameters: PooledALT",
            "'model.adapter.proj.weight'",
            "EntityPoolAdapter",
            "test top-1:",
            "restored from the checkpoint: PooledALT gamma_init=0.05",
        ],
        0,
    ),
}
#: Run in the default suite (fast); the rest are marked slow.
FAST = {"03_alignment_visualised.ipynb"}


def test_every_notebook_is_covered() -> None:
    assert {p.name for p in NOTEBOOKS} == set(EXPECTED), "add new notebooks to EXPECTED (and FAST if quick)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["nbformat"] == 4 and nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code
    for cell in code:
        assert cell["outputs"] == [] and cell["execution_count"] is None, f"{path.name}: strip the outputs"
    source = "".join("".join(c["source"]) for c in code)
    assert "HF_HUB_OFFLINE" in source and "tempfile.mkdtemp" in source and "shutil.rmtree(WORK" in source


def _run(path: Path, tmp_path: Path) -> tuple[str, int]:
    """Execute a notebook; return everything it printed (ANSI colours removed) and the number of PNG figures."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(str(path), as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if any cell fails
    text, figures = [], 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                text.append(out["text"])
            elif "data" in out:
                text.append(out["data"].get("text/plain", ""))
                figures += "image/png" in out["data"]
    assert not list(tmp_path.iterdir()), "notebooks must write into their own temporary folder only"
    return ANSI.sub("", "".join(text)), figures


def _check(path: Path, tmp_path: Path) -> None:
    text, figures = _run(path, tmp_path)
    phrases, min_figures = EXPECTED[path.name]
    for phrase in phrases:
        assert phrase in text, f"{path.name} did not print {phrase!r}"
    assert figures >= min_figures


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name in FAST], ids=lambda p: p.stem)
def test_fast_notebook_runs(path: Path, tmp_path: Path) -> None:
    _check(path, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name not in FAST], ids=lambda p: p.stem)
def test_slow_notebook_runs(path: Path, tmp_path: Path) -> None:
    _check(path, tmp_path)
