"""The dead-letter queue of one queue: list, inspect, count, replay, purge and trim.

Dead letters live in the stream ``<prefix>:{<queue>}:dlq`` (written by ``settle.lua`` and
``fetch.lua``); each entry keeps the original envelope bytes untouched in ``m``. Reading is
paged (XRANGE / XREVRANGE, 500 entries a call) so an unbounded DLQ is never held in memory;
filters on type and message id read only the clear header (no decryption). Replay writes a
new message and deletes the dead letter in one function call per batch (``lua/replay.lua``),
with the replay's audit entry in the same call.
"""

from __future__ import annotations

import builtins
import dataclasses
import fnmatch
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import TYPE_CHECKING, Any

import redis

from ..audit.inline import AuditItem, record_safely
from ..backend.boundary import public, translate
from ..errors import DecodeError, QueueFullError, ValidationError
from ..model.codec import peek_header
from ..model.envelope import Envelope, MessagePriority, new_id, new_traceparent
from ..model.envelope import now_ms as _now
from ..observe.metrics import RETENTION_S, metrics_key

if TYPE_CHECKING:
    from ..ports import Deployment

PAGE = 500
REPLAYED_FROM = "pn-replayed-from"
REPLAYED_ORIGIN = "pn-replayed-origin"
_STREAM_ID = re.compile(r"^\d+-\d+$")
_MAX_SEQ = 2**64 - 1
Entry = tuple[str, dict[bytes, bytes]]
When = datetime | timedelta | int | None


class DeadLetterNotFoundError(ValidationError, KeyError):
    """Raised when no dead letter has the given DLQ entry id or message id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter. Its ``repr`` shows no payload, error text or raw bytes."""

    dlq_id: str
    queue: str
    message_id: str | None
    type: str | None
    priority: MessagePriority | None
    reason: str
    error_type: str
    attempts: int
    consumer: str
    group: str
    first_failure_ms: int
    last_failure_ms: int
    error: str = field(repr=False)
    traceback: str = field(repr=False)
    envelope: Envelope | None = field(repr=False)
    raw: bytes = field(repr=False)
    decode_error: str | None = field(default=None, repr=False)

    @property
    def decodable(self) -> bool:
        """True when the codec could open the envelope (only those can be replayed)."""
        return self.envelope is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict for display and export (the envelope as a dict, no raw bytes)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d.update(priority=self.priority.name if self.priority else None, raw=None,
                 raw_bytes=len(self.raw), envelope=self.envelope and self.envelope.to_dict())
        del d["raw"]
        return d


@dataclass(frozen=True)
class _Filter:
    """Which dead letters an operation selects; the time window maps onto stream ids."""

    reasons: frozenset[str] | None = None
    type_match: Callable[[str], Any] | None = None
    message_id: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    @classmethod
    def make(cls, reason: str | Iterable[str] | None = None, type_pattern: str | None = None,
             since: When = None, until: When = None, message_id: str | None = None) -> _Filter:
        """Validate the public filter arguments."""
        reasons = None
        if reason is not None:
            reasons = frozenset([reason] if isinstance(reason, str) else reason)
        match = re.compile(fnmatch.translate(type_pattern)).match if type_pattern else None
        return cls(reasons, match, message_id, _ms(since, "since"), _ms(until, "until"))

    @property
    def selective(self) -> bool:
        """True when entries are tested one by one (reason, type or message id)."""
        return self.reasons is not None or self.type_match is not None or \
            self.message_id is not None

    def bounds(self) -> tuple[str, str]:
        """The inclusive stream-id range of the time window (``until`` is exclusive)."""
        lo = "-" if self.since_ms is None else f"{max(self.since_ms, 0)}-0"
        hi = "+" if self.until_ms is None else f"{max(self.until_ms - 1, 0)}-{_MAX_SEQ}"
        return lo, hi

    def accepts(self, fields: dict[bytes, bytes]) -> bool:
        """True when a DLQ entry passes the reason, type and message-id filters."""
        if self.reasons is not None and _text(fields.get(b"reason", b"")) not in self.reasons:
            return False
        if self.type_match is None and self.message_id is None:
            return True
        header = peek_header(fields.get(b"m", b""))
        if self.message_id is not None and header.get("id") != self.message_id:
            return False
        kind = header.get("t")
        return self.type_match is None or (isinstance(kind, str) and bool(self.type_match(kind)))


