"""Sync and async producers and consumers share one queue: the same envelopes, the same
Redis Functions, in both directions, on a real Redis and on the embedded one."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import phantom_notebook as pn
from phantom_notebook.core.testing import wait_until
from tests.support.aio import run_async, wait_until_async


def test_an_async_publish_is_consumed_by_a_sync_worker_with_its_tlp_priority_and_headers(
        sync_mq: pn.MessageQueue, connect_async: Any) -> None:
    async def produce() -> list[str]:
        async with await connect_async() as mq:
            await mq.declare("interop")
            first = await mq.publish("interop", "ioc.enrichment.request", {"ioc": "198.51.100.7"},
                                     tlp="AMBER", priority="HIGH", headers={"case": "42"})
            rest = await mq.publish_batch("interop", [("ioc.seen", {"i": i}) for i in range(5)])
            return [first, *rest]

    ids = run_async(produce())
    seen: list[pn.Envelope] = []
    sync_mq.subscribe("interop", "*", seen.append)
    with sync_mq.worker():
        assert wait_until(lambda: len(seen) == 6, timeout_s=10)
    assert sorted(e.id for e in seen) == sorted(ids)
    first = next(e for e in seen if e.id == ids[0])
    assert (first.type, first.payload, first.tlp, first.priority, first.headers["case"]) == (
        "ioc.enrichment.request", {"ioc": "198.51.100.7"}, "AMBER", pn.MessagePriority.HIGH,
        "42")
    assert seen[0].id == ids[0]  # HIGH is delivered before the NORMAL batch


def test_a_sync_publish_is_consumed_by_an_async_worker_on_the_callers_event_loop(
        sync_mq: pn.MessageQueue, connect_async: Any) -> None:
    sync_mq.declare("interop")
    ids = sync_mq.publish_batch("interop", [("ioc.seen", {"i": i}) for i in range(20)])

    async def consume() -> tuple[list[str], set[int], int]:
        got: list[str] = []
        threads: set[int] = set()
        loops: set[asyncio.AbstractEventLoop] = set()
        done = asyncio.Event()

        async def handler(env: pn.Envelope, ctx: pn.MessageContext) -> None:
            got.append(env.id)
            threads.add(threading.get_ident())
            loops.add(asyncio.get_running_loop())
            if len(got) == len(ids):
                done.set()

        async with await connect_async() as mq:
            await mq.subscribe("interop", "ioc.*", handler)
            async with mq.worker():
                await asyncio.wait_for(done.wait(), 10)
            stats = (await mq.stats("interop"))[0]
        assert (stats.ready, stats.in_flight) == (0, 0)
        assert loops == {asyncio.get_running_loop()}
        return got, threads, threading.get_ident()

    got, threads, loop_thread = run_async(consume())
    assert got == ids  # one queue, one priority: in publish order
    assert threads == {loop_thread}  # the thread running the caller's loop, not a lane's


def test_an_async_request_is_answered_by_a_sync_worker_and_a_sync_request_by_an_async_one(
        sync_mq: pn.MessageQueue, connect_async: Any) -> None:
    sync_mq.declare("math")
    sync_mq.subscribe("math", "math.double", lambda env: env.payload["n"] * 2)

    async def ask_async() -> Any:
        async with await connect_async() as mq:
            handle = await mq.request("math", "math.double", {"n": 21})
            return await asyncio.wait_for(handle.result(timeout=10), 15)

    with sync_mq.worker():
        assert run_async(ask_async()) == 42

    async def answer_async() -> Any:
        async with await connect_async() as mq:
            async def triple(env: pn.Envelope, ctx: pn.MessageContext) -> int:
                return int(env.payload["n"]) * 3
            await mq.subscribe("math", "math.triple", triple)
            async with mq.worker():
                pending = await asyncio.to_thread(sync_mq.request, "math", "math.triple",
                                                  {"n": 5})
                return await asyncio.to_thread(pending.result, 10)

    assert run_async(answer_async()) == 15


def test_a_failed_async_handler_is_retried_then_dead_lettered_like_a_sync_one(
        connect_async: Any) -> None:
    async def scenario() -> tuple[int, list[Any]]:
        attempts = 0

        async def broken(env: pn.Envelope, ctx: pn.MessageContext) -> None:
            nonlocal attempts
            attempts += 1
            raise RuntimeError("enricher is down")

        async with await connect_async() as mq:
            await mq.declare("fragile", retry=pn.RetrySettings(max_retries=2, initial_delay_s=0.01,
                                                               jitter=0.0))
            await mq.publish("fragile", "ioc.enrichment.request", {"ioc": "evil.example"})
            await mq.subscribe("fragile", "*", broken)
            async with mq.worker():
                dlq = await mq.dlq("fragile")

                async def dead_lettered() -> bool:
                    return await dlq.count() == 1

                assert await wait_until_async(dead_lettered, timeout_s=10), "never dead-lettered"
                letters = await dlq.list()
        return attempts, letters

    attempts, letters = run_async(scenario())
    assert attempts == 3  # the first delivery and two retries
    assert [d.reason for d in letters] == ["retries_exhausted"]
