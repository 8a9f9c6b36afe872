"""The health checks' less travelled paths: what each says when it cannot look, when the
record it reads is incomplete, and how the report is put together around them.

Each test builds the situation for real where a live server allows it (an ACL user that may
not read the backup record, a server that is gone, a queue nobody declared, the embedded
Redis); what a live server cannot show on demand is pinned instead, as in
``test_health_thresholds.py``: the clock the rules read and INFO's memory numbers.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import phantom_notebook as pn
from phantom_notebook.core.observe import health
from phantom_notebook.core.observe.health import (
    CRITICAL,
    OK,
    WARN,
    HealthCheck,
    HealthReport,
    HealthThresholds,
    check_health,
)
from tests.core.observe.test_health_thresholds import NOW_S, PinnedClock
from tests.support.redis_server import RedisServer

NO_MAXMEMORY = "no maxmemory set: set one (with noeviction) in production"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> PinnedClock:
    pinned = PinnedClock()
    monkeypatch.setattr(health, "time", pinned)
    return pinned


@pytest.fixture
def quiet(real_mq: pn.MessageQueue, monkeypatch: pytest.MonkeyPatch) -> Iterator[pn.MessageQueue]:
    """``real_mq`` whose INFO memory has no maxmemory (its own numbers are not ours)."""
    monkeypatch.setattr(real_mq.client, "info", lambda *a, **k: {"used_memory": 1 << 20,
                                                                  "maxmemory": 0})
    yield real_mq


def _one(report: HealthReport, name: str) -> HealthCheck:
    found = [c for c in report.checks if c.name == name]
    assert len(found) == 1, f"expected one {name!r} check in {report}"
    return found[0]


def _info(mq: pn.MessageQueue, monkeypatch: pytest.MonkeyPatch, reply: dict[str, int]) -> None:
    monkeypatch.setattr(mq.client, "info", lambda *a, **k: reply)


# -- the last backup -------------------------------------------------------------------------

@pytest.fixture
def no_backup_reader(real_mq: pn.MessageQueue, redis_url: str) -> Iterator[pn.MessageQueue]:
    """A user of ``real_mq``'s prefix who may run everything but HGETALL, except on the
    consumers' heartbeats: the backup record is the one thing health cannot read."""
    name = f"nobackup-{uuid.uuid4().hex[:8]}"
    prefix = real_mq.keys.prefix
    real_mq.client.execute_command("ACL", "SETUSER", name, "on", ">pw", "~*", "&*", "+@all",
                                   "-hgetall", f"(+hgetall ~{prefix}:hb:*)")
    host_port = redis_url.split("//")[1].split("/")[0]
    mq = pn.connect(f"redis://{name}:pw@{host_port}/0", key_prefix=prefix)
    try:
        yield mq
    finally:
        mq.client.close()
        real_mq.client.acl_deluser(name)


