"""The asyncio worker stops like a SIGTERM'd one: cancelled mid-handler, it lets the handler
finish, settles it, and only then lets the cancellation through; nothing is redelivered."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import phantom_notebook as pn
from tests.support.aio import run_async, wait_until_async


def test_a_cancelled_run_finishes_the_running_handler_and_acks_it_before_raising(
        sync_mq: pn.MessageQueue, connect_async: Any) -> None:
    sync_mq.declare("drain")
    mid = sync_mq.publish("drain", "ioc.enrichment.request", {"ioc": "203.0.113.9"})

    async def scenario() -> list[str]:
        finished: list[str] = []
        started = asyncio.Event()

        async def slow(env: pn.Envelope, ctx: pn.MessageContext) -> None:
            started.set()
            await asyncio.sleep(0.3)  # the handler's own work, in flight when cancelled
            finished.append(env.id)

        async with await connect_async() as mq:
            await mq.subscribe("drain", "*", slow)
            run = asyncio.ensure_future(mq.worker(grace_s=10).run())
            await asyncio.wait_for(started.wait(), 10)
            run.cancel()
            with pytest.raises(asyncio.CancelledError):
                await run
        return finished

    assert run_async(scenario()) == [mid]
    stats = sync_mq.stats("drain")[0]
    assert (stats.ready, stats.in_flight, stats.dead) == (0, 0, 0)
    pending = sync_mq.client.xpending(sync_mq.queue_keys("drain").streams[2], "workers")
    assert pending["pending"] == 0


def test_a_draining_run_returns_zero_once_the_queue_is_empty(
        sync_mq: pn.MessageQueue, connect_async: Any) -> None:
    sync_mq.declare("batch")
    sync_mq.publish_batch("batch", [("ioc.seen", {"i": i}) for i in range(50)])

    async def scenario() -> tuple[int, int]:
        handled = 0

        async def count(env: pn.Envelope, ctx: pn.MessageContext) -> None:
            nonlocal handled
            handled += 1

        async with await connect_async() as mq:
            await mq.subscribe("batch", "*", count)
            code = await asyncio.wait_for(mq.worker(drain=True).run(), 30)
        return code, handled

    assert run_async(scenario()) == (0, 50)


def test_an_async_handler_past_its_timeout_is_cancelled_and_the_rest_of_its_batch_still_runs(
        sync_mq: pn.MessageQueue, connect_async: Any) -> None:
    sync_mq.declare("slow", retry=pn.RetrySettings(max_retries=0))
    hung = sync_mq.publish("slow", "t.hang", {})
    fine = sync_mq.publish_batch("slow", [("t.ok", {"i": i}) for i in range(5)])

    async def scenario() -> tuple[list[str], list[Any]]:
        handled: list[str] = []

        async def handler(env: pn.Envelope, ctx: pn.MessageContext) -> None:
            if env.type == "t.hang":
                await asyncio.Event().wait()  # never returns by itself
            handled.append(env.id)

        async with await connect_async() as mq:
            await mq.declare("slow", retry=pn.RetrySettings(max_retries=0))  # this side's policy
            await mq.subscribe("slow", "*", handler, handler_timeout_s=0.2)
            async with mq.worker():
                dlq = await mq.dlq("slow")

                async def settled() -> bool:
                    return len(handled) == 5 and await dlq.count() == 1

                assert await wait_until_async(settled, timeout_s=10), handled
                letters = await dlq.list()
        return handled, letters

    handled, letters = run_async(scenario())
    assert handled == fine  # in order, after the hung one was cancelled
    assert [(d.message_id, d.reason) for d in letters] == [(hung, "handler_timeout")]
