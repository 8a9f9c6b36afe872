"""Publish-side limits exactly at the boundary and one past it, driven through the publish
function with explicit clocks: dedup buckets, retried calls, due times, queue size
(issue #22: tests that fail when the Lua is wrong)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import phantom_notebook as pn
from phantom_notebook.core.observe.metrics import metrics_key
from phantom_notebook.core.publish.batch import build_columns

WINDOW_MS = 60_000


def _publish(mq: pn.MessageQueue, queue: str, messages: list[pn.Message], now: int,
             again: Any = None) -> tuple[list[Any], Any]:
    """Publish ``messages`` (or re-send the built batch ``again``) with the clock at
    ``now``: (the duplicates' reply as index, first id, ...; the batch sent)."""
    qs = mq.declare(queue)
    keys = mq.queue_keys(queue)
    batch = again if again is not None else build_columns(mq, queue, qs, messages, now, None)[0]
    reply = mq.functions.publish(keys, metrics_key(keys, now), batch, max_size=None,
                                 dedup_window_ms=WINDOW_MS, now_ms=now, metrics_ttl_s=0)
    return [x.decode() if isinstance(x, bytes) else x for x in reply], batch


def _bucket_end(now: int) -> int:
    """The last millisecond of ``now``'s dedup bucket."""
    return (now // WINDOW_MS + 1) * WINDOW_MS - 1


def test_a_dedup_key_seen_in_the_previous_bucket_is_a_duplicate_and_after_the_window_it_is_not(
        mq: pn.MessageQueue) -> None:
    first_ms = _bucket_end(int(datetime.now(UTC).timestamp() * 1000))
    keys = mq.queue_keys("dedup")
    assert _publish(mq, "dedup", [pn.Message("t", 1, dedup_key="ioc-1")], first_ms)[0] == []
    first_id = mq.codec.open(mq.client.xrange(keys.stream(2))[0][1][b"m"]).id
    assert WINDOW_MS < mq.client.pttl(keys.dedup_bucket(first_ms // WINDOW_MS)) <= 2 * WINDOW_MS

    next_bucket = first_ms + 1  # 1 ms later, in the next bucket
    assert _publish(mq, "dedup", [pn.Message("t", 2, dedup_key="ioc-1")],
                    next_bucket)[0] == [1, first_id]
    assert _publish(mq, "dedup", [pn.Message("t", 3, dedup_key="ioc-2"),
                                  pn.Message("t", 4, dedup_key="ioc-1")],
                    next_bucket)[0] == [2, first_id], "the batch path too"
    assert mq.stats(["dedup"])[0].ready == 2

    after = first_ms + WINDOW_MS + 1  # more than a window after the first: a new message
    assert _publish(mq, "dedup", [pn.Message("t", 5, dedup_key="ioc-1")], after)[0] == []
    assert _publish(mq, "dedup", [pn.Message("t", 6, dedup_key="ioc-1"),
                                  pn.Message("t", 7, dedup_key="ioc-3")],
                    after + 2 * WINDOW_MS)[0] == []
    assert mq.stats(["dedup"])[0].ready == 5


def test_a_call_resent_just_after_a_dedup_bucket_boundary_writes_nothing_again(
        mq: pn.MessageQueue) -> None:
    sent_ms = _bucket_end(int(datetime.now(UTC).timestamp() * 1000))
    for size in (1, 3):
        first, batch = _publish(mq, "resent", [pn.Message("t", i) for i in range(size)],
                                sent_ms)
        assert first == []
        again, _ = _publish(mq, "resent", [], sent_ms + 1, again=batch)  # the next bucket
        assert again == [x for i, mid in enumerate(batch.ids, start=1) for x in (i, mid)]
    assert mq.stats(["resent"])[0].ready == 4


def test_every_delayed_message_of_a_batch_is_stored_at_its_own_due_ms(
        mq: pn.MessageQueue) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    ats = [start + timedelta(seconds=s) for s in (30, 10, 20)]
    ids = mq.publish_batch("due", [pn.Message("t", 0, deliver_at=ats[0]), pn.Message("t", 1),
                                   pn.Message("t", 2, deliver_at=ats[1]),
                                   pn.Message("t", 3, deliver_at=ats[2])])
    keys = mq.queue_keys("due")
    stored = {mq.codec.open(member[1:]).id: int(score)
              for member, score in mq.client.zrange(keys.delayed, 0, -1, withscores=True)}
    assert stored == {ids[0]: int(ats[0].timestamp()) * 1000,
                      ids[2]: int(ats[1].timestamp()) * 1000,
                      ids[3]: int(ats[2].timestamp()) * 1000}
    assert mq.stats(["due"])[0].ready == 1


def test_a_delayed_message_of_every_priority_waits_in_the_delayed_set(
        mq: pn.MessageQueue) -> None:
    mq.declare("later", kind="priority")
    keys = mq.queue_keys("later")
    for p in pn.MessagePriority:  # CRITICAL (level 0) first
        mq.publish("later", "t", p.name, priority=p, delay=timedelta(hours=1))
    mq.publish_batch("later", [pn.Message("t", p.name, priority=p, delay=timedelta(hours=1))
                               for p in pn.MessagePriority])
    members = [m for m, _ in mq.client.zrange(keys.delayed, 0, -1, withscores=True)]
    assert sorted(m[:1] for m in members) == [b"0", b"0", b"1", b"1", b"2", b"2", b"3", b"3"]
    assert [mq.client.xlen(s) for s in keys.streams] == [0, 0, 0, 0]


def test_a_queue_fills_exactly_to_max_queue_size_and_not_one_past_it(
        mq: pn.MessageQueue) -> None:
    mq.declare("bounded", max_queue_size=3)
    mq.publish_batch("bounded", [("t", 0), ("t", 1)])
    with pytest.raises(pn.QueueFullError):
        mq.publish_batch("bounded", [("t", 2), ("t", 3)])  # one past: nothing written
    assert mq.stats(["bounded"])[0].depth == 2
    mq.publish("bounded", "t", 2)  # exactly full
    assert mq.stats(["bounded"])[0].depth == 3
    with pytest.raises(pn.QueueFullError):
        mq.publish("bounded", "t", 3)
    assert mq.stats(["bounded"])[0].depth == 3
