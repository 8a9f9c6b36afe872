"""The asyncio worker: ``async with mq.worker():`` or ``await worker.run()``.

It is the synchronous engine's worker (``core/consume/worker.py``: the same lanes, fetch
and settle functions, leases, retries and dead-lettering, proven under SIGKILL) with one
difference: async handlers run on the caller's event loop, the service's own, so they
share its sessions, clients and context. The lanes fetch and settle in their threads
(Redis round trips never block the loop); the handlers of one fetched batch reach the
loop in one wake-up. Sync handlers run in the lanes as in the synchronous worker.

Stopping drains like SIGTERM: fetching stops, handlers running on the loop finish within
``grace_s``, their outcomes are settled, the heartbeat is removed. A cancelled ``run()``
(or a cancelled ``async with`` body) drains the same way before the cancellation
propagates.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any

from ..core.consume.subscription import Subscription
from ..core.consume.worker import EXIT_LANE_FAILED, Worker
from ..core.observe.worker_stats import WorkerStats
from .publish import uncancellable

if TYPE_CHECKING:
    from .queue import AsyncMessageQueue

Job = Callable[[], Coroutine[Any, Any, None]]

#: how often ``run()`` looks at the lanes (failed lanes, ``drain``)
WATCH_S = 0.2


class _LoopRunner:
    """Async handlers on the caller's loop: jobs submitted by lane threads are started in
    one ``call_soon_threadsafe`` per burst, each within its subscription's concurrency."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._jobs: deque[tuple[Subscription | None, Job]] = deque()
        self._lock = threading.Lock()
        self._scheduled = False
        self._limits: dict[int, asyncio.Semaphore] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, sub: Subscription | None, job: Job) -> None:
        """Start ``job`` on the loop (within ``sub``'s concurrency; None: the job limits
        itself)."""
        with self._lock:
            self._jobs.append((sub, job))
            wake, self._scheduled = not self._scheduled, True
        if wake:
            self.loop.call_soon_threadsafe(self._start_jobs)

    def _start_jobs(self) -> None:
        with self._lock:
            jobs = list(self._jobs)
            self._jobs.clear()
            self._scheduled = False
        for sub, job in jobs:
            task = self.loop.create_task(self._limited(sub, job) if sub is not None else job())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _limited(self, sub: Subscription, job: Job) -> None:
        sem = self._limits.get(id(sub))
        if sem is None:
            sem = self._limits[id(sub)] = asyncio.Semaphore(sub.max_concurrency)
        async with sem:
            await job()

    def submit_batch(self, job: Job) -> None:
        """Start the coroutine of a lane's whole fetched batch (it limits concurrency)."""
        self.submit(None, job)

    def close(self) -> None:
        """Nothing to stop: the loop is the caller's (the lanes drained before this)."""


class _LoopWorker(Worker):
    """A ``Worker`` whose async handlers run on ``loop``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *args: Any, **kwargs: Any) -> None:
        self._loop = loop
        super().__init__(*args, **kwargs)

    def _async_runner(self) -> Any:
        return _LoopRunner(self._loop)


class AsyncWorker:
    """Runs the subscriptions of an ``AsyncMessageQueue`` until stopped (see the module).

    Options are those of ``Worker`` (``name``, ``grace_s``, ``poll_ms``,
    ``priority_latency_ms``, ``drain``, ...). The worker is built (its consumer groups
    created) in ``start()``, off the loop.
    """

    def __init__(self, mq: AsyncMessageQueue, subscriptions: Iterable[Subscription],
                 **options: Any) -> None:
        self.mq = mq
        self.subscriptions = list(subscriptions)
        self.options = options
        self._worker: _LoopWorker | None = None

    def __repr__(self) -> str:
        inner = repr(self._worker) if self._worker is not None else "not started"
        return f"AsyncWorker({inner})"

    @property
    def worker(self) -> Worker:
        """The engine's worker (after ``start()``)."""
        if self._worker is None:
            raise RuntimeError("the worker has not started: await worker.start() first")
        return self._worker

    @property
    def stats(self) -> WorkerStats:
        """Handled, failed and dead-lettered counts of this worker."""
        return self.worker.stats

    @property
    def running(self) -> bool:
        """True between ``start()`` and the end of ``stop()``."""
        return self._worker is not None and self._worker.running

    async def start(self) -> AsyncWorker:
        """Create the consumer groups and start the lanes (in threads); returns at once."""
        if self._worker is None:
            loop = asyncio.get_running_loop()
            worker = await asyncio.to_thread(
                _LoopWorker, loop, self.mq.sync, self.subscriptions, **self.options)
            self._worker = worker
            # cancelled meanwhile, the lanes still start whole, so stop() can drain them
            await uncancellable(asyncio.to_thread(worker.start))
        return self

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain: stop fetching, let running handlers finish within the grace period,
        settle their outcomes. Completes even when the caller is cancelled meanwhile."""
        if self._worker is not None:
            await uncancellable(asyncio.to_thread(self._worker.stop, grace_s))

    async def run(self) -> int:
        """Run until cancelled or stopped; returns 0, or ``EXIT_LANE_FAILED`` when a lane
        cannot recover (with ``drain=True``: when the queues are empty). Cancelled, it
        drains first, then raises ``CancelledError``."""
        code = 0
        try:
            await self.start()
            worker = self.worker
            while worker.running:
                await asyncio.sleep(WATCH_S)  # a watch interval, not synchronization
                if worker.failures():
                    code = EXIT_LANE_FAILED
                    break
                if worker.drain and await asyncio.to_thread(worker.drained):
                    break
        except asyncio.CancelledError:
            await self.stop()
            raise
        await self.stop()
        return code

    async def __aenter__(self) -> AsyncWorker:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


__all__ = ["AsyncWorker"]
