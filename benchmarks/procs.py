"""Subprocess roles: ``python -m benchmarks.procs <role> <spec json>``.

Roles: ``ours-worker`` (a phantom_notebook ``Worker`` with a no-op handler on one queue, or
on each of ``queues``; it returns ``returns``, which a request stores as its result),
``raw-worker`` (XREADGROUP COUNT 500 + XACK + XDEL), ``raw-reply-worker`` (the same, plus
an RPUSH of a reply to the list each request names), ``ours-bg`` / ``raw-bg`` (paced
background publishers). Workers record locally (count, first and last handled time, probe
latencies, delayed lateness) and publish their tallies to ``bench:<run>:*`` keys every
20 ms, so the hot path never pays a round trip for the measurement. Coordination: a worker
pushes its pid to ``bench:<run>:ready``, waits for a token on ``bench:<run>:go``, and stops
when ``bench:<run>:stop`` exists.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import orjson
import redis

from benchmarks.harness import RawCodec, connect
from benchmarks.payload import MESSAGE_TYPE, ioc_payload
from phantom_notebook.core.config.tuning import overlap_fits, tune_process_for_throughput

REPORT_EVERY_S = 0.02


class Recorder:
    """Counts handled messages and collects probe latencies / delayed lateness (ns)."""

    def __init__(self) -> None:
        self.count = 0
        self.first = 0
        self.last = 0
        self.latency: list[int] = []
        self.lateness: list[int] = []

    def hit(self, payload: Any) -> None:
        """Record one handled message; called first thing in the handler."""
        now = time.time_ns()
        if not self.count:
            self.first = now
        self.count += 1
        self.last = now
        sent = payload.get("t_ns")
        if sent is not None:
            self.latency.append(now - sent)
        due = payload.get("due_ns")
        if due is not None:
            self.lateness.append(now - due)


class Reporter(threading.Thread):
    """Publishes the recorder's tallies and watches for the stop key."""

    def __init__(self, client: Any, run: str, rec: Recorder) -> None:
        super().__init__(daemon=True, name="bench-reporter")
        self.client, self.run_id, self.rec = client, run, rec
        self.stop_seen = threading.Event()

    def publish(self) -> None:
        """Write count, first and last to ``bench:<run>:stat`` under our pid."""
        r = self.rec
        self.client.hset(f"bench:{self.run_id}:stat", str(os.getpid()),
                         f"{r.count} {r.first} {r.last}")

    def run(self) -> None:
        while not self.stop_seen.is_set():
            try:
                self.publish()
                if self.client.exists(f"bench:{self.run_id}:stop"):
                    self.stop_seen.set()
            except redis.RedisError:  # a stalled server must not end the tallies
                pass
            time.sleep(REPORT_EVERY_S)

    def finish(self) -> None:
        """Final tallies, then the latency samples, then the exit marker."""
        self.publish()
        pipe = self.client.pipeline(transaction=False)
        if self.rec.latency:
            pipe.rpush(f"bench:{self.run_id}:latency", orjson.dumps(self.rec.latency))
        if self.rec.lateness:
            pipe.rpush(f"bench:{self.run_id}:lateness", orjson.dumps(self.rec.lateness))
        pipe.rpush(f"bench:{self.run_id}:exited", os.getpid())
        pipe.execute()


def _ready_then_wait(client: Any, run: str) -> None:
    client.rpush(f"bench:{run}:ready", os.getpid())
    if client.blpop([f"bench:{run}:go"], timeout=120) is None:
        sys.exit("no go signal within 120 s")


def ours_worker(spec: dict[str, Any]) -> None:
    """A phantom_notebook Worker with a no-op handler (1 lane, inline, auto-ack)."""
    mq, _ = connect(spec["url"], spec["prefix"], spec["profile"], **spec.get("overrides", {}))
    client = redis.Redis.from_url(spec["url"])
    rec = Recorder()

    value = spec.get("returns")

    def handle(message: Any, context: Any) -> Any:
        rec.hit(message.payload)
        return value

    for queue in spec.get("queues") or [spec["queue"]]:
        mq.subscribe(queue, "*", handle, prefetch_count=spec.get("prefetch", 500))
    # the supervisor's rule (phantom-notebook worker --processes N): overlap on a spare core
    worker = mq.worker(name=f"bench-{os.getpid()}",
                       overlap=overlap_fits(int(spec.get("procs", 1))))
    # what Worker.run does in a real worker process (phantom-notebook worker); start() is
    # used here only so the reporter thread can stop it on the bench's signal
    tune_process_for_throughput()
    reporter = Reporter(client, spec["run"], rec)
    _ready_then_wait(client, spec["run"])
    worker.start()
    reporter.start()
    reporter.stop_seen.wait()
    worker.stop(grace_s=5)
    reporter.finish()


def ours_async_worker(spec: dict[str, Any]) -> None:
    """``ours-worker`` with an async no-op handler, on ``phantom_notebook.aio``: the
    handlers run on this process's event loop (``asyncio.run``)."""
    import asyncio

    from phantom_notebook.aio import AsyncMessageQueue
    from phantom_notebook.aio.client import open_async_client

    mq, _ = connect(spec["url"], spec["prefix"], spec["profile"], **spec.get("overrides", {}))
    client = redis.Redis.from_url(spec["url"])
    rec = Recorder()

    async def handle(message: Any, context: Any) -> None:
        rec.hit(message.payload)

    async def main() -> None:
        amq = AsyncMessageQueue(mq, open_async_client(mq.settings.redis))
        await amq.subscribe(spec["queue"], "*", handle, prefetch_count=spec.get("prefetch", 500),
                            max_concurrency=spec.get("concurrency", 1))
        worker = amq.worker(name=f"bench-{os.getpid()}",
                            overlap=overlap_fits(int(spec.get("procs", 1))))
        tune_process_for_throughput()
        reporter = Reporter(client, spec["run"], rec)
        await asyncio.to_thread(_ready_then_wait, client, spec["run"])
        await worker.start()
        reporter.start()
        await asyncio.to_thread(reporter.stop_seen.wait)
        await worker.stop(grace_s=5)
        reporter.finish()
        await amq.close()

    asyncio.run(main())


