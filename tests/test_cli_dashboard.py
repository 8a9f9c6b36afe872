"""``phantom-notebook dashboard``: what it refuses, and what it hands to Voila."""

from __future__ import annotations

import argparse
import json
import os
import stat
from pathlib import Path

import pytest

from phantom_notebook.cli import main, parser_of
from phantom_notebook.cli.dashboard import (
    NOTEBOOK,
    environment,
    is_loopback,
    secrets_of,
    voila_command,
    write_config,
)
from phantom_notebook.core.errors import ValidationError


def _args(*argv: str) -> argparse.Namespace:
    return parser_of().parse_args(["dashboard", *argv])


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("10.0.0.5", False), ("::", False),
    ("dashboard.example.org", False)])
def test_only_loopback_addresses_count_as_private(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_exposing_the_page_without_a_token_or_password_is_refused(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("PHANTOM_DASHBOARD_TOKEN", raising=False)
    monkeypatch.delenv("PHANTOM_DASHBOARD_PASSWORD", raising=False)
    assert main(["dashboard", "--host", "0.0.0.0", "--check"]) == 1
    assert "refusing to serve the dashboard on 0.0.0.0 without --token" in \
        capsys.readouterr().err


def test_a_token_or_a_password_from_the_environment_allows_exposing_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHANTOM_DASHBOARD_PASSWORD", "correct horse battery")
    assert secrets_of(_args("--host", "0.0.0.0")) == (None, "correct horse battery")
    monkeypatch.delenv("PHANTOM_DASHBOARD_PASSWORD")
    monkeypatch.setenv("PHANTOM_DASHBOARD_TOKEN", "t" * 32)
    assert secrets_of(_args("--host", "0.0.0.0")) == ("t" * 32, None)


def test_a_short_token_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 16 characters"):
        secrets_of(_args("--token", "short"))


def test_an_unreachable_redis_fails_before_voila_starts(capsys: pytest.CaptureFixture[str],
                                                          ) -> None:
    assert main(["dashboard", "--redis-url", "redis://127.0.0.1:1/0", "--check"]) == 1
    assert "127.0.0.1:1" in capsys.readouterr().err


def test_the_secret_goes_to_a_private_config_file_never_on_the_command_line(
        tmp_path: Path) -> None:
    args = _args("--token", "s" * 24, "--redis-url", "redis://ops:pw@127.0.0.1:6379/0",
                 "--role", "auditor", "--user", "carol@soc")
    write_config(tmp_path, "s" * 24, "hunter2")
    config = json.loads((tmp_path / "voila.json").read_text())
    assert config["Voila"]["token"] == "s" * 24
    assert config["PasswordIdentityProvider"]["hashed_password"].startswith("argon2:")
    assert stat.S_IMODE(os.stat(tmp_path / "voila.json").st_mode) == 0o600
    command = voila_command(args, tmp_path)
    assert str(NOTEBOOK) in command and NOTEBOOK.exists()
    assert not any("s" * 24 in part or "hunter2" in part for part in command)
    assert "--Voila.ip=127.0.0.1" in command
    env = environment(args, tmp_path)
    assert env["JUPYTER_CONFIG_DIR"] == str(tmp_path)
    assert env["PN_DASHBOARD_ROLE"] == "auditor" and env["PN_DASHBOARD_USER"] == "carol@soc"
    assert "PHANTOM_DASHBOARD_TOKEN" not in env


def test_bad_options_are_named() -> None:
    with pytest.raises(SystemExit):
        parser_of().parse_args(["dashboard", "--refresh", "soon"])
    assert main(["dashboard", "--refresh", "0", "--check"]) == 1
    assert main(["dashboard", "--max-tlp", "PURPLE", "--check"]) == 1


def test_stopping_the_command_stops_voila_and_its_kernels(tmp_path: Path) -> None:
    import subprocess
    import sys
    import urllib.request

    from phantom_notebook.core.testing import wait_until
    from tests.support.redis_server import free_port

    port = free_port()
    log = tmp_path / "dashboard.log"
    env = {**os.environ, "PHANTOM_DASHBOARD_TOKEN": "x" * 24, "PN_DASHBOARD_DEMO": "0"}
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "phantom_notebook.cli", "dashboard",
                                    "--port", str(port), "--no-demo"], env=env, stdout=out,
                                   stderr=subprocess.STDOUT)

    def kernel_ready() -> bool:
        return "filled with 1 kernel" in log.read_text()

    try:
        assert wait_until(kernel_ready, 90, interval_s=0.25), log.read_text()[-2000:]
        process.terminate()
        assert process.wait(30) == 130
    finally:
        if process.poll() is None:
            process.kill()

    def refused() -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
        except OSError:
            return True
        return False

    assert wait_until(refused, 10)  # Voila is gone, not orphaned
    assert "Kernel shutdown" in log.read_text() or "Shutting down" in log.read_text()
