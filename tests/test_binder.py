"""Binder builds: repo2docker's own rendering of the image picks Python 3.11+ and installs us.

``jupyter-repo2docker --no-build`` prints the Dockerfile it would build without Docker, so
this runs offline in about a second, in the normal suite.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REPO2DOCKER = Path(sys.executable).with_name("jupyter-repo2docker")


@pytest.fixture(scope="module")
def rendered() -> str:
    """What repo2docker would build for this repository (stdout and stderr together)."""
    assert REPO2DOCKER.exists(), "pip install -e '.[dev]' installs jupyter-repo2docker"
    done = subprocess.run([str(REPO2DOCKER), "--no-build", "--debug", "--no-run", "."],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_binder_pins_a_python_the_project_supports(rendered: str) -> None:
    assert "Python version unspecified" not in rendered
    [picked] = re.findall(r"Building conda environment for python=(\d+)\.(\d+)", rendered)
    required = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert required == ">=3.11" and tuple(map(int, picked)) >= (3, 11)
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == \
        f"python-{picked[0]}.{picked[1]}"


def test_binder_installs_the_project_with_its_notebook_extra(rendered: str) -> None:
    assert 'pip install --no-cache-dir -r "binder/requirements.txt"' in rendered
    requirements = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    assert "-e .[notebook]" in requirements
    assert any(line.startswith("jupyterlab") for line in requirements)
    assert "RUN ./binder/postBuild" in rendered  # checks the install on the embedded Redis


def test_the_readme_has_a_binder_badge_and_launch_link() -> None:
    readme = (ROOT / "README.md").read_text()
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("urls", {})
    [launch] = set(re.findall(r"https://mybinder\.org/v2/gh/[\w.-]+/[\w.-]+/main\?urlpath=lab",
                              readme))
    assert "https://mybinder.org/badge_logo.svg" in readme and f"]({launch})" in readme
    owner_repo = launch.split("/gh/")[1].rsplit("/main", 1)[0]
    assert all(owner_repo in url for url in urls.values() if "github.com" in url)
