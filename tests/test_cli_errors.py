"""The CLI reports an expected failure in one line (exit 1); ``-v`` adds the traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "phantom_notebook.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.fixture(scope="module")
def guarded() -> Iterator[RedisServer]:
    """A server with a password and two databases."""
    srv = RedisServer("--databases", "2").start()
    srv.client().config_set("requirepass", "the-right-one")
    yield srv
    srv.close()


CASES = {
    "redis is down": (lambda s: f"redis://127.0.0.1:{free_port()}/0",
                      "cannot reach redis://127.0.0.1"),
    "wrong password": (lambda s: f"redis://:wrong-pw@127.0.0.1:{s.port}/0", "password"),
    "missing password": (lambda s: f"redis://127.0.0.1:{s.port}/0", "auth"),
    "database out of range": (lambda s: f"redis://:the-right-one@127.0.0.1:{s.port}/9",
                              "no database 9"),
    "TLS to a plaintext port": (lambda s: f"rediss://:the-right-one@127.0.0.1:{s.port}/0",
                                "tls"),
    "a database that is not a number": (lambda s: f"redis://127.0.0.1:{s.port}/abc",
                                        "redis.url"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_expected_failure_is_one_line_without_a_traceback(
        case: str, guarded: RedisServer) -> None:
    url_of, says = CASES[case]
    done = cli("stats", "--redis-url", url_of(guarded))
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr
    assert lines and lines[-1].startswith("error: "), done.stderr
    assert says.lower() in lines[-1].lower(), lines[-1]
    assert "wrong-pw" not in done.stderr and "the-right-one" not in done.stderr


def test_verbose_shows_the_traceback_of_a_failure(guarded: RedisServer) -> None:
    done = cli("-v", "stats", "--redis-url", f"redis://127.0.0.1:{free_port()}/0")
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "error: cannot reach" in done.stderr
