"""Typed DataFrames of queues, messages, traces, metrics, health, dead letters and audit.

Every builder takes the ``MessageQueue`` first, only reads Redis, and returns a DataFrame
with stable columns and dtypes (also when empty): times are ``datetime64[ns, UTC]``,
counts nullable ``Int64``, text ``string``, small closed sets ``category`` (priority,
status and TLP ordered). Every frame has the ``df.phantom`` accessor (see ``accessor``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from ..core.audit.verify import audit_streams
from ..core.errors import DecodeError, ValidationError
from ..core.model.codec import peek_header
from ..core.model.envelope import Envelope, MessagePriority
from ..core.observe.consumers import read_heartbeats
from ..core.observe.depth import QueueStats
from ..core.observe.metrics import (
    BUCKET_S,
    COUNTERS,
    LATENCY_KINDS,
    MetricsBucket,
    MetricsStore,
    merge,
)
from ..core.observe.tracing import EVENTS, TraceEvent, TraceLog
from ..core.queues import DEFAULT_GROUP
from . import require, tracetree
from ._dtypes import STRING, UTC, Window, epoch_s, frame, number, seconds, text
from .accessor import IOC_COLUMNS, defang_value
from .accessor import PhantomAccessor as _PhantomAccessor  # noqa: F401 - registers df.phantom
from .helpers import known_queue

try:
    import pandas as pd
except ImportError:  # pragma: no cover - exercised only without the extra
    require("pandas")
    raise

if TYPE_CHECKING:
    from ..core.queues import MessageQueue

PRIORITIES = tuple(p.name for p in MessagePriority)
TLP_LEVELS = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
STATUSES = ("ok", "warn", "critical")
STATES = ("ready", "pending", "delayed", "dead")
PERCENTILES = (50, 95, 99)

# column -> dtype; ("cat", known values, ordered) builds a categorical that keeps unknowns
_MESSAGE_COLUMNS: dict[str, Any] = {
    "id": STRING, "queue": STRING, "state": ("cat", STATES, False), "type": STRING,
    "priority": ("cat", PRIORITIES, True), "created_at": UTC, "expires_at": UTC,
    "attempt": "Int64", "delivery_count": "Int64", "idle_ms": "Int64", "due_at": UTC,
    "consumer": STRING, "reason": STRING, "origin": STRING, "tlp": ("cat", TLP_LEVELS, True),
    "trace_id": STRING, "stream_id": STRING, "payload": STRING, "error": STRING,
    "indicator": STRING, "ioc_type": STRING, "age_s": "float64", "progress": "float64",
    "progress_note": STRING}
#: what ``messages_df`` shows by default: short, readable, the indicator defanged
COMPACT_MESSAGE_COLUMNS = ("id", "indicator", "ioc_type", "type", "state", "priority", "tlp",
                           "age_s", "attempt", "delivery_count", "consumer", "idle_ms",
                           "progress", "progress_note", "due_at", "reason", "error",
                           "payload")
COMPACT_PREVIEW_CHARS = 40
#: the trace events: the core's, then those of groups, chains and progress reports
TRACE_EVENTS = (*EVENTS, *(e for e in ("progress", "group_created", "group_succeeded",
                                       "group_failed") if e not in EVENTS))
_TRACE_COLUMNS: dict[str, Any] = {
    "time": UTC, "elapsed_ms": "Int64", "event": ("cat", TRACE_EVENTS, False), "queue": STRING,
    "actor": STRING, "message_id": STRING, "trace_id": STRING, "parent_id": STRING,
    "depth": "Int64", "attempt": "Int64", "detail": STRING, "seq": "Int64"}
_METRIC_COLUMNS: dict[str, Any] = {
    "queue": STRING, "time": UTC, "bucket_s": "Int64",
    **{c: "Int64" for c in COUNTERS}, **{f"{c}_per_s": "float64" for c in COUNTERS},
    "error_rate": "float64",
    **{f"{k}_p{q}_ms": "float64" for k in LATENCY_KINDS for q in PERCENTILES}}
_HEALTH_COLUMNS: dict[str, Any] = {
    "checked_at": UTC, "check": STRING, "target": STRING,
    "status": ("cat", STATUSES, True), "value": STRING, "message": STRING}
_DLQ_COLUMNS: dict[str, Any] = {
    "dlq_id": STRING, "queue": STRING, "message_id": STRING, "type": STRING,
    "priority": ("cat", PRIORITIES, True), "reason": ("cat", (), False), "error_type": STRING,
    "error": STRING, "attempts": "Int64", "consumer": STRING, "group": STRING,
    "first_failure_at": UTC, "dead_at": UTC, "created_at": UTC, "origin": STRING,
    "tlp": ("cat", TLP_LEVELS, True), "trace_id": STRING, "decodable": "bool",
    "decode_error": STRING}
_AUDIT_COLUMNS: dict[str, Any] = {
    "time": UTC, "actor": STRING, "role": ("cat", (), False), "action": ("cat", (), False),
    "target": STRING, "message_id": STRING, "count": "Int64", "outcome": ("cat", (), False),
    "detail": STRING, "entry_id": STRING}
_CONSUMER_COLUMNS: dict[str, Any] = {
    "consumer": STRING, "host": STRING, "pid": "Int64", "queues": STRING, "groups": STRING,
    "started": UTC, "last_seen": UTC, "age_s": "float64", "stale": "bool",
    "handled": "Int64", "in_flight": "Int64"}
_STATS_COLUMNS: dict[str, Any] = {
    "time": UTC, "queue": STRING, "kind": ("cat", (), False), "ready": "Int64",
    "in_flight": "Int64", "delayed": "Int64", "dead": "Int64", "depth": "Int64"}


def messages_df(mq: MessageQueue, queue: str, state: str = "ready", limit: int = 1000, *,
                group: str = DEFAULT_GROUP, preview_chars: int | None = None,
                columns: str | Sequence[str] = "compact") -> pd.DataFrame:
    """The messages of ``queue`` in one state, one row each (never raises on bad bytes).

    ``state``: ``ready`` (waiting for delivery to ``group``), ``pending`` (delivered to a
    consumer of ``group``, not yet settled: ``delivery_count``, ``consumer``, ``idle_ms``),
    ``delayed`` (``due_at``) or ``dead`` (``reason``). Highest priority first, then oldest.

    ``columns="compact"`` (the default) shows ``COMPACT_MESSAGE_COLUMNS`` that have a value
    in some row: ``id`` as the last group of the UUID (``151615b484e4``: the random part
    that tells the messages of one batch apart), the ``indicator`` of the payload
    defanged, the age in seconds, a 40-character payload preview. ``columns="all"`` gives
    every column (full ids, trace ids, stream ids, a ``preview_chars`` preview, 120 by
    default); a list picks columns of the full frame.
    A message the codec cannot open keeps what its clear header tells and says why in
    ``error``. Raises ``UnknownQueueError`` (naming the known queues) for a queue the
    deployment does not know.
    """
    if state not in STATES:
        raise ValidationError(f"unknown state {state!r}: use one of {', '.join(STATES)}")
    if limit < 0:
        raise ValidationError(f"limit must be >= 0, got {limit}")
    compact = isinstance(columns, str) and columns == "compact"
    if isinstance(columns, str) and columns not in ("compact", "all"):
        raise ValidationError(f"columns must be 'compact', 'all' or a list, got {columns!r}")
    known_queue(mq, queue)
    chars = preview_chars if preview_chars is not None else (
        COMPACT_PREVIEW_CHARS if compact else 120)
    read = {"ready": _ready, "pending": _pending, "delayed": _delayed, "dead": _dead}[state]
    rows = read(mq, queue, limit, group) if limit else []
    now_ms = time.time() * 1000
    for row in rows:
        raw = row.pop("raw", None)
        if raw is not None:
            row.update(_open(mq, raw, chars))
        if row.get("queue") is None:  # an undecodable entry's header may not name it
            row["queue"] = queue
        row["state"] = state
        created = row.get("created_at")
        row["age_s"] = round(max(now_ms - created, 0) / 1000, 1) if created else None
    if state == "pending":
        _add_progress(mq, queue, rows)
    df = frame(rows, _MESSAGE_COLUMNS)
    if isinstance(columns, str) and columns == "all":
        return df
    if not compact:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ValidationError(f"unknown column(s) {missing}: choose from {list(df.columns)}")
        return df.loc[:, list(columns)]
    out = df.loc[:, list(COMPACT_MESSAGE_COLUMNS)].copy()
    out["id"] = out["id"].map(_short_id, na_action="ignore").astype(STRING)
    if not out.empty:
        out = out.loc[:, [c for c in out.columns if c in ("id", "state") or
                          out[c].notna().any()]]
    return out


def _short_id(value: str) -> str:
    """The last group of a UUIDv7 (its head is the time, shared by a batch)."""
    return value.rsplit("-", 1)[-1] if len(value) > 13 else value


def trace_df(mq: MessageQueue, message_id: str | None = None, trace_id: str | None = None, *,
             queues: Iterable[str] | None = None, queue: str | None = None,
             count: int = 200) -> pd.DataFrame:
    """One row per lifecycle event (hop) of a message or a whole trace, oldest first.

    Give ``message_id`` or ``trace_id`` (searches ``queues``, default all); or neither and a
    ``queue`` for its newest ``count`` trace entries. ``elapsed_ms`` counts from the first
    event; ``actor`` is the consumer (or the producer's origin).

    The messages of a group or a chain share one trace and name their parent (``parent
    <id>`` in an event's detail): ``parent_id`` is it on every row of the message (the group
    or chain id, or the chain step before; <NA> for a message without one), ``depth`` counts
    the ancestors that are messages of the frame (0 under a group's virtual root).
    """
    log = TraceLog(mq)
    if message_id is None and trace_id is None and queue is not None:
        events = log.recent(queue, count)
    else:
        events = log.events(message_id=message_id, trace_id=trace_id, queues=queues)
    parent = tracetree.parents((e.message_id, e.detail) for e in events)
    depth = tracetree.depths(parent)
    return frame([{**_trace_row(e, events[0].time_ms), "parent_id": parent[e.message_id],
                   "depth": depth[e.message_id]} for e in events], _TRACE_COLUMNS)


def metrics_df(mq: MessageQueue, queues: Iterable[str] | None = None, window: Window = "1h",
               resample: Window | None = None, *, now: datetime | float | None = None,
               ) -> pd.DataFrame:
    """Counters, rates and latency percentiles per queue and time bucket, oldest first.

    ``window`` is how far back (``"1h"``, a ``timedelta`` or seconds); ``resample`` merges
    the 10 s buckets into wider ones (``"1min"``; a multiple of 10 s), recomputing the
    percentiles from the merged histograms. A queue with any traffic in the window gets
    every bucket of it (idle ones with zero counts, so rates drop to 0 on charts).
    Rates are per second of the bucket (of its elapsed part for the current one);
    ``error_rate`` is (retried + dead_lettered) / delivered, as a fraction.
    """
    window_s = seconds(window)
    step = BUCKET_S if resample is None else int(seconds(resample))
    if step <= 0 or step % BUCKET_S:
        raise ValidationError(f"resample must be a multiple of {BUCKET_S} s, got {resample!r}")
    now_s = epoch_s(now)
    since_s = now_s - window_s
    store = MetricsStore(mq)
    rows = []
    for name in list(queues) if queues is not None else mq.queues():
        buckets = store.read(name, since_s, now_s)
        if not buckets:
            continue
        groups: dict[int, list[MetricsBucket]] = {}
        for b in buckets:
            groups.setdefault(b.start_s // step * step, []).append(b)
        first = int(since_s) // BUCKET_S * BUCKET_S // step * step
        for start in range(first, int(now_s) // step * step + 1, step):
            span_s = max(min(float(step), now_s - start), 1.0)
            rows.append(_metrics_row(merge(groups.get(start, []), name), start, step, span_s))
    return frame(rows, _METRIC_COLUMNS)


def stats_df(mq: MessageQueue, queues: Iterable[str] | None = None, *,
             stats: Sequence[QueueStats] | None = None) -> pd.DataFrame:
    """Depth per queue and state now (one row per queue, stamped with ``time``).

    Concatenating snapshots taken over time gives a history ``plot_depth`` draws as lines.
    """
    snapshot = list(stats) if stats is not None else mq.stats(queues)
    now_ms = time.time() * 1000
    rows = [{"time": now_ms, "queue": s.queue, "kind": s.kind, "ready": s.ready,
             "in_flight": s.in_flight, "delayed": s.delayed, "dead": s.dead,
             "depth": s.depth} for s in snapshot]
    return frame(rows, _STATS_COLUMNS)


def health_df(mq: MessageQueue, queues: list[str] | None = None, window_s: float = 300.0,
              thresholds: Any = None, *, report: Any = None) -> pd.DataFrame:
    """The health checks as rows, worst first (runs ``mq.health`` unless given a ``report``)."""
    rep = report if report is not None else mq.health(queues, window_s, thresholds)
    rank = {s: i for i, s in enumerate(STATUSES)}
    checks = sorted(rep.checks, key=lambda c: -rank.get(c.status, 0))
    rows = [{"checked_at": rep.checked_at * 1000, "check": c.name, "target": c.target,
             "status": c.status, "value": c.value, "message": c.message} for c in checks]
    return frame(rows, _HEALTH_COLUMNS)


def dlq_df(mq: MessageQueue, queue: str, limit: int | None = 1000,
           **filters: Any) -> pd.DataFrame:
    """The dead letters of ``queue``, newest first; no payloads (use ``mq.dlq(q).get``).

    ``filters`` are those of ``DeadLetterQueue.list``: ``reason``, ``type_pattern``,
    ``since``, ``until``, ``message_id``.
    """
    rows = []
    for d in mq.dlq(queue).list(limit=limit, **filters):
        env = d.envelope
        rows.append({
            "dlq_id": d.dlq_id, "queue": d.queue, "message_id": d.message_id, "type": d.type,
            "priority": d.priority.name if d.priority is not None else None,
            "reason": d.reason, "error_type": d.error_type, "error": d.error,
            "attempts": d.attempts, "consumer": d.consumer, "group": d.group,
            "first_failure_at": d.first_failure_ms or None, "dead_at": d.last_failure_ms,
            "created_at": env.created_at_ms if env else None,
            "origin": env.origin if env else None, "tlp": _tlp(env.tlp) if env else None,
            "trace_id": env.trace_id if env else None, "decodable": d.decodable,
            "decode_error": d.decode_error})
    return frame(rows, _DLQ_COLUMNS)


def audit_df(mq: MessageQueue, window: Window | None = "24h", limit: int = 10_000,
             ) -> pd.DataFrame:
    """The audit events of the last ``window`` (None: all), oldest first; empty if none yet.

    Reads every audit stream (each ACL user's, per queue and global): actor, role, action,
    target, outcome,
    detail, the time (``t`` or ``time``: epoch ms / s or ISO 8601, else the entry id's) and
    the message ids (``message_id``, or the ``ids`` list and its ``count``). Checkpoint
    entries of the hash chain are skipped; verify the chain with the core's audit tools.
    """
    lo = "-" if window is None else f"{int((time.time() - seconds(window)) * 1000)}-0"
    rows = []
    entries = [(sid, fields) for stream in audit_streams(mq.client, mq.keys.audit_patterns)
               for sid, fields in mq.client.xrange(stream, min=lo, max="+", count=limit)]
    entries.sort(key=lambda e: _entry_order(text(e[0])))
    for sid, fields in entries[:limit]:
        values = {text(k): text(v) for k, v in fields.items()}
        if values.get("kind") == "checkpoint":
            continue
        entry = text(sid)
        ids = values.get("message_id") or values.get("ids") or None
        rows.append({**{c: values.get(c) or None for c in _AUDIT_COLUMNS},
                     "time": _audit_ms(values.get("t") or values.get("time"), entry),
                     "message_id": ids, "count": number(values.get("count")) or
                     (len(ids.split(",")) if ids else 0), "entry_id": entry})
    return frame(rows, _AUDIT_COLUMNS)


def _entry_order(sid: str) -> tuple[int, int]:
    ms, _, seq = sid.partition("-")
    return int(ms or 0), int(seq or 0)


def consumers_df(mq: MessageQueue, stale_after_s: float = 30.0,
                 now: datetime | float | None = None) -> pd.DataFrame:
    """Every consumer's last heartbeat, its age in seconds and whether it is stale."""
    now_s = epoch_s(now)
    rows = []
    for beat in read_heartbeats(mq):
        seen = beat.last_seen or None
        age = now_s - seen if seen is not None else None
        rows.append({
            "consumer": beat.consumer, "host": beat.host, "pid": beat.pid,
            "queues": ", ".join(beat.queues), "groups": ", ".join(beat.groups),
            "started": _ms_or_none(beat.started or None),
            "last_seen": _ms_or_none(seen), "age_s": age,
            "stale": age is None or age > stale_after_s,
            "handled": beat.handled, "in_flight": beat.in_flight})
    rows.sort(key=lambda r: str(r["consumer"]))
    return frame(rows, _CONSUMER_COLUMNS)


# -- reading messages -------------------------------------------------------------------------

def _ready(mq: MessageQueue, queue: str, limit: int, group: str) -> list[dict[str, Any]]:
    streams = mq.queue_keys(queue).streams
    pipe = mq.client.pipeline(transaction=False)
    for stream in streams:
        pipe.xinfo_groups(stream)
    infos = pipe.execute(raise_on_error=False)
    rows: list[dict[str, Any]] = []
    for stream, info in zip(streams, infos, strict=True):
        last = next((g.get("last-delivered-id") for g in info if text(g.get("name")) == group),
                    None) if isinstance(info, list) else None
        low = "-" if last is None else "(" + text(last)
        for sid, fields in mq.client.xrange(stream, min=low, max="+", count=limit - len(rows)):
            rows.append({"stream_id": text(sid), "raw": fields.get(b"m", b"")})
        if len(rows) >= limit:
            break
    return rows


def _pending(mq: MessageQueue, queue: str, limit: int, group: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for stream in mq.queue_keys(queue).streams:
        try:
            pel = mq.client.xpending_range(stream, group, min="-", max="+",
                                           count=limit - len(rows))
        except Exception as exc:  # NOGROUP: nobody consumes this level yet
            if "NOGROUP" in str(exc) or "no such key" in str(exc).lower():
                continue
            raise
        pipe = mq.client.pipeline(transaction=False)
        for p in pel:
            pipe.xrange(stream, min=p["message_id"], max=p["message_id"], count=1)
        for p, found in zip(pel, pipe.execute(), strict=True):
            row = {"stream_id": text(p["message_id"]), "consumer": text(p["consumer"]),
                   "delivery_count": p["times_delivered"], "idle_ms": p["time_since_delivered"]}
            if found:
                row["raw"] = found[0][1].get(b"m", b"")
            else:
                row["error"] = "entry no longer in the stream (settled meanwhile)"
            rows.append(row)
        if len(rows) >= limit:
            break
    return rows


def _add_progress(mq: MessageQueue, queue: str, rows: list[dict[str, Any]]) -> None:
    """The progress their handlers reported (``context.progress``) of in-flight requests,
    in one round trip."""
    asked = [r for r in rows if r.get("id")]
    if not asked:
        return
    keys = mq.queue_keys(queue)
    pipe = mq.client.pipeline(transaction=False)
    for r in asked:
        pipe.hmget(keys.result(str(r["id"])), "p", "note")
    for r, (fraction, note) in zip(asked, pipe.execute(), strict=True):
        if fraction is not None:
            r["progress"] = float(fraction)
            r["progress_note"] = text(note) if note else None


def _delayed(mq: MessageQueue, queue: str, limit: int, group: str) -> list[dict[str, Any]]:
    key = mq.queue_keys(queue).delayed
    return [{"raw": member[1:], "due_at": score}
            for member, score in mq.client.zrange(key, 0, limit - 1, withscores=True)]


def _dead(mq: MessageQueue, queue: str, limit: int, group: str) -> list[dict[str, Any]]:
    return [{"raw": d.raw, "stream_id": d.dlq_id, "reason": d.reason,
             "consumer": d.consumer or None} for d in mq.dlq(queue).list(limit=limit)]


def _open(mq: MessageQueue, raw: bytes, preview_chars: int) -> dict[str, Any]:
    try:
        env = mq.codec.open(raw)
    except DecodeError as exc:
        problem = f"{exc.reason}: {exc.detail}"
    except Exception as exc:  # a codec bug must not hide the other rows
        problem = f"{type(exc).__name__}: {exc}"
    else:
        return _envelope_row(env, preview_chars)
    header = peek_header(raw)
    level = header.get("p")
    return {"id": _str_or_none(header.get("id")), "type": _str_or_none(header.get("t")),
            "queue": _str_or_none(header.get("q")), "created_at": number(header.get("c")),
            "priority": PRIORITIES[level] if isinstance(level, int) and 0 <= level < 4 else None,
            "error": problem}


def _envelope_row(env: Envelope, preview_chars: int) -> dict[str, Any]:
    body = orjson.dumps(env.payload, option=orjson.OPT_NON_STR_KEYS).decode()
    if len(body) > preview_chars:
        body = body[:max(preview_chars - 1, 0)] + "…"
    value, kind = _indicator(env.payload)
    return {"id": env.id, "type": env.type, "queue": env.queue, "priority": env.priority.name,
            "created_at": env.created_at_ms, "expires_at": env.expires_at_ms,
            "attempt": env.attempt, "origin": env.origin, "tlp": _tlp(env.tlp),
            "trace_id": env.trace_id or None, "payload": body,
            "indicator": defang_value(value, kind) if value else None, "ioc_type": kind}


def _indicator(payload: Any) -> tuple[str | None, str | None]:
    """The indicator a payload carries (``{"ioc": {"type", "value"}}``, ``{"value": ...}``)."""
    if not isinstance(payload, dict):
        return None, None
    for key in IOC_COLUMNS:
        found = payload.get(key)
        if isinstance(found, dict) and isinstance(found.get("value"), str):
            kind = found.get("type")
            return found["value"], kind if isinstance(kind, str) else None
        if isinstance(found, str) and found:
            kind = payload.get("type") if key != "ioc" else payload.get("ioc_type")
            return found, kind if isinstance(kind, str) else None
    return None, None


# -- rows -------------------------------------------------------------------------------------

def _trace_row(e: TraceEvent, first_ms: int) -> dict[str, Any]:
    return {"time": e.time_ms, "elapsed_ms": e.time_ms - first_ms, "event": e.event,
            "queue": e.queue, "actor": e.actor or None, "message_id": e.message_id,
            "trace_id": e.trace_id or None, "attempt": e.attempt, "detail": e.detail or None,
            "seq": e.seq}


def _metrics_row(m: MetricsBucket, start_s: int, step_s: int, span_s: float) -> dict[str, Any]:
    row: dict[str, Any] = {"queue": m.queue, "time": start_s * 1000, "bucket_s": step_s}
    for c in COUNTERS:
        row[c] = m.count(c)
        row[f"{c}_per_s"] = m.count(c) / span_s
    delivered = m.count("delivered")
    failures = m.count("retried") + m.count("dead_lettered")
    row["error_rate"] = failures / delivered if delivered else None
    for kind in LATENCY_KINDS:
        for q in PERCENTILES:
            row[f"{kind}_p{q}_ms"] = m.latency(kind, q)
    return row


# -- values ---------------------------------------------------------------------------------

def _audit_ms(value: str | None, entry_id: str) -> float:
    n = number(value)
    if n is not None:
        return n if n > 1e11 else n * 1000
    if value:
        try:
            stamp = pd.Timestamp(value)
            stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
            return float(stamp.value) / 1e6
        except (ValueError, OverflowError):  # unreadable, or past the nanosecond range
            pass
    return float(entry_id.partition("-")[0])


def _tlp(value: str) -> str:
    label = value.strip().upper().removeprefix("TLP:")
    return "CLEAR" if label == "WHITE" else label


def _ms_or_none(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
