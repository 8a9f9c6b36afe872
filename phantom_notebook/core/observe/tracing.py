"""Lifecycle traces: every publish, delivery, ack, retry, dead letter... of every message.

Events are appended to the queue's capped stream ``<prefix>:{<queue>}:trace`` inside the Lua
call that performs the operation (publish, settle, fetch, replay) — never an extra round
trip. One stream entry holds one event kind for a whole batch::

    ev = published | delivered | acked | nacked | retried | dead_lettered | expired |
         deduplicated | replayed | released
    c  = consumer (or producer origin)
    m  = "<message id>|<trace id>|<attempt>|<detail>;..."   (detail: reason, delay, error)

so a trace costs a few bytes per message, and the capped stream (``TRACE_MAX_ENTRIES``
batches) covers hours of traffic instead of seconds. The entry id gives the time, except
for events written later in a batch than they happened (``delivered``, ``acked``): their
detail ``at=<ms>`` carries the moment itself, so a timeline shows real handling times.
``published`` (and ``deduplicated``) items may end in blind indicator tags
(``ioc=<12 hex>``, ``indicators.py``): ``parse_entry`` moves them to ``TraceEvent.tags``,
so ``detail`` stays ``due <ms>`` or empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..backend.boundary import public
from .indicators import tags_in

if TYPE_CHECKING:
    from ..ports import Deployment

TRACE_MAX_ENTRIES = 20_000
EVENTS = ("published", "deduplicated", "delivered", "acked", "nacked", "retried",
          "dead_lettered", "expired", "replayed", "released")
#: the events whose items carry the publisher's detail, indicator tags included
_TAGGED = frozenset({"published", "deduplicated"})


def clean(text: str, limit: int = 160) -> str:
    """Make ``text`` safe inside a trace item (no separators), cut to ``limit`` characters."""
    return text.replace("|", "/").replace(";", ",").replace("\n", " ")[:limit]


def item(message_id: str, trace_id: str, attempt: int, detail: str = "") -> str:
    """The trace item of one message, ``id|trace id|attempt|detail``: the one place the
    format is written (``detail`` must be ``clean``: no ``|`` or ``;``)."""
    return f"{message_id}|{trace_id}|{attempt}|{detail}"


@dataclass(frozen=True)
class TraceEvent:
    """One lifecycle event of one message."""

    time_ms: int
    seq: int
    event: str
    queue: str
    actor: str
    message_id: str
    trace_id: str
    attempt: int
    detail: str
    entry_ms: int = 0
    #: blind indicator tags of a published message (``indicators.py``), not shown as detail
    tags: tuple[str, ...] = ()

    @property
    def order(self) -> tuple[int, int, int]:
        """Sort key: when it happened, then the stream order of the entries written."""
        return (self.time_ms, self.entry_ms or self.time_ms, self.seq)


def parse_entry(queue: str, entry_id: bytes | str,
                fields: dict[bytes, bytes]) -> Iterator[TraceEvent]:
    """The events of one trace stream entry."""
    sid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = sid.partition("-")
    time_ms = int(ms)
    event = fields.get(b"ev", b"").decode()
    actor = fields.get(b"c", b"").decode()
    tagged = event in _TAGGED
    for raw in fields.get(b"m", b"").decode(errors="replace").split(";"):
        if not raw:
            continue
        parts = (raw.split("|") + ["", "", "", ""])[:4]
        attempt = int(parts[2]) if parts[2].isdigit() else 0
        when, detail = time_ms, parts[3]
        tags: tuple[str, ...] = ()
        if detail.startswith("at=") and detail[3:].isdigit():
            when, detail = int(detail[3:]), ""
        elif tagged and detail:
            detail, tags = tags_in(detail)
        yield TraceEvent(when, int(seq or 0), event, queue, actor, parts[0], parts[1],
                         attempt, detail, time_ms, tags)


@public
class TraceLog:
    """Finds the events of a message or a trace across queues."""

    def __init__(self, mq: Deployment) -> None:
        self.mq = mq

    def events(self, *, message_id: str | None = None, trace_id: str | None = None,
               queues: Iterable[str] | None = None, page: int = 1000) -> list[TraceEvent]:
        """Every event matching ``message_id`` or ``trace_id``, oldest first.

        Scans each queue's capped trace stream newest-first in pages; a substring test on
        the raw entry skips entries that cannot match before parsing them.
        """
        if not message_id and not trace_id:
            from ..errors import ValidationError

            raise ValidationError("give a message_id or a trace_id")
        needle = (message_id or trace_id or "").encode()
        found: list[TraceEvent] = []
        for queue in queues if queues is not None else self.mq.queues():
            key = self.mq.queue_keys(queue).trace
            last = "+"
            while True:
                batch = self.mq.client.xrevrange(key, max=last, min="-", count=page)
                for entry_id, fields in batch:
                    if needle in fields.get(b"m", b""):
                        for ev in parse_entry(queue, entry_id, fields):
                            if (message_id and ev.message_id == message_id) or \
                                    (trace_id and ev.trace_id == trace_id):
                                found.append(ev)
                if len(batch) < page:
                    break
                last = "(" + batch[-1][0].decode()
        return sorted(found, key=lambda e: e.order)

    def recent(self, queue: str, count: int = 200) -> list[TraceEvent]:
        """The newest ``count`` trace entries of ``queue`` as events, oldest first."""
        key = self.mq.queue_keys(queue).trace
        out: list[TraceEvent] = []
        for entry_id, fields in self.mq.client.xrevrange(key, count=count):
            out.extend(parse_entry(queue, entry_id, fields))
        return sorted(out, key=lambda e: e.order)
