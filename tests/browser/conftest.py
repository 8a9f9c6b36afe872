"""A real JupyterLab on a loopback port, and the OS Chromium driven by Playwright.

One JupyterLab per session (token-protected, 127.0.0.1, a free port, its own settings and
workspace directories, serving a throwaway copy of ``notebooks/`` so Run All never writes
to the repository). One Chromium per session from ``/usr/bin/chromium`` (never a
downloaded browser build). A failing test leaves a full-page screenshot under
``reports/screenshots/``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from phantom_notebook.core.testing import wait_until
from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "reports" / "screenshots"
CHROMIUM = os.environ.get("PN_CHROMIUM", "/usr/bin/chromium")
START_TIMEOUT_S = 60.0

#: JupyterLab settings for a quiet, fully rendered notebook: every cell in the DOM (no
#: windowing, so off-screen outputs can be inspected), no news or update pop-ups
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
}


@dataclass
class Lab:
    """A running JupyterLab: its base URL, token and the directory it serves."""

    url: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]
    log: Path

    def notebook_url(self, name: str) -> str:
        """The notebook alone in a fresh workspace of its own (``?reset``): pages never
        restore each other's tabs, so the current widget is this notebook."""
        stem = name.rsplit(".", 1)[0].replace("_", "-")
        return f"{self.url}/lab/workspaces/{stem}/tree/{name}?reset&token={self.token}"


@dataclass
class Console:
    """The browser console messages of a page (errors are what the tests look at)."""

    messages: list[tuple[str, str]] = field(default_factory=list)

    def errors(self) -> list[str]:
        return [text for kind, text in self.messages if kind == "error"]


def _wait_for_lab(url: str, token: str, process: subprocess.Popen[bytes], log: Path) -> None:
    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {process.returncode}:\n"
                               f"{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    if not wait_until(answers, START_TIMEOUT_S, interval_s=0.2):
        raise RuntimeError(f"JupyterLab did not answer within {START_TIMEOUT_S:g} s:\n"
                           f"{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab serving a copy of the shipped notebooks (127.0.0.1, token, free port)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: the browser suite needs the OS Chromium "
                    "(Debian/Ubuntu: apt-get install chromium)")
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"
    shutil.copytree(ROOT / "notebooks", root)
    settings = base / "settings"
    for name, values in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
           "JUPYTER_RUNTIME_DIR": str(base / "runtime"), "PYTHONPATH": str(ROOT)}
    token, port = secrets.token_hex(16), free_port()
    log = base / "lab.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
             f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
             f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
             *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
            cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_lab(url, token, process, log)
        yield Lab(url, token, root, process, log)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """The OS Chromium, headless, driven by Playwright (no downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


def screenshot_on_failure(request: pytest.FixtureRequest, page: Any) -> None:
    """After a failed test: a full-page screenshot named after it in ``SCREENSHOTS``."""
    report = getattr(request.node, "rep_call", None)
    if report is None or not report.failed:
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = request.node.name.replace("[", "-").replace("]", "").replace("/", "_")
    try:
        page.screenshot(path=str(SCREENSHOTS / f"FAILED-{name}.png"), full_page=True)
    except Exception as exc:  # noqa: BLE001 - the test's own failure matters more
        print(f"no failure screenshot: {exc}")


def new_page(chromium: Any) -> Any:
    """A 1400x1000 page of its own context, collecting console messages (``.console``)."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    console = Console()
    page.on("console", lambda m: console.messages.append((m.type, m.text)))
    page.on("pageerror", lambda e: console.messages.append(("error", str(e))))
    page.console = console
    return page


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)
