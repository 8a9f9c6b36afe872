"""Prometheus exporter: a collector that reads the fleet's numbers from Redis on every scrape.

``serve(mq, port)`` starts an HTTP server for ``/metrics`` (``phantom-notebook metrics serve
--port``). Nothing is counted in this process: each scrape reads depths, metric buckets,
heartbeats, breaker states and (optionally) the health checks from Redis, so one exporter
shows every worker's numbers, and a restart loses nothing but its counters' start point.

Exposed families:

* ``phantom_queue_depth{queue,state}`` gauge: ready, in_flight, delayed, dead.
* ``phantom_messages_total{queue,event}`` counter, event = each metric counter (published,
  delivered, acked, retried, failed, dead_lettered, expired, deduplicated, replayed).
* ``phantom_latency_seconds{queue,kind}`` histogram, kind = wait, proc, e2e.
* ``phantom_consumer_last_seen_seconds{consumer}`` gauge: Unix time of the last heartbeat
  (alert on ``time() - phantom_consumer_last_seen_seconds > 30``).
* ``phantom_circuit_breaker_open{queue,lane}`` gauge: 1 open, 0 closed or half-open.
* ``phantom_health_status`` gauge 0 ok / 1 warn / 2 critical, and
  ``phantom_health_check_status{check,target}`` per check.
* ``phantom_up`` (0 when Redis could not be read) and ``phantom_scrape_duration_seconds``.

Counters and histograms are cumulative over the 10 s buckets Redis retains: the first
scrape sums the last ``backfill_s`` seconds of buckets (default 1 h; Redis keeps 24 h),
later scrapes add each bucket once it is ``settle_s`` old (late writes after that are not
counted) plus the still-open recent buckets, so the values only grow for the life of the
exporter; a restart is a counter reset, which ``rate()``/``increase()`` handle. Histogram
boundaries are every ``histogram_step``-th boundary of our own log-spaced buckets (step 4:
each about twice the last, 0.2 ms to 1 h), so bucket counts are exact; ``_sum`` is
estimated from bucket midpoints.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIServer

from ..core.observe.consumers import read_heartbeats
from ..core.observe.metrics import (
    BOUNDS_MS,
    BUCKET_S,
    COUNTERS,
    FLOW_EVENTS,
    LATENCY_KINDS,
    MetricsBucket,
    MetricsStore,
    merge,
)
from . import require

try:
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.registry import Collector
except ImportError:  # pragma: no cover - exercised only without the extra
    require("prometheus_client")
    raise

if TYPE_CHECKING:
    from ..core.queues import MessageQueue

log = logging.getLogger(__name__)
DEFAULT_PORT = 9464
STATES = ("ready", "in_flight", "delayed", "dead")
HEALTH_VALUE = {"ok": 0, "warn": 1, "critical": 2}


class PhantomCollector(Collector):
    """Yields the phantom_* families from Redis on each ``collect`` (thread-safe)."""

    def __init__(self, mq: MessageQueue, queues: Iterable[str] | None = None, *,
                 backfill_s: float = 3600.0, settle_s: float = 60.0, histogram_step: int = 4,
                 include_health: bool = True, health_window_s: float = 300.0) -> None:
        self.mq = mq
        self.queues = list(queues) if queues is not None else None
        self.backfill_s = backfill_s
        self.settle_s = settle_s
        self.include_health = include_health
        self.health_window_s = health_window_s
        self.bounds = _bounds(histogram_step)
        self._store = MetricsStore(mq)
        self._lock = threading.Lock()
        self._folded: dict[str, MetricsBucket] = {}
        self._next_s: dict[str, int] = {}

    def describe(self) -> Iterable[Metric]:
        """Nothing: registering must not read Redis (the families are dynamic)."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Every family; only ``phantom_up 0`` (and the duration) if Redis cannot be read."""
        started = time.perf_counter()
        try:
            families = self._families()
            up = 1.0
        except Exception as exc:  # a scrape must answer even when Redis is down
            log.warning("phantom exporter: reading Redis failed: %s", exc)
            families, up = [], 0.0
        yield from families
        yield GaugeMetricFamily("phantom_up", "1 when the last scrape could read Redis, else 0",
                                value=up)
        yield GaugeMetricFamily("phantom_scrape_duration_seconds",
                                "Time the last scrape spent reading Redis",
                                value=time.perf_counter() - started)

    def totals(self, queue: str, now_s: float | None = None) -> MetricsBucket:
        """The cumulative counters and histograms of ``queue`` (see the module docstring)."""
        now = time.time() if now_s is None else now_s
        with self._lock:
            default = int(now - self.backfill_s) // BUCKET_S * BUCKET_S
            start = self._next_s.get(queue, default)
            buckets = self._store.read(queue, start, now)
            fold_until = int(now - self.settle_s) // BUCKET_S * BUCKET_S - BUCKET_S
            closed = [b for b in buckets if b.start_s <= fold_until]
            recent = [b for b in buckets if b.start_s > fold_until]
            if queue in self._folded:
                closed.insert(0, self._folded[queue])
            self._folded[queue] = merge(closed, queue)
            self._next_s[queue] = max(start, fold_until + BUCKET_S)
            return merge([self._folded[queue], *recent], queue)

    # -- families ----------------------------------------------------------------------------

    def _families(self) -> list[Metric]:
        names = self.queues if self.queues is not None else self.mq.queues()
        depth = GaugeMetricFamily("phantom_queue_depth", "Messages per queue and state",
                                  labels=["queue", "state"])
        paused = GaugeMetricFamily("phantom_queue_paused", "1 when consumers of the queue (or "
                                   "of a group: group label) are paused", labels=["queue", "group"])
        for s in self.mq.stats(names):
            for state in STATES:
                depth.add_metric([s.queue, state], getattr(s, state))
            paused.add_metric([s.queue, ""], 1.0 if s.paused else 0.0)
            for group in s.paused_groups:
                paused.add_metric([s.queue, group], 1.0)
        messages = CounterMetricFamily(
            "phantom_messages", "Lifecycle events per queue, from the metric buckets in Redis",
            labels=["queue", "event"])
        latency = HistogramMetricFamily(
            "phantom_latency_seconds", "Latency per queue: wait (publish to delivery), proc "
            "(delivery to settled), e2e (publish to settled)", labels=["queue", "kind"])
        breakers = GaugeMetricFamily("phantom_circuit_breaker_open",
                                     "1 when a worker lane's circuit breaker is open",
                                     labels=["queue", "lane"])
        for name in names:
            total = self.totals(name)
            for event in (*COUNTERS, *FLOW_EVENTS):
                messages.add_metric([name, event], total.count(event))
            for kind in LATENCY_KINDS:
                buckets, sum_s = _histogram(total.histograms.get(kind, {}), self.bounds)
                latency.add_metric([name, kind], buckets, sum_s)
            for lane, breaker in sorted(self.mq.breakers(name).items()):
                is_open = breaker.get("state") == "open"
                breakers.add_metric([name, lane], 1.0 if is_open else 0.0)
        out: list[Metric] = [depth, paused, messages, latency, breakers, self._consumers(),
                             *self._schedules(names)]
        if self.include_health:
            out += self._health(names)
        return out

    def _schedules(self, names: list[str]) -> list[Metric]:
        labels = ["queue", "schedule"]
        last = GaugeMetricFamily("phantom_schedule_last_fired_timestamp_seconds",
                                 "When each recurring schedule last fired (0 = never)",
                                 labels=labels)
        nxt = GaugeMetricFamily("phantom_schedule_next_fire_timestamp_seconds",
                                "When each recurring schedule fires next (0 = paused)",
                                labels=labels)
        paused = GaugeMetricFamily("phantom_schedule_paused", "1 when a schedule is paused",
                                   labels=labels)
        for sched in self.mq.schedules(names):
            key = [sched.queue, sched.name]
            last.add_metric(key, sched.last_fired.timestamp() if sched.last_fired else 0.0)
            nxt.add_metric(key, sched.next_fire.timestamp() if sched.next_fire else 0.0)
            paused.add_metric(key, 1.0 if sched.paused else 0.0)
        return [last, nxt, paused]

    def _consumers(self) -> Metric:
        family = GaugeMetricFamily("phantom_consumer_last_seen_seconds",
                                   "Unix time of each consumer's last heartbeat",
                                   labels=["consumer"])
        for beat in read_heartbeats(self.mq):
            family.add_metric([beat.consumer], beat.last_seen)
        return family

    def _health(self, names: list[str]) -> list[Metric]:
        report = self.mq.health(names, self.health_window_s)
        overall = GaugeMetricFamily("phantom_health_status",
                                    "Overall health: 0 ok, 1 warn, 2 critical",
                                    value=HEALTH_VALUE.get(report.status, 2))
        checks = GaugeMetricFamily("phantom_health_check_status",
                                   "Each health check: 0 ok, 1 warn, 2 critical",
                                   labels=["check", "target"])
        worst: dict[tuple[str, str], int] = {}
        for c in report.checks:  # a check may repeat per target (breaker lanes): keep worst
            key = (c.name, c.target)
            worst[key] = max(worst.get(key, 0), HEALTH_VALUE.get(c.status, 2))
        for (check, target), value in sorted(worst.items()):
            checks.add_metric([check, target], value)
        return [overall, checks]


