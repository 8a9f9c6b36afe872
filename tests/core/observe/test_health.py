"""Each health rule turns warn / critical when its condition is created for real."""

from __future__ import annotations

import threading

import pytest

import phantom_notebook as pn
from phantom_notebook.core.observe.health import HealthThresholds, check_health
from tests.support.collect import Collector, eventually
from tests.support.redis_server import RedisServer
from tests.support.worker_process import WorkerProcess


def _status(report: pn.core.health.HealthReport, name: str, target: str | None = None) -> str:
    matches = [c for c in report.checks if c.name == name and (target is None or
                                                              c.target == target)]
    assert matches, f"no {name!r} check in {report}"
    return max((c.status for c in matches), key=["ok", "warn", "critical"].index)


def test_a_healthy_idle_deployment_is_ok(mq: pn.MessageQueue) -> None:
    mq.declare("idle")
    report = mq.health()
    assert report.status == "ok" and report.exit_code == 0
    assert "Health: <span" in report._repr_html_() and "health: OK" in str(report)


def test_a_queue_past_the_spec_depth_threshold_warns(real_mq: pn.MessageQueue) -> None:
    batch = [pn.Message("bulk", i) for i in range(1000)]
    for _ in range(10):
        real_mq.publish_batch("deep", batch)
    assert _status(real_mq.health(["deep"]), "queue depth", "deep") == "ok"
    real_mq.publish("deep", "bulk", "one more")
    report = real_mq.health(["deep"])
    assert _status(report, "queue depth", "deep") == "warn" and report.exit_code == 1


def test_failing_handlers_raise_error_rate_and_dead_letter_growth(mq: pn.MessageQueue) -> None:
    def handler(message: pn.Envelope, context: pn.MessageContext) -> None:
        if message.payload % 2:
            raise pn.Reject("bad indicator")

    mq.subscribe("errs", "*", handler)
    mq.publish_batch("errs", [("t", i) for i in range(20)])
    with mq.worker():
        assert eventually(lambda: mq.stats(["errs"])[0].dead == 10)
    report = mq.health(["errs"])
    assert _status(report, "error rate", "errs") == "critical"  # 50 % > 20 %
    assert _status(report, "dead letters", "errs") == "warn"


def test_slow_processing_turns_the_latency_check_warn(mq: pn.MessageQueue) -> None:
    got = Collector(lambda m, c: threading.Event().wait(0.08))  # simulated slow work
    mq.subscribe("slow", "*", got)
    mq.publish_batch("slow", [("t", i) for i in range(3)])
    with mq.worker():
        assert got.wait_for(3)
        assert eventually(lambda: mq.stats(["slow"])[0].depth == 0)
    report = check_health(mq, ["slow"], thresholds=HealthThresholds(latency_warn_ms=50))
    assert _status(report, "processing p99", "slow") == "warn"


def test_an_open_circuit_breaker_is_critical(mq: pn.MessageQueue) -> None:
    def down(message: pn.Envelope, context: pn.MessageContext) -> None:
        raise ConnectionError("sandbox unreachable")

    mq.subscribe("guarded", "*", down, breaker=pn.BreakerSettings(
        enabled=True, failure_threshold=2, minimum_calls=2, recovery_timeout_s=60))
    mq.publish_batch("guarded", [("t", i) for i in range(5)])
    with mq.worker():
        assert eventually(lambda: any(s["state"] == "open"
                                      for s in mq.breakers("guarded").values()))
        assert _status(mq.health(["guarded"]), "circuit breaker", "guarded") == "critical"


def test_a_backlog_that_grows_faster_than_it_drains_warns_about_capacity(
        mq: pn.MessageQueue) -> None:
    mq.publish_batch("backlog", [("t", i) for i in range(50)])
    assert _status(mq.health(["backlog"]), "capacity", "backlog") == "warn"


def test_a_killed_worker_goes_stale(real_mq: pn.MessageQueue, redis_url: str,
                                    prefix: str) -> None:
    real_mq.declare("hb")
    worker = WorkerProcess(redis_url, prefix, "hb", concurrency=1, prefetch=1,
                           visibility_timeout_s=0.3)
    try:
        beats = real_mq.keys.heartbeats(real_mq.user)
        assert eventually(lambda: real_mq.client.hlen(beats) == 1, 20)
        worker.kill()
    finally:
        worker.close()
    thresholds = HealthThresholds(stale_consumer_s=0.5)
    assert eventually(lambda: _status(check_health(real_mq, ["hb"], thresholds=thresholds),
                                      "consumer heartbeat") == "warn", timeout_s=5)


def test_redis_memory_near_maxmemory_is_reported() -> None:
    server = RedisServer().start()
    try:
        mq = pn.connect(server.url, key_prefix="mem")
        used = int(mq.client.info("memory")["used_memory"])
        mq.client.config_set("maxmemory", int(used / 0.9))
        assert _status(mq.health([]), "redis memory") == "warn"
        mq.client.config_set("maxmemory", int(used / 0.97) or 1)
        assert _status(mq.health([]), "redis memory") == "critical"
    finally:
        server.close()


def test_unreachable_redis_is_critical() -> None:
    server = RedisServer().start()
    mq = pn.connect(server.url, key_prefix="gone", connect_timeout_s=0.5,
                    command_timeout_s=0.5)
    server.close()
    report = mq.health()
    assert report.status == "critical" and report.exit_code == 2
    assert "unreachable" in str(report)


@pytest.mark.parametrize("field", ["depth_warn", "error_rate_warn"])
def test_thresholds_are_configurable(field: str) -> None:
    assert getattr(HealthThresholds(**{field: 7}), field) == 7


def test_a_registered_health_rule_adds_its_verdicts_and_a_failing_rule_is_a_warning(
        mq: pn.MessageQueue) -> None:
    mq.publish("feed", "t", 1)

    @pn.health_rule("feed freshness")
    def stale_feeds(dep, queues, thresholds):  # type: ignore[no-untyped-def]
        return [pn.HealthCheck("feed freshness", "critical", q, "61 min",
                               "nothing published for an hour") for q in queues if q == "feed"]

    @pn.health_rule("broken rule")
    def broken(dep, queues, thresholds):  # type: ignore[no-untyped-def]
        raise RuntimeError("partner API down")

    try:
        report = mq.health(["feed"])
    finally:
        pn.remove_health_rule("feed freshness")
        pn.remove_health_rule("broken rule")
    assert _status(report, "feed freshness", "feed") == "critical"
    assert report.status == "critical"
    assert _status(report, "broken rule", "rule") == "warn"
    assert not [c for c in mq.health(["feed"]).checks if c.name == "feed freshness"]
