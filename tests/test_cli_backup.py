"""The backup commands as an operator runs them: backup, backup verify (no Redis), restore
into another prefix (dry run first), scheduled backups with retention, and retention."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import phantom_notebook as pn
from phantom_notebook.core.observe.health import HealthThresholds
from tests.support.collect import eventually
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "phantom_notebook.cli"]
KEY = "bk-ops:" + base64.b64encode(bytes(range(5, 37))).decode()


def run(*args: str, key: str | None = KEY) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PHANTOM_BACKUP_KEY",
                                                             "PHANTOM_AUDIT_KEY")}
    if key:
        env["PHANTOM_BACKUP_KEY"] = key
    return subprocess.run([*CLI, *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**env, "PYTHONPATH": str(ROOT)})


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    srv = RedisServer().start()
    yield srv
    srv.close()


@pytest.fixture
def loaded(server: RedisServer) -> Iterator[tuple[str, pn.MessageQueue]]:
    """A prefix holding a queue with 300 messages and 2 dead letters."""
    prefix = f"c{uuid.uuid4().hex[:8]}"
    mq = pn.connect(server.url, key_prefix=prefix, settings=pn.Settings())
    mq.declare("ioc-feed", kind="priority")
    mq.publish_batch("ioc-feed", [("ioc.raw", {"i": i}) for i in range(300)])
    keys = mq.queue_keys("ioc-feed")
    for _ in range(2):
        mq.client.xadd(keys.dlq, {"m": b"junk", "reason": "decode_failed", "attempts": 1})
    yield prefix, mq
    mq.close()


def test_backup_then_verify_without_redis_then_restore_into_another_prefix(
        server: RedisServer, loaded: tuple[str, pn.MessageQueue], tmp_path: Path) -> None:
    prefix, mq = loaded
    archive = tmp_path / "ops.pnbk"

    made = run("backup", "--redis-url", server.url, "--key-prefix", prefix, "--output",
               str(archive))
    assert made.returncode == 0, made.stderr
    assert "302 messages" in made.stdout

    checked = run("backup", "verify", str(archive))  # no --redis-url: no Redis involved
    assert checked.returncode == 0, checked.stderr
    assert "OK - format 1" in checked.stdout and "ioc-feed: 300 in streams" in checked.stdout
    assert "key 'bk-ops'" in checked.stdout

    target = f"r{uuid.uuid4().hex[:8]}"
    dry = run("restore", str(archive), "--redis-url", server.url, "--into-prefix", target,
              "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would restore" in dry.stdout and "302 messages" in dry.stdout
    restored_mq = pn.connect(server.url, key_prefix=target, settings=pn.Settings())
    assert restored_mq.queues() == []

    done = run("restore", str(archive), "--redis-url", server.url, "--into-prefix", target,
               "--partitions", "3")
    assert done.returncode == 0, done.stderr
    assert restored_mq.layout("ioc-feed").count == 3
    stats = restored_mq.stats("ioc-feed")[0]
    assert (stats.ready, stats.dead) == (300, 2)
    restored_mq.close()


def test_a_tampered_archive_fails_verify_and_restore_with_one_clear_line(
        server: RedisServer, loaded: tuple[str, pn.MessageQueue], tmp_path: Path) -> None:
    prefix, _ = loaded
    archive = tmp_path / "ops.pnbk"
    assert run("backup", "--redis-url", server.url, "--key-prefix", prefix, "-o",
               str(archive), "-q").returncode == 0
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x40
    archive.write_bytes(bytes(data))

    checked = run("backup", "verify", str(archive))
    restored = run("restore", str(archive), "--redis-url", server.url, "--into-prefix", "nope")

    for done in (checked, restored):
        assert done.returncode == 1
        assert done.stderr.startswith("error: backup archive") and "Traceback" not in done.stderr
    assert not pn.connect(server.url, key_prefix="nope", settings=pn.Settings()).queues()


def test_backup_without_a_key_names_the_setting_to_set(
        server: RedisServer, loaded: tuple[str, pn.MessageQueue], tmp_path: Path) -> None:
    prefix, _ = loaded

    done = run("backup", "--redis-url", server.url, "--key-prefix", prefix, "-o",
               str(tmp_path / "x.pnbk"), key=None)

    assert done.returncode == 1
    assert "PHANTOM_BACKUP_KEY" in done.stderr
    assert not list(tmp_path.iterdir())


def test_scheduled_backups_keep_the_newest_and_health_shows_the_last_ones_age(
        server: RedisServer, loaded: tuple[str, pn.MessageQueue], tmp_path: Path) -> None:
    prefix, mq = loaded
    before = {c.name: c for c in mq.health().checks}["last backup"]
    assert (before.status, before.value) == ("ok", "none recorded")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PHANTOM_BACKUP_KEY": KEY}
    proc = subprocess.Popen([*CLI, "backup", "--redis-url", server.url, "--key-prefix", prefix,
                             "--every", "1s", "--keep", "2", "--output-dir", str(tmp_path),
                             "--quiet"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert eventually(lambda: _runs(mq) >= 4, timeout_s=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    kept = sorted(tmp_path.glob("pn-backup-*.pnbk"))
    assert len(kept) == 2 and not list(tmp_path.glob("*.part"))
    check = {c.name: c for c in mq.health().checks}["last backup"]
    assert check.status == "ok" and check.value.endswith("min")
    stale = {c.name: c for c in mq.health(thresholds=HealthThresholds(
        backup_max_age_s=-1)).checks}["last backup"]
    assert stale.status == "warn" and "302 messages" in stale.message


def _runs(mq: pn.MessageQueue) -> int:
    return int(mq.client.hget(mq.keys.backup_last, "count") or 0)


def test_retention_lists_every_policy_and_apply_trims_expired_dead_letters(
        server: RedisServer, loaded: tuple[str, pn.MessageQueue]) -> None:
    prefix, mq = loaded
    mq.declare("ioc-old", kind="fifo")
    keys = mq.queue_keys("ioc-old")
    mq.client.xadd(keys.dlq, {"m": b"old", "reason": "decode_failed"}, id="1000-0")
    mq.client.xadd(keys.dlq, {"m": b"new", "reason": "decode_failed"})

    shown = run("retention", "--redis-url", server.url, "--key-prefix", prefix)
    applied = run("retention", "--redis-url", server.url, "--key-prefix", prefix, "--apply")

    assert shown.returncode == 0, shown.stderr
    assert "ioc-feed: messages kept" in shown.stdout and "dead letters 7 d" in shown.stdout
    assert "traces newest 20,000 events" in shown.stdout and "audit kept" in shown.stdout
    assert applied.returncode == 0, applied.stderr
    assert "1 expired dead letters removed" in applied.stdout
    assert mq.client.xlen(keys.dlq) == 1
    assert mq.client.xlen(mq.queue_keys("ioc-feed").dlq) == 2