def serve(mq: MessageQueue, port: int = DEFAULT_PORT, addr: str = "127.0.0.1",
          **options: Any) -> WSGIServer:
    """Serve ``/metrics`` on ``addr:port`` from a daemon thread; returns the server.

    ``port=0`` picks a free port (``server.server_port``). Stop with ``server.shutdown()``
    then ``server.server_close()``. ``options`` go to ``PhantomCollector``. The registry
    is a private one: only the phantom_* families are exposed, not this process's.
    """
    registry = CollectorRegistry()
    registry.register(PhantomCollector(mq, **options))
    server, _ = start_http_server(port, addr=addr, registry=registry)
    return server


def run(mq: MessageQueue, port: int = DEFAULT_PORT, addr: str = "127.0.0.1",
        stop: threading.Event | None = None, **options: Any) -> int:
    """Serve until SIGINT/SIGTERM (or ``stop`` is set); the CLI's ``metrics serve``."""
    server = serve(mq, port, addr, **options)
    done = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
    host = f"[{addr}]" if ":" in addr else addr
    print(f"serving Prometheus metrics on http://{host}:{server.server_port}/metrics",
          flush=True)
    try:
        done.wait()
    finally:
        server.shutdown()
        server.server_close()
    return 0


def _bounds(step: int) -> list[tuple[str, int]]:
    """(le label in seconds, last index of our buckets at or below it) per exposed bucket."""
    if step < 1:
        raise ValueError(f"histogram_step must be >= 1, got {step}")
    indexes = list(range(step - 1, len(BOUNDS_MS), step))
    if indexes[-1] != len(BOUNDS_MS) - 1:
        indexes.append(len(BOUNDS_MS) - 1)
    return [(f"{BOUNDS_MS[i] / 1000:.6g}", i) for i in indexes]


def _histogram(hist: dict[int, int], bounds: list[tuple[str, int]],
               ) -> tuple[list[tuple[str, float]], float]:
    """Cumulative (le, count) buckets ending with +Inf, and the estimated sum in seconds."""
    buckets: list[tuple[str, float]] = []
    running = 0
    ordered = sorted(hist.items())
    pos = 0
    for label, last in bounds:
        while pos < len(ordered) and ordered[pos][0] <= last:
            running += ordered[pos][1]
            pos += 1
        buckets.append((label, float(running)))
    buckets.append(("+Inf", float(sum(hist.values()))))
    sum_ms = sum(count * _midpoint_ms(index) for index, count in hist.items())
    return buckets, sum_ms / 1000


def _midpoint_ms(index: int) -> float:
    high = BOUNDS_MS[min(index, len(BOUNDS_MS) - 1)]
    return high / 2 if index == 0 else math.sqrt(BOUNDS_MS[index - 1] * high)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
