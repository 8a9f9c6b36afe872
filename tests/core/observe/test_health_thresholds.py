"""Every health threshold, exactly at the limit and one step past it, on real Redis.

The spec's alert conditions say "exceeds": a value equal to a threshold keeps the lower
status, the next value up takes the higher one, on the warn and on the critical branch of
every rule. The state each rule reads is written where the workers write it (depth by
publishing, counters and histograms into the metric bucket, breaker state, heartbeats, the
last backup); what the test cannot set exactly on a live server is pinned instead: the
clock the rules read (``health.time``) and INFO's memory numbers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

import phantom_notebook as pn
from phantom_notebook.core.backend import library
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
from phantom_notebook.core.observe.metrics import BOUNDS_MS, BUCKET_S, percentile

NOW_S = 1_800_000_000.0  # the pinned clock: 2027-01-15


class PinnedClock:
    """Stands in for the ``time`` module inside health.py: a fixed wall clock, and a
    ``perf_counter`` that makes the PING take exactly ``ping_ms``."""

    def __init__(self, now_s: float = NOW_S, ping_ms: float = 0.0) -> None:
        self.now_s, self.ping_ms, self._calls = now_s, ping_ms, 0
        self.strftime, self.gmtime = time.strftime, time.gmtime

    def time(self) -> float:
        return self.now_s

    def perf_counter(self) -> float:
        self._calls += 1
        return 0.0 if self._calls % 2 else self.ping_ms / 1000


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


def _checks(report: HealthReport, name: str, target: str | None = None) -> list[HealthCheck]:
    return [c for c in report.checks if c.name == name and target in (None, c.target)]


def _status(report: HealthReport, name: str, target: str | None = None) -> str:
    found = _checks(report, name, target)
    assert len(found) == 1, f"expected one {name!r} check in {report}"
    return found[0].status


def _stage(mq: pn.MessageQueue, queue: str, **fields: int) -> None:
    """Add to counters / histogram fields of the queue's current metric bucket (as the
    functions do: HINCRBY, so what a real publish counted stays)."""
    key = mq.queue_keys(queue).metrics(int(time.time()) // BUCKET_S * BUCKET_S)
    pipe = mq.client.pipeline(transaction=False)
    for name, value in fields.items():
        pipe.hincrby(key, name.replace("__", ":"), value)
    pipe.execute()


def _up(value: float) -> float:
    return math.nextafter(value, math.inf)


# -- the grading rule itself -----------------------------------------------------------------

DEFAULT = HealthThresholds()
PAIRS = [("memory", DEFAULT.memory_warn_ratio, DEFAULT.memory_critical_ratio),
         ("depth", DEFAULT.depth_warn, DEFAULT.depth_critical),
         ("error rate", DEFAULT.error_rate_warn, DEFAULT.error_rate_critical),
         ("latency", DEFAULT.latency_warn_ms, DEFAULT.latency_critical_ms),
         ("dead letters", DEFAULT.dlq_growth_warn, DEFAULT.dlq_growth_critical)]


@pytest.mark.parametrize(("what", "warn", "critical"), PAIRS, ids=[p[0] for p in PAIRS])
def test_a_value_at_a_threshold_keeps_the_lower_status_and_one_step_past_takes_the_next(
        what: str, warn: float, critical: float) -> None:
    grade = health._grade
    assert grade(warn, warn, critical) == OK
    assert grade(_up(warn), warn, critical) == WARN
    assert grade(critical, warn, critical) == WARN
    assert grade(_up(critical), warn, critical) == CRITICAL
    if isinstance(warn, int):  # counts: the next integer is the step
        assert grade(warn + 1, warn, critical) == WARN
        assert grade(critical + 1, warn, critical) == CRITICAL


def test_the_default_thresholds_are_the_spec_s_alert_conditions() -> None:
    assert HealthThresholds() == HealthThresholds(
        ping_warn_ms=50.0, memory_warn_ratio=0.80, memory_critical_ratio=0.95,
        depth_warn=10_000, depth_critical=100_000, error_rate_warn=0.05,
        error_rate_critical=0.20, latency_warn_ms=5_000.0, latency_critical_ms=30_000.0,
        dlq_growth_warn=0, dlq_growth_critical=100, stale_consumer_s=30.0,
        backlog_growth_ratio=1.10, backup_max_age_s=26 * 3600.0)


# -- each rule on real Redis -----------------------------------------------------------------

def test_queue_depth_at_each_threshold_and_one_past_it(quiet: pn.MessageQueue) -> None:
    t = HealthThresholds(depth_warn=2, depth_critical=4)
    seen = []
    for n in range(1, 6):
        quiet.publish("deep", "t", n)
        found = _checks(check_health(quiet, ["deep"], thresholds=t), "queue depth", "deep")
        seen.append((found[0].value, found[0].status))
    assert seen == [("1", OK), ("2", OK), ("3", WARN), ("4", WARN), ("5", CRITICAL)]


@pytest.mark.parametrize(("retried", "dead", "status"), [
    (0, 0, OK), (5, 0, OK), (6, 0, WARN), (3, 3, WARN), (20, 0, WARN), (10, 10, WARN),
    (21, 0, CRITICAL), (11, 10, CRITICAL)])
def test_error_rate_at_each_threshold_and_one_past_it(
        quiet: pn.MessageQueue, retried: int, dead: int, status: str) -> None:
    quiet.declare("errs")
    _stage(quiet, "errs", delivered=100, retried=retried, dead_lettered=dead)
    report = check_health(quiet, ["errs"])
    [check] = _checks(report, "error rate", "errs")
    assert check.status == status and check.value == f"{(retried + dead) / 100:.1%}"
    assert check.message == f"{retried + dead:,} failed of 100 delivered in the window"


def test_an_idle_queue_has_no_error_rate(quiet: pn.MessageQueue) -> None:
    quiet.declare("idle")
    _stage(quiet, "idle", retried=3)  # failures without deliveries: not a rate
    [check] = _checks(check_health(quiet, ["idle"]), "error rate", "idle")
    assert (check.status, check.value) == (OK, "0.0%")


@pytest.mark.parametrize(("dead", "status"), [(0, OK), (1, WARN), (100, WARN), (101, CRITICAL)])
def test_dead_letter_growth_at_each_threshold_and_one_past_it(
        quiet: pn.MessageQueue, dead: int, status: str) -> None:
    quiet.declare("dlq-growth")
    _stage(quiet, "dlq-growth", delivered=10_000, dead_lettered=dead)
    [check] = _checks(check_health(quiet, ["dlq-growth"]), "dead letters", "dlq-growth")
    assert (check.status, check.value) == (status, f"+{dead:,}")
    assert check.message == "dead-lettered in the window"


def test_processing_p99_at_each_threshold_and_one_past_it(quiet: pn.MessageQueue) -> None:
    quiet.declare("slow")
    index = 60
    _stage(quiet, "slow", **{f"h__proc__{index}": 100})
    p99 = percentile({index: 100}, 99)
    assert p99 is not None and BOUNDS_MS[index - 1] < p99 <= BOUNDS_MS[index]
    below = math.nextafter(p99, 0.0)
    cases = [(HealthThresholds(latency_warn_ms=p99, latency_critical_ms=p99 * 2), OK),
             (HealthThresholds(latency_warn_ms=below, latency_critical_ms=p99 * 2), WARN),
             (HealthThresholds(latency_warn_ms=below, latency_critical_ms=p99), WARN),
             (HealthThresholds(latency_warn_ms=below / 2, latency_critical_ms=below), CRITICAL)]
    for t, status in cases:
        [check] = _checks(check_health(quiet, ["slow"], thresholds=t), "processing p99", "slow")
        assert check.status == status, t
        assert check.value == f"{p99:,.1f} ms"
        assert check.message == f"warn above {t.latency_warn_ms:,.0f} ms"
    quiet.declare("unmeasured")
    assert _checks(check_health(quiet, ["unmeasured"]), "processing p99") == []


@pytest.mark.parametrize(("used", "status", "shown"), [
    (80, OK, "80%"), (81, WARN, "81%"), (95, WARN, "95%"), (96, CRITICAL, "96%")])
def test_redis_memory_at_each_threshold_and_one_past_it(
        real_mq: pn.MessageQueue, monkeypatch: pytest.MonkeyPatch, used: int, status: str,
        shown: str) -> None:
    mib = 1 << 20
    monkeypatch.setattr(real_mq.client, "info",
                        lambda *a, **k: {"used_memory": used * mib, "maxmemory": 100 * mib})
    [check] = _checks(check_health(real_mq, []), "redis memory")
    assert (check.status, check.value) == (status, shown)
    assert check.message == f"{used:.1f} of 100 MiB; warn at 80%"


def test_redis_memory_without_maxmemory_is_ok_and_says_to_set_one(
        quiet: pn.MessageQueue) -> None:
    [check] = _checks(check_health(quiet, []), "redis memory")
    assert (check.status, check.value) == (OK, "1.0 MiB")
    assert "no maxmemory set" in check.message


def test_redis_memory_refused_by_the_server_is_ok_and_says_so(
        real_mq: pn.MessageQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*a: Any, **k: Any) -> None:
        raise pn.PermissionDeniedError("INFO")

    monkeypatch.setattr(real_mq.client, "info", refused)
    [check] = _checks(check_health(real_mq, []), "redis memory")
    assert (check.status, check.value) == (OK, "not permitted")
    assert "PermissionDeniedError" in check.message


def test_the_ping_at_its_threshold_is_ok_and_one_step_slower_warns(
        quiet: pn.MessageQueue, clock: PinnedClock) -> None:
    clock.ping_ms = 62.5
    for limit, status in ((62.5, OK), (math.nextafter(62.5, 0.0), WARN)):
        report = check_health(quiet, [], thresholds=HealthThresholds(ping_warn_ms=limit))
        [check] = _checks(report, "redis ping")
        assert (check.status, check.value) == (status, "62.5 ms")
        assert check.message == f"threshold {limit:.0f} ms"


def _beat(mq: pn.MessageQueue, consumer: str, last_seen: float, **extra: Any) -> None:
    mq.client.sadd(mq.keys.heartbeat_index, mq.user)
    mq.client.hset(mq.keys.heartbeats(mq.user), consumer, orjson.dumps(
        {"consumer": consumer, "host": "h1", "pid": 7, "queues": ["q1", "q2"],
         "last_seen": last_seen, **extra}))


def test_a_heartbeat_exactly_at_the_stale_limit_is_ok_and_one_step_older_warns(
        quiet: pn.MessageQueue, clock: PinnedClock) -> None:
    limit = DEFAULT.stale_consumer_s
    _beat(quiet, "at-limit", NOW_S - limit)
    _beat(quiet, "past-limit", math.nextafter(NOW_S - limit, 0.0))
    _beat(quiet, "fresh", NOW_S)
    report = check_health(quiet, [])
    assert {c.target: c.status for c in _checks(report, "consumer heartbeat")} == {
        "at-limit": OK, "past-limit": WARN, "fresh": OK}
    [check] = _checks(report, "consumer heartbeat", "at-limit")
    assert check.value == "30 s ago"
    assert check.message == f"queues q1, q2; user {quiet.user}; stale after 30 s"


def test_a_backup_exactly_at_the_age_limit_is_ok_and_one_ms_older_warns(
        quiet: pn.MessageQueue, clock: PinnedClock) -> None:
    limit_ms = int(DEFAULT.backup_max_age_s * 1000)
    shown = []
    for taken_ms in (NOW_S * 1000 - limit_ms, NOW_S * 1000 - limit_ms - 1):
        quiet.client.hset(quiet.keys.backup_last, mapping={
            "time_ms": int(taken_ms), "path": "/backups/pn.tar.zst", "messages": 1234})
        [check] = _checks(check_health(quiet, []), "last backup")
        shown.append((check.status, check.value))
        assert check.message == "1,234 messages in /backups/pn.tar.zst; warn after 26 h"
    assert shown == [(OK, "26.0 h"), (WARN, "26.0 h")]


@pytest.mark.parametrize(("age_s", "shown"), [(0, "0 min"), (1800, "30 min"), (3599, "60 min"),
                                               (3600, "1.0 h"), (5400, "1.5 h")])
def test_the_age_of_the_last_backup_reads_in_minutes_then_hours(
        quiet: pn.MessageQueue, clock: PinnedClock, age_s: int, shown: str) -> None:
    quiet.client.hset(quiet.keys.backup_last, "time_ms", int((NOW_S - age_s) * 1000))
    [check] = _checks(check_health(quiet, []), "last backup")
    assert (check.status, check.value) == (OK, shown)
    assert check.message == "0 messages in ?; warn after 26 h"


def test_no_backup_recorded_is_ok(quiet: pn.MessageQueue) -> None:
    [check] = _checks(check_health(quiet, []), "last backup")
    assert (check.status, check.value) == (OK, "none recorded")


@pytest.mark.parametrize(("published", "acked", "dead", "warns"), [
    (110, 100, 0, False), (111, 100, 0, True), (111, 90, 10, True), (110, 90, 10, False),
    (1, 0, 0, False), (2, 0, 0, True)])
def test_capacity_warns_only_when_publishing_outruns_handling_by_more_than_the_ratio(
        quiet: pn.MessageQueue, published: int, acked: int, dead: int, warns: bool) -> None:
    quiet.publish("backlog", "t", 1)  # depth 1, and one of the published
    _stage(quiet, "backlog", published=published - 1, acked=acked, dead_lettered=dead)
    found = _checks(check_health(quiet, ["backlog"]), "capacity", "backlog")
    assert bool(found) is warns
    if warns:
        assert found[0].status == WARN
        assert found[0].value == f"{published / 300:,.1f}/s in"
        assert found[0].message == f"consumers handle {(acked + dead) / 300:,.1f}/s: the " \
                                   "backlog grows"


def test_publishing_exactly_the_ratio_faster_than_handling_is_no_warning_yet(
        quiet: pn.MessageQueue) -> None:
    quiet.publish("backlog", "t", 1)
    _stage(quiet, "backlog", published=149, acked=100)  # 150 == 100 * 1.5, exactly
    t = HealthThresholds(backlog_growth_ratio=1.5)
    assert _checks(check_health(quiet, ["backlog"], thresholds=t), "capacity") == []
    _stage(quiet, "backlog", published=1)
    assert _status(check_health(quiet, ["backlog"], thresholds=t), "capacity") == WARN


def test_capacity_does_not_warn_for_an_empty_queue(quiet: pn.MessageQueue) -> None:
    quiet.declare("drained")
    _stage(quiet, "drained", published=500, acked=1)
    assert _checks(check_health(quiet, ["drained"]), "capacity") == []


@pytest.mark.parametrize(("state", "status"), [("open", CRITICAL), ("half_open", WARN),
                                               ("closed", OK)])
def test_each_breaker_state_has_its_status(quiet: pn.MessageQueue, state: str,
                                           status: str) -> None:
    quiet.declare("guarded")
    quiet.client.hset(quiet.queue_keys("guarded").breakers, "default:w1",
                      orjson.dumps({"state": state}))
    [check] = _checks(check_health(quiet, ["guarded"]), "circuit breaker", "guarded")
    assert (check.status, check.value, check.message) == (status, state, "lane default:w1")


def test_an_unaudited_action_is_critical(quiet: pn.MessageQueue) -> None:
    quiet.declare("audited")
    assert _checks(check_health(quiet, ["audited"]), "audit trail") == []
    _stage(quiet, "audited", audit_failed=2)
    [check] = _checks(check_health(quiet, ["audited"]), "audit trail", "audited")
    assert (check.status, check.value) == (CRITICAL, "2 unaudited")
    assert check.message == ("actions went through without their audit entry "
                             "(audit_failure=degrade); `phantom-notebook repair` the stream")


def test_a_paused_queue_is_ok_while_nothing_waits_and_warns_while_its_backlog_grows(
        quiet: pn.MessageQueue) -> None:
    quiet.declare("held")
    quiet.pause("held")
    [check] = _checks(check_health(quiet, ["held"]), "paused", "held")
    assert (check.status, check.value) == (OK, "paused")
    assert check.message == "0 waiting, 0 published in the last 300 s"
    quiet.publish("held", "t", 1)
    [check] = _checks(check_health(quiet, ["held"]), "paused", "held")
    assert check.status == WARN
    assert check.message == ("1 waiting, 1 published in the last 300 s; resume with "
                             "`phantom-notebook resume held`")
    quiet.resume("held")
    assert _checks(check_health(quiet, ["held"]), "paused") == []


def test_a_paused_queue_warns_only_when_messages_wait_and_more_keep_coming(
        quiet: pn.MessageQueue) -> None:
    quiet.declare("held")
    quiet.pause("held")
    _stage(quiet, "held", published=5)  # published, but nothing waits (drained before)
    assert _status(check_health(quiet, ["held"]), "paused", "held") == OK
    quiet.publish("waiting", "t", 1)
    quiet.pause("waiting")
    for key in quiet.client.scan_iter(match=f"{quiet.keys.prefix}:{{waiting}}:m:*"):
        quiet.client.delete(key)  # a message waits, but none was published in the window
    [check] = _checks(check_health(quiet, ["waiting"]), "paused", "waiting")
    assert (check.status, check.message) == (OK, "1 waiting, 0 published in the last 300 s")


def test_paused_groups_are_named(quiet: pn.MessageQueue) -> None:
    quiet.declare("split")
    quiet.pause("split", group="enrichers")
    quiet.pause("split", group="scorers")
    [check] = _checks(check_health(quiet, ["split"]), "paused", "split")
    assert check.value in ("enrichers, scorers paused", "scorers, enrichers paused")


def test_removing_a_rule_that_is_not_registered_is_no_error() -> None:
    health.remove_health_rule("never registered")


def test_a_lane_waiting_for_its_limits_is_reported_as_information(
        quiet: pn.MessageQueue, clock: PinnedClock) -> None:
    _beat(quiet, "w1", NOW_S, limits=[
        {"partition": "ioc-vt", "group": "default", "rate_limit": "4/s",
         "max_in_flight_global": 10, "key_limits": {"k1": "1/s", "k2": "2/s"},
         "waiting": "rate limit"},
        {"partition": "ioc-otx", "group": "g2"}, "not a dict",
        {"partition": "p", "group": "many", "key_limits": {f"k{i}": "1/s" for i in range(11)},
         "waiting": "w" * 50},
        {"partition": "p", "group": "listed", "key_limits": ["k1"]}])
    report = check_health(quiet, [])
    checks = {c.target: c for c in _checks(report, "flow control")}
    assert set(checks) == {"ioc-vt/default", "ioc-otx/g2", "p/many", "p/listed"}
    many = checks["p/many"]
    assert many.value == "waiting for " + "w" * 40
    assert many.message == ("per key " + ", ".join(f"k{i} 1/s" for i in range(10))
                            + " (consumer w1)")
    assert checks["p/listed"].message == " (consumer w1)"
    busy, idle = checks["ioc-vt/default"], checks["ioc-otx/g2"]
    assert (busy.status, busy.value) == (OK, "waiting for rate limit")
    assert busy.message == "rate 4/s; at most 10 in flight; per key k1 1/s, k2 2/s (consumer w1)"
    assert (idle.status, idle.value, idle.message) == (OK, "flowing", " (consumer w1)")


# -- integrity checks ------------------------------------------------------------------------

def test_a_stream_with_a_future_id_is_critical(quiet: pn.MessageQueue) -> None:
    quiet.declare("skewed")
    stream = quiet.queue_keys("skewed").stream(2)
    future_ms = int(time.time() * 1000) + 10_000_000
    quiet.client.xadd(stream, {"m": b"x"}, id=f"{future_ms}-0")
    [check] = _checks(check_health(quiet, ["skewed"]), "stream integrity")
    assert (check.status, check.target, check.value) == (CRITICAL, stream, f"{future_ms}-0")
    ahead = check.message.split(" s in the future")[0].removeprefix("last id ")
    assert 9_990 <= float(ahead.replace(",", "")) <= 10_000
    assert check.message.endswith(" s in the future: it hands out future ids (a raw XADD with "
                                  "an explicit id); run `phantom-notebook repair`")


def test_a_stream_at_the_largest_id_refuses_every_entry_and_says_so(
        quiet: pn.MessageQueue) -> None:
    quiet.declare("full")
    top = "18446744073709551615-18446744073709551615"
    quiet.client.xadd(quiet.queue_keys("full").stream(2), {"m": b"x"}, id=top)
    [check] = _checks(check_health(quiet, ["full"]), "stream integrity")
    assert check.value == top and "it refuses every new entry (a raw XADD" in check.message


def test_dead_letters_removed_behind_the_queue_s_back_are_critical(
        quiet: pn.MessageQueue) -> None:
    quiet.declare("leaky")
    dlq = quiet.queue_keys("leaky").dlq
    ids = [quiet.client.xadd(dlq, {"reason": "x"}) for _ in range(3)]
    quiet.client.xdel(dlq, ids[0], ids[1])
    [check] = _checks(check_health(quiet, ["leaky"]), "dead letters lost")
    assert (check.status, check.target, check.value) == (CRITICAL, dlq, "2")
    assert check.message == ("dead letters vanished outside replay, purge, retention and "
                             "repair (XADD MAXLEN / XTRIM by a role that writes the DLQ?)")


def test_integrity_looks_only_at_the_queues_asked_about(quiet: pn.MessageQueue) -> None:
    quiet.declare("fine")
    quiet.declare("skewed")
    future_ms = int(time.time() * 1000) + 10_000_000
    quiet.client.xadd(quiet.queue_keys("skewed").stream(2), {"m": b"x"}, id=f"{future_ms}-0")
    dlq = quiet.queue_keys("skewed").dlq
    quiet.client.xdel(dlq, quiet.client.xadd(dlq, {"reason": "x"}))
    report = check_health(quiet, ["fine"])
    assert _checks(report, "stream integrity") == [] and _checks(report, "dead letters lost") == []
    assert len(_checks(check_health(quiet, ["fine", "skewed"]), "stream integrity")) == 1


def test_a_server_holding_another_library_build_is_critical(own_server: Any) -> None:
    mq = pn.connect(own_server.url, key_prefix="builds")
    assert _checks(check_health(mq, []), "functions") == []
    version = library.name("version")
    mq.client.function_load(
        f"#!lua name={library.LIBRARY}\nredis.register_function{{function_name='{version}', "
        "callback=function() return 'other-build' end, flags={'no-writes'}}", replace=True)
    [check] = _checks(check_health(mq, []), "functions")
    assert (check.status, check.target, check.value) == (CRITICAL, "server", "other-build")
    assert check.message == (f"this client is build {library.build()}: run "
                             "`phantom-notebook deploy`")
    mq.client.close()


def test_a_health_run_without_xinfo_skips_the_stream_checks_and_says_so(
        own_server: Any) -> None:
    admin = pn.connect(own_server.url, key_prefix="acl")
    admin.declare("q")
    admin.client.acl_setuser("no-xinfo", enabled=True, passwords=["+pw"], keys=["*"],
                             channels=["*"], commands=["+@all", "-xinfo|stream"])
    host, port = own_server.url.split("//")[1].split("/")[0].split(":")
    mq = pn.connect(f"redis://no-xinfo:pw@{host}:{port}/0", key_prefix="acl")
    [check] = _checks(check_health(mq, ["q"]), "stream integrity")
    assert (check.status, check.target, check.value) == (OK, "server", "not checked")
    assert check.message == "needs XINFO STREAM (an admin's or the operator's health run)"
    assert _checks(check_health(mq, ["q"]), "dead letters lost") == []
    mq.client.close()
    admin.client.close()


def test_junk_in_the_queue_registry_warns(quiet: pn.MessageQueue) -> None:
    quiet.declare("fine")
    quiet.client.sadd(quiet.keys.queues, "bad name with spaces")
    [check] = _checks(check_health(quiet, ["fine"]), "queue registry")
    assert (check.status, check.target, check.value) == (WARN, quiet.keys.queues, "1 junk")
    assert check.message == ("members that are not queue names are skipped: "
                             "'bad name with spaces'")
    quiet.client.sadd(quiet.keys.queues, "fine#2", "b" * 60 + " x", "c d")
    [check] = _checks(check_health(quiet, ["fine"]), "queue registry")
    assert check.value == "4 junk"
    assert check.message == ("members that are not queue names are skipped: "
                             f"'bad name with spaces', {'b' * 40!r}, 'c d'")


def test_several_library_builds_are_all_named(quiet: pn.MessageQueue,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "deployed_builds", lambda client: ["b2", None, "b1", "b2"])
    [check] = _checks(check_health(quiet, []), "functions")
    assert check.value == "None, b1, b2"


def test_every_registered_rule_adds_its_checks_and_a_broken_one_says_why(
        quiet: pn.MessageQueue) -> None:
    seen: list[HealthThresholds] = []

    def first(dep: Any, queues: list[str], t: HealthThresholds) -> list[HealthCheck]:
        seen.append(t)
        return [HealthCheck("feed freshness", WARN, q, "61 min", "stale") for q in queues]

    def second(dep: Any, queues: list[str], t: HealthThresholds) -> list[HealthCheck]:
        return [HealthCheck("partner backlog", OK, "partner", "0", "fine")]

    def broken(dep: Any, queues: list[str], t: HealthThresholds) -> list[HealthCheck]:
        raise RuntimeError("partner API down")

    t = HealthThresholds(depth_warn=7)
    quiet.declare("feed")
    for name, rule in (("feed freshness", first), ("partner backlog", second),
                       ("broken", broken)):
        health.health_rule(name)(rule)
    try:
        report = check_health(quiet, ["feed"], thresholds=t)
    finally:
        for name in ("feed freshness", "partner backlog", "broken"):
            health.remove_health_rule(name)
    assert seen == [t]
    assert _status(report, "feed freshness", "feed") == WARN
    assert _status(report, "partner backlog", "partner") == OK
    [failed] = _checks(report, "broken")
    assert (failed.status, failed.target, failed.value) == (WARN, "rule", "error")
    assert failed.message == "the health rule raised RuntimeError: partner API down"


# -- the report ------------------------------------------------------------------------------

def _report(*statuses: str) -> HealthReport:
    return HealthReport([HealthCheck(f"check {i}", s, f"t{i}", f"v{i}", f"m{i} <&>")
                         for i, s in enumerate(statuses)], checked_at=NOW_S, window_s=60.0)


def test_the_report_is_as_bad_as_its_worst_check_and_lists_problems_worst_first() -> None:
    assert (_report().status, _report().exit_code) == (OK, 0)
    assert (_report(OK, OK).status, _report(OK, OK).exit_code) == (OK, 0)
    assert (_report(OK, WARN, OK).status, _report(OK, WARN).exit_code) == (WARN, 1)
    assert (_report(WARN, CRITICAL, OK).status, _report(CRITICAL).exit_code) == (CRITICAL, 2)
    problems = _report(WARN, OK, CRITICAL, WARN).problems()
    assert [(c.name, c.status) for c in problems] == [
        ("check 2", CRITICAL), ("check 0", WARN), ("check 3", WARN)]


def test_the_report_renders_as_text_html_and_plain_data() -> None:
    report = _report(OK, CRITICAL, WARN)
    assert str(report).splitlines() == [
        "health: CRITICAL (2027-01-15 08:00:00 UTC, window 60 s)",
        "  [critical] check 1            t1                                 v1  m1 <&>",
        "  [  warn  ] check 2            t2                                 v2  m2 <&>",
        "  [   ok   ] check 0            t0                                 v0  m0 <&>"]
    page = report._repr_html_()
    assert page.startswith("<div><h4 style='margin:0 0 6px 0'>Health: <span style='color:"
                           "#cf222e'>CRITICAL</span> <small style='color:#57606a'>"
                           "2027-01-15 08:00:00 UTC, window 60 s</small></h4>")
    assert page.index("check 1") < page.index("check 2") < page.index("check 0")
    assert "<td style='color:#9a6700;font-weight:600'>WARN</td>" in page
    assert "<td style='color:#1a7f37;font-weight:600'>OK</td>" in page
    assert "m0 &lt;&amp;&gt;" in page and "<&>" not in page
    assert page.count("</td></tr><tr><td") == 2  # three rows, nothing between them
    data = report.to_dict()
    assert data == {"status": CRITICAL, "checked_at": NOW_S, "window_s": 60.0, "checks": [
        {"name": f"check {i}", "status": s, "target": f"t{i}", "value": f"v{i}",
         "message": f"m{i} <&>"} for i, s in enumerate((OK, CRITICAL, WARN))]}