def test_a_backup_record_health_may_not_read_is_ok_and_names_the_permission_it_needs(
        no_backup_reader: pn.MessageQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    _info(no_backup_reader, monkeypatch, {"used_memory": 0, "maxmemory": 0})
    check = _one(check_health(no_backup_reader, []), "last backup")
    assert check == HealthCheck("last backup", OK, "server", "not checked",
                                f"needs HGETALL on {no_backup_reader.keys.backup_last}")


def test_no_backup_recorded_is_ok_and_says_none_has_run(quiet: pn.MessageQueue) -> None:
    assert _one(check_health(quiet, []), "last backup") == HealthCheck(
        "last backup", OK, "server", "none recorded",
        "no `phantom-notebook backup` has run against this prefix")


def test_a_backup_record_without_its_time_counts_as_taken_at_the_epoch(
        quiet: pn.MessageQueue, clock: PinnedClock) -> None:
    quiet.client.hset(quiet.keys.backup_last, "path", "/backups/pn.tar.zst")
    limit = 3600.0
    t = HealthThresholds(backup_max_age_s=limit)
    seen = []
    for now in (limit, math.nextafter(limit, math.inf)):
        clock.now_s = now
        check = _one(check_health(quiet, [], thresholds=t), "last backup")
        seen.append((check.status, check.target, check.value))
    assert seen == [(OK, "server", "1.0 h"), (WARN, "server", "1.0 h")]


def test_a_backup_stamped_ahead_of_this_clock_reads_as_just_taken(
        quiet: pn.MessageQueue, clock: PinnedClock) -> None:
    quiet.client.hset(quiet.keys.backup_last, "time_ms", int((NOW_S + 120) * 1000))
    t = HealthThresholds(backup_max_age_s=0.5)
    check = _one(check_health(quiet, [], thresholds=t), "last backup")
    assert (check.status, check.value) == (OK, "0 min")


def test_a_backup_a_thousand_hours_old_reads_in_hours_to_the_tenth(
        quiet: pn.MessageQueue, clock: PinnedClock) -> None:
    quiet.client.hset(quiet.keys.backup_last, "time_ms", int((NOW_S - 3_600_000) * 1000))
    check = _one(check_health(quiet, []), "last backup")
    assert (check.status, check.target, check.value) == (WARN, "server", "1000.0 h")


def test_a_backup_path_that_is_not_utf8_is_shown_with_replacement_characters(
        quiet: pn.MessageQueue, clock: PinnedClock) -> None:
    quiet.client.hset(quiet.keys.backup_last, mapping={
        "time_ms": int(NOW_S * 1000), "messages": 3, "path": b"/backups/\xff\xfe.tar"})
    check = _one(check_health(quiet, []), "last backup")
    assert check.message == "3 messages in /backups/\ufffd\ufffd.tar; warn after 26 h"


# -- redis memory ----------------------------------------------------------------------------

def test_the_embedded_redis_has_no_memory_to_grade_and_says_so() -> None:
    mq = pn.connect(None, key_prefix=f"t{uuid.uuid4().hex[:10]}", settings=pn.Settings())
    try:
        check = _one(check_health(mq, []), "redis memory")
    finally:
        mq.client.close()
    assert check == HealthCheck("redis memory", OK, "server", "embedded",
                                "in-process Redis (fakeredis): memory is the kernel's")


def test_memory_refused_by_the_server_is_ok_on_the_server_line(
        real_mq: pn.MessageQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*a: Any, **k: Any) -> None:
        raise pn.PermissionDeniedError("INFO")

    monkeypatch.setattr(real_mq.client, "info", refused)
    assert _one(check_health(real_mq, []), "redis memory") == HealthCheck(
        "redis memory", OK, "server", "not permitted",
        "INFO refused for this user (PermissionDeniedError)")


def test_memory_without_maxmemory_is_ok_and_says_to_set_one(
        real_mq: pn.MessageQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    _info(real_mq, monkeypatch, {"used_memory": 3 << 19, "maxmemory": 0})
    assert _one(check_health(real_mq, []), "redis memory") == HealthCheck(
        "redis memory", OK, "server", "1.5 MiB", NO_MAXMEMORY)


def test_an_info_reply_without_memory_numbers_reads_as_nothing_used_and_no_limit(
        real_mq: pn.MessageQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    _info(real_mq, monkeypatch, {})
    assert _one(check_health(real_mq, []), "redis memory") == HealthCheck(
        "redis memory", OK, "server", "0.0 MiB", NO_MAXMEMORY)


def test_an_info_reply_without_used_memory_counts_nothing_used_against_the_limit(
        real_mq: pn.MessageQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    _info(real_mq, monkeypatch, {"maxmemory": 1})  # a one-byte limit: any use is over it
    check = _one(check_health(real_mq, []), "redis memory")
    assert (check.status, check.target, check.value) == (OK, "server", "0%")


def test_memory_past_its_critical_ratio_is_critical_on_the_server_line(
        real_mq: pn.MessageQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    _info(real_mq, monkeypatch, {"used_memory": 99 << 20, "maxmemory": 100 << 20})
    assert _one(check_health(real_mq, []), "redis memory") == HealthCheck(
        "redis memory", CRITICAL, "server", "99%", "99.0 of 100 MiB; warn at 80%")


# -- the run as a whole ----------------------------------------------------------------------

def test_a_server_that_is_gone_is_one_critical_check_over_the_window_asked_for() -> None:
    server = RedisServer().start()
    mq = pn.connect(server.url, key_prefix="gone", connect_timeout_s=0.5,
                    command_timeout_s=0.5)
    server.kill()
    try:
        report = check_health(mq, window_s=60.0)
    finally:
        server.close()
        mq.client.close()
    [check] = report.checks
    assert (check.name, check.status, check.target, check.value) == (
        "redis", CRITICAL, "server", "down")
    assert check.message.startswith("Redis unreachable: ") and "refused" in check.message
    assert report.window_s == 60.0


def test_the_report_keeps_the_window_it_was_asked_for(quiet: pn.MessageQueue) -> None:
    quiet.declare("windowed")
    report = check_health(quiet, ["windowed"], window_s=60.0)
    assert report.window_s == 60.0
    assert ", window 60 s)" in str(report).splitlines()[0]


def test_the_ping_is_a_check_of_the_server(quiet: pn.MessageQueue, clock: PinnedClock) -> None:
    clock.ping_ms = 1.25
    assert _one(check_health(quiet, []), "redis ping") == HealthCheck(
        "redis ping", OK, "server", "1.2 ms", "threshold 50 ms")


def test_every_queue_asked_about_adds_its_checks_to_the_server_s(
        quiet: pn.MessageQueue) -> None:
    quiet.declare("first")
    quiet.declare("second")
    report = check_health(quiet, ["first", "second"])
    names = {(c.name, c.target) for c in report.checks}
    assert {("redis ping", "server"), ("redis memory", "server"), ("last backup", "server"),
            ("queue depth", "first"), ("queue depth", "second"),
            ("error rate", "first"), ("error rate", "second")} <= names


def test_a_queue_asked_about_but_never_declared_is_checked_as_empty(
        quiet: pn.MessageQueue) -> None:
    quiet.declare("known")
    report = check_health(quiet, ["never-declared"])
    depth = [c for c in report.checks if c.name == "queue depth"]
    assert depth == [HealthCheck("queue depth", OK, "never-declared", "0", "warn above 10,000")]
