"""What the operations dashboard shows, read from Redis at a cost that does not grow with depth.

``DashboardModel(mq).refresh()`` returns a ``Snapshot``: the tiles, one row per queue, the
workers and the chart series. One refresh is three pipelined round trips, every command
O(1) or O(log n) in queue length (nothing reads messages):

1. depth: ``mq.stats`` (HGET kind, XLEN and XINFO GROUPS per level stream, ZCARD delayed,
   XLEN dead letters, per partition);
2. one pipeline: the oldest entry of each level stream (``XRANGE - + COUNT 1``), the
   metric buckets not yet cached (closed 10 s buckets never change, so a refresh reads the
   current and the previous one per queue), each partition's breakers (HGETALL), and the
   heartbeat index;
3. the heartbeats of each ACL user (HGETALL per user).

The health checks run every ``health_every_s`` (default 15 s), not every refresh: they read
five minutes of buckets per queue. ``refresh_cost()`` counts the commands of one refresh.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...core.errors import PermissionDeniedError, ValidationError
from ...core.observe.consumers import read_heartbeats
from ...core.observe.metrics import BUCKET_S, MetricsBucket, merge, parse_bucket

if TYPE_CHECKING:
    from ...core.observe.health import HealthCheck, HealthReport
    from ...core.queues import MessageQueue

#: the window of rates (per second) in the queue table
RATE_WINDOW_S = 60
#: the window of latency percentiles, error rates and "dead letters in the window"
WINDOW_S = 300
#: how far back the throughput and latency charts reach (a fixed range: never blank)
CHART_WINDOW_S = 900
#: a worker whose last heartbeat is older than this is offline
STALE_AFTER_S = 30.0


@dataclass(frozen=True)
class QueueRow:
    """One queue of the per-queue table."""

    queue: str
    kind: str
    ready: int
    in_flight: int
    delayed: int
    dead: int
    oldest_age_s: float | None
    published_per_s: float
    acked_per_s: float
    p95_ms: float | None
    p99_ms: float | None
    error_rate: float
    dead_in_window: int
    consumers: int
    open_breakers: int
    partitions: int = 1

    @property
    def waiting(self) -> int:
        """Messages not yet settled: ready, in flight and delayed."""
        return self.ready + self.in_flight + self.delayed

    @property
    def drain_s(self) -> float | None:
        """Seconds to drain at the current ack rate (None: nothing waits; inf: not draining)."""
        if not self.waiting:
            return None
        return self.waiting / self.acked_per_s if self.acked_per_s > 0 else math.inf

    @property
    def no_consumer(self) -> bool:
        """True when messages wait and no live worker consumes this queue."""
        return self.consumers == 0 and self.kind != "pubsub"


@dataclass(frozen=True)
class WorkerRow:
    """One worker (consumer) from its heartbeat."""

    name: str
    user: str
    host: str
    pid: int
    queues: tuple[str, ...]
    last_seen_s: float
    in_flight: int
    handled: int
    errors: int
    last_error: str
    online: bool


@dataclass(frozen=True)
class Tiles:
    """The numbers at the top of the page."""

    queues: int
    waiting: int
    oldest_age_s: float | None
    oldest_queue: str | None
    drain_s: float | None
    drain_queue: str | None
    workers_online: int
    workers_total: int
    open_breakers: int
    dead_in_window: int
    dead_total: int
    health: str
    worst_checks: tuple[HealthCheck, ...]
    health_age_s: float | None


@dataclass(frozen=True)
class Snapshot:
    """Everything one refresh read."""

    at: float
    tiles: Tiles
    queues: tuple[QueueRow, ...]
    workers: tuple[WorkerRow, ...]
    #: per queue: [(bucket start s, published/s, acked/s, p95 e2e ms or None)], oldest first
    series: dict[str, list[tuple[int, float, float, float | None]]]
    #: depth samples of this page's refreshes: [(time s, {queue: waiting})]
    depth_history: tuple[tuple[float, dict[str, int]], ...]
    error: str | None = None


@dataclass
class _Cache:
    buckets: dict[str, dict[int, MetricsBucket]] = field(default_factory=dict)
    loaded_since: dict[str, int] = field(default_factory=dict)


class DashboardModel:
    """Reads a deployment's state for the dashboard; thread-safe ``refresh()``."""

    def __init__(self, mq: MessageQueue, *, role: str | None = None,
                 health_every_s: float = 15.0, history: int = 450) -> None:
        if health_every_s <= 0:
            raise ValidationError(f"health_every_s must be > 0, got {health_every_s}")
        self.mq = mq
        self.role = role if role is not None else mq.role
        self.health_every_s = health_every_s
        self.health: HealthReport | None = None
        self.health_at = 0.0
        self.snapshot: Snapshot | None = None
        self.refreshes = 0
        self._cache = _Cache()
        self._depths: deque[tuple[float, dict[str, int]]] = deque(maxlen=history)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DashboardModel(role={self.role!r}, {self.refreshes} refreshes)"

    # -- access ------------------------------------------------------------------------------

    def visible_queues(self) -> list[str]:
        """The queues this role may read the statistics of, sorted."""
        names = sorted(self.mq.queues())
        if self.role is None:
            return names
        return [q for q in names if self.mq.access.allows(self.role, "stats", q)]

    def may_manage(self, queue: str) -> bool:
        """True when this role may replay and purge ``queue``'s dead letters."""
        return self.role is None or self.mq.access.allows(self.role, "manage", queue)

    # -- refresh -----------------------------------------------------------------------------

    def refresh(self, now: float | None = None) -> Snapshot:
        """Read everything once; the new ``Snapshot`` (also kept as ``.snapshot``)."""
        with self._lock:
            at = time.time() if now is None else now
            names = self.visible_queues()
            stats = {s.queue: s for s in self.mq.stats(names)} if names else {}
            parts = {q: self.mq.layout(q).all for q in names}
            oldest, breakers, users = self._read_state(names, parts, at)
            beats = self._workers(users, at)
            consumers = _consumers_of(beats, names)
            rows = []
            for q in names:
                s = stats[q]
                rows.append(self._row(q, s, parts[q], oldest.get(q), breakers.get(q, 0),
                                      consumers.get(q, 0), at))
            self._depths.append((at, {r.queue: r.waiting for r in rows}))
            if self.health is None or at - self.health_at >= self.health_every_s:
                self.health = self.mq.health(names, window_s=WINDOW_S)
                self.health_at = at
            snapshot = Snapshot(at, self._tiles(rows, beats, at), tuple(rows), tuple(beats),
                                self._series(names, at), tuple(self._depths))
            self.snapshot = snapshot
            self.refreshes += 1
            return snapshot

    def _read_state(self, names: list[str], parts: dict[str, tuple[str, ...]], at: float,
                    ) -> tuple[dict[str, float], dict[str, int], list[str]]:
        """One pipeline: oldest entries, new metric buckets, breakers, heartbeat users."""
        client = self.mq.client
        pipe = client.pipeline(transaction=False)
        plan: list[tuple[str, Any]] = []
        now_bucket = int(at) // BUCKET_S * BUCKET_S
        for q in names:
            for part in parts[q]:
                keys = self.mq.queue_keys(part)
                for stream in keys.streams:
                    pipe.xrange(stream, "-", "+", count=1)
                    plan.append(("oldest", q))
                # re-read the last bucket read (it was still filling) and the one before it
                # (a late settle), then the new ones; closed buckets come from the cache
                latest = self._cache.loaded_since.get(part)
                start = now_bucket - CHART_WINDOW_S if latest is None else \
                    max(latest - BUCKET_S, now_bucket - CHART_WINDOW_S)
                for b in range(start - start % BUCKET_S, now_bucket + 1, BUCKET_S):
                    pipe.hgetall(keys.metrics(b))
                    plan.append(("bucket", (q, part, b)))
                pipe.hgetall(keys.breakers)
                plan.append(("breakers", q))
        pipe.smembers(self.mq.keys.heartbeat_index)
        plan.append(("users", None))
        replies = pipe.execute(raise_on_error=False)
        return self._parse_state(plan, replies, now_bucket)

    def _parse_state(self, plan: list[tuple[str, Any]], replies: list[Any], now_bucket: int,
                     ) -> tuple[dict[str, float], dict[str, int], list[str]]:
        oldest: dict[str, float] = {}
        breakers: dict[str, int] = {}
        users: list[str] = []
        for (what, arg), reply in zip(plan, replies, strict=True):
            if isinstance(reply, Exception):
                continue
            if what == "oldest" and reply:
                ms = int(_text(reply[0][0]).split("-", 1)[0])
                oldest[arg] = min(oldest.get(arg, math.inf), ms / 1000)
            elif what == "bucket":
                self._store_bucket(arg[1], arg[2], reply)
            elif what == "breakers":
                breakers[arg] = breakers.get(arg, 0) + sum(
                    1 for v in reply.values() if b'"open"' in v)
            elif what == "users":
                users = sorted(_text(u) for u in reply)
        horizon = now_bucket - CHART_WINDOW_S - BUCKET_S
        for store in self._cache.buckets.values():
            for b in [b for b in store if b < horizon]:
                del store[b]
        return oldest, breakers, users

    def _store_bucket(self, part: str, start: int, reply: Any) -> None:
        store = self._cache.buckets.setdefault(part, {})
        if reply:
            store[start] = parse_bucket(part, start, reply)
        self._cache.loaded_since[part] = max(self._cache.loaded_since.get(part, start), start)

    def _workers(self, users: list[str], at: float) -> list[WorkerRow]:
        if not users:
            return []
        out = []
        for beat in read_heartbeats(self.mq):
            age = at - beat.last_seen if beat.last_seen else math.inf
            extra = beat.extra
            errors = int(extra.get("lane_errors") or 0) + int(extra.get("timed_out") or 0)
            out.append(WorkerRow(beat.consumer, beat.user, beat.host, beat.pid, beat.queues,
                                 age, beat.in_flight, beat.handled, errors,
                                 str(extra.get("last_error") or ""), age <= STALE_AFTER_S))
        return sorted(out, key=lambda w: (not w.online, w.name))

    def _window(self, parts: tuple[str, ...], since: float, until: float) -> MetricsBucket:
        chosen = [b for part in parts for start, b in self._cache.buckets.get(part, {}).items()
                  if since <= start + BUCKET_S and start <= until]
        return merge(chosen)

    def _row(self, q: str, s: Any, parts: tuple[str, ...], oldest: float | None,
             open_breakers: int, consumers: int, at: float) -> QueueRow:
        rate = self._window(parts, at - RATE_WINDOW_S, at)
        window = self._window(parts, at - WINDOW_S, at)
        # a queue younger than the window: per second of the time it has had traffic
        span = float(RATE_WINDOW_S) if not rate.counters else \
            max(min(float(RATE_WINDOW_S), at - rate.start_s), float(BUCKET_S))
        delivered = window.count("delivered")
        failed = window.count("retried") + window.count("dead_lettered")
        waiting = s.ready + s.in_flight
        return QueueRow(
            q, s.kind, s.ready, s.in_flight, s.delayed, s.dead,
            max(at - oldest, 0.0) if oldest is not None and waiting else None,
            rate.count("published") / span, rate.count("acked") / span,
            window.latency("e2e", 95), window.latency("e2e", 99),
            failed / delivered if delivered else 0.0, window.count("dead_lettered"),
            consumers, open_breakers, len(parts))

    def _tiles(self, rows: list[QueueRow], beats: list[WorkerRow], at: float) -> Tiles:
        aged = [r for r in rows if r.oldest_age_s is not None]
        worst = max(aged, key=lambda r: r.oldest_age_s or 0.0, default=None)
        waiting = sum(r.waiting for r in rows)
        # everything is drained when the slowest queue is: the worst queue's estimate
        drains = [(r.drain_s, r.queue) for r in rows if r.drain_s is not None]
        drain, drain_queue = max(drains, default=(None, None))
        report = self.health
        problems = tuple(report.problems()[:3]) if report is not None else ()
        return Tiles(
            len(rows), waiting, worst.oldest_age_s if worst else None,
            worst.queue if worst else None, drain, drain_queue,
            sum(1 for b in beats if b.online),
            len(beats), sum(r.open_breakers for r in rows),
            sum(r.dead_in_window for r in rows), sum(r.dead for r in rows),
            report.status if report is not None else "unknown", problems,
            at - self.health_at if report is not None else None)

    def _series(self, names: list[str], at: float,
                ) -> dict[str, list[tuple[int, float, float, float | None]]]:
        out: dict[str, list[tuple[int, float, float, float | None]]] = {}
        first = (int(at) - CHART_WINDOW_S) // BUCKET_S * BUCKET_S
        for q in names:
            parts = self.mq.layout(q).all
            points = []
            for start in range(first, int(at) // BUCKET_S * BUCKET_S + 1, BUCKET_S):
                b = merge(self._cache.buckets.get(p, {}).get(start) or MetricsBucket(p, start)
                          for p in parts)
                span = max(min(float(BUCKET_S), at - start), 1.0)
                points.append((start, b.count("published") / span, b.count("acked") / span,
                               b.latency("e2e", 95)))
            if any(p[1] or p[2] for p in points):
                out[q] = points
        return out

    # -- reading one thing ---------------------------------------------------------------------

    def check_stats(self, queue: str) -> None:
        """``PermissionDeniedError`` unless this role may read ``queue``."""
        if self.role is not None and not self.mq.access.allows(self.role, "stats", queue):
            raise PermissionDeniedError(f"role {self.role!r} may not read queue {queue!r}")


def _consumers_of(beats: list[WorkerRow], names: list[str]) -> dict[str, int]:
    out = dict.fromkeys(names, 0)
    for beat in beats:
        if not beat.online:
            continue
        for queue in {q.split("#", 1)[0] for q in beat.queues}:
            if queue in out:
                out[queue] += 1
    return out


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


__all__ = ["CHART_WINDOW_S", "DashboardModel", "QueueRow", "Snapshot", "Tiles", "WorkerRow"]
