"""Retries with backoff, TTL, bounded queues, dedup under concurrency, circuit breakers."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import phantom_notebook as pn
from phantom_notebook.core.consume.breaker import CircuitBreaker
from tests.support.collect import Collector, eventually

ROOT = Path(__file__).resolve().parents[3]
FAST_RETRY = pn.RetrySettings(max_retries=3, backoff_strategy="exponential",
                              initial_delay_s=0.1, multiplier=2.0, jitter=0.0)


def test_a_handler_failing_twice_then_succeeding_is_processed_once_after_backoff(
        mq: pn.MessageQueue) -> None:
    calls: list[tuple[int, float]] = []

    def flaky(message: pn.Envelope, context: pn.MessageContext) -> None:
        import time

        calls.append((context.attempt, time.monotonic()))
        if context.attempt <= 2:
            raise ConnectionError("enrichment provider timed out")

    done = Collector(flaky)
    mq.subscribe("enrich", "*", done, retry=FAST_RETRY)
    mq.publish("enrich", "ioc.enrichment.request", {"ioc": "203.0.113.9"})
    with mq.worker():
        assert eventually(lambda: len(calls) == 3 and done.envelopes != [], timeout_s=10)
        assert eventually(lambda: mq.stats(["enrich"])[0].depth == 0)
    assert [a for a, _ in calls] == [1, 2, 3]
    gaps = [b - a for (_, a), (_, b) in zip(calls, calls[1:], strict=False)]
    for gap, expected in zip(gaps, [0.1, 0.2], strict=True):
        # due times are whole milliseconds: allow 2 ms of rounding, never more
        assert expected - 0.002 <= gap < expected + 0.25, (gaps, "backoff follows the policy")
    assert len(done.envelopes) == 1 and done.envelopes[0].attempt == 3


@pytest.mark.parametrize("kind", ["priority", "broadcast"])
def test_retries_are_counted_in_metrics_and_worker_stats_for_every_stored_kind(
        mq: pn.MessageQueue, kind: str) -> None:
    mq.declare("counted", kind=kind)
    attempts: list[int] = []

    def flaky(message: pn.Envelope, context: pn.MessageContext) -> None:
        attempts.append(context.attempt)
        if context.attempt <= 2:
            raise ConnectionError("enrichment provider timed out")

    done = Collector(flaky)
    mq.subscribe("counted", "*", done, group="g", retry=FAST_RETRY)
    with mq.worker() as worker:  # a broadcast group reads what is published once it exists
        mq.publish("counted", "ioc.enrichment.request", {"ioc": "203.0.113.9"})
        assert done.wait_for(1, timeout_s=10)
        assert eventually(lambda: _metric(mq, "counted", "acked") == 1)
        assert worker.stats.retried == 2
    assert attempts == [1, 2, 3]
    assert _metric(mq, "counted", "retried") == 2


@pytest.mark.parametrize(("strategy", "expected"), [
    ("fixed", [1.0, 1.0, 1.0, 1.0]),
    ("linear", [1.0, 2.0, 3.0, 4.0]),
    ("exponential", [1.0, 2.0, 4.0, 5.0]),  # capped by max_delay_s
])
def test_backoff_strategies_follow_their_formula_and_cap(strategy: str,
                                                         expected: list[float]) -> None:
    from phantom_notebook.core.model.policies import RetryPolicy

    policy = RetryPolicy(pn.RetrySettings(backoff_strategy=strategy,  # type: ignore[arg-type]
                                          initial_delay_s=1.0, max_delay_s=5.0, jitter=0.0))
    assert [policy.delay_s(a) for a in range(1, 5)] == expected


def test_jitter_spreads_delays_within_its_fraction() -> None:
    import random

    from phantom_notebook.core.model.policies import RetryPolicy

    policy = RetryPolicy(pn.RetrySettings(initial_delay_s=1.0, jitter=0.2))
    rng = random.Random(1)
    delays = [policy.delay_s(1, rng) for _ in range(500)]
    assert 0.8 <= min(delays) < 0.85 and 1.15 < max(delays) <= 1.2


def test_an_always_failing_message_is_dead_lettered_after_max_retries_plus_one_attempts(
        mq: pn.MessageQueue) -> None:
    attempts: list[int] = []

    def broken(message: pn.Envelope, context: pn.MessageContext) -> None:
        attempts.append(context.attempt)
        raise ValueError("parser cannot read this feed")

    mq.subscribe("feeds", "*", broken, retry=pn.RetrySettings(
        max_retries=2, initial_delay_s=0.01, jitter=0.0))
    mq.publish("feeds", "data.ingestion.request", {"feed": "x"})
    with mq.worker():
        assert eventually(lambda: mq.stats(["feeds"])[0].dead == 1)
    assert attempts == [1, 2, 3]
    entry = mq.client.xrange(mq.queue_keys("feeds").dlq)[0][1]
    assert entry[b"reason"] == b"retries_exhausted"
    assert entry[b"error_type"] == b"ValueError"
    assert b"parser cannot read this feed" in entry[b"traceback"]
    assert entry[b"attempts"] == b"3"


def test_a_retry_waiting_for_its_backoff_holds_no_worker_slot(mq: pn.MessageQueue) -> None:
    order: list[str] = []

    def handler(message: pn.Envelope, context: pn.MessageContext) -> None:
        order.append(f"{message.payload}:{context.attempt}")
        if message.payload == "slow-retry" and context.attempt == 1:
            raise pn.Retry("try again later", delay_s=0.5)

    got = Collector(handler)
    mq.subscribe("slots", "*", got, prefetch_count=1)
    mq.publish("slots", "t", "slow-retry")
    mq.publish_batch("slots", [("t", f"m{i}") for i in range(5)])
    with mq.worker():
        assert got.wait_for(6)
    assert order[0] == "slow-retry:1" and order[-1] == "slow-retry:2"


def test_a_non_retryable_exception_class_is_dead_lettered_at_once(mq: pn.MessageQueue) -> None:
    calls = []

    def handler(message: pn.Envelope, context: pn.MessageContext) -> None:
        calls.append(1)
        raise KeyError("schema field missing")

    mq.subscribe("strict", "*", handler, non_retryable=(KeyError,))
    mq.publish("strict", "t", {})
    with mq.worker():
        assert eventually(lambda: mq.stats(["strict"])[0].dead == 1)
    assert len(calls) == 1
    assert mq.client.xrange(mq.queue_keys("strict").dlq)[0][1][b"reason"] == b"non_retryable"


def test_expired_messages_never_reach_a_handler_and_are_counted(mq: pn.MessageQueue) -> None:
    mq.declare("ttl", message_ttl_s=0.05)
    mq.publish("ttl", "t", "queue ttl")
    mq.publish("ttl", "t", "message ttl", ttl_s=0.05)
    mq.publish("ttl", "t", "fresh", ttl_s=60)
    assert eventually(lambda: _now_ms() > _created(mq, "ttl") + 100, timeout_s=2)
    got = Collector()
    mq.subscribe("ttl", "*", got)
    with mq.worker():
        assert got.wait_for(1)
        assert eventually(lambda: mq.stats(["ttl"])[0].dead == 2)
    assert got.payloads == ["fresh"]
    reasons = {e[1][b"reason"] for e in mq.client.xrange(mq.queue_keys("ttl").dlq)}
    assert reasons == {b"expired"}
    assert _metric(mq, "ttl", "expired") == 2


def test_expired_messages_can_be_dropped_instead(mq: pn.MessageQueue) -> None:
    mq.declare("ttl-drop", message_ttl_s=0.05, expired_action="drop")
    mq.publish("ttl-drop", "t", "old")
    assert eventually(lambda: _now_ms() > _created(mq, "ttl-drop") + 100, timeout_s=2)
    mq.publish("ttl-drop", "t", "new", ttl_s=60)
    got = Collector()
    mq.subscribe("ttl-drop", "*", got)
    with mq.worker():
        assert got.wait_for(1)
        assert eventually(lambda: mq.stats(["ttl-drop"])[0].depth == 0)
    assert got.payloads == ["new"] and mq.stats(["ttl-drop"])[0].dead == 0
    assert _metric(mq, "ttl-drop", "expired") == 1


def test_a_full_queue_refuses_then_accepts_once_consumers_make_room(mq: pn.MessageQueue) -> None:
    mq.declare("bounded", max_queue_size=10)
    mq.publish_batch("bounded", [("t", i) for i in range(10)])
    with pytest.raises(pn.QueueFullError, match="10 messages queued, max_queue_size is 10"):
        mq.publish("bounded", "t", "one too many")
    assert mq.stats(["bounded"])[0].depth == 10
    mq.subscribe("bounded", "*", Collector())
    with mq.worker():
        mid = mq.publish("bounded", "t", "waited", wait_s=10)
    assert mid


def test_concurrent_duplicate_publishes_from_four_processes_write_one_message(
        real_mq: pn.MessageQueue, redis_url: str, prefix: str) -> None:
    code = (
        "import sys, phantom_notebook as pn;"
        f"mq = pn.connect({redis_url!r}, key_prefix={prefix!r});"
        "ids = {mq.publish('dedup', 'ioc.validation.request', {'ioc': i % 5},"
        " dedup_key=f'ioc-{i % 5}') for i in range(200)};"
        "print(','.join(sorted(ids)))")
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True) for _ in range(4)]
    outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(outputs)) == 1, "every process learned the same first ids"
    assert len(outputs[0].split(",")) == 5
    assert real_mq.stats(["dedup"])[0].depth == 5
    assert _metric(real_mq, "dedup", "deduplicated") == 4 * 200 - 5


def test_content_hash_dedup_suppresses_identical_payloads_within_the_window(
        mq: pn.MessageQueue) -> None:
    mq.declare("hashed", enable_deduplication=True, deduplication_window_s=60)
    first = mq.publish("hashed", "ioc.enrichment.request", {"ioc": "evil.example"})
    again = mq.publish("hashed", "ioc.enrichment.request", {"ioc": "evil.example"})
    other = mq.publish("hashed", "ioc.enrichment.request", {"ioc": "other.example"})
    assert again == first and other != first
    assert mq.stats(["hashed"])[0].depth == 2


def test_idempotent_handlers_skip_work_already_done(mq: pn.MessageQueue) -> None:
    work: list[str] = []
    handler = pn.idempotent(lambda m, c: work.append(m.payload), ttl_s=60)
    mq.declare("idem", kind="broadcast")
    got = Collector(lambda m, c: handler(m, c))
    mq.subscribe("idem", "*", got, group="g")
    with mq.worker() as worker:
        mid = mq.publish("idem", "t", "once")
        assert got.wait_for(1)
        lane = worker.lanes[0]
        ctx = pn.MessageContext(got.envelopes[0], _delivery(mid), lane)  # type: ignore[arg-type]
        handler(got.envelopes[0], ctx)  # a redelivery of the same message
    assert work == ["once"]


def test_the_breaker_opens_keeps_messages_queued_probes_and_closes(mq: pn.MessageQueue) -> None:
    downstream_up = threading.Event()
    calls: list[bool] = []

    def handler(message: pn.Envelope, context: pn.MessageContext) -> None:
        calls.append(downstream_up.is_set())
        if not downstream_up.is_set():
            raise ConnectionError("threat-intel platform unreachable")

    breaker = pn.BreakerSettings(enabled=True, failure_threshold=3, minimum_calls=3,
                                 recovery_timeout_s=1.5, monitoring_period_s=10,
                                 half_open_max_calls=2)
    got = Collector(handler)
    mq.subscribe("guarded", "*", got, breaker=breaker, prefetch_count=1,
                 retry=pn.RetrySettings(max_retries=20, initial_delay_s=0.01, jitter=0))
    mq.publish_batch("guarded", [("t", i) for i in range(20)])
    with mq.worker() as worker:
        cb = worker.lanes[0].breaker.breaker  # type: ignore[union-attr]
        assert eventually(lambda: cb.state == "open", timeout_s=5)
        failures_when_opened = len(calls)
        assert failures_when_opened == 3
        stats = mq.stats(["guarded"])[0]
        assert stats.depth == 20 and stats.dead == 0, "messages wait; none burned into the DLQ"
        stored = mq.client.hgetall(mq.queue_keys("guarded").breakers)
        assert any(b'"open"' in v for v in stored.values())
        downstream_up.set()
        assert got.wait_for(20, timeout_s=10)
        assert cb.state == "closed"
    assert calls[:3] == [False, False, False]
    assert all(calls[3:]), "nothing ran while open; the probes after recovery succeeded"


def _breaker(now: list[float], **settings: Any) -> CircuitBreaker:
    return CircuitBreaker(pn.BreakerSettings(enabled=True, **settings), clock=lambda: now[0])


def test_a_half_open_breaker_lets_only_the_configured_probes_through() -> None:
    now = [0.0]
    cb = _breaker(now, failure_threshold=2, minimum_calls=2, recovery_timeout_s=5,
                  monitoring_period_s=60, half_open_max_calls=3)
    cb.record(False)
    cb.record(False)
    assert cb.state == "open" and cb.permits() == 0
    now[0] = 5.0
    assert cb.permits() == 3 and cb.state == "half_open"
    cb.started(3)
    assert cb.permits() == 0
    cb.record(True)
    cb.record(False)
    assert cb.state == "open"
    now[0] = 10.0
    assert cb.permits() == 3
    cb.started(3)
    for _ in range(3):
        cb.record(True)
    assert cb.state == "closed" and cb.permits() is None


def test_the_breaker_opens_on_the_failure_rate_only_once_the_window_holds_enough_calls() -> None:
    now = [0.0]
    cb = _breaker(now, failure_threshold=3, failure_rate_threshold=0.5, minimum_calls=10)
    for _ in range(5):
        cb.record(False)
    assert cb.state == "closed", "5 failures but fewer than minimum_calls calls"
    for _ in range(4):
        cb.record(True)
    assert cb.state == "closed", "9 calls: still under minimum_calls"
    cb.record(True)
    assert cb.state == "closed", "5 of 10 failed, but the last call succeeded"
    cb.record(False)
    assert cb.state == "open", "6 of 11 failed: over the 50 % rate with enough calls"


def test_a_failure_rate_under_the_threshold_never_opens_the_breaker() -> None:
    now = [0.0]
    cb = _breaker(now, failure_threshold=5, failure_rate_threshold=0.5, minimum_calls=20)
    for i in range(2000):
        now[0] = i / 100  # 100 calls a second over 20 s
        cb.record(i % 100 != 0)  # 1 % poison
    assert cb.state == "closed" and cb.transitions == 0


def test_a_disabled_breaker_never_opens() -> None:
    cb = CircuitBreaker(pn.BreakerSettings(enabled=False, failure_threshold=1, minimum_calls=1))
    for _ in range(10):
        cb.record(False)
    assert cb.state == "closed" and cb.permits() is None


def test_a_new_subscription_has_no_breaker_unless_configured() -> None:
    assert pn.BreakerSettings().enabled is False


def test_failures_outside_the_monitoring_period_do_not_open_the_breaker() -> None:
    now = [0.0]
    cb = _breaker(now, failure_threshold=3, minimum_calls=3, monitoring_period_s=10)
    for t in (0.0, 6.0, 12.0, 18.0):
        now[0] = t
        cb.record(False)
    assert cb.state == "closed"


@pytest.mark.parametrize(("attempt", "deliveries", "error", "counted"), [
    pytest.param(1, 1, ConnectionError("down"), True, id="a fresh failure counts"),
    pytest.param(1, 1, None, True, id="a fresh success counts"),
    pytest.param(1, 1, pn.Reject("bad indicator"), False, id="a rejection does not"),
    pytest.param(2, 1, ConnectionError("down"), False, id="a retry does not"),
    pytest.param(1, 3, ConnectionError("down"), False, id="a redelivered (poison) one does not"),
])
def test_only_fresh_outcomes_that_speak_of_the_downstream_count(
        attempt: int, deliveries: int, error: BaseException | None, counted: bool) -> None:
    from types import SimpleNamespace

    from phantom_notebook.core.consume.breaker import counts

    ctx = SimpleNamespace(envelope=SimpleNamespace(attempt=attempt),
                          delivery=SimpleNamespace(delivery_count=deliveries))
    assert counts(error, ctx) is counted  # type: ignore[arg-type]


def _now_ms() -> int:
    from phantom_notebook.core.model.envelope import now_ms

    return now_ms()


def _created(mq: pn.MessageQueue, queue: str) -> int:
    return int(mq.client.hget(mq.queue_keys(queue).meta, "created_ms"))


def _metric(mq: pn.MessageQueue, queue: str, field: str) -> int:
    keys = mq.client.keys(mq.queue_keys(queue).base.replace("{", "[{]") + ":m:*")
    return sum(int(mq.client.hget(k, field) or 0) for k in keys)


def _delivery(stream_id: str) -> object:
    from phantom_notebook.core.backend.functions import Delivery

    return Delivery(2, stream_id, b"", 2)
