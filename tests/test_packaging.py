"""Release hygiene: one version, the license that is declared, and a clean build.

The sdist and the wheel are built the way a packager would (``python -m build``: the wheel
from the sdist) into a temporary directory, checked by ``twine check --strict`` and opened
to see that what the package needs at run time ships in it.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

import phantom_notebook as pn

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "phantom_notebook"


def latest_release() -> str:
    """The newest ``## [x.y.z]`` heading of the changelog ([Unreleased] is not a release)."""
    headings = re.findall(r"^## \[([^\]]+)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    return next(h for h in headings if h != "Unreleased")


def test_the_version_is_written_once() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "phantom_notebook.__version__"
    assert importlib.metadata.version("phantom_notebook") == pn.__version__, (
        "the installed metadata is stale: reinstall (pip install -e .)")
    assert latest_release() == pn.__version__


def test_the_changelog_keeps_a_changelog() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog\n") and "## [Unreleased]" in text
    for version in re.findall(r"^## \[(\d[^\]]*)\] - \d{4}-\d\d-\d\d$", text, re.M):
        assert re.search(rf"^\[{re.escape(version)}\]: https://", text, re.M), version
    sections = set(re.findall(r"^### (\w+)$", text, re.M))
    assert sections <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def test_the_license_file_is_the_declared_apache_2() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:5] == ["Apache", "License", "Version", "2.0,", "January"]
    assert "END OF TERMS AND CONDITIONS" in text
    assert len(re.findall(r"^\s+\d+\. \w", text, re.M)) == 9  # sections 1-9, none cut


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    # the venv's setuptools may predate the build-system requirement (>= 77: PEP 639
    # license fields): then build makes its own isolated environment, as a packager's would
    try:
        fresh = int(importlib.metadata.version("setuptools").split(".")[0]) >= 77
    except importlib.metadata.PackageNotFoundError:
        fresh = False
    cmd = [sys.executable, "-m", "build", "--outdir", str(out), *(["--no-isolation"] * fresh),
           str(ROOT)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [wheel] = out.glob("*.whl")
    [sdist] = out.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def test_twine_check_passes_on_the_sdist_and_the_wheel(dist: dict[str, Path]) -> None:
    done = subprocess.run([sys.executable, "-m", "twine", "check", "--strict",
                           str(dist["sdist"]), str(dist["wheel"])],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_the_wheel_ships_what_the_package_needs(dist: dict[str, Path]) -> None:
    assert dist["wheel"].name == f"phantom_notebook-{pn.__version__}-py3-none-any.whl"
    names = set(zipfile.ZipFile(dist["wheel"]).namelist())
    lua = {p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.lua")}
    assert lua and lua <= names, sorted(lua - names)
    assert {"phantom_notebook/py.typed", "phantom_notebook/core/py.typed",
            "phantom_notebook/notebook/dashboard/dashboard.ipynb"} <= names
    data = {p.relative_to(ROOT).as_posix() for p in (PACKAGE / "intel" / "data").iterdir()
            if p.suffix in (".csv", ".json")}
    assert data <= names, sorted(data - names)
    info = f"phantom_notebook-{pn.__version__}.dist-info"
    assert f"{info}/licenses/LICENSE" in names
    metadata = zipfile.ZipFile(dist["wheel"]).read(f"{info}/METADATA").decode()
    assert f"\nVersion: {pn.__version__}\n" in metadata
    assert "\nLicense-Expression: Apache-2.0\n" in metadata
    assert not any(n.startswith(("tests/", "benchmarks/", "tools/")) for n in names)


def test_the_sdist_ships_license_changelog_and_readme(dist: dict[str, Path]) -> None:
    top = f"phantom_notebook-{pn.__version__}"
    with tarfile.open(dist["sdist"]) as tar:
        names = set(tar.getnames())
    assert {f"{top}/{f}" for f in ("LICENSE", "CHANGELOG.md", "README.md",
                                   "pyproject.toml")} <= names
    assert f"{top}/phantom_notebook/core/backend/lua/publish.lua" in names
