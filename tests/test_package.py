"""What a package needs to be used and cited: the licence, the citation file, one version everywhere, a wheel that
carries the licence and the shipped resources."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

import alt_lightning

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

REPO = Path(__file__).resolve().parents[1]
PAPER_TITLE = "Align before Adapt: Leveraging Entity-to-Region Alignments for Generalizable Video Action Recognition"


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _changelog_versions() -> list[str]:
    """The version headings of CHANGELOG.md in order (``## [0.1.0] - 2026-11-26``), ``Unreleased`` left out."""
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    heads = re.findall(r"^## \[([^\]]+)\]", text, flags=re.MULTILINE)
    assert heads, "CHANGELOG.md has no '## [version]' heading"
    return [h for h in heads if h != "Unreleased"]


def test_one_version_everywhere() -> None:
    """pyproject, the package, the newest CHANGELOG entry and CITATION.cff name the same version."""
    version = _pyproject()["project"]["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert alt_lightning.__version__ == version
    assert _changelog_versions()[0] == version
    assert str(yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))["version"]) == version


def test_changelog_versions_are_dated_and_newest_first() -> None:
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    dated = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", text, flags=re.MULTILINE)
    assert [v for v, _ in dated] == _changelog_versions()  # every released version has a date
    keys = [tuple(int(x) for x in v.split(".")) for v, _ in dated]
    assert keys == sorted(keys, reverse=True)


def test_licence_is_declared_and_is_the_apache_text() -> None:
    """Apache-2.0 (Lightning's licence; compatible with open_clip's MIT and PyAV's BSD), declared as PEP 639 asks."""
    project = _pyproject()["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    assert not any(c.startswith("License ::") for c in project.get("classifiers", []))  # PEP 639: one declaration
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert text.split()[:5] == ["Apache", "License", "Version", "2.0,", "January"]
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert len(re.findall(r"^\s+\d+\. [A-Z]", text, flags=re.MULTILINE)) == 9  # sections 1-9
    # The setuptools that builds it must know the `license` expression and `license-files` (setuptools 77).
    (requirement,) = (r for r in _pyproject()["build-system"]["requires"] if r.startswith("setuptools"))
    assert requirement == "setuptools>=77"
    import setuptools

    assert int(setuptools.__version__.split(".")[0]) >= 77


def test_citation_file_cites_the_paper_and_the_software() -> None:
    """CITATION.cff 1.2.0: the required keys, the ALT paper as preferred-citation, this package as the software."""
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    for key in ("cff-version", "message", "title", "authors"):  # required by the format
        assert cff.get(key), key
    assert cff["cff-version"] == "1.2.0"
    assert cff["type"] == "software"
    assert cff["license"] == _pyproject()["project"]["license"]
    assert all(a.get("name") or a.get("family-names") for a in cff["authors"])

    paper = cff["preferred-citation"]
    for key in ("type", "title", "authors"):  # required of a reference
        assert paper.get(key), key
    assert paper["type"] == "conference-paper"
    assert paper["title"] == PAPER_TITLE
    assert paper["year"] == 2024
    assert "CVPR" in paper["conference"]["name"]
    names = [(a["given-names"], a["family-names"]) for a in paper["authors"]]
    assert names == [
        ("Yifei", "Chen"),
        ("Dapeng", "Chen"),
        ("Ruijin", "Liu"),
        ("Sai", "Zhou"),
        ("Wenyuan", "Xue"),
        ("Wei", "Peng"),
    ]
    assert [i["value"] for i in paper["identifiers"]] == ["arXiv:2311.15619"]
    assert paper["url"] == "https://arxiv.org/abs/2311.15619"
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert PAPER_TITLE in readme and "arXiv 2311.15619" in readme  # the README cites the same paper
    bibtex = re.search(r"@inproceedings\{(.*?)\n\}", (REPO / "README.md").read_text(encoding="utf-8"), re.S)
    assert bibtex, "README.md has no BibTeX entry"
    fields = dict(re.findall(r"^\s*(\w+)\s*=\s*\{(.*)\},?$", bibtex.group(1), flags=re.M))
    assert fields["title"] == PAPER_TITLE and fields["year"] == "2024" and fields["eprint"] == "2311.15619"
    assert fields["author"] == " and ".join(f"{family}, {given}" for given, family in names)


@pytest.mark.slow
def test_built_wheel_carries_the_licence_and_the_resources(tmp_path: Path) -> None:
    """``pip wheel`` of a copy of the tracked tree (the build writes build/ and egg-info beside the sources)."""
    src = tmp_path / "src"
    listed = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]  # tracked and new, not ignored
    files = subprocess.run(listed, cwd=REPO, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel)
    out = tmp_path / "wheel"
    cmd = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("alt_lightning-*.whl")
    version = _pyproject()["project"]["version"]
    assert wheel.name == f"alt_lightning-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        info = f"alt_lightning-{version}.dist-info"
        assert z.read(f"{info}/licenses/LICENSE") == (REPO / "LICENSE").read_bytes()
        metadata = z.read(f"{info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    assert "License-File: LICENSE" in metadata.splitlines()
    shipped = {
        "alt_lightning/resources/corpus/alt-entities-v1.jsonl",
        "alt_lightning/resources/model_configs/alt-tiny.json",
        *(f"alt_lightning/resources/classes/{n}.txt" for n in ("kinetics400", "ucf101", "hmdb51", "ssv2")),
    }
    assert shipped <= names, shipped - names
