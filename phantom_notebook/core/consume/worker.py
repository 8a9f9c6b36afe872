"""The ``Worker``: runs subscriptions with bounded prefetch and concurrency, drains on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import TYPE_CHECKING, Any

import orjson

from ..backend.boundary import public
from ..config.tuning import overlap_fits, tune_process_for_throughput
from ..errors import CapacityError, ConnectionLostError
from ..model.envelope import new_id
from ..observe.worker_stats import WorkerStats
from .lane import Lane
from .pubsub import PubSubLane
from .subscription import Subscription

if TYPE_CHECKING:
    from ..ports import Deployment

log = logging.getLogger("phantom_notebook.worker")

#: how often running handlers learn that their message was cancelled (``mq.cancel``)
CANCEL_CHECK_S = 0.5
#: ``Worker.run``'s exit code when a lane cannot recover (a supervisor restarts the process)
EXIT_LANE_FAILED = 3


class _AsyncRunner:
    """One event loop thread for every async handler of a worker."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="pn-async",
                                        daemon=True)
        self._thread.start()
        self._limits: dict[int, asyncio.Semaphore] = {}

    def submit(self, sub: Subscription, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
        async def limited() -> None:
            sem = self._limits.get(id(sub))
            if sem is None:
                sem = self._limits[id(sub)] = asyncio.Semaphore(sub.max_concurrency)
            async with sem:
                await job()

        asyncio.run_coroutine_threadsafe(limited(), self.loop)

    def submit_batch(self, job: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run one coroutine for a lane's whole fetched batch (it limits concurrency)."""
        asyncio.run_coroutine_threadsafe(job(), self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


@public
class Worker:
    """Runs subscriptions until stopped.

    ``start()`` runs in background threads (notebooks); ``run()`` blocks, installs
    SIGTERM/SIGINT handlers that drain (stop fetching, finish in-flight work within
    ``grace_s``, settle, return 0).
    """

    def __init__(self, mq: Deployment, subscriptions: Iterable[Subscription], *,
                 name: str | None = None, grace_s: float = 30.0, poll_ms: int = 25,
                 priority_latency_ms: float = 2.0, overlap: bool | None = None,
                 drain: bool = False) -> None:
        self.mq = mq
        #: stop once the queues hold nothing ready or in flight (``run`` returns then)
        self.drain = drain
        self.priority_latency_ms = priority_latency_ms
        # work one batch ahead when a core is spare (None: this process alone on the host)
        self.overlap = overlap_fits() if overlap is None else overlap
        self.subscriptions = list(subscriptions)
        if not self.subscriptions:
            from ..errors import ValidationError

            raise ValidationError("a worker needs at least one subscription (mq.subscribe)")
        self.consumer = name or f"{socket.gethostname()}-{os.getpid()}-{new_id()[-6:]}"
        self.grace_s = grace_s
        self.stats = WorkerStats()
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lane_threads: list[threading.Thread] = []
        self._async: _AsyncRunner | None = None
        self._pools: list[ThreadPoolExecutor] = []
        self.lanes = self._build_lanes(poll_ms)
        self.started_at = time.time()

    def __repr__(self) -> str:
        return f"Worker({self.consumer!r}, lanes={len(self.lanes)}, handled={self.stats.handled})"

    def _async_runner(self) -> _AsyncRunner:
        """Where async handlers run: one event loop thread of this worker's own
        (``phantom_notebook.aio`` runs them on the caller's loop instead)."""
        return _AsyncRunner()

    def _build_lanes(self, poll_ms: int) -> list[Lane | PubSubLane]:
        grouped: dict[tuple[str, str], list[Subscription]] = {}
        for sub in self.subscriptions:
            grouped.setdefault((sub.queue, sub.group), []).append(sub)
        lanes: list[Lane | PubSubLane] = []
        for subs in grouped.values():
            pool = None
            if any(not s.is_async and s.max_concurrency > 1 for s in subs):
                pool = ThreadPoolExecutor(max(s.max_concurrency for s in subs),
                                          thread_name_prefix=f"pn-{subs[0].queue}")
                self._pools.append(pool)
            submit = batch = None
            if any(s.is_async for s in subs):
                if self._async is None:
                    self._async = self._async_runner()
                submit, batch = self._async.submit, self._async.submit_batch
            if subs[0].settings.kind == "pubsub":
                lanes.append(PubSubLane(self.mq, subs, self.consumer, self.stats))
                continue
            # one lane per partition (a single one for an unpartitioned queue): every
            # partition gets its own fetch loop, so all are read fairly
            for part in self.mq.layout(subs[0].queue).all:
                lanes.append(Lane(self.mq, subs, self.consumer, self.stats, poll_ms=poll_ms,
                                  submit=submit, pool=pool, partition=part,
                                  priority_latency_ms=self.priority_latency_ms,
                                  overlap=self.overlap, submit_batch=batch))
        self._poll_ms = poll_ms
        return lanes

    def _follow_layouts(self) -> None:
        """Start lanes for partitions added by a ``repartition`` since the worker started."""
        lanes = [x for x in self.lanes if isinstance(x, Lane)]
        have = {(x.queue, x.group, x.partition) for x in lanes}
        first: dict[tuple[str, str], Lane] = {}
        for x in lanes:
            first.setdefault((x.queue, x.group), x)
        for (queue, group), proto in first.items():
            for part in self.mq.layout(queue).all:
                if (queue, group, part) in have or self._stop.is_set():
                    continue
                self.mq.ensure_group(queue, group)
                new = Lane(self.mq, proto.subs, self.consumer, self.stats, poll_ms=self._poll_ms,
                           submit=proto._submit_async, pool=proto._pool, partition=part,
                           priority_latency_ms=self.priority_latency_ms, overlap=self.overlap,
                           submit_batch=proto._submit_batch)
                self.lanes.append(new)
                t = threading.Thread(target=new.run, args=(self._stop,), daemon=True,
                                     name=f"pn-lane-{part}-{group}")
                t.start()
                self._threads.append(t)
                self._lane_threads.append(t)

    @property
    def running(self) -> bool:
        """True between ``start()`` and the end of ``stop()``."""
        return bool(self._threads) and not self._stopped.is_set()

    def start(self) -> Worker:
        """Start every lane and the keeper (lease renewal, heartbeat) in background threads.

        Consumer groups are created before this returns, so a broadcast group started now
        receives every message published after ``start()``. When Redis cannot create one
        now (it is full or away), the lane keeps trying in its own thread: a worker started
        against a full Redis must come up, since consuming is what frees memory.
        """
        for lane in self.lanes:
            if isinstance(lane, Lane):
                try:
                    self.mq.ensure_group(lane.queue, lane.group)
                except (CapacityError, ConnectionLostError) as exc:
                    log.warning("%s/%s: consumer group not created yet (%s); the lane "
                                "retries", lane.queue, lane.group, exc)
        for lane in self.lanes:
            t = threading.Thread(target=lane.run, args=(self._stop,),
                                 name=f"pn-lane-{lane.queue}-{lane.group}", daemon=True)
            t.start()
            self._threads.append(t)
            self._lane_threads.append(t)
        self._heartbeat(alive=True)  # visible at once, not after the first keeper interval
        keeper = threading.Thread(target=self._keep, name="pn-keeper", daemon=True)
        keeper.start()
        self._threads.append(keeper)
        return self

    def stop(self, grace_s: float | None = None) -> None:
        """Stop fetching, let in-flight handlers finish within the grace period, settle, join."""
        if self._stopped.is_set():
            return
        self._stop.set()
        for lane in self.lanes:
            if isinstance(lane, Lane):
                lane.interrupt()  # idle lanes blocked in a read see the stop now
        deadline = time.monotonic() + (self.grace_s if grace_s is None else grace_s)
        for t in self._threads:
            t.join(timeout=max(deadline - time.monotonic(), 0.1))
        for lane in self.lanes:
            lane.drain(deadline)
        for pool in self._pools:
            pool.shutdown(wait=False, cancel_futures=True)
        if self._async is not None:
            self._async.close()
        self._heartbeat(alive=False)
        self._stopped.set()

    def run(self, install_signals: bool = True, tune_process: bool = True) -> int:
        """Run until SIGTERM/SIGINT (or ``stop()`` from another thread); returns exit code 0.

        ``tune_process`` (the worker-process default) applies
        ``tune_process_for_throughput`` (GC and GIL switch interval, see ``core/tuning.py``);
        pass False when the worker shares its process with an application that tunes them.
        """
        if tune_process:
            tune_process_for_throughput()
        if install_signals and threading.current_thread() is threading.main_thread():
            def on_signal(signum: int, frame: FrameType | None) -> None:
                log.info("signal %s: draining (grace %.1fs)", signum, self.grace_s)
                self._stop.set()

            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)
        self.start()
        code = 0
        while not self._stop.wait(0.2):
            failed = self.failures()
            if failed:
                log.error("worker %s stops: %d lane(s) cannot recover: %s", self.consumer,
                          len(failed), "; ".join(failed))
                code = EXIT_LANE_FAILED
                break
            if self.drain and self.drained():
                log.info("worker %s: the backlog is empty, stopping (drain)", self.consumer)
                break
        self.stop()
        return code

    def drained(self) -> bool:
        """Nothing ready or in flight in any of this worker's queues, nothing running here
        (delayed messages not yet due do not hold a draining worker)."""
        if any(lane.inflight for lane in self.lanes if isinstance(lane, Lane)):
            return False
        queues = sorted({s.queue for s in self.subscriptions
                         if self.mq.declare(s.queue).kind != "pubsub"})
        return all(s.ready == 0 and s.in_flight == 0 for s in self.mq.stats(queues))

    def failures(self) -> list[str]:
        """Why lanes stopped for good (a lane whose thread ended while the worker runs)."""
        out = []
        for lane, thread in zip(self.lanes, self._lane_threads, strict=False):
            failure = getattr(lane, "failure", None)
            if failure is not None:
                out.append(f"{lane.queue}/{lane.group}: {failure}")
            elif not thread.is_alive() and not self._stop.is_set():
                out.append(f"{lane.queue}/{lane.group}: its thread ended")
        return out

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _keep(self) -> None:
        """Renew leases of long handlers, heartbeat, and trim broadcast streams."""
        vt = min(lane.settings.visibility_timeout_s for lane in self.lanes)
        # a handler timeout is noticed within a quarter of itself (at most 5 s late)
        timeouts = [s.handler_timeout_s for lane in self.lanes for s in lane.subs
                    if s.handler_timeout_s is not None]
        interval = max(min(vt / 3, 5.0, *(t / 4 for t in timeouts)), 0.05)
        last_trim = 0.0
        last_keep = time.monotonic()
        while not self._stop.wait(min(interval, CANCEL_CHECK_S)):
            try:
                for lane in self.lanes:  # operators' cancels reach running handlers
                    if isinstance(lane, Lane):
                        lane.watch_cancels()
                        lane.settler.write_progress()  # throttled: twice a second at most
                if time.monotonic() - last_keep < interval:
                    continue
                last_keep = time.monotonic()
                for lane in self.lanes:
                    if isinstance(lane, Lane):
                        lane.expire_stuck()
                    lane.renew_old_leases(lane.settings.visibility_timeout_s / 3)
                self._heartbeat(alive=True)
                self._follow_layouts()
                if time.monotonic() - last_trim > 5:
                    last_trim = time.monotonic()
                    for lane in self.lanes:
                        # trimming needs XTRIM: an operator's (or an unrestricted) worker's
                        if lane.broadcast and self.mq.may_manage(lane.queue):
                            self.mq.functions.trim_broadcast(lane.keys)
            except Exception as exc:  # noqa: BLE001 - the keeper must survive Redis hiccups
                log.warning("keeper: %s", exc)

    def _limits(self) -> list[dict[str, Any]]:
        """The flow control of each limited lane and whether it is waiting for it now."""
        out = []
        for lane in self.lanes:
            if not isinstance(lane, Lane) or not (lane.flow or lane._keyed):  # noqa: SLF001
                continue
            sub = lane.subs[0]
            out.append({"queue": lane.queue, "partition": lane.partition, "group": lane.group,
                        "rate_limit": sub.rate_limit or lane.settings.rate_limit,
                        "max_in_flight_global": sub.max_in_flight_global
                        or lane.settings.max_in_flight_global,
                        "key_limits": dict(sub.key_limits),
                        "waiting": {0: "", 1: "paused", 2: "rate limit",
                                    3: "global concurrency"}.get(lane.throttled, "")})
        return out

    def _stuck(self) -> list[dict[str, Any]]:
        """Handlers still running past their timeout (a sync handler cannot be stopped)."""
        out = []
        for lane in self.lanes:
            for stuck in getattr(lane, "stuck", lambda: [])():
                out.append(stuck)
        return out

    def _heartbeat(self, alive: bool) -> None:
        key = self.mq.keys.heartbeats(self.mq.user)
        try:
            if not alive:
                self.mq.client.hdel(key, self.consumer)
                return
            beat = {"consumer": self.consumer, "pid": os.getpid(), "host": socket.gethostname(),
                    "queues": sorted({lane.queue for lane in self.lanes}),
                    "groups": sorted({lane.group for lane in self.lanes}),
                    "started": self.started_at, "last_seen": time.time(),
                    "handled": self.stats.handled,
                    "in_flight": sum(len(lane.inflight) for lane in self.lanes),
                    "lane_errors": self.stats.lane_errors, "last_error": self.stats.last_error,
                    "timed_out": self.stats.timed_out, "stuck": self._stuck(),
                    "failed_lanes": self.failures(), "limits": self._limits()}
            pipe = self.mq.client.pipeline(transaction=False)
            pipe.hset(key, self.consumer, orjson.dumps(beat))
            pipe.sadd(self.mq.keys.heartbeat_index, self.mq.user)
            pipe.execute()
        except Exception as exc:  # noqa: BLE001 - visibility must not stop the worker
            log.debug("heartbeat failed: %s", exc)
