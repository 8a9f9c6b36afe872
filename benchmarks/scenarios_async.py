"""The asyncio API (``phantom_notebook.aio``) beside the sync one and the raw
``redis.asyncio`` ceiling, in one run.

* ``async.publish.single`` / ``async.publish.batch1000``: ``await mq.publish`` one at a
  time and ``await mq.publish_batch`` of 1,000 (Message objects built inside the timing)
  vs raw ``redis.asyncio`` XADD (one per round trip / 1,000 per pipeline) of the same bytes;
  the sync path's rate of the same shape, measured in the same run, is in the details.
  Target (profile "on"): ``publish_batch`` >= 0.6x the pipelined ceiling.
* ``async.consume.1proc``: one worker process draining a pre-filled queue with an async
  no-op handler on ``phantom_notebook.aio`` (handlers on the process's event loop) vs the
  sync worker with a sync no-op handler (``consume.1proc``'s worker), alternating rounds.
  Target: within 20 % of the sync worker (ratio >= 0.8).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as aredis

from benchmarks.harness import BenchServer, Features, RawCodec, Result, Sizes, connect, judge
from benchmarks.payload import MESSAGE_TYPE, ioc_payload
from benchmarks.scenarios_consume import PREFIX, QUEUE, drain, fill_ours
from benchmarks.scenarios_publish import UNBOUNDED, _our_header, ours_batch, ours_messages

PUBLISH_QUEUE = "bench-publish"
STREAM = "raw:publish"


async def _ours_single(amq: Any, features: Features, n: int) -> float:
    dedup = features.dedup
    start = time.perf_counter()
    for i in range(n):
        await amq.publish(PUBLISH_QUEUE, MESSAGE_TYPE, ioc_payload(i),
                          dedup_key=f"s{i}" if dedup else None)
    return n / (time.perf_counter() - start)


async def _raw_single(client: Any, codec: RawCodec, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        await client.xadd(STREAM, {"m": codec.encode(ioc_payload(i))})
    return n / (time.perf_counter() - start)


async def _ours_batch(amq: Any, features: Features, n: int, size: int) -> float:
    start = time.perf_counter()
    for base in range(0, n, size):
        await amq.publish_batch(PUBLISH_QUEUE, ours_messages(base, min(size, n - base),
                                                             features))
    return n / (time.perf_counter() - start)


async def _raw_batch(client: Any, codec: RawCodec, n: int, size: int) -> float:
    start = time.perf_counter()
    for base in range(0, n, size):
        pipe = client.pipeline(transaction=False)
        for i in range(base, min(base + size, n)):
            pipe.xadd(STREAM, {"m": codec.encode(ioc_payload(i))})
        await pipe.execute()
    return n / (time.perf_counter() - start)


async def _measure(server: BenchServer, mq: Any, features: Features, codec: RawCodec,
                   rounds: int, chunk: int, size: int
                   ) -> tuple[list[float], list[float], list[float]]:
    from phantom_notebook.aio import AsyncMessageQueue
    from phantom_notebook.aio.client import open_async_client

    amq = AsyncMessageQueue(mq, open_async_client(mq.settings.redis))
    client = aredis.Redis.from_url(server.url)
    ours: list[float] = []
    raw: list[float] = []
    sync: list[float] = []
    await _ours_batch(amq, features, 1000, 100)  # warm: declare, layout, functions
    await _raw_batch(client, codec, 1000, 100)
    for _ in range(rounds):
        if size == 1:
            ours.append(await _ours_single(amq, features, chunk))
            raw.append(await _raw_single(client, codec, chunk))
            sync.append(await asyncio.to_thread(_sync_single, mq, features, chunk))
        else:
            ours.append(await _ours_batch(amq, features, chunk, size))
            raw.append(await _raw_batch(client, codec, chunk, size))
            sync.append(await asyncio.to_thread(ours_batch, mq, features, chunk, size))
        server.flush()
    await client.aclose()
    await client.connection_pool.disconnect()
    await amq.client.aclose()
    await amq.client.connection_pool.disconnect()
    return ours, raw, sync



def publish(server: BenchServer, sizes: Sizes, profile: str) -> list[Result]:
    """The async publish scenarios for ``profile``: alternating rounds, best of each."""
    results = []
    for name, n, size in (("async.publish.single", sizes.single, 1),
                          ("async.publish.batch1000", sizes.batch, 1000)):
        server.flush()
        mq, features = connect(server.url, "bp", profile, **UNBOUNDED)
        codec = RawCodec(profile, _our_header(mq))
        rounds = 5 if size == 1 else 3
        chunk = max(n // rounds, size)

        ours_runs, raw_runs, sync_runs = asyncio.run(
            _measure(server, mq, features, codec, rounds, chunk, size))
        res = Result(name, profile, "msg/s", max(ours_runs), max(raw_runs), details={
            "messages": n, "batch": size, "rounds": rounds, "features": features.label(),
            "ceiling": "redis.asyncio XADD" + (" pipelined" if size > 1 else ""),
            "ours_runs": ours_runs, "ceiling_runs": raw_runs, "sync_path_runs": sync_runs,
            "sync_path": max(sync_runs),
            "async_vs_sync": max(ours_runs) / max(sync_runs)})
        if profile == "on" and size > 1:
            judge(res, ">= 0.6x redis.asyncio pipelined", (res.ratio or 0) >= 0.6)
        results.append(res)
        mq.close()
    return results


def _sync_single(mq: Any, features: Features, n: int) -> float:
    from benchmarks.scenarios_publish import ours_single

    return ours_single(mq, features, n)


def _drain(server: BenchServer, sizes: Sizes, profile: str, role: str,
           concurrency: int = 1) -> dict[str, Any]:
    server.flush()
    n = sizes.consume
    fill_s, _ = fill_ours(server.url, profile, n)
    spec = {"prefix": PREFIX, "profile": profile, "queue": QUEUE, "prefetch": 500,
            "concurrency": concurrency, "overrides": dict(UNBOUNDED)}
    t = drain(server.url, role, 1, spec, n, sizes.worker_timeout_s)
    return {"rate": t.rate, "handled": t.count, "fill_s": fill_s}


def consume(server: BenchServer, sizes: Sizes, profile: str) -> list[Result]:
    """``async.consume.1proc`` (the default ``max_concurrency=1``) and
    ``async.consume.1proc.c100`` (100 handlers at once): the async worker vs the sync one,
    alternating rounds."""
    return [_consume(server, sizes, profile, 1), _consume(server, sizes, profile, 100)]


def _consume(server: BenchServer, sizes: Sizes, profile: str, concurrency: int) -> Result:
    rounds = 2 if sizes.consume >= 100_000 else 1
    ours_runs, sync_runs = [], []
    for _ in range(rounds):
        ours_runs.append(_drain(server, sizes, profile, "ours-async-worker", concurrency))
        sync_runs.append(_drain(server, sizes, profile, "ours-worker"))
    ours = max(r["rate"] for r in ours_runs)
    sync = max(r["rate"] for r in sync_runs)
    name = "async.consume.1proc" + (f".c{concurrency}" if concurrency > 1 else "")
    res = Result(name, profile, "msg/s", ours, sync, details={
        "messages": sizes.consume, "prefetch": 500, "rounds": rounds,
        "max_concurrency": concurrency,
        "ceiling": "the sync worker (sync handler), same process count",
        "ours_runs": [r["rate"] for r in ours_runs],
        "ceiling_runs": [r["rate"] for r in sync_runs]})
    short = [r["handled"] for r in ours_runs if r["handled"] < sizes.consume]
    if short:
        res.details["error"] = f"only {min(short)} of {sizes.consume} handled"
    if concurrency == 1:
        judge(res, "within 20 % of the sync worker (>= 0.8x)", (res.ratio or 0) >= 0.8)
    return res


def run(server: BenchServer, sizes: Sizes, profile: str) -> list[Result]:
    """Every async scenario for ``profile``."""
    return [*publish(server, sizes, profile), *consume(server, sizes, profile)]


__all__ = ["consume", "publish", "run"]
