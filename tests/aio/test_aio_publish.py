"""The asyncio publish path keeps the synchronous one's promises: all or nothing per batch,
clear errors before anything is written, order within a stream, and a cancelled publish
never half-written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

import phantom_notebook as pn
from phantom_notebook.core.model.envelope import decode
from phantom_notebook.core.testing import wait_until
from tests.support.aio import run_async


def _count(mq: pn.MessageQueue, queue: str) -> int:
    return sum(s.ready + s.delayed for s in mq.stats(queue))


def test_publish_stream_takes_an_async_iterable_and_keeps_its_order_on_a_fifo_queue(
        sync_mq: pn.MessageQueue, connect_async: Any) -> None:
    async def feed() -> AsyncIterator[tuple[str, Any]]:
        for i in range(1234):
            yield ("ioc.seen", {"i": i})

    async def scenario() -> list[str]:
        async with await connect_async() as mq:
            await mq.declare("feed", "fifo")
            return await mq.publish_stream("feed", feed(), batch_size=100)

    ids = run_async(scenario())
    assert len(ids) == len(set(ids)) == 1234
    seen: list[int] = []
    sync_mq.subscribe("feed", "*", lambda env: seen.append(env.payload["i"]))
    with sync_mq.worker():
        assert wait_until(lambda: len(seen) == 1234, timeout_s=20)
    assert seen == list(range(1234))


def test_a_stream_that_meets_a_bad_message_reports_exactly_what_was_written(
        sync_mq: pn.MessageQueue, connect_async: Any) -> None:
    def feed() -> Any:
        for i in range(250):
            yield ("ioc.seen", {"i": i} if i != 160 else {"bad": {1, 2}})  # a set: no JSON

    async def scenario() -> pn.PublishStreamError:
        async with await connect_async() as mq:
            await mq.declare("feed")
            with pytest.raises(pn.PublishStreamError) as caught:
                await mq.publish_stream("feed", feed(), batch_size=50)
            return caught.value

    error = run_async(scenario())
    assert len(error.published) == 150  # batches 0-2; batch 3 held the bad message
    assert isinstance(error.__cause__, pn.PayloadError)
    assert _count(sync_mq, "feed") == 150


def test_a_full_queue_refuses_the_whole_batch_and_writes_nothing(
        sync_mq: pn.MessageQueue, connect_async: Any) -> None:
    async def scenario() -> None:
        async with await connect_async() as mq:
            await mq.declare("bounded", max_queue_size=10)
            await mq.publish_batch("bounded", [("t.x", {"i": i}) for i in range(8)])
            with pytest.raises(pn.QueueFullError, match="bounded"):
                await mq.publish_batch("bounded", [("t.x", {"i": i}) for i in range(3)])
            with pytest.raises(pn.ValidationError, match="wait_s"):
                await mq.publish("bounded", "t.x", {}, wait_s=-1)
            with pytest.raises(pn.PayloadError):
                await mq.publish("bounded", "t.x", {"bad": object()})

    run_async(scenario())
    assert _count(sync_mq, "bounded") == 8


def test_a_duplicate_within_the_window_returns_the_first_messages_id(
        connect_async: Any) -> None:
    async def scenario() -> tuple[str, str]:
        async with await connect_async() as mq:
            await mq.declare("dedup", enable_deduplication=True)
            first = await mq.publish("dedup", "t.x", {"ioc": "a"}, dedup_key="ioc:a")
            again = await mq.publish("dedup", "t.x", {"ioc": "a"}, dedup_key="ioc:a")
            return first, again

    first, again = run_async(scenario())
    assert again == first


def test_async_and_sync_producers_route_one_key_to_the_same_partition(
        sync_mq: pn.MessageQueue, connect_async: Any) -> None:
    sync_mq.declare("parts", partitions=4)

    async def scenario() -> list[str]:
        async with await connect_async() as mq:
            return await mq.publish_batch("parts", [pn.Message("t.x", {"i": i},
                                                               partition_key=f"k{i % 5}")
                                                    for i in range(40)])

    ids = run_async(scenario())
    sync_ids = sync_mq.publish_batch("parts", [pn.Message("t.x", {"i": i},
                                                          partition_key=f"k{i % 5}")
                                               for i in range(40)])
    where: dict[str, str] = {}
    for part in sync_mq.layout("parts").all:
        stream_ids: set[str] = set()
        keys = sync_mq.queue_keys(part)
        for stream in keys.streams:
            for _, fields in sync_mq.client.xrange(stream):
                stream_ids.add(decode(fields[b"m"]).id)
        for mid in stream_ids:
            where[mid] = part
    assert len(where) == 80
    for i in range(40):
        assert where[ids[i]] == where[sync_ids[i]]


def test_a_cancelled_publish_to_four_partitions_is_written_whole_or_not_at_all(
        sync_mq: pn.MessageQueue, connect_async: Any) -> None:
    sync_mq.declare("cancel", partitions=4)
    batch = [pn.Message("t.x", {"i": i}, partition_key=f"k{i}") for i in range(40)]

    async def scenario() -> list[tuple[int, bool]]:
        outcomes = []
        async with await connect_async() as mq:
            await mq.publish("cancel", "t.warm", {})  # settings and layout cached
            for yields in range(12):  # cancel at each point of the write in turn
                before = await asyncio.to_thread(_count, sync_mq, "cancel")
                task = asyncio.ensure_future(mq.publish_batch("cancel", batch))
                for _ in range(yields):
                    await asyncio.sleep(0)
                task.cancel()
                try:
                    await task
                    cancelled = False
                except asyncio.CancelledError:
                    cancelled = True
                written = await asyncio.to_thread(_count, sync_mq, "cancel") - before
                outcomes.append((written, cancelled))
        return outcomes

    outcomes = run_async(scenario())
    assert all(written in (0, 40) for written, _ in outcomes), outcomes
    # some cancellations landed while partitions were being written: those completed
    assert any(written == 40 and cancelled for written, cancelled in outcomes), outcomes
