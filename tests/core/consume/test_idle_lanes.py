"""An idle lane costs (almost) nothing: it blocks on its streams and the wake-up stream
instead of probing in a loop, yet wakes at once for a new message, a delayed one that
becomes due, a pause, or a stop. Measured on a redis-server only these tests use."""

from __future__ import annotations

import time
from typing import Any

import pytest

import phantom_notebook as pn
from phantom_notebook.core.testing import wait_until
from tests.support.redis_server import RedisServer

QUEUES = ("idle-a", "idle-b", "idle-c", "idle-d")


@pytest.fixture
def quiet(own_server: RedisServer, prefix: str) -> Any:
    mq = pn.connect(own_server.url, key_prefix=prefix, settings=pn.Settings())
    yield mq
    mq.close()


def _calls(mq: pn.MessageQueue) -> dict[str, int]:
    return {k.removeprefix("cmdstat_"): int(v["calls"])
            for k, v in mq.client.info("commandstats").items()}


def test_four_idle_lanes_make_a_handful_of_redis_calls_in_three_seconds(
        quiet: pn.MessageQueue) -> None:
    seen: list[Any] = []
    for q in QUEUES:
        quiet.subscribe(q, "*", seen.append)
    with quiet.worker() as worker:
        lanes = worker.lanes
        assert wait_until(lambda: all(x.fetch_cycles >= 1 for x in lanes), timeout_s=5)
        time.sleep(0.5)  # past the first fetch of each lane, into its idle rhythm
        quiet.client.config_resetstat()
        time.sleep(3.0)  # the measurement window
        calls = _calls(quiet)
    per_lane_s = {c: n / len(QUEUES) / 3.0 for c, n in calls.items()}
    # no fetch call while nothing is due and no reclaim is (one lane per queue and group per
    # visibility timeout / 4), and at most one blocking read per lane in these 3 s (a read
    # lasts IDLE_BLOCK_MS, 5 s); before, each idle lane fetched ~20 times a second
    assert per_lane_s.get("fcall", 0) == 0, calls
    assert calls.get("xreadgroup", 0) <= len(QUEUES), calls
    assert sum(calls.values()) <= 3 * len(QUEUES) + 10, calls  # the keeper's few reads


def test_a_critical_message_to_an_idle_queue_wakes_its_blocked_lane_at_once(
        quiet: pn.MessageQueue) -> None:
    got: list[float] = []
    quiet.subscribe("idle-a", "*", lambda env: got.append(time.monotonic()))
    with quiet.worker() as worker:
        [lane] = worker.lanes
        assert wait_until(lambda: lane.fetch_cycles >= 1, timeout_s=5)
        time.sleep(0.2)  # the lane is in its blocking read now
        sent = time.monotonic()
        quiet.publish("idle-a", "alert.threat.notification", {}, priority="CRITICAL")
        assert wait_until(lambda: bool(got), timeout_s=5)
    assert got[0] - sent < 0.25  # long before the 5 s blocking read would have ended


def test_a_delayed_message_published_to_an_idle_queue_is_delivered_when_due(
        quiet: pn.MessageQueue) -> None:
    got: list[float] = []
    quiet.subscribe("idle-a", "*", lambda env: got.append(time.time()))
    with quiet.worker() as worker:
        [lane] = worker.lanes
        assert wait_until(lambda: lane.fetch_cycles >= 1, timeout_s=5)
        time.sleep(0.2)
        due = time.time() + 0.3
        quiet.publish("idle-a", "ioc.enrichment.request", {}, delay=0.3)
        assert wait_until(lambda: bool(got), timeout_s=5)
    # never early; late by at most Redis' timer granularity (hz 10: 100 ms), not by the
    # lane's 5 s blocking read: the publish woke it to learn the due time
    assert due <= got[0] < due + 0.25


