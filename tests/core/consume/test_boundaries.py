"""Consume-side limits exactly at the boundary and one past it, driven through the function
wrappers with explicit clocks: delayed promotion, max deliveries, late settles, leases,
rate limits, replay claims (issue #22: tests that fail when the Lua is wrong)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import phantom_notebook as pn
from phantom_notebook.core.backend.functions import seen_keys
from phantom_notebook.core.backend.records import (
    AckRecord,
    DeadRecord,
    Delivery,
    FetchResult,
    FlowControl,
    ResultRecord,
    RetryRecord,
    Settlement,
)
from phantom_notebook.core.model.envelope import now_ms
from phantom_notebook.core.observe.metrics import metrics_key

GROUP = "g"
IDLE_MS = 30_000  # the reclaim idle time these tests fetch with


def _fetch(mq: pn.MessageQueue, queue: str, now: int, *, consumer: str = "c1", count: int = 10,
           reclaim: bool = False, max_deliveries: int = 5,
           flow: FlowControl | None = None) -> FetchResult:
    keys = mq.queue_keys(queue)
    return mq.functions.fetch(keys, metrics_key(keys, now), group=GROUP, consumer=consumer,
                              count=count, now_ms=now, reclaim_idle_ms=IDLE_MS if reclaim else 0,
                              max_deliveries=max_deliveries, levels="0123", metrics_ttl_s=0,
                              delete=True, flow=flow)


def _settle(mq: pn.MessageQueue, queue: str, batch: Settlement, now: int, consumer: str,
            track_running: bool = False) -> list[int]:
    keys = mq.queue_keys(queue)
    reply = mq.functions.settle(keys, metrics_key(keys, now), batch, group=GROUP, delete=True,
                                now_ms=now, metrics_ttl_s=0, consumer=consumer,
                                track_running=track_running)
    return [int(x) for x in reply]


def _lapse(mq: pn.MessageQueue, queue: str, d: Delivery, deliveries: int | None = None) -> None:
    """The worker holding ``d`` went quiet: its entry idles past the reclaim time (and,
    given ``deliveries``, was delivered that many times)."""
    stream = mq.queue_keys(queue).stream(d.level)
    if deliveries is None:
        mq.client.xclaim(stream, GROUP, "c1", 0, [d.stream_id], idle=2 * IDLE_MS, justid=True)
    else:
        mq.client.xclaim(stream, GROUP, "c1", 0, [d.stream_id], idle=2 * IDLE_MS,
                         retrycount=deliveries, justid=True)


def _ids(mq: pn.MessageQueue, result: FetchResult) -> list[str]:
    return [mq.codec.open(d.raw).id for d in result.deliveries]


def _due_ms(mq: pn.MessageQueue, queue: str) -> int:
    [(_, due)] = mq.client.zrange(mq.queue_keys(queue).delayed, 0, -1, withscores=True)
    return int(due)


# -- delayed messages: never early ------------------------------------------------------------

def test_a_delayed_message_is_not_promoted_one_millisecond_before_it_is_due(
        mq: pn.MessageQueue) -> None:
    mq.declare("later", kind="delayed")
    mq.ensure_group("later", GROUP)
    mid = mq.publish("later", "reminder", "soon", delay=timedelta(hours=1))
    due = _due_ms(mq, "later")

    early = _fetch(mq, "later", due - 1)
    assert (early.deliveries, early.next_due_ms) == ([], due)
    assert _ids(mq, _fetch(mq, "later", due)) == [mid]
    assert mq.client.zcard(mq.queue_keys("later").delayed) == 0
    assert _fetch(mq, "later", due + 1).deliveries == [], "promoted once"


def test_a_deliver_at_message_is_promoted_exactly_at_its_rounded_up_due_ms(
        mq: pn.MessageQueue) -> None:
    mq.declare("later", kind="delayed")
    mq.ensure_group("later", GROUP)
    whole_s = int(datetime.now(UTC).timestamp()) + 3600
    at = datetime.fromtimestamp(whole_s, UTC) + timedelta(microseconds=250_500)  # .2505 s
    mid = mq.publish("later", "reminder", "at", deliver_at=at)
    due = _due_ms(mq, "later")
    assert due == whole_s * 1000 + 251, "250.5 ms rounds up: never due before deliver_at"

    assert _fetch(mq, "later", due - 1).deliveries == []
    assert _ids(mq, _fetch(mq, "later", due)) == [mid]


def test_a_delayed_message_is_promoted_into_its_own_priority_level(mq: pn.MessageQueue) -> None:
    mq.declare("later-prio", kind="priority")
    mq.ensure_group("later-prio", GROUP)
    at = datetime.now(UTC) + timedelta(hours=1)
    for p in pn.MessagePriority:
        mq.publish("later-prio", "t", p.name, priority=p, deliver_at=at)
    got = _fetch(mq, "later-prio", int(at.timestamp() * 1000) + 1)
    assert [(d.level, mq.codec.open(d.raw).payload) for d in got.deliveries] == \
        [(p.value, p.name) for p in pn.MessagePriority]


# -- max deliveries ---------------------------------------------------------------------------

def test_a_delivery_at_max_deliveries_is_handed_out_and_one_past_it_is_dead_lettered(
        mq: pn.MessageQueue) -> None:
    mq.declare("poison", max_deliveries=3)
    mq.ensure_group("poison", GROUP)
    mid = mq.publish("poison", "t", "kills its worker")
    keys = mq.queue_keys("poison")
    now = now_ms()
    [first] = _fetch(mq, "poison", now, max_deliveries=3).deliveries
    assert first.delivery_count == 1
    stream = keys.stream(first.level)

    _lapse(mq, "poison", first, deliveries=2)  # two more workers died holding it
    at_limit = _fetch(mq, "poison", now, consumer="c2", reclaim=True, max_deliveries=3)
    assert [(d.stream_id, d.delivery_count) for d in at_limit.deliveries] == \
        [(first.stream_id, 3)]
    assert at_limit.dead_lettered == 0 and mq.client.xlen(keys.dlq) == 0

    _lapse(mq, "poison", first, deliveries=3)
    past = _fetch(mq, "poison", now, consumer="c3", reclaim=True, max_deliveries=3)
    assert (past.deliveries, past.dead_lettered) == ([], 1)
    [(_, entry)] = mq.client.xrange(keys.dlq)
    assert (entry[b"reason"], entry[b"attempts"]) == (b"max_deliveries", b"4")
    assert mq.codec.open(entry[b"m"]).id == mid
    assert mq.client.xpending(stream, GROUP)["pending"] == 0, "dead-lettered means settled"
    assert mq.client.xlen(stream) == 0
    _lapse_all(mq, "poison")
    assert _fetch(mq, "poison", now, consumer="c4", reclaim=True, max_deliveries=3) \
        .dead_lettered == 0, "dead-lettered once"


def _lapse_all(mq: pn.MessageQueue, queue: str) -> None:
    for stream in mq.queue_keys(queue).streams:
        for p in mq.client.xpending_range(stream, GROUP, "-", "+", 100):
            mq.client.xclaim(stream, GROUP, "c1", 0, [p["message_id"]], idle=2 * IDLE_MS,
                             justid=True)


def test_a_request_dead_lettered_by_fetch_is_returned_to_be_answered(
        mq: pn.MessageQueue) -> None:
    mq.declare("ask", max_deliveries=1)
    mq.ensure_group("ask", GROUP)
    pending = mq.request("ask", "ioc.enrichment.request", {"ioc": "198.51.100.7"})
    mq.publish("ask", "ioc.enrichment.request", {"ioc": "198.51.100.8"})  # nobody waits
    now = now_ms()
    for d in _fetch(mq, "ask", now, max_deliveries=1).deliveries:
        _lapse(mq, "ask", d)
    past = _fetch(mq, "ask", now, consumer="c2", reclaim=True, max_deliveries=1)
    assert past.dead_lettered == 2
    assert [mq.codec.open(raw).id for raw in past.dead_requests] == [pending.id]


def test_a_fetch_hands_out_at_most_its_count_reclaimed_entries_included(
        mq: pn.MessageQueue) -> None:
    mq.ensure_group("ioc", GROUP)
    mq.publish_batch("ioc", [("t", i) for i in range(5)])
    now = now_ms()
    held = _fetch(mq, "ioc", now, count=2).deliveries
    for d in held:
        _lapse(mq, "ioc", d)
    got = _fetch(mq, "ioc", now, consumer="c2", count=3, reclaim=True).deliveries
    assert [d.delivery_count for d in got] == [2, 2, 1]
    assert [mq.codec.open(d.raw).payload for d in got] == [0, 1, 2]


# -- late settles: the consumer that lost its lease writes nothing ----------------------------

def _taken_over(mq: pn.MessageQueue, queue: str) -> tuple[Delivery, Delivery, int]:
    """A message c1 fetched, whose lease lapsed, now held by c2: (c1's, c2's, now)."""
    mq.ensure_group(queue, GROUP)
    mq.publish(queue, "t", {"n": 1})
    now = now_ms()
    [mine] = _fetch(mq, queue, now).deliveries
    _lapse(mq, queue, mine)
    [theirs] = _fetch(mq, queue, now, consumer="c2", reclaim=True).deliveries
    assert (theirs.stream_id, theirs.delivery_count) == (mine.stream_id, 2)
    return mine, theirs, now


def _ack(d: Delivery) -> Settlement:
    return Settlement([AckRecord(d.level, d.stream_id)], [], [], {})


def test_a_late_retry_after_another_consumer_took_the_message_writes_nothing(
        mq: pn.MessageQueue) -> None:
    mine, theirs, now = _taken_over(mq, "late")
    keys = mq.queue_keys("late")
    for due in (now + 1000, now):  # to the delayed set, or straight back to its stream
        retry = Settlement([], [RetryRecord(mine.level, mine.stream_id, due, mine.raw)], [], {})
        assert _settle(mq, "late", retry, now, "c1") == [0, 0, 0]
    assert (mq.client.zcard(keys.delayed), mq.client.xlen(keys.stream(mine.level))) == (0, 1)

    assert _settle(mq, "late", _ack(theirs), now, "c2") == [1, 0, 0]
    assert mq.stats(["late"])[0].depth == 0
    retry = Settlement([], [RetryRecord(mine.level, mine.stream_id, now, mine.raw)], [], {})
    assert _settle(mq, "late", retry, now, "c1") == [0, 0, 0], "nor once it is acked"
    assert mq.stats(["late"])[0].depth == 0


def test_a_late_dead_letter_after_another_consumer_took_the_message_writes_nothing(
        mq: pn.MessageQueue) -> None:
    mine, theirs, now = _taken_over(mq, "late")
    keys = mq.queue_keys("late")
    dead = Settlement([], [], [DeadRecord(mine.level, mine.stream_id, mine.raw, "rejected",
                                          "ValueError", "bad", "", 1, "c1", now)], {})
    assert _settle(mq, "late", dead, now, "c1") == [0, 0, 0]
    assert mq.client.xlen(keys.dlq) == 0

    assert _settle(mq, "late", _ack(theirs), now, "c2") == [1, 0, 0]
    assert _settle(mq, "late", dead, now, "c1") == [0, 0, 0]
    assert mq.client.xlen(keys.dlq) == 0 and mq.stats(["late"])[0].depth == 0


def test_a_late_result_after_another_consumer_took_the_message_is_not_stored(
        mq: pn.MessageQueue) -> None:
    mq.ensure_group("late", GROUP)
    pending = mq.request("late", "t", {"n": 1})
    keys = mq.queue_keys("late")
    now = now_ms()
    [mine] = _fetch(mq, "late", now).deliveries
    _lapse(mq, "late", mine)
    [theirs] = _fetch(mq, "late", now, consumer="c2", reclaim=True).deliveries

    def result(d: Delivery, sealed: bytes) -> Settlement:
        batch = Settlement.empty()
        batch.results.append(ResultRecord("a", d.level, d.stream_id, pending.id, sealed,
                                          60_000, "done"))
        return batch

    assert _settle(mq, "late", result(mine, b"late"), now, "c1") == [0, 0, 0]
    assert mq.client.exists(keys.result(pending.id)) == 0
    assert _settle(mq, "late", result(theirs, b"owner"), now, "c2") == [1, 0, 0]
    assert mq.client.hget(keys.result(pending.id), "v") == b"owner"
    assert _settle(mq, "late", result(mine, b"late"), now, "c1") == [0, 0, 0]
    assert mq.client.hget(keys.result(pending.id), "v") == b"owner"


# -- retries ------------------------------------------------------------------------------------

def test_a_retry_due_now_is_ready_at_once_and_one_due_later_waits(mq: pn.MessageQueue) -> None:
    mq.declare("retry", kind="priority")
    mq.ensure_group("retry", GROUP)
    mq.publish_batch("retry", [pn.Message("t", i, priority="HIGH") for i in range(2)])
    keys = mq.queue_keys("retry")
    now = now_ms()
    a, b = _fetch(mq, "retry", now).deliveries
    retries = Settlement([], [RetryRecord(1, a.stream_id, now, a.raw),
                              RetryRecord(1, b.stream_id, now + 1, b.raw)], [], {})
    assert _settle(mq, "retry", retries, now, "c1") == [0, 2, 0]
    assert [mq.codec.open(f[b"m"]).payload for _, f in mq.client.xrange(keys.stream(1))] == [0]
    assert mq.client.zrange(keys.delayed, 0, -1, withscores=True)[0][1] == now + 1
    assert [(d.level, mq.codec.open(d.raw).payload)
            for d in _fetch(mq, "retry", now + 1).deliveries] == [(1, 0), (1, 1)]


# -- global concurrency -------------------------------------------------------------------------

def test_global_concurrency_grants_exactly_the_room_left_and_a_lapsed_lease_frees_its_slot(
        mq: pn.MessageQueue) -> None:
    mq.ensure_group("capped", GROUP)
    mq.publish_batch("capped", [("t", i) for i in range(5)])
    flow = FlowControl(0, 0, 3, 1000, f"g:{GROUP}")
    now = now_ms()
    assert len(_fetch(mq, "capped", now, count=2, flow=flow).deliveries) == 2
    second = _fetch(mq, "capped", now, flow=flow)
    assert (len(second.deliveries), second.granted) == (1, 1), "room for one more"
    full = _fetch(mq, "capped", now, flow=flow)
    assert (full.deliveries, full.throttle) == ([], 3)
    assert _fetch(mq, "capped", now + 999, flow=flow).deliveries == [], "leases still held"
    assert len(_fetch(mq, "capped", now + 1000, flow=flow).deliveries) == 2, "leases lapsed"


def test_every_settled_delivery_leaves_the_running_set(mq: pn.MessageQueue) -> None:
    mq.ensure_group("capped", GROUP)
    mq.publish_batch("capped", [("t", i) for i in range(3)])
    running = mq.queue_keys("capped").running(GROUP)
    now = now_ms()
    a, b, c = _fetch(mq, "capped", now, flow=FlowControl(0, 0, 10, 60_000, "g:g")).deliveries
    assert mq.client.zcard(running) == 3
    batch = Settlement([AckRecord(a.level, a.stream_id)],
                       [RetryRecord(b.level, b.stream_id, now + 60_000, b.raw)],
                       [DeadRecord(c.level, c.stream_id, c.raw, "rejected", "ValueError", "x",
                                   "", 1, "c1", now)], {})
    assert _settle(mq, "capped", batch, now, "c1", track_running=True) == [1, 1, 1]
    assert mq.client.zcard(running) == 0


# -- rate limits ----------------------------------------------------------------------------------

def test_a_fresh_rate_limit_grants_exactly_its_burst_however_long_it_was_idle(
        mq: pn.MessageQueue) -> None:
    mq.ensure_group("limited", GROUP)
    mq.publish_batch("limited", [("t", i) for i in range(10)])
    keys = mq.queue_keys("limited")
    minute_us = 60_000_000
    flow = FlowControl(minute_us, 2 * minute_us, 0, 0, f"g:{GROUP}")  # 1/min, burst 3
    now = now_ms()
    burst = _fetch(mq, "limited", now, flow=flow)
    assert (len(burst.deliveries), burst.granted) == (3, 3)
    over = _fetch(mq, "limited", now, flow=flow)
    assert (over.deliveries, over.throttle) == ([], 2)
    assert 59_000 < over.wait_ms <= 60_000

    mq.client.hset(keys.limiter, f"g:{GROUP}", 1)  # last used in 1970
    assert len(_fetch(mq, "limited", now, flow=flow).deliveries) == 3, "credit is capped"


def _throttle(mq: pn.MessageQueue, queue: str,
              checks: list[tuple[str, int, int, str]]) -> list[int]:
    keys = mq.queue_keys(queue)
    args: list[object] = [60_000, len(checks)]
    for check in checks:
        args += check
    return [int(w) for w in mq.functions.call("throttle", [keys.limiter, keys.reservations],
                                              args)]


def test_a_provider_key_runs_its_burst_then_reserves_one_slot_each(mq: pn.MessageQueue) -> None:
    keys = mq.queue_keys("enrich")
    t = 60_000_000  # 1/min in us
    waits = _throttle(mq, "enrich", [("k:g:vt", t, 0, f"v{i}:1") for i in range(3)] +
                      [("k:g:shodan", t, t, f"s{i}:1") for i in range(3)])  # burst 1 / 2
    assert waits == [0, 60_000, 120_000, 0, 0, 60_000]
    reserved = {k.decode(): float(v) for k, v in mq.client.hgetall(keys.reservations).items()}
    assert set(reserved) == {"v1:1", "v2:1", "s2:1"}, "only what waits holds a reservation"
    vt, shodan = (float(mq.client.hget(keys.limiter, f)) for f in ("k:g:vt", "k:g:shodan"))
    assert (reserved["v1:1"], reserved["v2:1"]) == (vt - 2 * t, vt - t)
    assert reserved["s2:1"] == shodan - 2 * t, "its slot is the wait it was told"
    assert 0 < mq.client.pttl(keys.reservations) <= 60_000


# -- replay claims and cancels ------------------------------------------------------------------

def test_a_copy_delivered_after_a_replay_bucket_boundary_is_a_replay(
        mq: pn.MessageQueue) -> None:
    keys = mq.queue_keys("claims")
    window = 1000
    before, after = 10 * window + window - 1, 11 * window  # the last ms of a bucket, the first
    assert mq.functions.claim(keys, GROUP, before, window, ["m1:1"], ["1-0"]) == []
    assert mq.functions.claim(keys, GROUP, after, window, ["m1:1", "m1:1"],
                              ["2-0", "1-0"]) == [0], "a copy (new stream id) is a replay"
    assert mq.functions.claim(keys, GROUP, after, window, ["m2:1", "m2:1"],
                              ["3-0", "4-0"]) == [1], "so is a copy in the same batch"
    assert mq.client.pttl(keys.seen(GROUP, 11)) > window


def test_a_message_handed_back_untouched_is_unclaimed_in_both_buckets(
        mq: pn.MessageQueue) -> None:
    keys = mq.queue_keys("claims")
    window = 1000
    before, after = 10 * window + window - 1, 11 * window
    assert mq.functions.claim(keys, GROUP, before, window, ["m1:1"], ["1-0"]) == []
    handed_back = Settlement.empty()
    handed_back.unclaims.append("m1:1")
    mq.functions.settle(keys, metrics_key(keys, after), handed_back, group=GROUP, delete=True,
                        now_ms=after, metrics_ttl_s=0,
                        seen=seen_keys(keys, GROUP, after, window))
    # added again under a new stream id, its next delivery is no replay
    assert mq.functions.claim(keys, GROUP, after, window, ["m1:1"], ["2-0"]) == []


def test_cancelling_a_delayed_message_already_promoted_finds_nothing(
        mq: pn.MessageQueue) -> None:
    mq.declare("later", kind="delayed")
    mq.ensure_group("later", GROUP)
    mid = mq.publish("later", "t", "x", delay=timedelta(hours=1))
    keys = mq.queue_keys("later")
    [(member, due)] = mq.client.zrange(keys.delayed, 0, -1, withscores=True)
    assert _ids(mq, _fetch(mq, "later", int(due))) == [mid]

    now = now_ms()
    reply = mq.functions.call("cancel", [
        *keys.streams, keys.delayed, metrics_key(keys, now), keys.trace, keys.cancels], [
        "d", 0, member, mid, f"{mid}||1|", 60, 0, "test", 60_000, now])
    assert int(reply) == 0
    assert mq.client.hget(metrics_key(keys, now), "cancelled") is None