def raw_worker(spec: dict[str, Any]) -> None:
    """The ceiling: XREADGROUP COUNT 500 (blocking), decode, no-op, XACK + XDEL per batch."""
    client = redis.Redis.from_url(spec["url"])
    codec = RawCodec(spec["profile"], bytes.fromhex(spec.get("header", "")))
    stream, group = spec["stream"], "workers"
    consumer = f"raw-{os.getpid()}"
    tune_process_for_throughput()  # the same process set-up as ours, so the ratio stays fair
    rec = Recorder()
    reporter = Reporter(client, spec["run"], rec)
    _ready_then_wait(client, spec["run"])
    reporter.start()
    noop = _noop
    while not reporter.stop_seen.is_set():
        reply = client.xreadgroup(group, consumer, {stream: ">"}, count=500, block=50)
        if not reply:
            continue
        ids = []
        for sid, fields in reply[0][1]:
            payload = codec.decode(fields[b"m"])
            rec.hit(payload)
            noop(payload)
            ids.append(sid)
        pipe = client.pipeline(transaction=False)
        pipe.xack(stream, group, *ids)
        pipe.xdel(stream, *ids)
        pipe.execute()
    reporter.finish()


def _noop(payload: Any) -> None:
    return None


def raw_reply_worker(spec: dict[str, Any]) -> None:
    """The request/reply ceiling: XREADGROUP COUNT 500 (blocking), decode, then one
    pipeline per batch: RPUSH the encoded reply (``returns``) to the list each entry names
    in its ``r`` field (+ PEXPIRE), XACK + XDEL."""
    client = redis.Redis.from_url(spec["url"])
    codec = RawCodec(spec["profile"], bytes.fromhex(spec.get("header", "")))
    stream, group = spec["stream"], "workers"
    consumer = f"raw-{os.getpid()}"
    value = spec.get("returns")
    tune_process_for_throughput()
    rec = Recorder()
    reporter = Reporter(client, spec["run"], rec)
    _ready_then_wait(client, spec["run"])
    reporter.start()
    while not reporter.stop_seen.is_set():
        reply: Any = client.xreadgroup(group, consumer, {stream: ">"}, count=500, block=50)
        if not reply:
            continue
        ids = []
        pipe = client.pipeline(transaction=False)
        for sid, fields in reply[0][1]:
            payload = codec.decode(fields[b"m"])
            rec.hit(payload)
            _noop(payload)
            pipe.rpush(fields[b"r"], codec.encode(value))
            pipe.pexpire(fields[b"r"], 60_000)
            ids.append(sid)
        pipe.xack(stream, group, *ids)
        pipe.xdel(stream, *ids)
        pipe.execute()
    reporter.finish()


def background(spec: dict[str, Any], ours: bool) -> None:
    """Publish NORMAL traffic at ``rate`` msg/s in 1 ms ticks until the stop key exists."""
    from phantom_notebook import Message, MessagePriority

    client = redis.Redis.from_url(spec["url"])
    rate, run = float(spec["rate"]), spec["run"]
    tick = 0.001
    per_tick = rate * tick
    mq = features = None
    if ours:
        mq, features = connect(spec["url"], spec["prefix"], spec["profile"])
    codec = RawCodec(spec["profile"], bytes.fromhex(spec.get("header", "")))
    sent, owed, seq = 0, 0.0, 10_000_000 * (1 + os.getpid() % 1000)
    start = next_tick = time.perf_counter()
    check_at = start
    while True:
        owed += per_tick
        n = int(owed)
        owed -= n
        if n:
            if mq is not None and features is not None:
                mq.publish_batch(spec["queue"], [
                    Message(MESSAGE_TYPE, ioc_payload(seq + i), MessagePriority.NORMAL,
                            dedup_key=f"bg{seq + i}" if features.dedup else None)
                    for i in range(n)])
            else:
                pipe = client.pipeline(transaction=False)
                for i in range(n):
                    pipe.xadd(spec["stream"], {"m": codec.encode(ioc_payload(seq + i))})
                pipe.execute()
            seq += n
            sent += n
        next_tick += tick
        now = time.perf_counter()
        if now >= check_at:
            check_at = now + 0.05
            if client.exists(f"bench:{run}:stop"):
                break
        if next_tick > now:
            time.sleep(next_tick - now)
    elapsed = time.perf_counter() - start
    client.hset(f"bench:{run}:bg", str(os.getpid()), f"{sent} {elapsed}")
    client.rpush(f"bench:{run}:exited", os.getpid())


def main(argv: list[str]) -> None:
    """Dispatch to the role named in ``argv[0]`` with the spec JSON in ``argv[1]``."""
    role, spec = argv[0], orjson.loads(argv[1])
    if role == "ours-worker":
        ours_worker(spec)
    elif role == "ours-async-worker":
        ours_async_worker(spec)
    elif role == "raw-worker":
        raw_worker(spec)
    elif role == "raw-reply-worker":
        raw_reply_worker(spec)
    elif role in ("ours-bg", "raw-bg"):
        background(spec, ours=role == "ours-bg")
    else:
        sys.exit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
