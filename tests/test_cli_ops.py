"""Operator commands: acl render/apply against a real server, stats, publish, --help."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

import phantom_notebook as pn
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "phantom_notebook.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def test_acl_apply_installs_users_that_redis_itself_restricts() -> None:
    server = RedisServer().start()
    try:
        done = run("acl", "apply", "--redis-url", server.url, "--key-prefix", "ops",
                   "--user", "ana:analyst", env={"PHANTOM_ACL_PASSWORD_ANA": "s3cret-pw"})
        assert done.returncode == 0, done.stderr
        assert "loaded the functions" in done.stdout
        assert "installed ACL users: ana" in done.stdout
        url = f"redis://ana:s3cret-pw@127.0.0.1:{server.port}/0"
        analyst = pn.connect(url, key_prefix="ops")
        with pytest.raises(pn.UnknownQueueError, match="phantom-notebook declare ioc-feed"):
            analyst.publish("ioc-feed", "ioc.enrichment.request", {"ioc": "203.0.113.1"})
        declared = run("declare", "ioc-feed", "--kind", "priority", "--redis-url", server.url,
                       "--key-prefix", "ops")
        assert declared.returncode == 0, declared.stderr
        assert analyst.publish("ioc-feed", "ioc.enrichment.request", {"ioc": "203.0.113.1"})
        raw = redis.Redis.from_url(url)
        with pytest.raises(redis.exceptions.NoPermissionError):
            raw.xadd("ops:{alerts}:s:0", {"m": b"forged"})
        with pytest.raises(redis.exceptions.NoPermissionError):
            raw.flushall()
        raw.close()
    finally:
        server.close()


def test_acl_render_never_prints_the_password() -> None:
    done = run("acl", "render", "--user", "ana:analyst",
               env={"PHANTOM_ACL_PASSWORD_ANA": "s3cret-pw"})
    assert done.returncode == 0 and "ACL SETUSER ana" in done.stdout
    assert "s3cret-pw" not in done.stdout


def test_acl_without_a_password_says_which_variable_to_set() -> None:
    done = run("acl", "render", "--user", "ops:admin")
    assert done.returncode == 1 and "set $PHANTOM_ACL_PASSWORD_OPS" in done.stderr


@pytest.mark.parametrize("command", [[], ["demo"], ["worker"], ["publish"], ["stats"],
                                     ["keys", "rotate"], ["acl", "apply"], ["report", "health"]])
def test_every_command_has_help(command: list[str]) -> None:
    done = run(*command, "--help")
    assert done.returncode == 0 and "usage: phantom-notebook" in done.stdout


def test_publish_and_stats_on_a_real_server(redis_url: str, prefix: str) -> None:
    published = run("publish", "cli-q", "ioc.enrichment.request", '{"ioc": "203.0.113.2"}',
                    "--priority", "HIGH", "--redis-url", redis_url, "--key-prefix", prefix)
    assert published.returncode == 0 and len(published.stdout.strip()) == 36
    stats = run("stats", "--json", "--redis-url", redis_url, "--key-prefix", prefix)
    assert '"queue":"cli-q"' in stats.stdout and '"ready":1' in stats.stdout
    bad = run("publish", "cli-q", "t", "{not json", "--redis-url", redis_url)
    assert bad.returncode == 1 and "payload is not valid JSON" in bad.stderr
