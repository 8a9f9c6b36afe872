"""Publishing a batch: build, seal and route new messages, then write them in one call.

Free functions over a ``Deployment`` so ``publish``, ``publish_batch`` and
``publish_stream`` (``stream.py``) share one path:

* ``build_columns`` turns the caller's ``Message`` s into the publish function's columns
  (ids, levels, due times, dedup keys, trace ids, sealed envelopes, and on traced queues
  the blind tags of the payload's indicators, ``observe/indicators.py``) in one pass per
  message, and routes each message to its partition on a partitioned queue;
* ``write_columns`` writes one partition's columns in one function call (with ``WAIT``
  for replicated queues), waiting for room on a full queue when asked to;
* ``publish_live`` is the pub/sub kind: Redis PUBLISH, nothing stored.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
import redis

from ..audit.inline import AuditItem
from ..backend.boundary import translate
from ..backend.cluster import node_client, refresh_topology
from ..backend.connection import TRANSIENT_ERRORS
from ..backend.durability import check_waited, durable_node, wait_command
from ..backend.functions import publish_ids
from ..backend.keyspace import QueueKeys
from ..backend.records import PublishColumns
from ..config.settings import QueueSettings
from ..errors import PublishError, QueueFullError, ValidationError
from ..model.envelope import (
    Envelope,
    MessagePriority,
    encode_payload,
    new_header,
    new_id,
    new_ids,
    new_traceparent,
    now_ms,
    trace_id_of,
)
from ..model.message import Message, check_extras, check_type
from ..model.routing import PARTITION_KEY_HEADER, Layout, default_partition_key, key_hash
from ..model.tlp import parse_tlp
from ..observe import otel
from ..observe.indicators import tagger_of
from ..observe.metrics import RETENTION_S, metrics_key
from ..observe.tracing import TRACE_MAX_ENTRIES

if TYPE_CHECKING:
    from ..ports import Deployment


def publish_batch(mq: Deployment, queue: str, messages: Iterable[Message | tuple[str, Any]],
                  wait_s: float | None = None) -> list[str]:
    """``MessageQueue.publish_batch``: all or nothing per partition; returns the ids."""
    mq.authorize("publish", queue)
    if wait_s is not None and (isinstance(wait_s, bool) or not isinstance(wait_s, int | float)
                               or not 0 <= wait_s < math.inf):
        raise ValidationError(f"wait_s must be a finite number of seconds >= 0, got {wait_s!r}")
    qs = mq.declare(queue)
    items = [m if isinstance(m, Message) else Message(*m) for m in messages]
    if not items:
        return []
    if qs.kind == "pubsub":
        return publish_live(mq, queue, qs, items)
    now = now_ms()
    try:
        layout = mq.layout(queue)
    except TRANSIENT_ERRORS as exc:
        raise PublishError(f"publish of {len(items)} message(s) to {queue!r} was not "
                           f"confirmed ({type(exc).__name__}: {exc}); nothing was written") \
            from exc
    batch, routes = build_columns(mq, queue, qs, items, now,
                                  layout if layout.partitioned else None)
    return write_routed(mq, queue, qs, batch, routes, now, wait_s)


def write_routed(mq: Deployment, queue: str, qs: QueueSettings, batch: PublishColumns,
                 routes: list[str] | None, now: int, wait_s: float | None) -> list[str]:
    """Write built columns: one function call per partition (``routes`` from
    ``build_columns``; None for an unpartitioned queue); returns the ids in order."""
    if routes is None:
        return write_columns(mq, queue, qs, mq.queue_keys(queue), batch, now, wait_s)
    # one function call per partition: all or nothing within each partition
    ids: list[str] = [""] * len(routes)
    for part in dict.fromkeys(routes):
        index = [i for i, r in enumerate(routes) if r == part]
        out = write_columns(mq, queue, qs, mq.queue_keys(part), batch.select(index), now,
                            wait_s)
        for i, mid in zip(index, out, strict=True):
            ids[i] = mid
    return ids


def write_columns(mq: Deployment, queue: str, qs: QueueSettings, keys: QueueKeys,
                  batch: PublishColumns, now: int, wait_s: float | None) -> list[str]:
    """Write one partition's batch in one function call; back off and retry while the
    queue (or Redis itself) is full, up to ``wait_s``.

    The batch's audit entry rides in the call (appended before anything is written) and,
    on a queue with ``durability`` set, ``WAIT``/``WAITAOF`` follows it on the same
    connection: every layer composes with every other. Raises ``QueueFullError`` /
    ``CapacityError`` when no room came within ``wait_s``, ``AuditError`` when the audit
    entry was refused, and ``PublishError`` when Redis could not confirm the write (it may
    or may not have happened).
    """
    deadline = time.monotonic() + (wait_s or 0)
    pause = 0.005
    then = wait_command(qs)
    while True:
        audit = mq.audit
        stream = audit.stream_of(keys) if audit is not None else ""
        try:
            try:
                reply = _publish_once(mq, queue, qs, keys, batch, now, then, stream)
            except (redis.exceptions.MovedError, redis.exceptions.AskError):
                # a cluster resharded or failed over: nothing ran; re-read the slot map
                if audit is not None:
                    audit.failed(stream)
                refresh_topology(mq.client)
                reply = _publish_once(mq, queue, qs, keys, batch, now, then, stream)
        except redis.ResponseError as exc:
            if audit is not None:
                audit.failed(stream)
            error = translate(exc, mq.client, queue)
            if isinstance(error, QueueFullError) and time.monotonic() + pause <= deadline:
                time.sleep(pause)  # back-pressure: wait for consumers to make room
                pause = min(pause * 2, 0.25)
                continue
            raise error from None
        except TRANSIENT_ERRORS as exc:
            if audit is not None:
                audit.failed(stream)
            raise PublishError(
                f"publish of {len(batch.ids)} message(s) to {queue!r} was not confirmed "
                f"({type(exc).__name__}: {exc}); it may or may not have been written") from exc
        if then is not None:
            reply, after = reply
            check_waited(after, qs, queue)
        return publish_ids(batch, reply)


def _publish_once(mq: Deployment, queue: str, qs: QueueSettings, keys: QueueKeys,
                  batch: PublishColumns, now: int, then: tuple[Any, ...] | None,
                  stream: str) -> Any:
    """One publish function call of ``batch`` (its audit entry chained now)."""
    audit = mq.audit
    section = None if audit is None else audit.section(
        stream, [AuditItem("publish", queue, message_ids=batch.ids)])
    return mq.functions.publish(
        keys, metrics_key(keys, now), batch, max_size=qs.max_queue_size,
        dedup_window_ms=int(qs.deduplication_window_s * 1000), now_ms=now,
        metrics_ttl_s=RETENTION_S if qs.enable_metrics else 0,
        trace_cap=TRACE_MAX_ENTRIES if qs.enable_tracing else 0,
        actor=mq.origin or "", audit=section, then=then,
        client=None if then is None else durable_node(mq.client, qs, queue, keys.meta))


def build_columns(mq: Deployment, queue: str, qs: QueueSettings, items: list[Message],
                  now: int, layout: Layout | None) -> tuple[PublishColumns, list[str] | None]:
    """Build, encode and seal new messages: the publish function's columns, and with the
    ``layout`` of a partitioned queue the partition of each message.

    The publish hot path, one pass per message: its header comes from ``new_header`` (no
    ``Envelope``, ~3 us) and is sealed at once, so the payload's JSON buffer is freed
    before the next one is made (a batch of retained orjson buffers costs glibc heap
    growth and page faults, ~1.5 us each). The ids and trace ids of the batch come from one
    ``random_bytes`` call, and the ambient OpenTelemetry span is looked up once.
    """
    fifo = qs.kind == "fifo"
    default_ttl = qs.message_ttl_s
    max_bytes = qs.max_payload_bytes
    hash_content = qs.enable_deduplication
    origin = mq.origin
    codec = mq.codec
    ambient = otel.current_traceparent()
    make_sealer = getattr(codec, "new_sealer", None)
    seal = make_sealer(len(items)) if make_sealer is not None else None
    routes: list[str] | None = [] if layout is not None else None
    mids, fresh_traces, fresh_tps = new_ids(now, len(items))
    levels: list[int] = []
    dues: list[int] = []
    dedups: list[str | None] = []
    trace_ids: list[str] = []
    envelopes: list[bytes] = []
    # blind indicator tags for the published trace items, only where a trace is written
    tag_of = tagger_of(mq).detail if qs.enable_tracing and qs.index_indicators else None
    tags: list[str] = []
    types: set[str] = set()  # a batch usually holds a few types: check each once
    for i, m in enumerate(items):
        mtype = m.type
        if mtype not in types:
            types.add(check_type(mtype))
        extra_bytes = check_extras(m) if m.headers or m.dedup_key or m.ttl_s else 0
        due = 0 if m.delay is None and m.deliver_at is None else \
            due_ms(m.delay, m.deliver_at, now)
        prio = m.priority
        prio = int(prio if type(prio) is MessagePriority else MessagePriority.parse(prio))
        tp = m.traceparent or ambient
        if tp:
            trace_ids.append(trace_id_of(tp))
        else:
            tp = fresh_tps[i]
            trace_ids.append(fresh_traces[i])
        ttl = m.ttl_s if m.ttl_s is not None else default_ttl
        extra = m.headers
        if layout is not None and routes is not None:
            hashed = key_hash(m.partition_key if m.partition_key is not None
                              else default_partition_key(m.payload, mids[i]))
            extra = {**m.headers, PARTITION_KEY_HEADER: hashed}
            routes.append(layout.route(hashed))
        h = new_header(mids[i], mtype, queue, prio, now, tp, parse_tlp(m.tlp),
                       None if ttl is None else max(due, now) + int(ttl * 1000),
                       m.correlation_id, m.causation_id, origin, extra)
        body = encode_payload(m.payload, max_bytes - extra_bytes)
        envelopes.append(seal(h, body) if seal is not None else _seal_one(mq, qs, h, m))
        dedup = m.dedup_key
        dedups.append(content_key(m) if dedup is None and hash_content else dedup)
        levels.append(2 if fifo else prio)
        dues.append(due)
        if tag_of is not None:
            tags.append(tag_of(m.payload))
    return PublishColumns(levels, dues, dedups, mids, trace_ids, envelopes,
                          tags if any(tags) else None), routes


def _seal_one(mq: Deployment, qs: QueueSettings, h: dict[str, Any], m: Message) -> bytes:
    """Seal a new message with a codec that has no ``new_sealer``: an Envelope through its
    ``seal``."""
    env = Envelope(
        id=h["id"], type=h["t"], queue=h["q"], payload=m.payload,
        priority=MessagePriority(h["p"]), created_at_ms=h["c"], expires_at_ms=h.get("x"),
        traceparent=h["tp"], correlation_id=h.get("co"), causation_id=h.get("ca"),
        origin=h.get("o"), tlp=h["tlp"], headers=h.get("h", {}))
    return mq.codec.seal(env, qs.max_payload_bytes)


def new_envelope(origin: str | None, queue: str, qs: QueueSettings, m: Message,
                 now: int) -> tuple[Envelope, int]:
    """The ``Envelope`` of a new message, and its due time (0 = now)."""
    check_type(m.type)
    extra_bytes = check_extras(m)
    if extra_bytes:
        encode_payload(m.payload, qs.max_payload_bytes - extra_bytes)  # headers count too
    due = due_ms(m.delay, m.deliver_at, now)
    ttl = m.ttl_s if m.ttl_s is not None else qs.message_ttl_s
    expires = None if ttl is None else max(due, now) + int(ttl * 1000)
    env = Envelope(
        id=new_id(now), type=m.type, queue=queue, payload=m.payload,
        priority=MessagePriority.parse(m.priority), created_at_ms=now,
        expires_at_ms=expires,
        traceparent=m.traceparent or otel.current_traceparent() or new_traceparent(),
        correlation_id=m.correlation_id, causation_id=m.causation_id,
        origin=origin, tlp=parse_tlp(m.tlp), headers=dict(m.headers))
    return env, due


def publish_live(mq: Deployment, queue: str, qs: QueueSettings,
                 items: list[Message]) -> list[str]:
    """Publish to a pub/sub queue: one PUBLISH per message, one round trip, nothing stored."""
    now = now_ms()
    # a cluster forbids PUBLISH in a pipeline; any one node relays it cluster-wide
    pipe = node_client(mq.client, mq.keys.channel(queue)).pipeline(transaction=False)
    ids = []
    for m in items:
        env, _ = new_envelope(mq.origin, queue, qs, m, now)
        pipe.publish(mq.keys.channel(f"{queue}:{env.type}"),
                     mq.codec.seal(env, qs.max_payload_bytes))
        ids.append(env.id)
    pipe.execute()
    return ids


def content_key(m: Message) -> str:
    """The dedup key of a message without one on a deduplicating queue: its content hash."""
    digest = hashlib.blake2b(m.type.encode(), digest_size=16)
    digest.update(orjson.dumps(m.payload, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS))
    return "h:" + digest.hexdigest()


def due_ms(delay: timedelta | float | None, deliver_at: datetime | None, now: int) -> int:
    """When a message with ``delay`` or ``deliver_at`` is due (epoch ms; 0 = now).

    Rounded up to the next millisecond: a delayed message is never due early.
    """
    if delay is not None and deliver_at is not None:
        raise ValidationError("give either delay or deliver_at, not both")
    if delay is not None:
        if isinstance(delay, bool) or not isinstance(delay, timedelta | int | float):
            raise ValidationError(f"delay must be seconds or a timedelta, got {delay!r}")
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
        if not 0 <= seconds < math.inf:
            raise ValidationError(f"delay must be a finite number of seconds >= 0, got "
                                  f"{seconds}")
        return math.ceil(time.time() * 1000 + seconds * 1000) if seconds > 0 else 0
    if deliver_at is not None:
        if not isinstance(deliver_at, datetime):
            raise ValidationError(f"deliver_at must be a datetime, got {deliver_at!r}")
        if deliver_at.tzinfo is None:
            raise ValidationError("deliver_at must be timezone-aware (e.g. datetime.now(UTC))")
        # rounded up too: a message to be delivered at 12:00:00.0005 is not due at .000
        return max(math.ceil(deliver_at.timestamp() * 1000), 0)
    return 0


__all__ = ["build_columns", "content_key", "due_ms", "new_envelope", "publish_batch",
           "publish_live", "write_columns", "write_routed"]
