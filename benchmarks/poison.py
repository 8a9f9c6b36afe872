"""Poison load: does 1 % of always-failing messages collapse a fleet's throughput?

``python -m benchmarks.poison [--seconds 60] [--producers 4] [--workers 3]``

The issue's scenario: a backlog, producers that keep publishing into it (paced, so on a
small machine they do not take the workers' CPU and the figure measures the workers), and
worker processes with retries (max 2, 0.2-1 s backoff) and a circuit breaker; one run with
no poison, one with 1 % of messages that always fail. Throughput is successful handles per
second over the measured window (after a warm-up, with the backlog never empty); then the
producers stop, the workers drain everything, and every message is accounted for: handled,
or dead-lettered (poison only), or lost (must be 0).

Roles run as subprocesses: ``python -m benchmarks.poison producer|worker <spec json>``;
they report their counts to ``<prefix>:bench:*`` keys and stop when ``<prefix>:bench:stop``
exists.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import redis

import phantom_notebook as pn

ROOT = Path(__file__).resolve().parents[1]
QUEUE = "poison-bench"
BATCH = 50
PRODUCER_RATE = 1_000  # messages per second per producer


def settings() -> pn.Settings:
    """Retries as in the issue: at most 2, backoff 0.2 s growing to 1 s."""
    return pn.Settings.from_dict({"queue_defaults": {
        "max_queue_size": 10_000_000,
        "retry": {"max_retries": 2, "initial_delay_s": 0.2, "max_delay_s": 1.0}}})


def _batch(me: int, first: int, size: int, every: int) -> list[pn.Message]:
    return [pn.Message("ioc.enrichment.request",
                       {"ioc": f"198.51.{me}.{n % 250}",
                        "poison": bool(every) and n % every == 0})
            for n in range(first, first + size)]


def producer(spec: dict[str, Any]) -> None:
    """Publish ``PRODUCER_RATE`` messages a second (every ``poison_every``-th poisoned, from
    ``first`` on) until the stop key exists; the backlog role publishes ``count`` at once."""
    mq = pn.connect(spec["url"], key_prefix=spec["prefix"], settings=settings())
    client = redis.Redis.from_url(spec["url"])
    me, every, sent = spec["index"], spec["poison_every"], 0
    stop = f"{spec['prefix']}:bench:stop"
    paced_at = time.monotonic()
    while not client.exists(stop):
        mq.publish_batch(QUEUE, _batch(me, sent, BATCH, every))
        sent += BATCH
        client.hset(f"{spec['prefix']}:bench:published", me, sent)
        client.hset(f"{spec['prefix']}:bench:poisoned", me, _poisoned(sent, every))
        paced_at += BATCH / PRODUCER_RATE
        time.sleep(max(paced_at - time.monotonic(), 0))  # pacing, not synchronisation
    mq.close()


def _poisoned(count: int, every: int) -> int:
    """How many of messages 0..count-1 are poison."""
    return (count + every - 1) // every if every else 0


def fill(url: str, prefix: str, count: int, every: int) -> None:
    """The backlog the workers start on (publisher index 255)."""
    mq = pn.connect(url, key_prefix=prefix, settings=settings())
    client = redis.Redis.from_url(url)
    for first in range(0, count, 1000):
        mq.publish_batch(QUEUE, _batch(255, first, min(1000, count - first), every))
    client.hset(f"{prefix}:bench:published", "backlog", count)
    client.hset(f"{prefix}:bench:poisoned", "backlog", _poisoned(count, every))
    mq.close()


def worker(spec: dict[str, Any]) -> None:
    """A Worker whose handler fails poison; reports its successful handles every 50 ms."""
    mq = pn.connect(spec["url"], key_prefix=spec["prefix"], settings=settings())
    client = redis.Redis.from_url(spec["url"])
    handled = [0]

    def handle(message: pn.Envelope, context: pn.MessageContext) -> None:
        if message.payload["poison"]:
            raise RuntimeError("poison: this indicator always crashes the enricher")
        handled[0] += 1

    mq.subscribe(QUEUE, "*", handle, breaker=pn.BreakerSettings(
        enabled=os.environ.get("PN_POISON_BREAKER", "1") == "1"))
    stop = f"{spec['prefix']}:bench:stop-workers"
    with mq.worker() as w:
        while not client.exists(stop):
            client.hset(f"{spec['prefix']}:bench:handled", spec["index"], handled[0])
            opened = sum(1 for b in mq.breakers(QUEUE).values() if b.get("state") == "open")
            if opened:
                client.hset(f"{spec['prefix']}:bench:breaker-open", spec["index"], opened)
            time.sleep(0.05)  # the reporting cadence, not a synchronisation
        w.stop()
    client.hset(f"{spec['prefix']}:bench:handled", spec["index"], handled[0])
    mq.close()


def _spawn(role: str, spec: dict[str, Any]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "benchmarks.poison", role,
                             orjson.dumps(spec).decode()], cwd=ROOT, env=env)


def _total(client: redis.Redis, key: str) -> int:
    return sum(int(v) for v in client.hvals(key))


def run(url: str, seconds: float, poison_every: int, producers: int = 4, workers: int = 3,
        warmup_s: float = 2.0, drain_timeout_s: float = 180.0,
        backlog: int | None = None) -> dict[str, Any]:
    """One run; returns throughput and the accounting of every message."""
    prefix = f"poison-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(url)
    admin = pn.connect(url, key_prefix=prefix, settings=settings())
    admin.declare(QUEUE)
    admin.ensure_group(QUEUE)
    spec = {"url": url, "prefix": prefix, "poison_every": poison_every}
    fill(url, prefix, backlog or int(45_000 * (seconds + warmup_s + 5)), poison_every)
    procs = [_spawn("worker", {**spec, "index": i}) for i in range(workers)]
    procs += [_spawn("producer", {**spec, "index": i}) for i in range(producers)]
    handled_key = f"{prefix}:bench:handled"
    try:
        ready = time.monotonic() + 60
        while (client.hlen(handled_key) < workers or
               client.hlen(f"{prefix}:bench:published") < producers) and \
                time.monotonic() < ready:
            time.sleep(0.05)  # waiting for every process to start, bounded
        time.sleep(warmup_s)  # a warm-up period once all run, not a synchronisation
        start_count, started = _total(client, handled_key), time.monotonic()
        time.sleep(seconds)  # the measured window
        end_count, ended = _total(client, handled_key), time.monotonic()
        backlog_left = admin.stats(QUEUE)[0].ready
        client.set(f"{prefix}:bench:stop", 1)
        for p in procs[workers:]:
            p.wait(timeout=60)
        published = _total(client, f"{prefix}:bench:published")
        poisoned = _total(client, f"{prefix}:bench:poisoned")
        deadline = time.monotonic() + drain_timeout_s
        while time.monotonic() < deadline:
            s = admin.stats(QUEUE)[0]
            if s.depth == 0 and s.in_flight == 0:
                break
            time.sleep(0.2)  # polling the drain, bounded by the deadline
        client.set(f"{prefix}:bench:stop-workers", 1)
        for p in procs[:workers]:
            p.wait(timeout=60)
        handled = _total(client, handled_key)
        dead = admin.stats(QUEUE)[0].dead
        transitions = sum(int(b.get("transitions", 0)) for b in admin.breakers(QUEUE).values())
        breaker_open = _total(client, f"{prefix}:bench:breaker-open")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        admin.close()
    return {"poison_every": poison_every, "throughput": (end_count - start_count) /
            (ended - started), "published": published, "poisoned": poisoned,
            "handled": handled, "dead_letters": dead,
            "lost": published - handled - dead, "breaker_open_reports": breaker_open,
            "backlog_left": backlog_left, "breaker_transitions": transitions}


def compare(url: str, seconds: float, producers: int = 4, workers: int = 3,
            rounds: int = 1, backlog: int | None = None) -> dict[str, Any]:
    """Clean and 1 % poison runs, alternating on one server; the ratio of mean throughputs."""
    runs: dict[str, list[dict[str, Any]]] = {"clean": [], "poison": []}
    for _ in range(rounds):
        runs["clean"].append(run(url, seconds, 0, producers, workers, backlog=backlog))
        runs["poison"].append(run(url, seconds, 100, producers, workers, backlog=backlog))
    out: dict[str, Any] = {"runs": runs}
    for name, done in runs.items():
        merged = {k: sum(r[k] for r in done) for k in done[0] if k != "poison_every"}
        merged["backlog_left"] = min(r["backlog_left"] for r in done)
        merged["throughput"] /= len(done)
        out[name] = merged
    clean = out["clean"]["throughput"]
    out["ratio"] = out["poison"]["throughput"] / clean if clean else 0.0
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: both runs on a redis-server of our own, printed as one line each."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("producer", "worker"):
        role = producer if args[0] == "producer" else worker
        threading.current_thread().name = f"poison-{args[0]}"
        role(orjson.loads(args[1]))
        return 0
    p = argparse.ArgumentParser(prog="python -m benchmarks.poison", description=__doc__)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--producers", type=int, default=4)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--rounds", type=int, default=1, help="clean/poison pairs (alternating)")
    opts = p.parse_args(args)
    from tests.support.redis_server import RedisServer

    server = RedisServer().start()
    try:
        result = compare(server.url, opts.seconds, opts.producers, opts.workers, opts.rounds)
    finally:
        server.close()
    for name in ("clean", "poison"):
        for i, one in enumerate(result["runs"][name], 1):
            print(f"  round {i} {name:6} {one['throughput']:9,.0f} msg/s")
        r = result[name]
        print(f"{name:6} {r['throughput']:9,.0f} msg/s  published {r['published']:,}  "
              f"poisoned {r['poisoned']:,}  handled {r['handled']:,}  "
              f"dead letters {r['dead_letters']:,}  lost {r['lost']:,}  "
              f"breaker transitions {r['breaker_transitions']}"
              + ("" if r["backlog_left"] else "  (the backlog ran dry: rate understated)"))
    print(f"poison / clean throughput: {result['ratio']:.2f}x (target >= 0.90x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
