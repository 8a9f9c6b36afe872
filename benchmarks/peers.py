"""Peers on the same payload and machine: RQ, Dramatiq, arq, Huey, Celery, BullMQ (Python).

Each peer runs in its own subprocess (``python -m benchmarks.peers <name> <url> <n>``) with a
timeout: enqueue ``n`` no-op jobs, then run ONE worker process (in-process, the peer's own
worker class) until all are handled. Settings follow each project's documentation for
throughput: RQ ``enqueue_many`` + ``SimpleWorker`` (no fork per job); Dramatiq 8 worker
threads; arq ``max_jobs`` 100 in burst mode; Huey thread workers with blocking Redis pops and
no result store; Celery with ``ignore_result``, threads pool, prefetch multiplier 64; BullMQ
``addBulk`` + ``concurrency`` 100. A peer that is missing or fails is skipped with its reason.
The child side imports only the standard library, the peer and ``benchmarks.payload``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.payload import ioc_payload

PEERS = ("rq", "dramatiq", "arq", "huey", "celery", "bullmq")
ROOT = Path(__file__).resolve().parent.parent


class Counter:
    """Jobs handled by the no-op task in this process."""

    def __init__(self) -> None:
        self.n = 0
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.target = 0
        self.first = 0.0
        self.last = 0.0

    def hit(self) -> None:
        with self.lock:
            now = time.perf_counter()
            if not self.n:
                self.first = now
            self.n += 1
            if self.n >= self.target and not self.done.is_set():
                self.last = now
                self.done.set()

    def handling_s(self) -> float:
        """First to last job handled: how ours is timed too (worker start-up excluded)."""
        return self.last - self.first


COUNTER = Counter()


def noop_task(payload: Any) -> None:
    """The no-op job body every sync peer runs."""
    COUNTER.hit()


async def noop_async(ctx: Any, payload: Any) -> None:
    """The no-op job body for arq."""
    COUNTER.hit()


def _wait(timeout_s: float = 600) -> float:
    start = time.perf_counter()
    if not COUNTER.done.wait(timeout_s):
        raise TimeoutError(f"only {COUNTER.n} of {COUNTER.target} jobs handled")
    return time.perf_counter() - start


# -- one runner per peer: returns (enqueue seconds, processing seconds) ----------------------------

def run_rq(url: str, n: int) -> tuple[float, float]:
    from redis import Redis
    from rq import Queue
    from rq.worker import SimpleWorker

    conn = Redis.from_url(url)
    q = Queue("bench", connection=conn)
    start = time.perf_counter()
    for base in range(0, n, 500):
        q.enqueue_many([Queue.prepare_data(noop_task, (ioc_payload(i),), result_ttl=0)
                        for i in range(base, min(base + 500, n))])
    enqueue = time.perf_counter() - start
    start = time.perf_counter()
    SimpleWorker([q], connection=conn).work(burst=True, logging_level="WARNING")
    return enqueue, time.perf_counter() - start


def run_dramatiq(url: str, n: int) -> tuple[float, float]:
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=url)
    dramatiq.set_broker(broker)
    actor = dramatiq.actor(noop_task, max_retries=0, queue_name="bench")
    start = time.perf_counter()
    for i in range(n):
        actor.send(ioc_payload(i))
    enqueue = time.perf_counter() - start
    worker = dramatiq.Worker(broker, worker_threads=8)
    worker.start()
    elapsed = _wait()
    worker.stop()
    return enqueue, elapsed


def run_huey(url: str, n: int) -> tuple[float, float]:
    from huey import RedisHuey

    huey = RedisHuey("bench", url=url, results=False, blocking=True)
    task = huey.task()(noop_task)
    start = time.perf_counter()
    for i in range(n):
        task(ioc_payload(i))
    enqueue = time.perf_counter() - start
    consumer = huey.create_consumer(workers=4, worker_type="thread", periodic=False,
                                    initial_delay=0.001, max_delay=0.01)
    consumer.start()
    elapsed = _wait()
    consumer.stop(graceful=True)
    return enqueue, elapsed


def run_celery(url: str, n: int) -> tuple[float, float]:
    from celery import Celery
    from celery.contrib.testing.worker import start_worker

    app = Celery("bench", broker=url)
    app.conf.update(task_ignore_result=True, worker_prefetch_multiplier=64,
                    task_acks_late=False, broker_connection_retry_on_startup=True)
    task = app.task(name="bench.noop", ignore_result=True)(noop_task)
    start = time.perf_counter()
    for i in range(n):
        task.delay(ioc_payload(i))
    enqueue = time.perf_counter() - start
    with start_worker(app, pool="threads", concurrency=8, perform_ping_check=False,
                      loglevel="WARNING", shutdown_timeout=10):
        elapsed = _wait()
    return enqueue, elapsed


def run_arq(url: str, n: int) -> tuple[float, float]:
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.worker import Worker, func

    settings = RedisSettings.from_dsn(url)

    async def main() -> tuple[float, float]:
        pool = await create_pool(settings)
        start = time.perf_counter()
        for i in range(n):
            await pool.enqueue_job("noop", ioc_payload(i))
        enqueue = time.perf_counter() - start
        worker = Worker(functions=[func(noop_async, name="noop")], redis_settings=settings,
                        burst=True, max_jobs=100, handle_signals=False, poll_delay=0.01,
                        keep_result=0)
        start = time.perf_counter()
        await worker.main()
        elapsed = time.perf_counter() - start
        await worker.close()
        await pool.aclose()
        return enqueue, elapsed

    return asyncio.run(main())


def run_bullmq(url: str, n: int) -> tuple[float, float]:
    from bullmq import Queue, Worker

    async def process(job: Any, token: Any) -> None:
        COUNTER.hit()

    async def main() -> tuple[float, float]:
        queue = Queue("bench", {"connection": url})
        start = time.perf_counter()
        for base in range(0, n, 500):
            await queue.addBulk([{"name": "noop", "data": ioc_payload(i),
                                  "opts": {"removeOnComplete": True}}
                                 for i in range(base, min(base + 500, n))])
        enqueue = time.perf_counter() - start
        start = time.perf_counter()
        worker = Worker("bench", process, {"connection": url, "concurrency": 100})
        while not COUNTER.done.is_set():
            if time.perf_counter() - start > 600:
                raise TimeoutError(f"only {COUNTER.n} of {n} jobs handled")
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - start
        await worker.close()
        await queue.close()
        return enqueue, elapsed

    return asyncio.run(main())


RUNNERS: dict[str, Callable[[str, int], tuple[float, float]]] = {
    "rq": run_rq, "dramatiq": run_dramatiq, "arq": run_arq, "huey": run_huey,
    "celery": run_celery, "bullmq": run_bullmq,
}


# -- parent side ---------------------------------------------------------------------------

def measure(name: str, url: str, n: int, python: str, timeout_s: float) -> dict[str, Any]:
    """Run one peer in a subprocess; ``{"peer", "ok", ...rates}`` or ``{"ok": False, reason}``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        proc = subprocess.run([python, "-m", "benchmarks.peers", name, url, str(n)],
                              capture_output=True, text=True, timeout=timeout_s, cwd=ROOT,
                              env=env)
    except subprocess.TimeoutExpired:
        return {"peer": name, "ok": False, "reason": f"timed out after {timeout_s:.0f} s"}
    except OSError as exc:
        return {"peer": name, "ok": False, "reason": f"could not start {python}: {exc}"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"peer": name, "ok": False, "reason": f"exit {proc.returncode}: {tail[0][:200]}"}
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except ValueError:
        return {"peer": name, "ok": False, "reason": f"unreadable output: {lines[-1][:200]}"}
    return result


