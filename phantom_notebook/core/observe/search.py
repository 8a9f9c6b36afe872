"""Find messages by message id, trace id or indicator value: the dashboard's search box.

``find_messages(mq, query)`` decides what ``query`` is and reads the trace streams
(``tracing.py``) of the queues the connection's role may read (``stats``), newest first:

* a **message id** (a UUIDv7, ``model/envelope.py::new_id``): its first 48 bits are the
  creation time in ms, and nothing happens to a message before it is created, so each
  stream is read only down to that time minus ``CLOCK_SKEW_MS`` (ids come from the
  producer's clock, stream entry ids from Redis's);
* a **trace id** (32 hex): every event of every message of that trace. An MD5 hash is 32
  hex too, so such a query is also looked up as an indicator, in the same pass;
* anything else is an **indicator value**: its blind tag (``indicators.py``) under every
  key the connection holds (audit keys, envelope keys old and new, unkeyed), matched
  against the tags of ``published`` / ``deduplicated`` items. The value is never sent to
  Redis nor compared in clear.

Streams are read with XREVRANGE in pages whose COUNT adapts to the entries' size (a batch
entry holds up to thousands of items), so no reply carries more than about
``PAGE_BYTES``; the search stops once ``limit`` events are found. One ``Found`` per
matching event (a message id query returns its lifecycle, newest first).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..errors import PermissionDeniedError, ValidationError
from .indicators import tagger_of
from .tracing import TraceEvent, parse_entry

if TYPE_CHECKING:
    from ..ports import Deployment

Kind = Literal["message_id", "trace_id", "indicator"]

#: how far before a message id's embedded time its events are looked for (clock skew)
CLOCK_SKEW_MS = 5 * 60_000
#: the size a page of trace entries aims at; COUNT stays within PAGE_MIN..PAGE_MAX entries
PAGE_BYTES = 1 << 20
PAGE_MIN, PAGE_MAX, PAGE_FIRST = 10, 1000, 100
MAX_LIMIT = 10_000

_MESSAGE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_TRACE_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Found:
    """One trace event matching a search: what matched, where, which message, when.

    ``queue`` is the stored queue the event was written to (``<queue>#<i>`` for a
    partition of a partitioned queue); ``at_ms`` when it happened; ``event`` its kind
    (``published``, ``acked``, ...).
    """

    kind: Kind
    queue: str
    message_id: str
    trace_id: str
    at_ms: int
    event: str


@dataclass(frozen=True)
class _Query:
    needles: tuple[bytes, ...]  # substrings one of which a matching entry's items contain
    message_id: str = ""
    trace_id: str = ""
    tags: frozenset[str] = frozenset()
    min_ms: int = 0  # the oldest entry worth reading (0 = the whole stream)

    def match(self, ev: TraceEvent) -> Kind | None:
        if self.message_id and ev.message_id == self.message_id:
            return "message_id"
        if self.trace_id and ev.trace_id == self.trace_id:
            return "trace_id"
        if self.tags and not self.tags.isdisjoint(ev.tags):
            return "indicator"
        return None


def classify(query: str) -> Kind:
    """What ``find_messages`` takes ``query`` for (a 32-hex query is also an indicator)."""
    text = query.strip().lower()
    if _MESSAGE_ID.fullmatch(text):
        return "message_id"
    if _TRACE_ID.fullmatch(text):
        return "trace_id"
    return "indicator"


def find_messages(mq: Deployment, query: str, *, queues: Iterable[str] | None = None,
                  limit: int = 20) -> list[Found]:
    """The newest ``limit`` trace events matching ``query``, newest first.

    ``query`` is a message id, a trace id or an indicator value (see the module
    docstring); ``queues`` defaults to every queue the connection's role may read the
    statistics of, and named queues it may not are skipped (the denial is audited).
    Raises ``ValidationError`` for an empty query or a ``limit`` out of 1..10,000.
    """
    if not isinstance(query, str) or not query.strip():
        raise ValidationError("give a message id, a trace id or an indicator value to search "
                              f"for, got {query!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be an integer 1..{MAX_LIMIT}, got {limit!r}")
    q = _parse(mq, query)
    found: list[tuple[TraceEvent, Kind]] = []
    for stored in _stored_queues(mq, queues):
        found += _scan(mq, stored, q, limit)
    found.sort(key=lambda hit: hit[0].order, reverse=True)
    return [Found(kind, ev.queue, ev.message_id, ev.trace_id, ev.time_ms, ev.event)
            for ev, kind in found[:limit]]


def _parse(mq: Deployment, query: str) -> _Query:
    text = query.strip()
    low = text.lower()
    kind = classify(low)
    if kind == "message_id":
        created = int(low[:8] + low[9:13], 16)
        return _Query((low.encode(),), message_id=low, min_ms=max(created - CLOCK_SKEW_MS, 0))
    tags = frozenset(tagger_of(mq).search_tags(text))
    needles = tuple(t.encode() for t in sorted(tags))
    if kind == "trace_id":
        return _Query((low.encode(), *needles), trace_id=low, tags=tags)
    return _Query(needles, tags=tags)


def _stored_queues(mq: Deployment, queues: Iterable[str] | None) -> Iterator[str]:
    """The stored (sub-)queues to read: readable queues, each partition of partitioned ones."""
    explicit = queues is not None
    names = list(dict.fromkeys([queues] if isinstance(queues, str) else queues)) \
        if queues is not None else mq.queues()
    for name in names:
        if mq.role is not None:
            if explicit:
                try:
                    mq.authorize("stats", name)
                except PermissionDeniedError:
                    continue
            elif not mq.access.allows(mq.role, "stats", name):
                continue  # not asked for by name: skipped quietly, not audited as a denial
        layout = mq.layout(name)
        yield from layout.all if layout.partitioned else (name,)


def _scan(mq: Deployment, queue: str, q: _Query, limit: int) -> list[tuple[TraceEvent, Kind]]:
    """Up to ``limit`` matching events of one trace stream, newest first."""
    key = mq.queue_keys(queue).trace
    low = str(q.min_ms) if q.min_ms else "-"
    high, count = "+", PAGE_FIRST
    needles = q.needles
    out: list[tuple[TraceEvent, Kind]] = []
    if not needles:
        return out
    while True:
        page: list[Any] = mq.client.xrevrange(key, max=high, min=low, count=count)
        size = 0
        for entry_id, fields in page:
            raw = fields.get(b"m", b"")
            size += len(raw)
            if not any(n in raw for n in needles):
                continue
            matched = [(ev, kind) for ev in parse_entry(queue, entry_id, fields)
                       if (kind := q.match(ev)) is not None]
            matched.sort(key=lambda hit: hit[0].order, reverse=True)
            out += matched
            if len(out) >= limit:
                return out[:limit]
        if len(page) < count:
            return out
        last = page[-1][0]
        high = "(" + (last.decode() if isinstance(last, bytes) else str(last))
        count = max(PAGE_MIN, min(PAGE_MAX, PAGE_BYTES * len(page) // max(size, 1)))


__all__ = ["CLOCK_SKEW_MS", "Found", "classify", "find_messages"]
