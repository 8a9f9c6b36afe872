"""Partitioned queues: routing by key keeps per-key order, partitions are read fairly with
priority inside each, views aggregate, and repartitioning loses nothing."""

from __future__ import annotations

import threading

import pytest
from redis.crc import key_slot

import phantom_notebook as pn
from phantom_notebook.core.model.routing import (
    SLOTS,
    default_partition_key,
    key_hash,
    partition_names,
)
from tests.support.collect import Collector, eventually


def _part_of(mq: pn.MessageQueue, queue: str, key: str) -> str:
    return mq.layout(queue).route(key_hash(key))


def test_partition_tags_fall_into_equal_slices_of_the_slot_space() -> None:
    for count in (2, 3, 6, 16):
        names = partition_names("ioc-processing", count)
        assert len(set(names)) == count
        for i, name in enumerate(names):
            assert name.startswith(f"ioc-processing#{i}")
            assert i * SLOTS // count <= key_slot(name.encode()) < (i + 1) * SLOTS // count
    assert partition_names("q", 1) == ("q",)
    # pinned: another process computes the same (test_partition_routing.py spawns one)
    assert partition_names("q", 6) == ("q#0.11", "q#1.13", "q#2.12", "q#3.3", "q#4.2", "q#5.1")
    with pytest.raises(pn.ValidationError):
        partition_names("q", 0)


def test_the_default_partition_key_is_the_ioc_value_else_the_message_id() -> None:
    assert default_partition_key({"ioc": {"value": "1.2.3.4", "type": "ip"}}, "m1") == "1.2.3.4"
    assert default_partition_key({"ioc": "evil.example"}, "m1") == "evil.example"
    assert default_partition_key({"other": 1}, "m1") == "m1"
    assert default_partition_key("text", "m1") == "m1"


def test_one_key_always_lands_in_one_partition_and_keeps_its_order(mq: pn.MessageQueue) -> None:
    mq.declare("ioc-processing", kind="priority", partitions=4)
    iocs = [f"198.51.100.{i}" for i in range(12)]
    mq.publish_batch("ioc-processing", [pn.Message("ioc", {"ioc": {"value": v}, "n": n})
                                        for n in range(25) for v in iocs])
    stats = mq.stats(["ioc-processing"])[0]
    assert stats.ready == 300 and mq.queues() == ["ioc-processing"]
    for part in mq.layout("ioc-processing").active:
        assert sum(int(mq.client.xlen(s)) for s in mq.queue_keys(part).streams) > 0
    got = Collector()
    mq.subscribe("ioc-processing", "*", got, prefetch_count=10)
    with mq.worker():
        assert got.wait_for(300)
    for v in iocs:
        seq = [p["n"] for p in got.payloads if p["ioc"]["value"] == v]
        assert seq == list(range(25)), v
    assert {e.queue for e in got.envelopes} == {"ioc-processing"}
    assert eventually(lambda: mq.stats(["ioc-processing"])[0].depth == 0)


def test_every_partition_is_read_fairly_and_priority_holds_inside_each(
        mq: pn.MessageQueue) -> None:
    mq.declare("fair", kind="priority", partitions=3)
    layout = mq.layout("fair")
    keys = {part: next(f"k{i}" for i in range(1000) if _part_of(mq, "fair", f"k{i}") == part)
            for part in layout.active}
    rows = [pn.Message("t", {"p": p, "n": n, "prio": "LOW"}, "LOW", partition_key=k)
            for n in range(60) for p, k in keys.items()]
    rows += [pn.Message("t", {"p": p, "n": -1, "prio": "CRITICAL"}, "CRITICAL", partition_key=k)
             for p, k in keys.items()]
    mq.publish_batch("fair", rows)
    gate = threading.Semaphore(0)
    got = Collector(on_message=lambda env, ctx: gate.acquire(timeout=5))
    mq.subscribe("fair", "*", got, prefetch_count=1)
    with mq.worker():
        for _ in range(40):
            gate.release()
        assert got.wait_for(33)
        # a reader draining one partition at a time would hand out LOW messages of one
        # partition only among the first 33 (3 CRITICAL + 30 LOW)
        early = [p for p in got.payloads[:33] if p["prio"] == "LOW"]
        for _ in range(200):
            gate.release()
        assert got.wait_for(183)
    assert {p["p"] for p in early} == set(layout.active), "no partition waited for another"
    for part in layout.active:
        mine = [p for p in got.payloads if p["p"] == part]
        assert mine[0]["prio"] == "CRITICAL"
        assert [p["n"] for p in mine[1:]] == list(range(60))