def child(name: str, url: str, n: int) -> dict[str, Any]:
    """Run peer ``name`` here; never raises (a failure becomes a skip reason)."""
    COUNTER.target = n
    try:
        runner = RUNNERS[name]
        enqueue_s, process_s = runner(url, n)
    except ImportError as exc:
        return {"peer": name, "ok": False, "reason": f"not installed ({exc.name})"}
    except Exception as exc:  # noqa: BLE001 - report, never crash the harness
        return {"peer": name, "ok": False, "reason": f"{type(exc).__name__}: {exc}"[:300]}
    if COUNTER.n < n:
        return {"peer": name, "ok": False, "reason": f"handled {COUNTER.n} of {n} jobs"}
    # processing is timed from the first job handled to the last, as ours is (the drain's
    # first to last handled message): the worker's start-up counts for nobody
    handling_s = COUNTER.handling_s() or process_s
    return {"peer": name, "ok": True, "jobs": n, "enqueue_rate": n / enqueue_s,
            "process_rate": n / handling_s, "e2e_rate": n / (enqueue_s + handling_s),
            "startup_and_process_s": process_s, "version": _version(name)}


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    out = child(sys.argv[1], sys.argv[2], int(sys.argv[3]))
    sys.stdout.flush()
    print(json.dumps(out))
    os._exit(0)  # peers leave non-daemon threads behind; the result is printed
