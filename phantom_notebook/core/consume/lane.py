"""A lane: the fetch -> dispatch -> settle loop of one consumer group on one queue.

The settle half (queueing outcomes, writing them in one call, the in-flight table) is
``settler.Settler``; the lane fetches, decodes, routes and runs handlers.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import redis

from ..backend.connection import TRANSIENT_ERRORS
from ..backend.functions import delivery
from ..backend.records import Delivery, FetchResult
from ..errors import (
    DecodeError,
    HandlerTimeoutError,
    PermissionDeniedError,
    PhantomError,
    Reject,
    Retry,
    UnknownQueueError,
)
from ..model.codec import peek_header
from ..model.envelope import Envelope, now_ms
from ..model.flow_headers import wants_result
from ..model.limits import flow_control, parse_rate
from ..observe import otel
from ..observe.metrics import RETENTION_S, metrics_key
from ..observe.tracing import TRACE_MAX_ENTRIES
from ..observe.worker_stats import WorkerStats
from . import joined
from .breaker import BreakerMiddleware, store_breaker_state
from .context import Action, MessageContext, Outcome
from .middleware import (
    IntegrityMiddleware,
    Middleware,
    RetryMiddleware,
    TLPMiddleware,
    TTLMiddleware,
    default_middleware,
)
from .settler import Settler
from .subscription import Subscription

if TYPE_CHECKING:
    from ..ports import Deployment

log = logging.getLogger("phantom_notebook.worker")
#: what a fetch ahead tells the next turn: the delayed set's next due ms (None: empty), or
#: _UNKNOWN when the next turn must fetch again (flow control refused the last one)
Ahead = int | None | object
_UNKNOWN: object = object()  # "no fetch just ran": _fetch runs the fetch function first
_BACKOFF, _MAX_BACKOFF = 0.05, 5.0
#: the longest blocking read of an idle lane (ms): it wakes earlier for any new message, a
#: wake-up (delayed messages or retries added, a pause), a due time, its reclaim window or
#: stop(); each read costs Redis ~50 us, so 5 s makes 1,000 idle lanes ~1 % of a core
IDLE_BLOCK_MS = 5000


class Lane:
    """Runs the subscriptions of one (queue, group) pair inside a worker."""

    def __init__(self, mq: Deployment, subs: list[Subscription], consumer: str,
                 stats: WorkerStats, *, poll_ms: int,
                 submit: Callable[[Subscription, Callable[[], Any]], None] | None,
                 pool: Executor | None, partition: str | None = None,
                 priority_latency_ms: float = 2.0, overlap: bool = True,
                 submit_batch: Callable[[Callable[[], Any]], None] | None = None) -> None:
        self.mq = mq
        self.subs = subs
        self.queue = subs[0].queue
        # a partitioned queue runs one lane per partition: envelopes name the queue, the
        # keys are the partition's
        self.partition = partition or self.queue
        self.group = subs[0].group
        self.consumer = consumer
        self.stats = stats
        self.settings = mq.declare(self.queue)
        self.keys = mq.queue_keys(self.partition)
        self.prefetch = max(s.prefetch_count for s in subs)
        self.broadcast = self.settings.kind == "broadcast"
        self.levels = "2" if self.settings.kind == "fifo" else "0123"
        self.poll_ms = poll_ms
        # idle: one blocking read on the level streams and the wake-up stream, up to
        # IDLE_BLOCK_MS on its own connection (stop() closes it), instead of a fetch per poll;
        # the embedded Redis blocks poll_ms at a time (its reads cannot be interrupted)
        self._blocker, self._blocker_pool = _blocking_client(
            mq.client, IDLE_BLOCK_MS / 1000 + mq.settings.redis.command_timeout_s)
        self.idle_block_ms = IDLE_BLOCK_MS if self._blocker is not None else poll_ms
        #: the next due time learned by the last fetch that found nothing (_UNKNOWN: none;
        #: the next turn then fetches again instead of going straight to the blocking read)
        self._idle_due: int | None | object = _UNKNOWN
        self._reclaim_won = False  # this lane took the current reclaim window (idle path)
        self._interrupted = False
        self._wake = True  # read the wake-up stream (off when its group is missing)
        self.inline = all(not s.is_async and s.max_concurrency == 1 for s in subs)
        self._submit_async = submit
        #: runs one coroutine for a whole fetched batch of async handlers (their plain
        #: acks settled together, as ``_run_inline`` does for sync ones)
        self._submit_batch = submit_batch if all(s.is_async for s in subs) else None
        #: per-subscription concurrency of the batched async path (made on the loop)
        self._async_limits: dict[int, asyncio.Semaphore] = {}
        #: batched async handlers with a timeout: stream id -> (monotonic deadline, the task
        #: running it, the limit); one watchdog timer per lane cancels the late ones (a timer
        #: per message, asyncio.timeout's, costs more than the handler call itself)
        self._async_deadlines: dict[str, tuple[float, asyncio.Task[Any], float]] = {}
        self._async_timed_out: set[str] = set()
        self._watchdog: asyncio.TimerHandle | None = None
        self._pool = pool
        self._last_reclaim = -1e9
        self._vt_ms = int(self.settings.visibility_timeout_s * 1000)
        breaker_settings = next((s.breaker for s in subs if s.breaker is not None),
                                self.settings.circuit_breaker)
        self.breaker = BreakerMiddleware(
            breaker_settings, on_change=functools.partial(store_breaker_state, self))
        self.settler = Settler(mq, self.keys, self.queue, self.group, consumer, self.settings,
                               stats, self.breaker.breaker, broadcast=self.broadcast)
        self._replay_window_ms = self.settler.replay_window_ms
        #: stream id -> (claimed field, is a replay) of batches claimed in the helper thread
        self._claimed_ahead: dict[str, tuple[str, bool]] = {}
        # the settler owns the in-flight table; the lane reads it (budget, lease renewal)
        self.inflight = self.settler.inflight
        #: stream id -> (subscription, envelope, context, monotonic start) of every sync
        #: handler running now (handler timeouts)
        self._running: dict[str, tuple[Subscription, Envelope, MessageContext, float]] = {}
        #: stream id -> context of every async handler running now (cancels)
        self._async_running: dict[str, MessageContext] = {}
        custom: list[Middleware] = []
        for sub in subs:  # the application's own, once each, before the retry policy
            custom += [m for m in sub.middleware if all(m is not c for c in custom)]
        defaults = default_middleware()
        at = next(i for i, m in enumerate(defaults) if isinstance(m, RetryMiddleware))
        self.middleware: list[Middleware] = [*defaults[:at], *custom, *defaults[at:],
                                             self.breaker]
        self._before = [m for m in self.middleware
                        if type(m).before_process is not Middleware.before_process]
        self._after = [m for m in self.middleware
                       if type(m).after_process is not Middleware.after_process]
        self._tlp = TLPMiddleware()
        # plain acks may skip the per-message after-hooks only when those are the stock
        # retry policy (a no-op for acks) and this lane's breaker (counted per batch)
        self._fast_acks = all(type(m) in (RetryMiddleware, BreakerMiddleware)
                              for m in self._after)
        # the common lane: the stock before-hooks and one catch-all subscription with no
        # TLP limit; _dispatch then routes without calling them per message
        stock = [type(m) for m in self._before] == [IntegrityMiddleware, TTLMiddleware,
                                                    BreakerMiddleware]
        only = subs[0] if len(subs) == 1 else None
        self._only_sub = only if stock and only is not None and only.type_pattern == "*" \
            and only.filter is None and only.max_tlp is None else None
        self._tracing = self.settings.enable_tracing
        # flow control (model/limits.py): rides in every fetch call
        first = subs[0]
        self._partitions = len(mq.layout(self.queue).active)  # limits split over them
        self.flow = flow_control(
            first.rate_limit or self.settings.rate_limit,
            first.rate_limit_burst or self.settings.rate_limit_burst,
            first.max_in_flight_global or self.settings.max_in_flight_global,
            group=self.group, lease_ms=self._vt_ms,
            partitions=self._partitions)
        self.settler.track_running = bool(self.flow and self.flow.max_running)
        #: subscriptions with per-key rate limits (``_throttle_keys``)
        self._keyed = any(s.rate_limit_key is not None for s in subs)
        self._key_rates: dict[str, tuple[float, float]] = {}
        #: deliveries made outside the fetch function (blocking reads, local retries),
        #: charged to the rate limiter at the next fetch
        self._charge = 0
        #: why the last fetch got nothing (FetchResult.throttle: 1 paused, 2 rate, 3 global)
        self.throttled = 0
        self.fetch_cycles = 0  # fetch calls made (operators and tests watch it advance)
        # queues that delete what they settle read new entries directly (see _read_levels);
        # not under global concurrency: the fetch function must see every entry it leases
        self._reader = None if self.broadcast or self.settler.track_running \
            else _raw_reader(mq.client)
        # one batch ahead (see run): inline lanes that read directly, in half-prefetch
        # batches, when the worker has a core to spare for it (tuning.overlap_fits)
        ahead = overlap and self.inline and self._reader is not None and self.prefetch >= 2
        # a lane of async handlers works one batch ahead too: the loop runs batch k while
        # this thread dispatches, and the helper settles k-1 and fetches k+1
        batched = self._submit_batch is not None and self.prefetch >= 2
        ahead = ahead or (overlap and batched and self._reader is not None)
        self._chunk = self.prefetch // 2 if ahead or batched else self.prefetch
        self._ahead_pool = ThreadPoolExecutor(1, thread_name_prefix=f"pn-ahead-{self.queue}") \
            if ahead else None
        self.priority_latency_ms = priority_latency_ms
        #: set when the lane stopped for good (the worker exits non-zero)
        self.failure: BaseException | None = None

    # -- the loop ------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Fetch, dispatch and settle until ``stop`` is set; then drain what is in flight.

        A lane never dies of a Redis error or a bad entry: a lost connection or a failover
        is retried; any other error of a fetch or settle (OOM, BUSY, MISCONF, WRONGTYPE, a
        bug) is logged with its context, counted (``lane_errors``), and retried with
        backoff. Only what cannot recover ends the lane: its consumer group is gone and
        this connection may not create it. Then ``failure`` is set and the worker exits
        non-zero so a supervisor restarts it.

        A busy inline lane works one batch ahead: while its handlers run through batch k,
        a helper thread settles batch k-1 and fetches batch k+1 (each batch at most half
        the prefetch, so XPENDING stays within it). Redis works while Python decodes.
        """
        ahead: Future[tuple[list[Delivery], Ahead]] | None = None
        try:
            if not self._join_group(stop):
                return
            backoff = _BACKOFF
            while not stop.is_set():
                try:
                    ahead = self._turn(ahead, stop)
                    backoff = _BACKOFF
                    continue
                except TRANSIENT_ERRORS as exc:
                    # connection lost, READONLY after a failover, CLUSTERDOWN, TRYAGAIN:
                    # retried; Sentinel and Cluster clients re-resolve the master
                    log.warning("redis unavailable for %s/%s (%s); retrying in %.2fs",
                                self.partition, self.group, exc, backoff)
                    self.stats.reconnects += 1
                except redis.ResponseError as exc:
                    if "NOGROUP" in str(exc) and not self._regroup():
                        return
                    if "NOGROUP" not in str(exc):
                        self._count_error(exc, backoff)
                except Exception as exc:  # noqa: BLE001 - a lane must outlive any one error
                    self._count_error(exc, backoff)
                ahead = None
                stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            if ahead is not None:
                # fetched before the stop: handle them now (releasing them would reorder
                # a FIFO queue); the worker's drain settles them
                self._dispatch(ahead.result()[0], stop)
        finally:
            if self._ahead_pool is not None:
                # background settles finish before the worker's drain writes the rest
                self._ahead_pool.shutdown(wait=True)
            if self._blocker_pool is not None:
                self._blocker_pool.disconnect()

    def _turn(self, ahead: Future[tuple[list[Delivery], Ahead]] | None,
              stop: threading.Event) -> Future[tuple[list[Delivery], Ahead]] | None:
        """One fetch-and-dispatch round; returns the next batch fetched ahead, if any."""
        deliveries: list[Delivery] = []
        next_due: int | None | object = _UNKNOWN
        if ahead is not None:
            deliveries, next_due = ahead.result()
            ahead = None
        if not deliveries:
            self._flush_soon()
            budget = self._budget()
            if budget <= 0:
                self._wait_for_completion(0.05)
                return None
            deliveries = self._fetch(min(budget, self._chunk), next_due)
        if deliveries:
            if self._ahead_pool is not None and len(deliveries) >= self._chunk:
                # busy: settle this batch and fetch the next one meanwhile
                ahead = self._fetch_ahead(len(deliveries))
            self._dispatch(deliveries, stop)
        return ahead

    def _join_group(self, stop: threading.Event) -> bool:
        """Make sure the consumer group exists, retrying while Redis is away; False (and
        ``failure`` set) when it is missing and this connection may not create it."""
        backoff = _BACKOFF
        while not stop.is_set():
            try:
                self.mq.ensure_group(self.queue, self.group)
                return True
            except (UnknownQueueError, PermissionDeniedError) as exc:
                self._fail(self._ungroupable(exc))
                return False
            except Exception as exc:  # noqa: BLE001 - Redis down, OOM...: keep trying
                log.warning("%s/%s: cannot join the consumer group yet (%s); retrying in "
                            "%.2fs", self.partition, self.group, exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
        return False

    def _regroup(self) -> bool:
        """The group vanished (a server restarted without persistence): recreate it."""
        log.warning("consumer group %s/%s vanished; recreating", self.partition, self.group)
        try:
            self.mq.ensure_group(self.queue, self.group)
        except (UnknownQueueError, PermissionDeniedError) as exc:
            self._fail(self._ungroupable(exc))
            return False
        except (redis.RedisError, PhantomError) as exc:
            log.warning("%s/%s: %s", self.partition, self.group, exc)
        return True

    def _ungroupable(self, exc: BaseException) -> BaseException:
        """The error for a group that is missing and that this user may not create."""
        if isinstance(exc, UnknownQueueError):
            return exc
        return UnknownQueueError(
            f"consumer group {self.group!r} of queue {self.queue!r} does not exist and this "
            f"user may not create it ({exc}): an admin creates it with `phantom-notebook "
            f"declare {self.queue} --group {self.group}`")

    def _fail(self, exc: BaseException) -> None:
        self.failure = exc
        log.error("lane %s/%s cannot recover, stopping it: %s", self.partition, self.group, exc)

    def _count_error(self, exc: BaseException, backoff: float) -> None:
        """Log an unexpected fetch/settle error with its context and count it."""
        self.stats.lane_errors += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"[:300]
        self.settler.count("lane_errors")
        log.error("lane %s/%s (consumer %s): %s: %s; retrying in %.2fs", self.partition,
                  self.group, self.consumer, type(exc).__name__, exc, backoff,
                  exc_info=log.isEnabledFor(logging.DEBUG))

    def _fetch_ahead(self, current: int) -> Future[tuple[list[Delivery], Ahead]] | None:
        """Start settling the finished batch and fetching the next one in the background."""
        assert self._ahead_pool is not None
        budget = min(self._budget() - current, self._chunk)
        if budget <= 0:
            return None
        return self._ahead_pool.submit(self._settle_and_fetch, budget, self._reclaim_due())

    def _settle_and_fetch(self, budget: int, reclaim_ms: int) -> tuple[list[Delivery], Ahead]:
        self.settler.flush()
        deliveries, result = self._fetch_ready(budget, reclaim_ms)
        self._claim_ahead(deliveries)
        if result.throttle:  # paused or limited: the next turn must ask again, not block-read
            return deliveries, _UNKNOWN
        return deliveries, result.next_due_ms

    def _claim_ahead(self, deliveries: list[Delivery]) -> None:
        """Claim a batch fetched ahead, in the helper thread, while handlers run.

        The replay claim is one round trip per batch; on the critical path it cost a busy
        lane a quarter of its throughput. Ids and attempts come from the clear header
        (the same bytes the codec authenticates when it opens the envelope); entries whose
        header does not parse are left to ``_prepare`` (dead-lettered as undecodable).
        """
        if not deliveries or self._replay_window_ms <= 0:
            return
        claimed, fields = [], []
        for d in deliveries:
            header = peek_header(d.raw) if d.raw else {}
            mid, attempt = header.get("id"), header.get("a")
            if isinstance(mid, str) and isinstance(attempt, int):
                claimed.append(d.stream_id)
                fields.append(f"{mid}:{attempt}")
        if not claimed:
            return
        found = set(self.mq.functions.claim(self.keys, self.group, now_ms(),
                                            self._replay_window_ms, fields, claimed))
        ahead = self._claimed_ahead
        if len(ahead) > 4 * self.prefetch:
            # batches dropped on an error path (their entries are reclaimed under the same
            # stream id, which claims as a redelivery): forget them
            ahead.clear()
        for i, sid in enumerate(claimed):
            ahead[sid] = (fields[i], i in found)

    def _flush_soon(self) -> None:
        """Settle what is queued: in the background when this lane has a helper thread.

        The lane then goes straight on to fetch (and block for) the next messages instead
        of waiting a round trip for the settle: a CRITICAL message arriving meanwhile is
        read sooner. Failures are logged; the batch stays queued for the next flush.
        """
        if self._ahead_pool is None:
            self.settler.flush()
            return
        if self.settler.pending():
            self._ahead_pool.submit(self._flush_logged)

    def _flush_logged(self) -> None:
        try:
            self.settler.flush()
        except Exception as exc:  # noqa: BLE001 - the next flush retries the same batch
            log.warning("settle of %s/%s failed (%s); retrying with the next batch",
                        self.partition, self.group, exc)

    def _budget(self) -> int:
        budget = self.prefetch - len(self.inflight) - len(self.settler.stuck)
        for mw in self.middleware:
            limit = mw.admit(self)
            if limit is not None:
                budget = min(budget, limit)
        return budget

    def interrupt(self) -> None:
        """End a blocking read in progress now (the worker is stopping): its connection is
        closed, the lane's next turn sees the stop."""
        self._interrupted = True
        if self._blocker_pool is not None:
            self._blocker_pool.disconnect(inuse_connections=True)

    def drain(self, deadline: float) -> None:
        """Wait for in-flight handlers until ``deadline`` (monotonic), then settle them."""
        while self.inflight and time.monotonic() < deadline:
            self._wait_for_completion(min(0.05, max(deadline - time.monotonic(), 0)))
        for _ in range(3):
            try:
                self.settler.flush()
                return
            except (redis.ConnectionError, redis.TimeoutError):
                time.sleep(0.2)

    def _wait_for_completion(self, timeout_s: float) -> None:
        with self.settler.cond:
            if not self.settler.pending():
                self.settler.cond.wait(timeout_s)

    def _due_local_retries(self, now: int) -> list[Delivery]:
        due = []
        retries = self.settler.local_retries
        while retries and retries[0].due_ms <= now:
            due.append(heapq.heappop(retries))
        out = []
        for _, level, sid, count in due:
            claimed = self.mq.client.xclaim(self.keys.stream(level), self.group, self.consumer,
                                            0, [sid])
            for entry_id, fields in claimed or []:
                if fields:
                    out.append(delivery(level, entry_id, fields, count + 1))
        self.settler.count_delivered(len(out))
        if self.flow:
            self._charge += len(out)
        return out

    def _reclaim_due(self) -> int:
        """The reclaim idle time to pass to this fetch: every visibility timeout / 4 for the
        first lane of the queue and group to claim that window, else 0."""
        if time.monotonic() - self._last_reclaim < self.settings.visibility_timeout_s / 4:
            return 0
        self._last_reclaim = time.monotonic()
        return self._vt_ms if self._claim_reclaim() else 0

    def _claim_reclaim(self) -> bool:
        """Take this window's reclaim for the queue and group (SET NX PX), or learn that
        another lane took it; True when this lane reclaims now."""
        if self._reclaim_won:
            self._reclaim_won = False
            return True
        window = max(self._vt_ms // 4, 1)
        key = self.keys.reclaim(self.group)
        try:
            if self.mq.client.set(key, self.consumer, nx=True, px=window):
                return True
            # someone holds the window; one that never ends (a SET without PX by any user
            # with the grant) or outlasts it must not stop reclaims: take it over
            left = self.mq.client.pttl(key)
            if left == -1 or left > window:
                log.warning("%s/%s: the reclaim window key had %s; reclaiming anyway",
                            self.partition, self.group,
                            "no expiry" if left == -1 else f"{left} ms left")
                self.mq.client.set(key, self.consumer, px=window)
                return True
            return False
        except redis.ResponseError:  # a full Redis, a role without the grant: reclaim
            return True

    def _fetch_ready(self, budget: int, reclaim_ms: int) -> tuple[list[Delivery], FetchResult]:
        """Promote, reclaim and read what is ready now (never blocks)."""
        now = now_ms()
        qs = self.settings
        charge, self._charge = self._charge, 0
        try:
            result = self.mq.functions.fetch(
                self.keys, metrics_key(self.keys, now), group=self.group,
                consumer=self.consumer, count=budget, now_ms=now, reclaim_idle_ms=reclaim_ms,
                max_deliveries=qs.max_deliveries, levels=self.levels,
                metrics_ttl_s=RETENTION_S if qs.enable_metrics else 0,
                delete=not self.broadcast,
                trace_cap=TRACE_MAX_ENTRIES if qs.enable_tracing else 0,
                probe=self._reader is not None, flow=self.flow, charge=charge)
        except BaseException:
            self._charge += charge
            raise
        self.throttled = result.throttle
        self.fetch_cycles += 1
        if result.dead_lettered:
            with self.settler.cond:
                self.stats.dead_lettered += result.dead_lettered
            if result.dead_requests:
                self.settler.answer_dead(result.dead_requests)
        deliveries = result.deliveries
        if result.granted >= 0:
            budget = min(budget, result.granted)
        if reclaim_ms and len(deliveries) >= budget and \
                sum(d.delivery_count > 1 for d in deliveries) >= budget:
            # the reclaim filled the batch: more stale deliveries wait (a crashed worker's
            # prefetch, a restored backup's in-flight entries): reclaim again next fetch,
            # in this lane's window
            self._last_reclaim = -1e9
            self._reclaim_won = True
        if result.probed:
            deliveries += self._read_levels(result.probed, budget - len(deliveries))
        return deliveries, result

    def _fetch(self, budget: int, next_due: int | None | object = _UNKNOWN) -> list[Delivery]:
        """What is ready now, else block up to ``poll_ms`` for new messages.

        ``next_due`` (the delayed set's next due time) from a fetch that just found nothing
        skips straight to the blocking read.
        """
        now = now_ms()
        retries = self.settler.local_retries
        if retries and retries[0].due_ms <= now:
            return self._due_local_retries(now)
        if next_due is _UNKNOWN and self._idle_due is not _UNKNOWN and self._still_idle(now):
            next_due = self._idle_due  # nothing became due: straight back to the blocking read
        self._idle_due = _UNKNOWN
        if next_due is _UNKNOWN:
            deliveries, result = self._fetch_ready(budget, self._reclaim_due())
            if deliveries:
                return deliveries
            next_due = result.next_due_ms
            if result.throttle:
                self._wait_throttled(result)
                return []
        if self.inflight:
            self._wait_for_completion(0.01)
            return []
        if self.settler.track_running:
            # a blocking read would hand out entries the running set does not lease
            self._wait_for_completion(min(self.poll_ms, 50) / 1000)
            return []
        if self.settler.pending():
            # outcomes not written yet: write them before a read that may last 5 s (a retry
            # they schedule for later appends a wake-up, see settle.lua), then look again
            self.settler.flush()
            return []
        block = self._idle_block(next_due)
        if block <= 0:
            return []
        got, woken = self._block_read(budget, block)
        if not got and not woken:
            self._idle_due = next_due  # timed out: nothing new, nothing due before next_due
        return got

    def _idle_block(self, next_due: int | None | object) -> int:
        """How long the blocking read may last: ``idle_block_ms``, bounded by the next due
        delayed message or local retry and this lane's next reclaim window."""
        block = self.idle_block_ms
        now = now_ms()
        if isinstance(next_due, int):
            block = min(block, max(next_due - now, 0))
        retries = self.settler.local_retries
        if retries:
            block = min(block, max(retries[0].due_ms - now, 0))
        reclaim_in = self._last_reclaim + self.settings.visibility_timeout_s / 4 \
            - time.monotonic()
        return min(block, max(int(reclaim_in * 1000) + 1, 1))

    def _still_idle(self, now: int) -> bool:
        """Nothing can be ready that the blocking read would not see: no delayed message
        due yet and no reclaim due."""
        due = self._idle_due
        if isinstance(due, int) and due <= now:
            return False
        if time.monotonic() - self._last_reclaim < self.settings.visibility_timeout_s / 4:
            return True
        # this lane's reclaim time: fetch only if it wins the queue's window (one SET NX)
        self._last_reclaim = time.monotonic()
        self._reclaim_won = self._claim_reclaim()
        if self._reclaim_won:
            self._last_reclaim = -1e9  # the fetch that follows reclaims
        return not self._reclaim_won

    def _wait_throttled(self, result: FetchResult) -> None:
        """Nothing was granted: paused (look again in a poll), rate limited (until the
        limiter grants again) or at global concurrency (until a settle frees a place)."""
        wait_ms = {1: self.poll_ms, 2: result.wait_ms}.get(result.throttle, 50)
        self._wait_for_completion(min(max(wait_ms, 1), self.poll_ms) / 1000)

    def _block_read(self, budget: int, block: int) -> tuple[list[Delivery], bool]:
        """Block up to ``block`` ms for new entries (XREADGROUP BLOCK) on the level streams
        and the wake-up stream; returns the deliveries and whether a wake-up came."""
        streams = {self.keys.stream(int(lv)): ">" for lv in self.levels}
        wake = self.keys.wake
        if self._wake:
            streams[wake] = ">"
        client: Any = self._blocker if self._blocker is not None else self.mq.client
        try:
            # rate limited: wait for one entry; the next fetch charges it to the limiter
            reply = client.xreadgroup(self.group, self.consumer, streams,
                                      count=1 if self.flow else budget, block=block)
        except redis.ConnectionError:
            if self._interrupted:
                return [], False  # stop() closed the connection
            raise
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc) or not self._wake:
                raise
            self._wake = False  # no group on the wake-up stream here: block without it
            log.info("%s/%s: no consumer group on the wake-up stream; idle reads use "
                     "poll_ms", self.partition, self.group)
            self.idle_block_ms = self.poll_ms
            return [], True
        out = []
        woken = False
        for stream, entries in reply or []:
            name = stream.decode() if isinstance(stream, bytes) else stream
            if name == wake:
                woken = True
                ids = [sid for sid, _ in entries]
                if ids:
                    pipe = self.mq.client.pipeline(transaction=False)
                    pipe.xack(wake, self.group, *ids)
                    pipe.xdel(wake, *ids)
                    pipe.execute()
                continue
            level = self.keys.streams.index(name)
            for sid, fields in entries:
                out.append(delivery(level, sid, fields, 1))
        out.sort(key=lambda d: d.level)
        self.settler.count_delivered(len(out))
        if self.flow:
            self._charge += len(out)
        return out, woken

    def _read_levels(self, probed: list[tuple[int, int]], budget: int) -> list[Delivery]:
        """Read the probed levels' new entries with plain XREADGROUPs (one round trip).

        ``probed`` = (level, undelivered) in priority order; each level gets what is left
        of ``budget``, so a read never exceeds the prefetch bound (another consumer may
        take some first: then fewer come back). Reading here rather than inside the fetch
        script saves ~2 us of server CPU per message. "delivered" rides on the next settle.
        """
        assert self._reader is not None
        plan = []
        for level, undelivered in probed:
            if budget <= 0:
                break
            count = min(undelivered, budget)
            plan.append((level, count))
            budget -= count
        pipe = self._reader.pipeline(transaction=False)
        for level, count in plan:
            pipe.xreadgroup(self.group, self.consumer, {self.keys.stream(level): ">"},
                            count=count)
        out: list[Delivery] = []
        for (level, _), reply in zip(plan, pipe.execute(), strict=True):
            if not reply:
                continue
            # RESP3 replies {stream: entries}, RESP2 [[stream, entries]]
            entries: list[tuple[bytes, list[bytes]]] = \
                next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
            out += [delivery(level, sid, fields, 1) for sid, fields in entries]
        self.settler.count_delivered(len(out))
        return out

    def _dispatch(self, deliveries: list[Delivery], stop: threading.Event) -> None:
        """Decode and route a fetched batch, then run its handlers.

        Two passes so the batch's "delivered" trace events and in-flight bookkeeping are
        recorded under one lock before any handler runs (and settles).
        """
        received = now_ms()
        runnable, delivered = self._prepare(deliveries, received)
        if self._keyed:
            runnable = self._throttle_keys(runnable)
        started = time.monotonic()
        self.settler.add_delivered_items(delivered)
        with self.settler.cond:
            for _, _, ctx in runnable:
                self.inflight[ctx.delivery.stream_id] = (ctx.delivery, started)
        if self.inline:
            self._run_inline(runnable, stop)
            return
        if self._submit_batch is not None:
            if runnable:
                self._submit_batch(functools.partial(self._run_async_batch, runnable))
            return
        for sub, env, ctx in runnable:
            if sub.is_async:
                assert self._submit_async is not None
                self._submit_async(sub, functools.partial(self._execute_async, sub, env, ctx))
            else:
                assert self._pool is not None
                self._pool.submit(self._execute, sub, env, ctx)

    def _prepare(self, deliveries: list[Delivery], received: int,
                 ) -> tuple[list[tuple[Subscription, Envelope, MessageContext]], list[str]]:
        """Decode and route ``deliveries``: the runnable ones and their "delivered" items.

        What cannot run (undecodable, unroutable, expired, breaker open) is settled here.
        """
        runnable: list[tuple[Subscription, Envelope, MessageContext]] = []
        delivered: list[str] | None = [] if self._tracing else None
        open_, breaker, queue, broadcast = self.mq.codec.open, self.breaker.breaker, \
            self.queue, self.broadcast
        only = self._only_sub
        opened: list[tuple[Delivery, Envelope]] = []
        deadlines: list[tuple[Delivery, Envelope]] = []
        callbacks: list[MessageContext] = []
        for d in deliveries:
            try:
                opened.append((d, open_(d.raw)))
            except DecodeError as exc:
                self.settler.settle(d, Outcome(Action.DEAD, reason=exc.reason, error=exc), None)
        replays = self._replays(opened, received)
        for i, (d, env) in enumerate(opened):
            if replays and i in replays:
                self.settler.settle(d, Outcome(Action.DEAD, reason="replayed", error=ValueError(
                    f"message {env.id} attempt {env.attempt} was already delivered to group "
                    f"{self.group!r} from another stream entry within the replay window: "
                    "an old entry added again")), env)
                continue
            state = breaker.state
            if state == "open":
                # fetched before the breaker opened: hand it back untouched (no attempt used)
                self.settler.settle(d, Outcome(Action.RELEASE), env)
                continue
            ctx = MessageContext(env, d, self, received)
            if delivered is not None:
                attempt = ctx.attempt if broadcast else env.attempt
                delivered.append(f"{env.id}|{env.trace_id}|{attempt}|at={received}")
            if env.headers and joined.sort_out(d, env, ctx, deadlines, callbacks):
                continue  # a group's deadline: decided in joined.admit, no handler
            expires = env.expires_at_ms
            if only is not None and env.queue == queue and (expires is None or expires > received):
                # the stock checks inline (integrity, TTL, breaker) and the one catch-all
                # subscription: what _route would decide, without its per-message calls
                if state != "closed" and env.attempt == 1 and d.delivery_count == 1:
                    breaker.started()
                runnable.append((only, env, ctx))
                continue
            sub, early = self._route(env, ctx)
            if sub is None or early is not None:
                self.settler.settle(d, early or Outcome(Action.DEAD, reason="unroutable"), env)
                continue
            runnable.append((sub, env, ctx))
        if deadlines or callbacks:
            runnable = joined.admit(self, runnable, deadlines, callbacks)
        return runnable, delivered or []

    def _throttle_keys(self, runnable: list[tuple[Subscription, Envelope, MessageContext]]
                       ) -> list[tuple[Subscription, Envelope, MessageContext]]:
        """Per-key rate limits: one ``throttle`` call for the batch; a delivery over its
        key's limit is deferred, untouched, to its reserved slot (no attempt used)."""
        checks: list[tuple[int, str, tuple[float, float], str]] = []
        for i, (sub, env, _) in enumerate(runnable):
            if sub.rate_limit_key is None:
                continue
            try:
                key = sub.rate_limit_key(env)
            except Exception as exc:  # noqa: BLE001 - a key function's bug must not stop us
                log.warning("rate_limit_key of %s failed on %s: %s", sub.queue, env.id, exc)
                continue
            rate = sub.key_limits.get(key, sub.default_key_limit) if key is not None else None
            if rate is not None:
                checks.append((i, f"k:{self.group}:{key}", self._key_rate(rate),
                               f"{env.id}:{env.attempt}"))
        if not checks:
            return runnable
        args: list[Any] = [24 * 3600 * 1000, len(checks)]
        for _, field, (interval, tau), reservation in checks:
            args += [field, interval, tau, reservation]
        waits = self.mq.functions.call("throttle", [self.keys.limiter, self.keys.reservations],
                                       args)
        deferred = {i: int(w) for (i, *_), w in zip(checks, waits, strict=True) if int(w) > 0}
        if not deferred:
            return runnable
        for i, wait in deferred.items():
            _, env, ctx = runnable[i]
            self.settler.settle(ctx.delivery, Outcome(Action.DEFER, delay_s=wait / 1000,
                                                      reason="rate_limited"), env)
        return [r for i, r in enumerate(runnable) if i not in deferred]

    def _key_rate(self, rate: str) -> tuple[float, float]:
        """(T, tau) in us of a per-key rate (burst 1: a key's slots are spaced evenly)."""
        cached = self._key_rates.get(rate)
        if cached is None:
            count, period = parse_rate(rate)
            cached = self._key_rates[rate] = (period * 1e6 / count * self._partitions, 0.0)
        return cached

    def _replays(self, opened: list[tuple[Delivery, Envelope]], now: int) -> set[int]:
        """Indexes of ``opened`` that are replays of messages this group was handed already
        from another stream entry (one ``claim`` call per batch; see lua/claim.lua)."""
        if not opened or self._replay_window_ms <= 0:
            return set()
        replays: set[int] = set()
        rest: list[int] = []
        ahead = self._claimed_ahead
        for i, (d, env) in enumerate(opened):
            pre = ahead.pop(d.stream_id, None) if ahead else None
            if pre is not None and pre[0] == f"{env.id}:{env.attempt}":
                if pre[1]:
                    replays.add(i)
            else:
                rest.append(i)
        if rest:
            found = self.mq.functions.claim(
                self.keys, self.group, now, self._replay_window_ms,
                [f"{opened[i][1].id}:{opened[i][1].attempt}" for i in rest],
                [opened[i][0].stream_id for i in rest])
            replays.update(rest[j] for j in found)
        return replays

    def _run_inline(self, runnable: list[tuple[Subscription, Envelope, MessageContext]],
                    stop: threading.Event) -> None:
        """Run handlers one by one in this thread; plain acks are settled once per batch.

        A handler that returns normally without settling its message (auto-ack) is the
        common case: its bookkeeping (in-flight, breaker, histograms, trace) is done for the
        whole batch under one lock in ``_settle_acks``. Every other outcome takes the full
        per-message path (``_complete``).
        """
        check_every = self.priority_latency_ms / 1000
        preempt = len(self.levels) > 1
        last_check = time.perf_counter()
        fast = self._fast_acks and not otel.enabled()
        acks: list[tuple[Envelope, MessageContext, int, int]] = []
        running = self._running
        for sub, env, ctx in runnable:
            if fast:
                started = now_ms()
                sid = ctx.delivery.stream_id
                running[sid] = (sub, env, ctx, time.monotonic())
                try:
                    value = sub.call(env, ctx)
                except Exception as exc:  # noqa: BLE001 - any handler failure is an outcome
                    del running[sid]
                    self._complete(sub, env, ctx, exc, started)
                else:
                    del running[sid]
                    if ctx._outcome is None and sub.auto_ack and not (
                            env.headers and wants_result(env.headers)):
                        acks.append((env, ctx, started, now_ms()))
                    else:
                        self._complete(sub, env, ctx, None, started, value)
            else:
                self._execute(sub, env, ctx)
            if preempt and ctx.delivery.level > 0 \
                    and time.perf_counter() - last_check >= check_every:
                # strict priority inside a fetched batch: a CRITICAL message published
                # while we work through lower levels jumps in within ~priority_latency_ms
                self._preempt(stop)
                last_check = time.perf_counter()
        if acks:
            self.settler.acks(acks)

    def _preempt(self, stop: threading.Event) -> None:
        """Read (non-blocking) and handle any new CRITICAL messages right now."""
        try:
            reply = self.mq.client.xreadgroup(self.group, self.consumer,
                                              {self.keys.stream(0): ">"}, count=10)
        except (redis.ConnectionError, redis.TimeoutError):
            return  # the main loop reconnects
        urgent = [delivery(0, sid, fields, 1)
                  for _, entries in reply or [] for sid, fields in entries]
        self.settler.count_delivered(len(urgent))
        if urgent:
            self._dispatch(urgent, stop)

    def _route(self, env: Envelope, ctx: MessageContext,
               ) -> tuple[Subscription | None, Outcome | None]:
        """The subscription for ``env``, or the outcome that settles it without a handler."""
        for mw in self._before:
            early = mw.before_process(self, env, ctx)
            if early is not None:
                return None, early
        for sub in self.subs:
            if sub.matches(env):
                break
        else:
            err = LookupError(f"no handler for type {env.type!r} in group {self.group!r}")
            return None, Outcome(Action.DEAD, reason="unroutable", error=err)
        return sub, self._tlp.after_route(self, sub, env)

    def _execute(self, sub: Subscription, env: Envelope, ctx: MessageContext) -> None:
        started = now_ms()
        error: BaseException | None = None
        sid = ctx.delivery.stream_id
        self._running[sid] = (sub, env, ctx, time.monotonic())
        try:
            error, value = self._call(sub, env, ctx)
        finally:
            self._running.pop(sid, None)
        self._complete(sub, env, ctx, error, started, value)

    def _call(self, sub: Subscription, env: Envelope, ctx: MessageContext
              ) -> tuple[BaseException | None, Any]:
        """Run a sync handler: (its exception, the outcome's error, or None; its return
        value, a request's result)."""
        error: BaseException | None = None
        value: Any = None
        if otel.enabled():
            with otel.process_span(env, self.consumer, self.group) as span:
                try:
                    value = sub.call(env, ctx)
                except Exception as exc:  # noqa: BLE001 - any handler failure is an outcome
                    error = exc
                    span.record_exception(exc)
        else:
            try:
                value = sub.call(env, ctx)
            except Exception as exc:  # noqa: BLE001 - any handler failure is an outcome
                error = exc
        return error, value

    async def _run_async_batch(self, runnable: list[tuple[Subscription, Envelope,
                                                          MessageContext]]) -> None:
        """Run a fetched batch of async handlers on the loop, each subscription within its
        ``max_concurrency`` (one at a time: in order, no task per message); plain acks are
        settled once for the batch (``Settler.acks``), every other outcome per message."""
        if not (self._fast_acks and not otel.enabled()):
            await asyncio.gather(*(self._limited(sub, self._execute_async(sub, env, ctx))
                                   for sub, env, ctx in runnable))
            return
        acks: list[tuple[Envelope, MessageContext, int, int]] = []
        if all(sub.max_concurrency == 1 for sub in self.subs):
            for sub, env, ctx in runnable:
                await self._fast_async(sub, env, ctx, acks)
        elif all(sub.max_concurrency >= self.prefetch for sub in self.subs):
            # the prefetch bounds what runs at once below every limit: no semaphore needed
            await asyncio.gather(*(self._fast_async(sub, env, ctx, acks)
                                   for sub, env, ctx in runnable))
        else:
            await asyncio.gather(*(self._limited(sub, self._fast_async(sub, env, ctx, acks))
                                   for sub, env, ctx in runnable))
        if acks:
            self.settler.acks(acks)

    async def _limited(self, sub: Subscription, job: Coroutine[Any, Any, None]) -> None:
        sem = self._async_limits.get(id(sub))
        if sem is None:
            sem = self._async_limits[id(sub)] = asyncio.Semaphore(sub.max_concurrency)
        async with sem:
            await job

    async def _fast_async(self, sub: Subscription, env: Envelope, ctx: MessageContext,
                          acks: list[tuple[Envelope, MessageContext, int, int]]) -> None:
        """One async handler of a batch; a plain ack joins ``acks``."""
        started = now_ms()
        sid = ctx.delivery.stream_id
        self._async_running[sid] = ctx  # cancels reach it (watch_cancels)
        limit = sub.handler_timeout_s
        task = asyncio.current_task()
        if limit is not None and task is not None:
            self._async_deadlines[sid] = (time.monotonic() + limit, task, limit)
            if self._watchdog is None:
                self._arm_watchdog(limit)
        try:
            value = await sub.call(env, ctx)
        except asyncio.CancelledError:
            self._async_running.pop(sid, None)
            self._async_deadlines.pop(sid, None)
            if sid not in self._async_timed_out or task is None:
                raise
            self._async_timed_out.discard(sid)
            task.uncancel()  # cancelled by the watchdog: this message times out, not the batch
            self.stats.timed_out += 1
            self._complete(sub, env, ctx, HandlerTimeoutError(
                f"handler of {env.type!r} ran past handler_timeout_s={limit or 0:g} and was "
                "cancelled"), started)
            return
        except Exception as exc:  # noqa: BLE001 - any handler failure is an outcome
            self._async_running.pop(sid, None)
            self._async_deadlines.pop(sid, None)
            self._complete(sub, env, ctx, exc, started)
            return
        self._async_running.pop(sid, None)
        self._async_deadlines.pop(sid, None)
        if ctx._outcome is None and sub.auto_ack and not (
                env.headers and wants_result(env.headers)):
            acks.append((env, ctx, started, now_ms()))
        else:
            self._complete(sub, env, ctx, None, started, value)

    def _arm_watchdog(self, limit: float) -> None:
        """Check the batched async handlers' deadlines within a quarter of ``limit``."""
        self._watchdog = asyncio.get_running_loop().call_later(
            max(min(limit / 4, 5.0), 0.005), self._watch_async)

    def _watch_async(self) -> None:
        """Cancel every batched async handler past its deadline (on the loop)."""
        self._watchdog = None
        now = time.monotonic()
        for sid, (deadline, task, _) in list(self._async_deadlines.items()):
            if now >= deadline and sid not in self._async_timed_out and not task.done():
                self._async_timed_out.add(sid)
                task.cancel()
        if self._async_deadlines:
            self._arm_watchdog(min(limit for _, _, limit in self._async_deadlines.values()))

    async def _execute_async(self, sub: Subscription, env: Envelope, ctx: MessageContext) -> None:
        started = now_ms()
        error: BaseException | None = None
        value: Any = None
        self._async_running[ctx.delivery.stream_id] = ctx  # cancels reach it (watch_cancels)
        with otel.process_span(env, self.consumer, self.group) as span:
            try:
                # an async handler is cancelled at its timeout (a sync one cannot be)
                value = await asyncio.wait_for(sub.call(env, ctx), sub.handler_timeout_s)
            except TimeoutError:
                error = HandlerTimeoutError(
                    f"handler of {env.type!r} ran past handler_timeout_s="
                    f"{sub.handler_timeout_s:g} and was cancelled")
                self.stats.timed_out += 1
            except Exception as exc:  # noqa: BLE001
                error = exc
            if error is not None and span is not None:
                span.record_exception(error)
        self._async_running.pop(ctx.delivery.stream_id, None)
        self._complete(sub, env, ctx, error, started, value)

    def expire_stuck(self) -> int:
        """Fail every sync delivery whose handler runs past its ``handler_timeout_s``.

        Called by the worker's keeper. The delivery is settled now (retried, or
        dead-lettered as ``handler_timeout`` once retries are spent), its lease is no
        longer renewed, and whatever the handler does when it finally returns is ignored;
        the thread stays busy (Python cannot stop it) and is reported by ``stuck()`` in
        the worker's heartbeat (health shows it). Returns how many were failed now.
        """
        now = time.monotonic()
        failed = 0
        for sid, (sub, env, ctx, started) in list(self._running.items()):
            limit = sub.handler_timeout_s
            if limit is None or now - started < limit or sid in self.settler.stuck:
                continue
            error = HandlerTimeoutError(
                f"handler of {env.type!r} still running after handler_timeout_s={limit:g}")
            outcome = Outcome(Action.RETRY, reason="handler_timeout", error=error)
            for mw in self._after:
                outcome = mw.after_process(self, sub, env, ctx, error, outcome)
            self.settler.time_out(ctx.delivery, outcome, env, {
                "queue": self.queue, "group": self.group, "message_id": env.id,
                "type": env.type, "since_s": round(time.time() - (now - started), 3)})
            self.stats.timed_out += 1
            failed += 1
        if failed:
            self.settler.flush()  # the lane thread itself may be the one that is stuck
        return failed

    def watch_cancels(self) -> int:
        """Flag the running handlers whose messages were cancelled (``mq.cancel``): one
        HMGET when sync handlers run (the worker's keeper calls it twice a second)."""
        running = [ctx for _, _, ctx, _ in list(self._running.values()) if not ctx.cancelled]
        running += [ctx for ctx in list(self._async_running.values()) if not ctx.cancelled]
        if not running:
            return 0
        flags = self.mq.client.hmget(self.keys.cancels, [c.envelope.id for c in running])
        hit = [c for c, flag in zip(running, flags, strict=True) if flag is not None]
        for ctx in hit:
            ctx._cancelled = True  # noqa: SLF001 - the lane owns its contexts
            self.settler.count("cancelled")
        return len(hit)

    def stuck(self) -> list[dict[str, object]]:
        """Handlers still running after their delivery timed out (for the heartbeat)."""
        return list(self.settler.stuck.values())

    def _complete(self, sub: Subscription, env: Envelope, ctx: MessageContext,
                  error: BaseException | None, started_ms: int, value: Any = None) -> None:
        outcome = ctx.take_outcome()
        if outcome is None:
            if error is None:
                outcome = Outcome(Action.ACK, value=value, tlp=ctx.result_tlp) \
                    if sub.auto_ack else Outcome(Action.LEAVE)
            elif isinstance(error, Reject):
                outcome = Outcome(Action.DEAD, reason=error.reason, error=error)
            elif isinstance(error, HandlerTimeoutError):
                outcome = Outcome(Action.RETRY, reason="handler_timeout", error=error)
            elif isinstance(error, Retry):
                outcome = Outcome(Action.RETRY, delay_s=error.delay_s, reason="retry", error=error)
            else:
                outcome = Outcome(Action.RETRY, reason="handler_error", error=error)
        for mw in self._after:
            outcome = mw.after_process(self, sub, env, ctx, error, outcome)
        if ctx.cancelled and outcome.action in (Action.RETRY, Action.LEAVE):
            outcome = Outcome(Action.ACK)  # cancelled by an operator: never again
        elif outcome.action == Action.ACK and outcome.value is None and value is not None:
            outcome = Outcome(Action.ACK, value=value, tlp=ctx.result_tlp)  # ctx.ack() + return
        self.settler.settle(ctx.delivery, outcome, env, (ctx.received_ms, started_ms))

    def report_progress(self, ctx: MessageContext, fraction: float, note: str) -> None:
        """A handler's progress: written by the keeper's next ``write_progress``."""
        self.settler.note_progress(ctx.delivery, ctx.envelope, fraction, note)

    def extend_leases(self, deliveries: list[Delivery]) -> None:
        """Reset the idle time of ``deliveries`` so they are not reclaimed (XCLAIM JUSTID)."""
        by_level: dict[int, list[str]] = {}
        for d in deliveries:
            by_level.setdefault(d.level, []).append(d.stream_id)
        pipe = self.mq.client.pipeline(transaction=False)
        for level, ids in by_level.items():
            pipe.xclaim(self.keys.stream(level), self.group, self.consumer, 0, ids, justid=True)
        if self.settler.track_running:  # and the global concurrency leases with them
            expiry = now_ms() + self._vt_ms
            pipe.zadd(self.keys.running(self.group),
                      {f"{d.level}:{d.stream_id}": expiry for d in deliveries}, xx=True)
        pipe.execute()

    def renew_old_leases(self, older_than_s: float) -> int:
        """Extend the lease of every in-flight delivery started more than ``older_than_s`` ago."""
        cutoff = time.monotonic() - older_than_s
        with self.settler.cond:
            old = [d for d, started in self.inflight.values() if started <= cutoff]
        if old:
            self.extend_leases(old)
        return len(old)


def _blocking_client(client: Any, socket_timeout_s: float) -> tuple[redis.Redis | None, Any]:
    """A client of its own for a lane's blocking reads, on a one-connection copy of
    ``client``'s pool (same server, user, TLS), and that pool; (None, None) where the pool
    cannot be copied (Cluster, Sentinel, the embedded Redis)."""
    if not isinstance(client, redis.Redis):
        return None, None
    pool = client.connection_pool
    if type(pool) not in (redis.ConnectionPool, redis.BlockingConnectionPool) or \
            not pool.connection_class.__module__.startswith("redis."):
        return None, None
    kwargs = {**pool.connection_kwargs, "socket_timeout": socket_timeout_s}
    own = redis.ConnectionPool(connection_class=pool.connection_class, max_connections=2,
                               **kwargs)
    return redis.Redis(connection_pool=own), own


def _raw_reader(client: Any) -> redis.Redis | None:
    """A client on ``client``'s pool whose XREADGROUP replies stay raw nested lists.

    redis-py's XREADGROUP callback builds a dict per entry (~1 us of Python per message);
    the lane only needs the one envelope field. None for clients that are not a plain
    ``redis.Redis`` (Redis Cluster): the lane then reads inside the fetch script.
    """
    if not isinstance(client, redis.Redis):
        return None
    reader = redis.Redis(connection_pool=client.connection_pool)
    reader.set_response_callback("XREADGROUP", _raw_reply)
    return reader


def _raw_reply(response: Any, **options: Any) -> Any:
    return response


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
