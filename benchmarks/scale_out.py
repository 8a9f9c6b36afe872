"""Scale-out figures: publish cost per durability mode, consume throughput on 1-3 masters.

    .venv/bin/python -m benchmarks.scale_out [--messages 20000]

1. Durability: batches of 100 and single publishes into one queue on a master with one
   replica, ``durability`` none / replicated (WAIT 1) / fsync (WAITAOF, Redis >= 7.2 only).
2. Scale-out: a Redis Cluster of 1, 2 and 3 masters (slots split evenly, no replicas),
   a queue with 2 partitions per master, one consumer process per master draining a
   pre-filled backlog with a no-op handler; consume throughput = messages / drain time.

On a 2-core machine every Redis and every consumer share the same two cores, so adding
masters cannot add CPU: the figures show the overhead of partitioning and the client-side
cost, not the cluster's capacity. See docs/operations.md for the model.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import sys
import time
import uuid
from typing import Any

import phantom_notebook as pn
from phantom_notebook.core.errors import ConfigError
from tests.support.cluster import FAST_REPLICATION, free_cluster_port
from tests.support.redis_server import RedisServer

PAYLOAD = {"ioc": {"value": "198.51.100.7", "type": "ipv4"}, "source": "feed", "score": 87,
           "tags": ["c2", "botnet"], "first_seen": "2026-01-01T00:00:00Z", "pad": "x" * 120}


def durability_costs(messages: int) -> list[tuple[str, str, float]]:
    """(mode, shape, messages/s) for each durability mode on master + 1 replica."""
    master = RedisServer(*FAST_REPLICATION).start()
    replica = RedisServer("--replicaof", "127.0.0.1", str(master.port), *FAST_REPLICATION).start()
    rc = replica.client()
    while rc.info("replication").get("master_link_status") != "up":
        time.sleep(0.05)
    rc.close()
    out = []
    try:
        mq = pn.connect(master.url, key_prefix=f"b{uuid.uuid4().hex[:6]}")
        for mode in ("none", "replicated", "fsync"):
            q = f"d-{mode}"
            mq.declare(q, kind="fifo", durability=mode, max_queue_size=None,
                       enable_tracing=False)
            for shape, size in (("batch of 100", 100), ("single", 1)):
                n = messages if size > 1 else messages // 10
                batch = [pn.Message("ioc", PAYLOAD)] * size
                t = time.perf_counter()
                try:
                    for _ in range(n // size):
                        mq.publish_batch(q, batch)
                except ConfigError as exc:
                    out.append((mode, shape, float("nan")))
                    print(f"  {mode:10s} {shape:13s} unavailable: {exc}")
                    break
                rate = n / (time.perf_counter() - t)
                out.append((mode, shape, rate))
                print(f"  {mode:10s} {shape:13s} {rate:10,.0f} msg/s")
        mq.client.close()
    finally:
        replica.close()
        master.close()
    return out


def build_cluster(masters: int) -> list[RedisServer]:
    """``masters`` cluster-enabled nodes with the 16384 slots split evenly."""
    nodes = [RedisServer("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                         port=free_cluster_port()).start() for _ in range(masters)]
    for i, node in enumerate(nodes):
        c = node.client()
        lo, hi = i * 16384 // masters, (i + 1) * 16384 // masters - 1
        c.execute_command("CLUSTER", "ADDSLOTSRANGE", lo, hi)
        if i:
            c.execute_command("CLUSTER", "MEET", "127.0.0.1", nodes[0].port)
        c.close()
    deadline = time.monotonic() + 20
    while True:
        ok = 0
        for node in nodes:
            c = node.client()
            ok += c.cluster("info").get("cluster_state") == "ok"
            c.close()
        if ok == masters:
            return nodes
        if time.monotonic() > deadline:
            raise RuntimeError("cluster did not form")
        time.sleep(0.05)


def _consume(url: str, prefix: str, queue: str, ready: Any, go: Any) -> None:
    mq = pn.connect(url, key_prefix=prefix)
    mq.subscribe(queue, "*", lambda env, ctx: None, prefetch_count=200)
    worker = mq.worker(poll_ms=50)
    ready.set()
    go.wait()
    worker.start()
    while mq.stats([queue])[0].depth > 0:
        time.sleep(0.02)
    worker.stop(grace_s=5)


def consume_scale(messages: int) -> list[tuple[int, int, float]]:
    """(masters, partitions, messages/s) for 1, 2 and 3 masters."""
    out = []
    ctx = mp.get_context("spawn")
    for masters in (1, 2, 3):
        nodes = build_cluster(masters)
        try:
            url = "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in nodes)
            prefix, queue, parts = f"s{uuid.uuid4().hex[:6]}", "ioc-processing", 2 * masters
            mq = pn.connect(url, key_prefix=prefix)
            mq.declare(queue, kind="fifo", partitions=parts, max_queue_size=None)
            batch = [pn.Message("ioc", {**PAYLOAD, "ioc": {"value": f"10.0.{i // 256}.{i % 256}"}})
                     for i in range(500)]
            for _ in range(messages // 500):
                mq.publish_batch(queue, batch)
            ready, go = ctx.Event(), ctx.Event()
            procs = [ctx.Process(target=_consume, args=(url, prefix, queue, ready, go))
                     for _ in range(masters)]
            for p in procs:
                p.start()
            ready.wait(30)
            t = time.perf_counter()
            go.set()
            for p in procs:
                p.join(300)
            rate = messages / (time.perf_counter() - t)
            out.append((masters, parts, rate))
            print(f"  {masters} master(s), {parts} partitions, {masters} consumer process(es): "
                  f"{rate:10,.0f} msg/s")
            mq.client.close()
        finally:
            for n in nodes:
                n.close()
    return out


def main(argv: list[str] | None = None) -> int:
    """Run both measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    args = parser.parse_args(argv)
    if shutil.which("redis-server") is None:
        print("redis-server is not installed", file=sys.stderr)
        return 2
    print(f"publish cost per durability mode ({args.messages:,} messages, master + 1 replica):")
    durability_costs(args.messages)
    print(f"consume throughput, Redis Cluster, {args.messages:,} messages pre-filled:")
    consume_scale(args.messages)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
