"""Each queue kind keeps its ordering, priority, delay and fan-out promises."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

import phantom_notebook as pn
from tests.support.collect import Collector, eventually


def test_fifo_queue_delivers_in_publish_order(mq: pn.MessageQueue) -> None:
    mq.declare("feed", kind="fifo")
    mq.publish_batch("feed", [("ioc.x", i, "LOW" if i % 2 else "CRITICAL") for i in range(200)])
    got = Collector()
    mq.subscribe("feed", "*", got, prefetch_count=7)
    with mq.worker():
        assert got.wait_for(200)
    assert got.payloads == list(range(200))


def test_priority_queue_delivers_critical_before_high_before_normal_before_low(
        mq: pn.MessageQueue) -> None:
    order = ["LOW", "NORMAL", "HIGH", "CRITICAL"]
    mq.publish_batch("triage", [("t", f"{p}-{i}", p) for i in range(3) for p in order])
    got = Collector()
    mq.subscribe("triage", "*", got)
    with mq.worker():
        assert got.wait_for(12)
    expected = [f"{p}-{i}" for p in reversed(order) for i in range(3)]
    assert got.payloads == expected


def test_critical_message_behind_100k_low_messages_is_delivered_next(
        real_mq: pn.MessageQueue) -> None:
    real_mq.declare("backlog", kind="priority", max_queue_size=200_000)
    batch = [pn.Message("bulk", {"n": i}, "LOW") for i in range(1000)]
    for _ in range(100):
        real_mq.publish_batch("backlog", batch)
    real_mq.publish("backlog", "urgent", {"n": -1}, priority="CRITICAL")
    got = Collector()
    real_mq.subscribe("backlog", "*", got, prefetch_count=1)
    worker = real_mq.worker().start()
    try:
        assert got.wait_for(1)
    finally:
        worker.stop()
    assert got.envelopes[0].type == "urgent"


def test_delayed_message_is_never_early_and_arrives_within_100ms(mq: pn.MessageQueue) -> None:
    mq.declare("later", kind="delayed")
    got = Collector()
    mq.subscribe("later", "*", got)
    with mq.worker():
        sent_ms = time.time() * 1000
        mq.publish("later", "reminder", "soon", delay=timedelta(milliseconds=400))
        due = sent_ms + 400
        mq.publish("later", "reminder", "at", deliver_at=datetime.now(UTC) + timedelta(
            milliseconds=300))
        assert got.wait_for(2, timeout_s=5)
    arrivals = dict(zip(got.payloads, got.received_ms, strict=True))
    assert arrivals["soon"] >= due
    assert arrivals["soon"] - due < 100


def test_two_promoters_never_deliver_a_delayed_message_twice(mq: pn.MessageQueue) -> None:
    mq.declare("promote", kind="delayed")
    due = datetime.now(UTC) + timedelta(milliseconds=300)
    mq.publish_batch("promote", [pn.Message("t", i, deliver_at=due) for i in range(300)])
    got = Collector()
    mq.subscribe("promote", "*", got, prefetch_count=10)
    first, second = mq.worker(name="a").start(), mq.worker(name="b").start()
    try:
        assert got.wait_for(300, timeout_s=10)
        assert eventually(lambda: mq.stats(["promote"])[0].depth == 0)
    finally:
        first.stop()
        second.stop()
    assert sorted(got.payloads) == list(range(300))


def test_pubsub_reaches_current_subscribers_by_topic_pattern(mq: pn.MessageQueue) -> None:
    mq.declare("live", kind="pubsub")
    mq.publish("live", "alert.before", "nobody listening yet")
    alerts, everything = Collector(), Collector()
    mq.subscribe("live", "alert.*", alerts)
    mq.subscribe("live", "*", everything)
    worker = mq.worker().start()
    try:
        assert all(lane.wait_ready() for lane in worker.lanes)  # type: ignore[attr-defined]
        mq.publish("live", "alert.threat.notification", "a1")
        mq.publish("live", "system.health.check", "s1")
        assert everything.wait_for(2) and alerts.wait_for(1)
    finally:
        worker.stop()
    assert alerts.payloads == ["a1"]
    assert sorted(everything.payloads) == ["a1", "s1"]


def test_broadcast_gives_every_group_every_message_even_while_a_group_is_down(
        mq: pn.MessageQueue) -> None:
    mq.declare("fanout", kind="broadcast")
    soc, sirt = Collector(), Collector()
    mq.subscribe("fanout", "*", soc, group="soc")
    down = mq.subscribe("fanout", "*", sirt, group="sirt")
    mq.ensure_group("fanout", "sirt")  # the group exists; its workers are down
    mq._subscriptions.remove(down)
    with mq.worker():
        mq.publish_batch("fanout", [("alert", i) for i in range(50)])
        assert soc.wait_for(50)
    later = pn.connect(None if mq.embedded else mq.settings.redis.url,
                       key_prefix=mq.keys.prefix, settings=pn.Settings())
    later.subscribe("fanout", "*", sirt, group="sirt")
    with later.worker():
        assert sirt.wait_for(50)
    assert sorted(soc.payloads) == sorted(sirt.payloads) == list(range(50))


def test_unknown_queue_kind_is_refused(mq: pn.MessageQueue) -> None:
    with pytest.raises(pn.UnknownQueueKindError, match="unknown queue kind 'lifo'"):
        mq.declare("q", kind="lifo")


def test_redeclaring_a_queue_with_another_kind_is_refused(mq: pn.MessageQueue) -> None:
    mq.declare("fixed", kind="fifo")
    other = pn.connect(None if mq.embedded else mq.settings.redis.url,
                       key_prefix=mq.keys.prefix, settings=pn.Settings())
    with pytest.raises(pn.ValidationError, match="exists with kind 'fifo'"):
        other.declare("fixed", kind="broadcast")


def test_a_critical_message_jumps_into_a_batch_of_low_ones_already_fetched(
        real_mq: pn.MessageQueue) -> None:
    import threading

    real_mq.declare("busy", kind="priority")
    real_mq.publish_batch("busy", [pn.Message("bulk", i, "LOW") for i in range(100)])
    fifth_started = threading.Event()

    def slow(message: pn.Envelope, context: pn.MessageContext) -> None:
        if message.payload == 4:
            fifth_started.set()
        threading.Event().wait(0.005)  # simulated work: 100 x 5 ms = a 0.5 s batch

    got = Collector(slow)
    real_mq.subscribe("busy", "*", got, prefetch_count=100)
    with real_mq.worker(priority_latency_ms=2.0):
        assert fifth_started.wait(10)
        real_mq.publish("busy", "urgent", "now", priority="CRITICAL")
        assert got.wait_for(101)
    position = got.payloads.index("now")
    assert position < 12, f"CRITICAL handled after {position} LOW messages of the batch"
