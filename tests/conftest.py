"""Shared fixtures: offline settings, a tiny synthetic video dataset and a tiny entity corpus.

Everything is written by the tests themselves (PyAV videos, corpus files); no network, no downloaded weights.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]

#: Four classes: two differ only by direction of motion.
TINY_CLASSES = (
    ("red", "square", "right"),
    ("red", "square", "left"),
    ("green", "disc", "up"),
    ("blue", "triangle", "down"),
)


@pytest.fixture(autouse=True, scope="session")
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private text-embedding cache per test session."""
    path = tmp_path_factory.mktemp("alt_cache")
    os.environ["ALT_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dataset: 4 classes, 6/2/3 videos per class, 12 frames of 64x64 h264."""
    from alt_lightning.data.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic_dataset(
        root, classes=TINY_CLASSES, videos_per_class={"train": 6, "val": 2, "test": 3}, num_frames=12, seed=0
    )
    return root


#: The classes of `ucf_layout`: the first two are the base half, the last two the novel half.
UCF4 = ("ApplyEyeMakeup", "Archery", "Basketball", "YoYo")


@pytest.fixture(scope="session")
def ucf_layout(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``classInd.txt``, ``trainlist0k.txt``, ``testlist0k.txt``; 3 videos per class (links to synthetic videos)."""
    videos = iter(sorted((synthetic_root / "videos").rglob("*.mp4")))
    root = tmp_path_factory.mktemp("ucf_layout")
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(UCF4, 1)))
    for cls in UCF4:
        (root / cls).mkdir()
        for g in (1, 2, 3):
            os.symlink(next(videos), root / cls / f"v_{cls}_g{g:02d}_c01.avi")
    for split in (1, 2, 3):
        train = [f"{c}/v_{c}_g{g:02d}_c01.avi {i}" for i, c in enumerate(UCF4, 1) for g in (1, 2, 3) if g != split]
        (lists / f"trainlist0{split}.txt").write_text("\n".join(train) + "\n")
        (lists / f"testlist0{split}.txt").write_text("".join(f"{c}/v_{c}_g{split:02d}_c01.avi\n" for c in UCF4))
    return root


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-entity corpus file in the shipped format."""
    from alt_lightning.text.corpus import Corpus, EntityRecord, write_corpus

    units = [
        ("hand", "body part", "The end of the arm with palm and five fingers."),
        ("foot", "body part", "The lower end of the leg that touches the ground."),
        ("head", "body part", "The top of the body with face, eyes and hair."),
        ("red square", "object", "A flat square shape painted bright red."),
        ("green disc", "object", "A flat round disc coloured green."),
        ("blue triangle", "object", "A flat triangle shape coloured blue."),
        ("noisy background", "scene", "A dark grainy backdrop with random speckles."),
        ("rightward motion", "motion", "Something travelling from the left edge toward the right edge."),
        ("leftward motion", "motion", "Something travelling from the right edge toward the left edge."),
        ("upward motion", "motion", "Something rising from the bottom of the frame toward the top."),
        ("downward motion", "motion", "Something falling from the top of the frame toward the bottom."),
        ("bright colour", "attribute", "A saturated, vivid colour that stands out from its surroundings."),
    ]
    corpus = Corpus(
        name="tiny-test",
        version="0.0.1",
        description="Test corpus.",
        records=tuple(sorted((EntityRecord(u, k, d, {}) for u, k, d in units), key=lambda r: r.unit)),
    )
    return write_corpus(corpus, tmp_path_factory.mktemp("corpus") / "tiny.jsonl")


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved state_dict of the tiny CLIP (seed 0), loaded through the real `pretrained=<file>` path."""
    import torch

    from alt_lightning.model.backbone import load_clip

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "alt-tiny-seed0.pt"
    torch.save(load_clip("alt-tiny").state_dict(), path)
    return path


@pytest.fixture
def module_kwargs(tiny_corpus: Path, tiny_weights: Path) -> dict:
    """ALTModule arguments for the tiny backbone with saved random weights, for 4-frame clips (the test data's)."""
    return {
        "model_name": "alt-tiny",
        "pretrained": str(tiny_weights),
        "corpus": str(tiny_corpus),
        "encoder": {"r": 2},
        "adapter": {"layers": 1, "heads": 4},
        "num_frames": 4,
    }


@pytest.fixture
def model_config(module_kwargs: dict) -> dict:
    """The `model:` section of an `alt fit` config for the tiny backbone (`module_kwargs` but the frame count, which
    the CLI links from the data)."""
    init = {k: v for k, v in module_kwargs.items() if k != "num_frames"}
    return {"class_path": "alt_lightning.lightning.ALTModule", "init_args": init}


@pytest.fixture
def list_datamodule(synthetic_root: Path):
    """The synthetic data as a path-label list DataModule: 4 frames, batch 4, no workers, no flips."""
    from alt_lightning.datamodules import VideoListDataModule

    return VideoListDataModule(
        root=str(synthetic_root), classes="classes.txt", test_list="test.txt", num_frames=4, batch_size=4,
        num_workers=0, flip=0.0,
    )  # fmt: skip


#: Run by a root test process before its Python child: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the
#: capability bounding set (prctl PR_CAPBSET_DROP), then exec the real command. The child keeps uid 0 (it still owns
#: tmp_path) but file permissions now bind it, as they bind every non-root user.
_DROP_FILE_PRIVILEGES = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
    if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""


class Unprivileged:
    """Python in a subprocess that file permissions apply to, whether the tests run as root or not.

    Root reads a ``chmod 000`` file, so a permission test run in-process as root cannot fail; in CI it may run as
    either. :meth:`deny` changes a path's mode (restored at teardown), :meth:`run` runs ``python ARGS`` where the
    modes bind.
    """

    def __init__(self, tmp_path: Path) -> None:
        self._modes: list[tuple[Path, int]] = []
        probe = tmp_path / "permission_probe"
        probe.write_text("secret")
        probe.chmod(0)
        res = self.run("-c", f"open({str(probe)!r}).read()")
        probe.unlink()
        if "PermissionError" not in res.stderr:  # never pass vacuously: the child must really be denied
            pytest.skip(f"file permissions cannot be made to bind a child process here: {res.stderr[-300:]}")

    def deny(self, path: Path, mode: int) -> Path:
        """``chmod mode path`` until the end of the test (``0``: no access; ``0o600`` on a folder: no traversal)."""
        self._modes.append((path, path.stat().st_mode & 0o7777))
        path.chmod(mode)
        return path

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """``python *args`` (this interpreter, this environment, our sources first) with file permissions in force."""
        root = getattr(os, "geteuid", lambda: -1)() == 0
        cmd = [sys.executable, "-c", _DROP_FILE_PRIVILEGES, *args] if root else [sys.executable, *args]
        path = os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "PYTHONPATH": path}
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)

    def restore(self) -> None:
        """Give every path its mode back (in reverse, so a folder is traversable before its files are restored)."""
        for path, mode in reversed(self._modes):
            path.chmod(mode)
        self._modes.clear()


@pytest.fixture
def unprivileged(tmp_path: Path):
    """An :class:`Unprivileged` runner; skips only where no child process can be denied a file (checked)."""
    runner = Unprivileged(tmp_path)
    yield runner
    runner.restore()


@pytest.fixture
def video_opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the datasets open (``alt_lightning.data.dataset.open_video``), in order, while the test runs."""
    import alt_lightning.data.dataset as dataset_module

    opens: list[str] = []
    real = dataset_module.open_video

    def counting(path, *args, **kwargs):
        opens.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(dataset_module, "open_video", counting)
    return opens
