"""Dataset folders in the official layouts, whose videos are links to the synthetic test videos."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

UCF_CLASSES = ("ApplyEyeMakeup", "Archery", "YoYo")


def synthetic_videos(root: Path) -> list[Path]:
    """All synthetic video files, in a fixed order."""
    return sorted((root / "videos").rglob("*.mp4"))


def link(src: Path, dst: Path) -> Path:
    """``dst`` -> ``src`` (a real, decodable file under another name and extension)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists():
        os.symlink(src, dst)
    return dst


@pytest.fixture(scope="session")
def ucf_root(synthetic_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """UCF-101 layout: 3 classes, 5 training and 2 test videos each, splits 1 and 2 (official file formats)."""
    root = tmp_path_factory.mktemp("ucf101")
    videos = iter(synthetic_videos(synthetic_root))
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    # classInd.txt and the lists use CRLF line ends, as the official archive does.
    (lists / "classInd.txt").write_bytes("".join(f"{i} {c}\r\n" for i, c in enumerate(UCF_CLASSES, 1)).encode())
    for split in (1, 2):
        train, test = [], []
        for label, cls in enumerate(UCF_CLASSES, 1):
            for g in range(1, 8):
                rel = f"{cls}/v_{cls}_g{g:02d}_c01.avi"
                if split == 1:
                    link(next(videos), root / rel)
                # Split 2 swaps which groups are test groups.
                is_test = g <= 2 if split == 1 else g >= 6
                (test if is_test else train).append(rel if is_test else f"{rel} {label}")
        (lists / f"trainlist0{split}.txt").write_bytes(("\r\n".join(train) + "\r\n").encode())
        (lists / f"testlist0{split}.txt").write_bytes(("\r\n".join(test) + "\r\n").encode())
    return root
