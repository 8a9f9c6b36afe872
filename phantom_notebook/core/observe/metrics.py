"""Metrics stored in Redis: counters and latency histograms per queue and 10-second bucket.

Each bucket is a hash ``<prefix>:{<queue>}:m:<bucket start s>`` (24 h TTL) written in the same
Lua call as the operation it counts: ``published``/``deduplicated`` by publish, ``delivered``
by fetch, ``acked``/``retried``/``dead_lettered``/``expired``/``failed`` and the latency
histograms by settle. Histogram fields are ``h:<kind>:<index>`` with log-spaced boundaries
(each bucket 20 % wider than the last, from 0.05 ms to ~1 hour), so any percentile read back
is within one bucket (<= 20 %) of the true value. Kinds: ``wait`` (publish -> delivery),
``proc`` (delivery -> settled) and ``e2e`` (publish -> settled).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from ..backend.boundary import public

if TYPE_CHECKING:
    from ..backend.keyspace import QueueKeys
    from ..ports import Deployment

BUCKET_S = 10
RETENTION_S = 24 * 3600
COUNTERS = ("published", "delivered", "acked", "retried", "failed", "dead_lettered", "expired",
            "deduplicated", "replayed")
#: flow control's events (exported; not DataFrame columns): fetches that found a limit
#: binding ("throttled"), deliveries deferred to a key's slot, messages cancelled
FLOW_EVENTS = ("throttled", "rate_limited", "cancelled")
LATENCY_KINDS = ("wait", "proc", "e2e")
_GROWTH = 1.2
_FIRST_MS = 0.05
#: upper bound (ms) of each histogram bucket; a value v falls in the first bucket with v <= b
BOUNDS_MS: tuple[float, ...] = tuple(_FIRST_MS * _GROWTH ** i for i in range(
    int(math.log(3_600_000 / _FIRST_MS, _GROWTH)) + 2))


#: the hash field names of every histogram bucket, per latency kind (built once)
LATENCY_FIELDS: dict[str, tuple[str, ...]] = {
    kind: tuple(f"h:{kind}:{i}" for i in range(len(BOUNDS_MS))) for kind in LATENCY_KINDS}


def metrics_key(keys: QueueKeys, at_ms: int) -> str:
    """The metrics hash of ``keys``' queue for the time bucket containing ``at_ms``."""
    return keys.metrics(at_ms // 1000 // BUCKET_S * BUCKET_S)


def bucket_index(value_ms: float) -> int:
    """The histogram bucket of a latency in milliseconds."""
    return min(bisect_left(BOUNDS_MS, max(value_ms, 0.0)), len(BOUNDS_MS) - 1)


#: whole milliseconds below this are looked up in a table instead of bisected
FIELD_TABLE_MS = 60_000


@cache
def fields_by_ms(kind: str) -> tuple[str, ...]:
    """The hash field of every whole millisecond 0 .. FIELD_TABLE_MS - 1 for ``kind``.

    The worker measures latencies in whole ms: one tuple index replaces bisect + min + max
    per value. Built on first use in one linear pass (~5 ms), not at import.
    """
    names, last = LATENCY_FIELDS[kind], len(BOUNDS_MS) - 1
    out, index = [], 0
    for ms in range(FIELD_TABLE_MS):
        while index < last and BOUNDS_MS[index] < ms:  # bisect_left: first bound >= ms
            index += 1
        out.append(names[index])
    return tuple(out)


def latency_field(kind_fields: tuple[str, ...], by_ms: tuple[str, ...], value_ms: int) -> str:
    """The histogram field of a whole-ms latency (``by_ms`` = ``fields_by_ms(kind)``)."""
    if 0 <= value_ms < FIELD_TABLE_MS:
        return by_ms[value_ms]
    return kind_fields[bucket_index(value_ms)]


def histogram_fields(kind: str, values_ms: Iterable[float]) -> Counter[str]:
    """Aggregate latencies into ``h:<kind>:<index>`` increments (one HINCRBY per bucket)."""
    return Counter(f"h:{kind}:{bucket_index(v)}" for v in values_ms)


def percentile(histogram: Mapping[int, int], q: float) -> float | None:
    """The ``q`` percentile (0-100) of a histogram {bucket index: count}, in ms.

    Interpolates inside the bucket the percentile falls in; None when empty.
    """
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = q / 100 * total
    seen = 0
    for index in sorted(histogram):
        count = histogram[index]
        if seen + count >= rank:
            low = BOUNDS_MS[index - 1] if index > 0 else 0.0
            high = BOUNDS_MS[index]
            frac = (rank - seen) / count if count else 0.0
            return low + (high - low) * frac
        seen += count
    return BOUNDS_MS[max(histogram)]


@dataclass
class MetricsBucket:
    """One time bucket of one queue: counters and latency histograms."""

    queue: str
    start_s: int
    counters: dict[str, int] = field(default_factory=dict)
    histograms: dict[str, dict[int, int]] = field(default_factory=dict)

    def count(self, name: str) -> int:
        """A counter's value (0 when never incremented)."""
        return self.counters.get(name, 0)

    def latency(self, kind: str, q: float) -> float | None:
        """A latency percentile of this bucket in ms."""
        return percentile(self.histograms.get(kind, {}), q)


def parse_bucket(queue: str, start_s: int, raw: Mapping[Any, Any]) -> MetricsBucket:
    """Turn an HGETALL reply into a ``MetricsBucket``."""
    bucket = MetricsBucket(queue, start_s)
    for k, v in raw.items():
        name = k.decode() if isinstance(k, bytes) else str(k)
        value = int(v)
        if name.startswith("h:"):
            _, kind, index = name.split(":")
            bucket.histograms.setdefault(kind, {})[int(index)] = value
        else:
            bucket.counters[name] = value
    return bucket


def merge(buckets: Iterable[MetricsBucket], queue: str = "*") -> MetricsBucket:
    """Sum several buckets (e.g. a window, or several queues) into one."""
    out = MetricsBucket(queue, 0)
    for b in buckets:
        out.start_s = min(out.start_s or b.start_s, b.start_s)
        for name, value in b.counters.items():
            out.counters[name] = out.counters.get(name, 0) + value
        for kind, hist in b.histograms.items():
            target = out.histograms.setdefault(kind, {})
            for index, count in hist.items():
                target[index] = target.get(index, 0) + count
    return out


@public
class MetricsStore:
    """Reads the metric buckets every worker and producer wrote (the fleet-wide view)."""

    def __init__(self, mq: Deployment) -> None:
        self.mq = mq

    def read(self, queue: str, since_s: float, until_s: float) -> list[MetricsBucket]:
        """Buckets of ``queue`` whose start lies in [since_s, until_s], oldest first.

        One pipelined round trip: one HGETALL per bucket in the window.
        """
        first = int(since_s) // BUCKET_S * BUCKET_S
        starts = list(range(first, int(until_s) + 1, BUCKET_S))
        keys = self.mq.queue_keys(queue)
        pipe = self.mq.client.pipeline(transaction=False)
        for start in starts:
            pipe.hgetall(keys.metrics(start))
        replies = pipe.execute()
        return [parse_bucket(queue, start, raw) for start, raw in zip(starts, replies,
                                                                      strict=True) if raw]

    def window(self, queue: str, window_s: float, now_s: float | None = None) -> MetricsBucket:
        """Everything of the last ``window_s`` seconds merged into one bucket."""
        import time

        now = time.time() if now_s is None else now_s
        return merge(self.read(queue, now - window_s, now), queue)