@public
class DeadLetterQueue:
    """Triage the dead letters of one queue: ``DeadLetterQueue(mq, "ioc-processing")``."""

    def __init__(self, mq: Deployment, queue: str) -> None:
        self.mq = mq
        self.queue = queue
        self.keys = mq.queue_keys(queue)
        self.key = self.keys.dlq

    def __repr__(self) -> str:
        return f"DeadLetterQueue({self.queue!r})"

    def __len__(self) -> int:
        return int(self.mq.client.xlen(self.key))

    # -- reading ---------------------------------------------------------------------------

    def list(self, *, reason: str | Iterable[str] | None = None, type_pattern: str | None = None,
             since: When = None, until: When = None, message_id: str | None = None,
             limit: int | None = 100, newest_first: bool = True,
             before: str | None = None) -> list[DeadLetter]:
        """Dead letters matching every given filter, newest first; ``limit=None`` for all.

        ``reason`` is one reason or several; ``type_pattern`` a glob on the message type
        (``ioc.*``); ``since``/``until`` an aware datetime, epoch ms or a timedelta ago, on
        the time the message was dead-lettered (``until`` exclusive). ``before`` (a DLQ entry
        id, exclusive) pages back: pass the last ``dlq_id`` of one page to get the next.
        Without filters a page reads only ``limit`` entries from Redis.
        """
        if limit is not None and limit < 0:
            raise ValidationError(f"limit must be >= 0 or None, got {limit}")
        f = _Filter.make(reason, type_pattern, since, until, message_id)
        upto = None
        if before is not None:
            if not _STREAM_ID.fullmatch(before):
                raise ValidationError(f"before must be a DLQ entry id like '1700000000000-0', "
                                      f"got {before!r}")
            ms, seq = _sid(before)
            if (ms, seq) == (0, 0):
                return []
            upto = f"{ms - 1}-{_MAX_SEQ}" if seq == 0 else f"{ms}-{seq - 1}"
        page = PAGE if limit is None or f.selective else max(min(limit, PAGE), 1)
        return [self._letter(e) for e in islice(self._scan(f, newest_first, upto, page), limit)]

    def count(self, *, reason: str | Iterable[str] | None = None,
              type_pattern: str | None = None, since: When = None, until: When = None,
              message_id: str | None = None) -> int:
        """How many dead letters match the filters (paged; XLEN when there are none)."""
        f = _Filter.make(reason, type_pattern, since, until, message_id)
        if f == _Filter():
            return len(self)
        return sum(1 for _ in self._scan(f, newest_first=False))

    def get(self, dlq_or_message_id: str) -> DeadLetter:
        """The dead letter with this DLQ entry id or message id (newest if several)."""
        return self._letter(self._find(dlq_or_message_id))

    def summary(self) -> dict[str, int]:
        """Dead letters per reason, most frequent first (reads every dead letter: O(n))."""
        reasons: Counter[str] = Counter()
        for _, fields in self._scan(_Filter(), newest_first=False):
            reasons[_text(fields.get(b"reason", b""))] += 1
        return dict(reasons.most_common())

    # -- changing --------------------------------------------------------------------------

    def replay(self, ids: str | Iterable[str] | None = None, *, confirm: bool = False,
               skip_undecodable: bool = False, reason: str | Iterable[str] | None = None,
               type_pattern: str | None = None, since: When = None, until: When = None,
               message_id: str | None = None) -> builtins.list[str]:
        """Publish dead letters again as new messages; returns the new message ids.

        Give ``ids`` (DLQ entry ids or message ids), filters, or nothing for all; more than
        one dead letter needs ``confirm=True``. A replay is a new message (new id, attempt 1,
        this connection's origin) caused by the dead one (``causation_id``), with its
        payload, trace id and correlation id (else the dead id), header ``pn-replayed-from``.
        Undecodable ones raise ``ValidationError`` first unless ``skip_undecodable=True``.
        """
        self.mq.authorize("manage", self.queue)
        qs = self.mq.declare(self.queue)
        if qs.kind == "pubsub":
            raise ValidationError(f"queue {self.queue!r} is pub/sub: no stream to replay into")
        f = _Filter.make(reason, type_pattern, since, until, message_id)
        select = self._selection(ids, f, confirm, "replay")
        if not skip_undecodable:
            self._refuse_undecodable(select())
        out: builtins.list[str] = []
        for chunk in _chunks(select(), PAGE):
            out += self._replay_chunk(chunk, qs.kind == "fifo", qs.max_queue_size,
                                      qs.max_payload_bytes, qs.enable_metrics)
        return out

    def purge(self, ids: str | Iterable[str] | None = None, *, confirm: bool = False,
              reason: str | Iterable[str] | None = None, type_pattern: str | None = None,
              since: When = None, until: When = None, message_id: str | None = None) -> int:
        """Delete dead letters (by ``ids``, filters or all); returns how many were deleted.

        More than one dead letter needs ``confirm=True``. Undecodable ones can be purged.
        """
        self.mq.authorize("manage", self.queue)
        f = _Filter.make(reason, type_pattern, since, until, message_id)
        select = self._selection(ids, f, confirm, "purge")
        purged: builtins.list[str] = []
        for chunk in _chunks(select(), PAGE):
            sids = [sid for sid, _ in chunk]
            pipe = self.mq.client.pipeline(transaction=False)
            pipe.xdel(self.key, *sids)
            pipe.hincrby(self.keys.meta, "dlq_removed", len(sids))
            deleted, _ = pipe.execute()
            if int(deleted) != len(sids):  # someone else took some: count what we removed
                self.mq.client.hincrby(self.keys.meta, "dlq_removed", int(deleted) - len(sids))
            if int(deleted):
                purged += sids
        record_safely(self.mq.audit, AuditItem("purge", self.queue, message_ids=purged))
        return len(purged)

    def trim_expired(self, now_ms: int | None = None) -> int:
        """Delete dead letters older than the queue's ``dead_letter_ttl_s``; returns how many."""
        self.mq.authorize("manage", self.queue)
        ttl_ms = int(self.mq.declare(self.queue).dead_letter_ttl_s * 1000)
        cutoff = (_now() if now_ms is None else now_ms) - ttl_ms
        removed = int(self.mq.client.xtrim(self.key, minid=f"{max(cutoff, 0)}-0",
                                           approximate=False))
        if removed:
            self.mq.client.hincrby(self.keys.meta, "dlq_removed", removed)
        return removed

    # -- internals -------------------------------------------------------------------------

    def _scan(self, f: _Filter, newest_first: bool, upto: str | None = None,
              page_size: int = PAGE) -> Iterator[Entry]:
        """Matching entries, one XRANGE/XREVRANGE page of ``page_size`` at a time."""
        lo, hi = f.bounds()
        if upto is not None and (hi == "+" or _sid(upto) < _sid(hi)):
            hi = upto
        client = self.mq.client
        while True:
            if newest_first:
                page = client.xrevrange(self.key, max=hi, min=lo, count=page_size)
            else:
                page = client.xrange(self.key, min=lo, max=hi, count=page_size)
            for sid, fields in page:
                if f.accepts(fields):
                    yield _text(sid), fields
            if len(page) < page_size:
                return
            ms, seq = _sid(_text(page[-1][0]))
            if newest_first:
                if (ms, seq) == (0, 0):
                    return
                hi = f"{ms - 1}-{_MAX_SEQ}" if seq == 0 else f"{ms}-{seq - 1}"
            else:
                lo = f"{ms + 1}-0" if seq == _MAX_SEQ else f"{ms}-{seq + 1}"

    def _find(self, key: str) -> Entry:
        if _STREAM_ID.fullmatch(key):
            for sid, fields in self.mq.client.xrange(self.key, min=key, max=key, count=1):
                return _text(sid), fields
        else:
            for entry in self._scan(_Filter(message_id=key), newest_first=True):
                return entry
        raise DeadLetterNotFoundError(f"no dead letter {key!r} in queue {self.queue!r}")

    def _selection(self, ids: str | Iterable[str] | None, f: _Filter, confirm: bool,
                   action: str) -> Callable[[], Iterator[Entry]]:
        """A re-iterable selection, after the confirm rule; later dead letters are excluded."""
        if ids is not None:
            if f != _Filter():
                raise ValidationError(f"{action}: give ids or filters, not both")
            found = {sid: fields for sid, fields in
                     (self._find(k) for k in ([ids] if isinstance(ids, str) else ids))}
            entries = list(found.items())
            if len(entries) > 1 and not confirm:
                raise ValidationError(f"{action} of {len(entries)} dead letters of queue "
                                      f"{self.queue!r} needs confirm=True")
            return lambda: iter(entries)
        newest = self.mq.client.xrevrange(self.key, count=1)
        if not newest:
            return lambda: iter(())
        upto = _text(newest[0][0])  # a snapshot: what dies during the operation stays dead
        if not confirm and len(list(islice(self._scan(f, False, upto), 2))) > 1:
            total = sum(1 for _ in self._scan(f, False, upto))
            raise ValidationError(f"{action} of {total} dead letters of queue {self.queue!r} "
                                  "needs confirm=True")
        return lambda: self._scan(f, False, upto)

    def _refuse_undecodable(self, entries: Iterator[Entry]) -> None:
        bad: builtins.list[str] = []
        for sid, fields in entries:
            try:
                self.mq.codec.open(fields.get(b"m", b""))
            except DecodeError:
                bad.append(sid)
        if bad:
            shown = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
            raise ValidationError(
                f"cannot replay {len(bad)} undecodable dead letter(s) of queue {self.queue!r}: "
                f"{shown}; purge them or pass skip_undecodable=True")

    def _replay_chunk(self, chunk: builtins.list[Entry], fifo: bool, max_size: int | None,
                      max_payload: int, metrics: bool) -> builtins.list[str]:
        now = _now()
        rows: builtins.list[tuple[str, int, str, bytes]] = []
        for sid, fields in chunk:
            try:
                dead = self.mq.codec.open(fields.get(b"m", b""))
            except DecodeError:
                continue  # only reached with skip_undecodable=True
            env = self._reborn(dead, sid, now)
            level = 2 if fifo else int(env.priority)
            rows.append((sid, level, env.id, self.mq.codec.seal(env, max_payload)))
        if not rows:
            return []
        argv: builtins.list[Any] = [max_size or 0, RETENTION_S if metrics else 0, len(rows)]
        for sid, level, _, raw in rows:
            argv += [sid, level, raw]
        audit = self.mq.audit
        stream = audit.stream_of(self.keys) if audit is not None else ""
        section = None if audit is None else audit.section(stream, [AuditItem(
            "replay", self.queue, message_ids=[mid for _, _, mid, _ in rows],
            detail={"dead_letters": [sid for sid, _, _, _ in rows][:8]})])
        try:
            flags = self.mq.functions.call(
                "replay", [*self.keys.streams, self.keys.delayed, self.key,
                           metrics_key(self.keys, now), self.keys.meta], argv, audit=section)
        except redis.ResponseError as exc:
            if audit is not None:
                audit.failed(stream)
            error = translate(exc, self.mq.client, self.queue)
            if type(error) is QueueFullError:
                raise QueueFullError(f"cannot replay {len(rows)} dead letters: {error}") \
                    from None
            raise error from None
        return [mid for (_, _, mid, _), ok in zip(rows, flags, strict=True) if int(ok)]

    def _reborn(self, dead: Envelope, dlq_id: str, now: int) -> Envelope:
        """The replay of ``dead``: a new message caused by it, in the same trace.

        ``pn-*`` headers (retry bookkeeping, origin signature) are dropped: this connection's
        origin publishes the replay (a signing codec signs it afresh).
        """
        headers = {k: v for k, v in dead.headers.items() if not k.startswith("pn-")}
        headers[REPLAYED_FROM] = dlq_id
        if dead.origin:
            headers[REPLAYED_ORIGIN] = dead.origin
        expires = None
        if dead.expires_at_ms is not None:  # the same time to live, counted from now
            expires = now + max(dead.expires_at_ms - dead.created_at_ms, 0)
        return dead.replace(
            id=new_id(now), queue=self.queue, created_at_ms=now, expires_at_ms=expires, attempt=1,
            origin=self.mq.origin, key_id=None, causation_id=dead.id, headers=headers,
            correlation_id=dead.correlation_id or dead.id,
            traceparent=new_traceparent(dead.trace_id or None))

    def _letter(self, entry: Entry) -> DeadLetter:
        sid, fields = entry
        raw = fields.get(b"m", b"")
        env: Envelope | None = None
        problem: str | None = None
        try:
            env = self.mq.codec.open(raw)
        except DecodeError as exc:
            problem = f"{exc.reason}: {exc.detail}"
        mid, kind, prio = (env.id, env.type, env.priority) if env else _clear(raw)
        text = {k.decode(): _text(v) for k, v in fields.items() if k != b"m"}
        return DeadLetter(
            dlq_id=sid, queue=self.queue, message_id=mid, type=kind, priority=prio,
            reason=text.get("reason", ""), error_type=text.get("error_type", ""),
            attempts=_int(text.get("attempts")), consumer=text.get("consumer", ""),
            group=text.get("group", ""), first_failure_ms=_int(text.get("first_failure_ms")),
            last_failure_ms=_int(text.get("last_failure_ms")) or _sid(sid)[0],
            error=text.get("error", ""), traceback=text.get("traceback", ""),
            envelope=env, raw=raw, decode_error=problem)


def _chunks(entries: Iterator[Entry], size: int) -> Iterator[list[Entry]]:
    while chunk := list(islice(entries, size)):
        yield chunk


def _ms(value: When, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return _now() - int(value.total_seconds() * 1000)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValidationError(f"{name} must be timezone-aware (e.g. datetime.now(UTC))")
        return int(value.timestamp() * 1000)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValidationError(f"{name} must be a datetime, a timedelta or epoch ms, got {value!r}")


def _sid(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _int(value: str | None) -> int:
    return int(value) if value and value.isdigit() else 0


def _clear(raw: bytes) -> tuple[str | None, str | None, MessagePriority | None]:
    """Message id, type and priority from the clear header of undecodable bytes."""
    header = peek_header(raw)
    mid, kind, level = header.get("id"), header.get("t"), header.get("p")
    prio = MessagePriority(level) if isinstance(level, int) and 0 <= level <= 3 else None
    return (mid if isinstance(mid, str) else None, kind if isinstance(kind, str) else None,
            prio)
