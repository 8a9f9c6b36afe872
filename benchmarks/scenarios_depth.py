"""Depth: N messages in one queue — publish time, memory per message, stats() latency at
that depth, drain time with one worker — vs raw XADD of envelope bytes of the same size."""

from __future__ import annotations

import statistics
import time
from typing import Any

from benchmarks.harness import BenchServer, RawCodec, Result, Sizes, connect, judge
from benchmarks.scenarios_consume import drain, fill_ours, fill_raw

QUEUE = "bench-depth"
STREAM = "raw:depth"
PREFIX = "bd"
STATS_CALLS = 30


def _dbsize(server: BenchServer) -> int:
    return int(server.client.dbsize())


def measure_raw(server: BenchServer, sizes: Sizes, profile: str, header: bytes) -> dict[str, Any]:
    """Raw: pipelined XADD of N envelopes into a plain stream, memory delta, drain."""
    server.flush()
    before = server.used_memory()
    fill_s = fill_raw(server.url, RawCodec(profile, header), sizes.depth, STREAM)
    used = server.used_memory() - before
    client: Any = server.client  # redis-py's stubs type replies as optional unions
    entry = client.xrange(STREAM, count=1)[0][1][b"m"]
    tally = drain(server.url, "raw-worker", 1, {"stream": STREAM, "profile": profile,
                                               "header": header.hex()},
                  sizes.depth, sizes.worker_timeout_s)
    return {"publish_rate": sizes.depth / fill_s, "bytes_per_msg": used / sizes.depth,
            "entry_bytes": len(entry), "drain_rate": tally.rate, "handled": tally.count}


def measure_ours(server: BenchServer, sizes: Sizes, profile: str) -> dict[str, Any]:
    """Ours: publish_stream (batches of 500) up to N, memory delta, stats() latency, drain."""
    server.flush()
    overrides = {"max_queue_size": sizes.depth * 2}
    before, keys_before = server.used_memory(), _dbsize(server)
    fill_s, header = fill_ours(server.url, profile, sizes.depth, QUEUE, PREFIX, **overrides)
    used = server.used_memory() - before
    keys = _dbsize(server) - keys_before
    mq, _ = connect(server.url, PREFIX, profile, **overrides)
    mq.ensure_group(QUEUE, "workers")
    stream = mq.queue_keys(QUEUE).stream(2)
    entry = mq.client.xrange(stream, count=1)[0][1][b"m"]
    timings = []
    for _ in range(STATS_CALLS):
        start = time.perf_counter()
        stats = mq.stats([QUEUE])
        timings.append((time.perf_counter() - start) * 1000)
    depth_seen = stats[0].depth
    mq.client.close()
    spec = {"prefix": PREFIX, "profile": profile, "queue": QUEUE, "prefetch": 500,
            "overrides": overrides}
    tally = drain(server.url, "ours-worker", 1, spec, sizes.depth, sizes.worker_timeout_s)
    return {"publish_rate": sizes.depth / fill_s, "bytes_per_msg": used / sizes.depth,
            "entry_bytes": len(entry), "keys_added": keys, "header": header,
            "stats_ms_median": statistics.median(timings), "stats_ms_max": max(timings),
            "depth_seen": depth_seen, "drain_rate": tally.rate, "handled": tally.count}


def run(server: BenchServer, sizes: Sizes, profile: str) -> list[Result]:
    """``depth.publish``, ``depth.memory``, ``depth.stats`` and ``depth.drain``."""
    ours = measure_ours(server, sizes, profile)
    raw = measure_raw(server, sizes, profile, ours.pop("header"))
    server.flush()
    base = {"depth": sizes.depth, "ours": ours, "ceiling": raw}
    memory = Result("depth.memory", profile, "bytes/msg", ours["bytes_per_msg"],
                    raw["bytes_per_msg"], higher_is_better=False, details=base)
    stats = Result("depth.stats", profile, "ms", ours["stats_ms_max"], None,
                   higher_is_better=False, details={
                       **base, "median_ms": ours["stats_ms_median"], "calls": STATS_CALLS})
    if profile == "on":
        judge(memory, "<= 1.3x raw", (memory.ratio or 99) <= 1.3)
    judge(stats, "< 50 ms (max of calls)", ours["stats_ms_max"] < 50,
          ours["depth_seen"] == sizes.depth)
    return [
        Result("depth.publish", profile, "msg/s", ours["publish_rate"], raw["publish_rate"],
               details=base),
        memory, stats,
        Result("depth.drain", profile, "msg/s", ours["drain_rate"], raw["drain_rate"],
               details=base),
    ]