def test_depth_and_dead_letters_aggregate_over_partitions(mq: pn.MessageQueue) -> None:
    mq.declare("agg", kind="fifo", partitions=3)

    def reject(env: pn.Envelope, ctx: pn.MessageContext) -> None:
        if env.payload["n"] % 2:
            raise pn.Reject("bad_ioc")

    mq.publish_batch("agg", [pn.Message("t", {"n": n}) for n in range(30)])
    assert mq.stats(["agg"])[0].ready == 30
    mq.subscribe("agg", "*", reject)
    with mq.worker():
        assert eventually(lambda: mq.stats(["agg"])[0].dead == 15)
    dlq = mq.dlq("agg")
    assert len(dlq) == 15 and dlq.count(reason="bad_ioc") == 15
    letters = dlq.list(limit=None)
    assert len(letters) == 15
    parts = {mq.layout("agg").route(key_hash(x.message_id)) for x in letters}
    assert len(parts) > 1, "dead letters come from several partitions"
    assert dlq.summary() == {"bad_ioc": 15}
    one = dlq.get(letters[0].message_id)
    assert one.message_id == letters[0].message_id
    assert mq.stats(["agg"])[0].depth == 0


def test_redeclaring_with_another_partition_count_points_to_repartition(
        mq: pn.MessageQueue) -> None:
    mq.declare("fixed", kind="fifo", partitions=2)
    other = pn.connect(None if mq.embedded else mq.settings.redis.url,
                       key_prefix=mq.keys.prefix, settings=pn.Settings())
    assert other.declare("fixed").partitions == 2
    with pytest.raises(pn.ValidationError, match="repartition"):
        other.declare("fixed", partitions=5)


@pytest.mark.parametrize("start,end", [(1, 4), (4, 6), (6, 2)])
def test_repartitioning_with_messages_in_flight_loses_nothing(
        real_mq: pn.MessageQueue, start: int, end: int) -> None:
    mq = real_mq
    mq.declare("moving", kind="fifo", partitions=start, visibility_timeout_s=5.0)
    mq.publish_batch("moving", [pn.Message("t", {"n": n}) for n in range(400)])
    got = Collector(on_message=lambda env, ctx: threading.Event().wait(0.002))  # work
    mq.subscribe("moving", "*", got, prefetch_count=20)
    produced = list(range(400))
    stop = threading.Event()

    def produce() -> None:
        n = 400
        while not stop.is_set() and n < 1400:
            mq.publish("moving", "t", {"n": n})
            produced.append(n)
            n += 1
            stop.wait(0.0005)  # pace the producer; returns at once when told to stop

    producer = threading.Thread(target=produce)
    with mq.worker():
        producer.start()
        assert got.wait_for(100)
        report = mq.repartition("moving", end)
        assert mq.layout("moving", fresh=True).count == end
        stop.set()
        producer.join()
        assert eventually(lambda: {p["n"] for p in got.payloads} >= set(produced),
                          timeout_s=30)
    print(f"\nrepartition {start}->{end}: moved {report.moved} not-yet-delivered messages, "
          f"{report.left_to_drain} left to drain in the old partitions")
    assert sorted({p["n"] for p in got.payloads}) == sorted(produced)
    assert eventually(lambda: mq.stats(["moving"])[0].depth == 0)
    assert report.moved > 0


def test_health_of_a_partitioned_queue_counts_every_partition(real_mq: pn.MessageQueue) -> None:
    real_mq.declare("parted-health", partitions=3)

    def reject_odd(message: pn.Envelope, context: pn.MessageContext) -> None:
        if message.payload % 2:
            raise pn.Reject("bad")

    real_mq.subscribe("parted-health", "*", reject_odd)
    real_mq.publish_batch("parted-health", [pn.Message("t", i, partition_key=str(i))
                                            for i in range(20)])
    with real_mq.worker():
        assert eventually(lambda: real_mq.stats(["parted-health"])[0].dead == 10)
    report = real_mq.health(["parted-health"])
    rate = next(c for c in report.checks if c.name == "error rate")
    assert rate.value == "50.0%" and rate.status == "critical"