def test_pausing_an_idle_queue_reaches_its_blocked_lane_before_the_next_message(
        quiet: pn.MessageQueue) -> None:
    got: list[Any] = []
    quiet.subscribe("idle-a", "*", got.append)
    with quiet.worker() as worker:
        [lane] = worker.lanes
        assert wait_until(lambda: lane.fetch_cycles >= 1, timeout_s=5)
        time.sleep(0.2)
        quiet.pause("idle-a")
        assert wait_until(lambda: lane.throttled == 1, timeout_s=0.5)  # woken, not after 5 s
        quiet.publish("idle-a", "ioc.enrichment.request", {})
        cycles = lane.fetch_cycles
        assert wait_until(lambda: lane.fetch_cycles >= cycles + 2, timeout_s=5)
        assert got == []
        quiet.resume("idle-a")
        assert wait_until(lambda: len(got) == 1, timeout_s=5)


def test_stopping_an_idle_worker_does_not_wait_for_its_blocking_reads(
        quiet: pn.MessageQueue) -> None:
    for q in QUEUES:
        quiet.subscribe(q, "*", lambda env: None)
    worker = quiet.worker().start()
    assert wait_until(lambda: all(x.fetch_cycles >= 1 for x in worker.lanes), timeout_s=5)
    time.sleep(0.2)  # every lane is in a 5 s blocking read
    started = time.monotonic()
    worker.stop()
    assert time.monotonic() - started < 0.5


def test_an_idle_worker_takes_over_a_sigkilled_workers_message_within_a_reclaim_window(
        own_server: RedisServer, prefix: str) -> None:
    from tests.support.worker_process import WorkerProcess, recorded

    mq = pn.connect(own_server.url, key_prefix=prefix, settings=pn.Settings())
    mq.declare("takeover", visibility_timeout_s=1.0)
    mid = mq.publish("takeover", "ioc.enrichment.request", {"work_ms": 60_000})
    holder = WorkerProcess(own_server.url, prefix, "takeover", concurrency=1, prefetch=1,
                           visibility_timeout_s=1.0)
    try:
        assert wait_until(lambda: recorded(mq, prefix, "started") == [f"{mid}:1"],
                          timeout_s=30), holder.output()
        got: list[tuple[str, int, float]] = []
        mq.subscribe("takeover", "*",
                     lambda env, ctx: got.append((env.id, ctx.delivery_count, time.monotonic())))
        with mq.worker():  # idle: the only message is held by the other worker
            time.sleep(0.3)
            holder.kill()
            killed = time.monotonic()
            assert wait_until(lambda: bool(got), timeout_s=10)
        (taken, count, at) = got[0]
        # reclaimable once idle for the visibility timeout (1 s since the first delivery),
        # then at the next reclaim window (1 s / 4) of the idle lanes
        assert (taken, count) == (mid, 2)
        assert at - killed < 1.0 + 0.25 + 1.0
    finally:
        holder.close()
        mq.close()


def test_a_reclaim_window_key_pinned_without_expiry_does_not_stop_reclaims(
        own_server: RedisServer, prefix: str) -> None:
    """Any user with the consume grant may SET the window key; one set without PX (by a
    tampering consumer) would have stopped every reclaim of the group for good."""
    mq = pn.connect(own_server.url, key_prefix=prefix, settings=pn.Settings())
    mq.declare("pinned", visibility_timeout_s=1.0)
    mq.ensure_group("pinned")
    mid = mq.publish("pinned", "ioc.enrichment.request", {})
    keys = mq.queue_keys("pinned")
    mq.client.xreadgroup("workers", "crashed", {keys.stream(2): ">"}, count=1)  # then dies
    mq.client.set(keys.reclaim("workers"), "attacker")  # no expiry
    got: list[str] = []
    mq.subscribe("pinned", "*", lambda env: got.append(env.id))
    with mq.worker():
        assert wait_until(lambda: got == [mid], timeout_s=5)
    assert mq.client.pttl(keys.reclaim("workers")) != -1  # expires (or has): no longer pinned
    mq.close()
