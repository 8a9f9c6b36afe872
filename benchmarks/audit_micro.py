"""Micro-benchmark: publish throughput of batches (500 messages) with and without audit entries.

Run: ``.venv/bin/python -m benchmarks.audit_micro [--batches 200] [--rounds 3] [--size 500]``.
Starts its own redis-server on a free loopback port. One audit entry per batch (ids listed
as first, last, count and SHA-256 of all of them), in these ways:

    baseline         publish_batch: one EVALSHA, one round trip
    same trip        one pipeline: EVALSHA publish + XADD audit entry (1 round trip)
    same trip, rpy   the same through redis-py's Script object, which makes every
                     ``execute`` send SCRIPT EXISTS first (2 round trips)
    separate         publish_batch, then AuditLog.record (2 round trips)

Prints msgs/s per way (best round), the ratio to the baseline and the client-side CPU
cost of building one entry.
"""

from __future__ import annotations

import argparse
import base64
import os
import time
from collections.abc import Callable
from typing import Any

import phantom_notebook as pn
from benchmarks.payload import MESSAGE_TYPE, ioc_payload
from phantom_notebook.core.audit.log import AuditLog
from phantom_notebook.core.queues import Message
from phantom_notebook.core.security.keyring import SecretKey
from tests.support.redis_server import RedisServer

QUEUE = "ioc-processing"
BATCH = 500


class _Capture:
    """Stands in for the publish script: records the keys and argv the core builds."""

    def __init__(self) -> None:
        self.keys: list[Any] = []
        self.args: list[Any] = []

    def __call__(self, keys: list[Any], args: list[Any], client: Any = None) -> list[Any]:
        self.keys, self.args = list(keys), list(args)
        return []


def pipelined(mq: Any, audit: AuditLog, items: list[Message], one_trip: bool) -> None:
    """The publish script and the audit XADD in one pipeline, as the core would wire it.

    ``Functions.publish`` post-processes its reply, so it cannot queue into a pipeline yet:
    ``publish_batch`` runs against a stand-in that captures the exact keys and argv it
    builds, which then go into the pipeline (same server work as the baseline).
    """
    real, capture = mq.functions._publish, _Capture()
    mq.functions._publish = capture
    try:
        mq.publish_batch(QUEUE, items)
    finally:
        mq.functions._publish = real
    keys, args = capture.keys, capture.args
    pipe = mq.client.pipeline(transaction=False)
    if one_trip:  # loaded already (warm-up): EVALSHA straight, no SCRIPT EXISTS trip
        pipe.evalsha(real.sha, len(keys), *keys, *args)
    else:
        real(keys=keys, args=args, client=pipe)
    # 26-character stand-ins for the ULIDs (publish_batch's return was captured away)
    ids = [f"{m.payload['seq']:026d}" for m in items]
    audit.queue(pipe, "publish", QUEUE, message_ids=ids)
    audit.execute(pipe)


def run(mq: Any, batches: int, size: int, step: Callable[[list[Message]], object]) -> float:
    """Messages per second over ``batches`` batches of ``size``."""
    mq.client.flushdb()
    work = [[Message(MESSAGE_TYPE, ioc_payload(b * size + i)) for i in range(size)]
            for b in range(batches)]
    start = time.perf_counter()
    for items in work:
        step(items)
    return batches * size / (time.perf_counter() - start)


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=200, help="batches of 500 per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (best one is shown)")
    parser.add_argument("--size", type=int, default=BATCH, help="messages per batch")
    args = parser.parse_args()
    server = RedisServer().start()
    try:
        mq = pn.connect(server.url, key_prefix="bench")
        key = SecretKey.from_base64("audit", base64.b64encode(os.urandom(32)).decode())
        audit = AuditLog(mq, key, "bench-producer", "analyst")
        ways: dict[str, Callable[[list[Message]], object]] = {
            "baseline (no audit)": lambda items: mq.publish_batch(QUEUE, items),
            "same trip (EVALSHA+XADD)": lambda items: pipelined(mq, audit, items, True),
            "same trip, redis-py Script": lambda items: pipelined(mq, audit, items, False),
            "separate record()": lambda items: (
                audit.record("publish", QUEUE,
                             message_ids=mq.publish_batch(QUEUE, items))),
        }
        run(mq, 10, args.size, ways["baseline (no audit)"])  # warm up, load the scripts
        best = {name: 0.0 for name in ways}
        for _ in range(args.rounds):  # interleaved so drift hits every way alike
            for name, step in ways.items():
                best[name] = max(best[name], run(mq, args.batches, args.size, step))
        ids = [f"01J{i:023d}" for i in range(BATCH)]
        pipe = mq.client.pipeline(transaction=False)
        n = 2000
        start = time.perf_counter()
        for _ in range(n):
            audit.queue(pipe, "publish", QUEUE, message_ids=ids)
        entry_us = (time.perf_counter() - start) / n * 1e6
        pipe.reset()
        audit.restart_chain()
        base = best["baseline (no audit)"]
        print(f"redis {mq.client.info('server')['redis_version']}, {args.batches} batches of "
              f"{args.size} per round, best of {args.rounds}")
        print(f"{'way':30} {'msgs/s':>10} {'vs baseline':>12}")
        for name, rate in best.items():
            print(f"{name:30} {rate:10,.0f} {rate / base:11.3f}x")
        print(f"client CPU per audit entry (500 ids: SHA-256 digest + HMAC): {entry_us:.1f} µs")
        mq.client.close()
    finally:
        server.close()


if __name__ == "__main__":
    main()
