"""``MessageQueue``: declare queues, publish to them, subscribe handlers, read their state."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
import redis

from .admin.partitions import PARTITION_KEY_HEADER, Layout, default_partition_key, key_hash
from .audit.inline import AuditedClient, AuditItem, open_audit
from .backend.connection import TRANSIENT_ERRORS
from .backend.durability import call_with_topology_retry, durable_client
from .backend.functions import PublishColumns, Scripts
from .backend.keyspace import GlobalKeys, QueueKeys, check_queue_name
from .config.settings import QUEUE_KINDS, QueueSettings, Settings
from .errors import (
    ConfigError,
    PermissionDeniedError,
    PublishError,
    QueueFullError,
    UnknownQueueKindError,
    ValidationError,
)
from .model.codec import Codec, PlainCodec
from .model.envelope import (
    Envelope,
    MessagePriority,
    encode_payload,
    new_id,
    new_ids,
    new_traceparent,
    now_ms,
    trace_id_of,
)
from .model.tlp import parse_tlp
from .observe import otel
from .observe.depth import QueueStats, depth_of, sum_stats
from .observe.metrics import BUCKET_S, RETENTION_S
from .observe.tracing import TRACE_MAX_ENTRIES
from .security.access import AccessPolicy

if TYPE_CHECKING:
    from .admin.dlq import DeadLetterQueue

METRICS_BUCKET_S = BUCKET_S
METRICS_RETENTION_S = RETENTION_S
DEFAULT_GROUP = "workers"
LAYOUT_TTL_S = 1.0  # producers and workers re-read a queue's partition layout this often


@dataclass(frozen=True, init=False, slots=True)
class Message:
    """One message to publish with ``publish_batch``."""

    type: str
    payload: Any
    priority: MessagePriority | int | str = MessagePriority.NORMAL
    delay: timedelta | float | None = None
    deliver_at: datetime | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    dedup_key: str | None = None
    ttl_s: float | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    traceparent: str | None = None
    tlp: str = "CLEAR"
    partition_key: str | None = None  # partitioned queues: default the IOC value or the id

    def __init__(self, type: str, payload: Any,  # noqa: A002 - the public field name
                 priority: MessagePriority | int | str = MessagePriority.NORMAL,
                 delay: timedelta | float | None = None, deliver_at: datetime | None = None,
                 headers: Mapping[str, str] | None = None, dedup_key: str | None = None,
                 ttl_s: float | None = None, correlation_id: str | None = None,
                 causation_id: str | None = None, traceparent: str | None = None,
                 tlp: str = "CLEAR", partition_key: str | None = None) -> None:
        # Callers build one Message per published message. The generated frozen __init__
        # goes through object.__setattr__ per field (~1.2 us); the slot descriptors' own
        # setters are ~0.6 us, and slots make it one GC-tracked object instead of three.
        s = _MESSAGE_SETTERS
        s[0](self, type)
        s[1](self, payload)
        s[2](self, priority)
        s[3](self, delay)
        s[4](self, deliver_at)
        s[5](self, {} if headers is None else headers)
        s[6](self, dedup_key)
        s[7](self, ttl_s)
        s[8](self, correlation_id)
        s[9](self, causation_id)
        s[10](self, traceparent)
        s[11](self, tlp)
        s[12](self, partition_key)


_MESSAGE_SETTERS: tuple[Any, ...] = tuple(
    getattr(Message, f.name).__set__ for f in dataclasses.fields(Message))


class MessageQueue:
    """A connection to one phantom_notebook deployment (a Redis and a key prefix)."""

    def __init__(self, client: redis.Redis, settings: Settings,
                 codec: Codec | None = None, origin: str | None = None) -> None:
        # redis-py's command stubs are unions of sync/async results; treat replies as Any
        self.client: Any = client
        self.settings = settings
        self.codec: Codec = codec or PlainCodec()
        self.origin = origin
        self.keys = GlobalKeys(settings.redis.key_prefix)
        self.scripts = Scripts(client)
        self.embedded = settings.redis.url is None
        self.role = settings.security.role
        self.access = AccessPolicy.from_dict(settings.roles)
        if self.role is not None:
            self.access.role(self.role)  # unknown role: ConfigError now, not at first use
        self.audit = open_audit(self, settings)
        self._declared: dict[str, QueueSettings] = {}
        self._queue_keys: dict[str, QueueKeys] = {}
        self._layouts: dict[str, tuple[float, Layout]] = {}
        self._lock = threading.Lock()
        self._subscriptions: list[Any] = []

    def __repr__(self) -> str:
        where = "embedded" if self.embedded else repr(self.settings.redis)
        role = f", role={self.role!r}" if self.role else ""
        return f"MessageQueue({where}, prefix={self.keys.prefix!r}{role})"

    def close(self) -> None:
        """Release this queue's connections (the publish connection, then the pool)."""
        self.scripts.pinned.close()
        self.client.close()

    def _authorize_declare(self, queue: str) -> None:
        """Declaring needs any of publish / consume / manage on the queue."""
        if self.role is not None and not any(
                self.access.allows(self.role, a, queue) for a in ("publish", "consume", "manage")):
            self.access.check(self.role, "publish", queue)

    def authorize(self, action: str, queue: str = "*") -> None:
        """Raise ``PermissionDeniedError`` unless this connection's role may do ``action``.

        Checked before anything reaches Redis; Redis ACLs (``phantom-notebook acl``) enforce
        the same grants a second time. A connection without a role is not restricted here.
        """
        if self.role is None:
            return
        try:
            self.access.check(self.role, action, queue)
        except PermissionDeniedError:
            from .audit.inline import AuditItem, record_safely

            record_safely(self.audit, AuditItem("permission_denied", queue, "denied",
                                                detail={"action": action}))
            raise

    # -- queues -----------------------------------------------------------------------------

    def declare(self, queue: str, kind: str | None = None, **overrides: Any) -> QueueSettings:
        """Create (or look up) ``queue`` and return its settings.

        The kind is stored in Redis so every process agrees on it; declaring an existing
        queue with a different kind raises ``ValidationError``.
        """
        known = self._declared.get(queue)  # every publish comes here: no lock for a read
        if known is not None and kind in (None, known.kind) and not overrides:
            self._authorize_declare(queue)
            return known
        return self._declare(queue, kind, overrides)

    def _declare(self, queue: str, kind: str | None, overrides: dict[str, Any]
                 ) -> QueueSettings:
        check_queue_name(queue)
        self._authorize_declare(queue)
        if kind is not None and kind not in QUEUE_KINDS:
            raise UnknownQueueKindError(
                f"unknown queue kind {kind!r} for {queue!r}: use one of {', '.join(QUEUE_KINDS)}")
        with self._lock:
            known = self._declared.get(queue)
        if known is not None and kind in (None, known.kind) and not overrides:
            return known
        qs = self.settings.for_queue(queue)
        if kind is not None or overrides:
            qs = qs.replace(**({"kind": kind} if kind else {}), **overrides)
        keys = self.queue_keys(queue)
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(keys.meta, "kind")
        pipe.hget(keys.meta, "partitions")
        stored, stored_parts = pipe.execute()
        if stored is not None and stored_parts is not None \
                and int(stored_parts) != qs.partitions:
            if "partitions" in overrides:
                raise ValidationError(
                    f"queue {queue!r} has {int(stored_parts)} partitions, not "
                    f"{qs.partitions}: change it with repartition()")
            qs = qs.replace(partitions=int(stored_parts))
        if stored is not None and stored.decode() != qs.kind:
            if kind is not None:
                raise ValidationError(
                    f"queue {queue!r} exists with kind {stored.decode()!r}, not {kind!r}")
            qs = qs.replace(kind=stored.decode())
        if qs.enable_encryption and not getattr(self.codec, "keyring", None):
            raise ConfigError(f"queues.{queue}.enable_encryption",
                              "the queue requires encryption but no key ring is configured",
                              "set [security] keys / key_file or $PHANTOM_KEYS")
        if stored is None:
            pipe = self.client.pipeline(transaction=False)
            pipe.hsetnx(keys.meta, "kind", qs.kind)
            pipe.hsetnx(keys.meta, "created_ms", now_ms())
            if qs.partitions > 1:
                if qs.kind == "pubsub":
                    raise ValidationError("a pub/sub queue stores nothing: it has no partitions")
                pipe.hsetnx(keys.meta, "partitions", qs.partitions)
            pipe.sadd(self.keys.queues, queue)
            pipe.execute()
        with self._lock:
            self._declared[queue] = qs
        return qs

    def queue_keys(self, queue: str) -> QueueKeys:
        """The Redis keys of ``queue``."""
        keys = self._queue_keys.get(queue)
        if keys is None:  # validated once; the key names are cached properties of it
            keys = self._queue_keys[queue] = self.keys.queue(queue)
        return keys

    def layout(self, queue: str, fresh: bool = False) -> Layout:
        """The partitions of ``queue`` (re-read from Redis every ``LAYOUT_TTL_S``)."""
        now = time.monotonic()
        with self._lock:
            cached = self._layouts.get(queue)
        if cached is not None and not fresh and cached[0] > now:
            return cached[1]
        from .backend.connection import TRANSIENT_ERRORS

        try:
            layout = Layout.read(self.client, queue, self.queue_keys(queue).meta)
        except TRANSIENT_ERRORS:
            if cached is None:
                raise
            return cached[1]  # Redis unreachable (failover): keep routing by the last layout
        with self._lock:
            self._layouts[queue] = (now + LAYOUT_TTL_S, layout)
        return layout

    def forget_layout(self, queue: str) -> None:
        """Drop the cached layout of ``queue`` (after ``repartition``)."""
        with self._lock:
            self._layouts.pop(queue, None)
            self._declared.pop(queue, None)

    def repartition(self, queue: str, partitions: int, *, move: bool = True) -> Any:
        """Change the partition count of ``queue``, losing nothing (``partitions.repartition``)."""
        from .admin.partitions import repartition

        return repartition(self, queue, partitions, move=move)

    def queues(self) -> list[str]:
        """Every queue name known to this deployment, sorted."""
        return sorted(m.decode() for m in self.client.smembers(self.keys.queues))

    def ensure_group(self, queue: str, group: str) -> None:
        """Create consumer ``group`` on every stream of ``queue`` (idempotent).

        Competing-consumer queues start a new group at the beginning so messages published
        before the first worker are delivered; broadcast groups start at "now".
        """
        self.authorize("consume", queue)
        qs = self.declare(queue)
        start = "$" if qs.kind == "broadcast" else "0"
        pipe = self.client.pipeline(transaction=False)
        for part in self.layout(queue).all:
            for stream in self.queue_keys(part).streams:
                pipe.xgroup_create(stream, group, id=start, mkstream=True)
        for result in pipe.execute(raise_on_error=False):
            if isinstance(result, Exception) and "BUSYGROUP" not in str(result):
                raise result

    # -- publishing ----------------------------------------------------------------------------

    def publish(self, queue: str, type: str, payload: Any, *,
                priority: MessagePriority | int | str = MessagePriority.NORMAL,
                delay: timedelta | float | None = None, deliver_at: datetime | None = None,
                headers: Mapping[str, str] | None = None, dedup_key: str | None = None,
                ttl_s: float | None = None, correlation_id: str | None = None,
                causation_id: str | None = None, traceparent: str | None = None,
                tlp: str = "CLEAR", wait_s: float | None = None,
                partition_key: str | None = None) -> str:
        """Publish one message; returns its id (the first message's id for a duplicate).

        On a partitioned queue ``partition_key`` picks the partition (default: the IOC
        value of the payload, else the message id); one key keeps its order.

        Raises ``PayloadError`` (unserializable or oversize payload), ``QueueFullError``
        and ``ValidationError`` before anything reaches Redis where possible.
        """
        msg = Message(type, payload, priority, delay, deliver_at, headers or {}, dedup_key,
                      ttl_s, correlation_id, causation_id, traceparent, tlp, partition_key)
        return self.publish_batch(queue, [msg], wait_s=wait_s)[0]

    def publish_batch(self, queue: str, messages: Iterable[Message | tuple[str, Any]], *,
                      wait_s: float | None = None) -> list[str]:
        """Publish many messages to ``queue`` in one round trip; returns their ids in order.

        All or nothing: a bad message raises before anything is written, and a batch that
        does not fit under ``max_queue_size`` raises ``QueueFullError`` with nothing written
        (after waiting up to ``wait_s`` seconds for room, when given). A publish Redis could
        not confirm (connection lost, timeout) raises ``PublishError``: the caller always
        knows; with a ``dedup_key`` it is safe to publish again.
        """
        self.authorize("publish", queue)
        qs = self.declare(queue)
        items = [m if isinstance(m, Message) else Message(*m) for m in messages]
        if not items:
            return []
        if qs.kind == "pubsub":
            return self._publish_live(queue, qs, items)
        now = now_ms()
        try:
            layout = self.layout(queue)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise PublishError(f"publish of {len(items)} message(s) to {queue!r} was not "
                               f"confirmed ({type(exc).__name__}: {exc}); nothing was written") \
                from exc
        batch, routes = self._fresh(queue, qs, items, now,
                                    layout if layout.partitioned else None)
        if routes is None:
            return self._publish_rows(queue, qs, self.queue_keys(queue), batch, now, wait_s)
        # one script call per partition: all or nothing within each partition
        ids: list[str] = [""] * len(routes)
        for part in dict.fromkeys(routes):
            index = [i for i, r in enumerate(routes) if r == part]
            out = self._publish_rows(queue, qs, self.queue_keys(part), batch.select(index), now,
                                     wait_s)
            for i, mid in zip(index, out, strict=True):
                ids[i] = mid
        return ids

    def publish_stream(self, queue: str, messages: Iterable[Message | tuple[str, Any]], *,
                       batch_size: int = 500) -> list[str]:
        """Publish a long sequence in atomic batches of ``batch_size``, two in flight (Redis
        runs one batch while the next is built); returns every id. A batch that fails stops
        the stream with ``PublishStreamError`` listing what was written (``core/bulk.py``)."""
        from .publish.stream import publish_stream

        return publish_stream(self, queue, messages, batch_size)

    def _publish_rows(self, queue: str, qs: QueueSettings, keys: QueueKeys,
                      batch: PublishColumns, now: int, wait_s: float | None) -> list[str]:
        deadline = time.monotonic() + (wait_s or 0)
        pause = 0.005
        while True:
            try:
                def once() -> list[str]:
                    waiting: Any = None if qs.durability == "none" else \
                        durable_client(self.client, qs, queue, keys.meta)
                    if waiting is None and self.audit is not None:
                        waiting = AuditedClient(self.client, self.audit, [AuditItem(
                            "publish", queue, message_ids=list(batch.ids))])
                    return self.scripts.publish_columns(
                        keys, self.metrics_key(keys, now, qs), batch,
                        max_size=qs.max_queue_size,
                        dedup_window_ms=int(qs.deduplication_window_s * 1000), now_ms=now,
                        metrics_ttl_s=METRICS_RETENTION_S if qs.enable_metrics else 0,
                        trace_cap=TRACE_MAX_ENTRIES if qs.enable_tracing else 0,
                        actor=self.origin or "", client=waiting)

                return list(call_with_topology_retry(self.client, once))
            except QueueFullError:
                if time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)  # back-pressure: wait for consumers to make room
                pause = min(pause * 2, 0.25)
            except TRANSIENT_ERRORS as exc:
                raise PublishError(
                    f"publish of {len(batch.ids)} message(s) to {queue!r} was not confirmed "
                    f"({type(exc).__name__}: {exc}); it may or may not have been written") from exc

    def _envelope(self, queue: str, qs: QueueSettings, m: Message,
                  now: int) -> tuple[Envelope, int]:
        if not isinstance(m.type, str) or not m.type:
            raise ValidationError(f"message type must be a non-empty string, got {m.type!r}")
        due = _due_ms(m.delay, m.deliver_at, now)
        ttl = m.ttl_s if m.ttl_s is not None else qs.message_ttl_s
        expires = None if ttl is None else max(due, now) + int(ttl * 1000)
        env = Envelope(
            id=new_id(now), type=m.type, queue=queue, payload=m.payload,
            priority=MessagePriority.parse(m.priority), created_at_ms=now,
            expires_at_ms=expires,
            traceparent=m.traceparent or otel.current_traceparent() or new_traceparent(),
            correlation_id=m.correlation_id, causation_id=m.causation_id,
            origin=self.origin, tlp=parse_tlp(m.tlp), headers=dict(m.headers))
        return env, due

    def _fresh(self, queue: str, qs: QueueSettings, items: list[Message], now: int,
               layout: Layout | None) -> tuple[PublishColumns, list[str] | None]:
        """Build, encode and seal new messages: the script's columns, and with the
        ``layout`` of a partitioned queue the partition of each message.

        The publish hot path, one pass per message: its header dict is built here directly,
        exactly as ``Envelope.header()`` would build it (no ``Envelope``, ~3 us), then sealed
        at once, so the payload's JSON buffer is freed before the next one is made (a batch
        of retained orjson buffers costs glibc heap growth and page faults, ~1.5 us each).
        The ids and trace ids of the batch come from one ``random_bytes`` call, and the
        ambient OpenTelemetry span is looked up once.
        """
        fifo = qs.kind == "fifo"
        default_ttl = qs.message_ttl_s
        max_bytes = qs.max_payload_bytes
        hash_content = qs.enable_deduplication
        origin = self.origin
        ambient = otel.current_traceparent()
        make_sealer = getattr(self.codec, "new_sealer", None)
        seal = make_sealer(len(items)) if make_sealer is not None else None
        routes: list[str] | None = [] if layout is not None else None
        mids, fresh_traces, fresh_tps = new_ids(now, len(items))
        levels: list[int] = []
        dues: list[int] = []
        dedups: list[str | None] = []
        trace_ids: list[str] = []
        envelopes: list[bytes] = []
        for i, m in enumerate(items):
            mtype = m.type
            if not isinstance(mtype, str) or not mtype:
                raise ValidationError(f"message type must be a non-empty string, got {mtype!r}")
            due = 0 if m.delay is None and m.deliver_at is None else \
                _due_ms(m.delay, m.deliver_at, now)
            prio = m.priority
            prio = int(prio if type(prio) is MessagePriority else MessagePriority.parse(prio))
            tp = m.traceparent or ambient
            if tp:
                trace_ids.append(trace_id_of(tp))
            else:
                tp = fresh_tps[i]
                trace_ids.append(fresh_traces[i])
            h: dict[str, Any] = {"id": mids[i], "t": mtype, "q": queue, "p": prio, "v": "1.0",
                                 "c": now, "a": 1, "tp": tp, "tlp": parse_tlp(m.tlp)}
            ttl = m.ttl_s if m.ttl_s is not None else default_ttl
            if ttl is not None:
                h["x"] = max(due, now) + int(ttl * 1000)
            if m.correlation_id:
                h["co"] = m.correlation_id
            if m.causation_id:
                h["ca"] = m.causation_id
            if origin:
                h["o"] = origin
            if m.headers:
                h["h"] = dict(m.headers)
            if layout is not None and routes is not None:
                hashed = key_hash(m.partition_key if m.partition_key is not None
                                  else default_partition_key(m.payload, mids[i]))
                h["h"] = {**m.headers, PARTITION_KEY_HEADER: hashed}
                routes.append(layout.route(hashed))
            body = encode_payload(m.payload, max_bytes)
            envelopes.append(seal(h, body) if seal is not None else self._seal_one(qs, h, m))
            dedup = m.dedup_key
            dedups.append(_content_key(m) if dedup is None and hash_content else dedup)
            levels.append(2 if fifo else prio)
            dues.append(due)
        return PublishColumns(levels, dues, dedups, mids, trace_ids, envelopes), routes

    def _seal_one(self, qs: QueueSettings, h: dict[str, Any], m: Message) -> bytes:
        """Seal a new message with a codec that has no ``new_sealer``: an Envelope through
        its ``seal``."""
        env = Envelope(
            id=h["id"], type=h["t"], queue=h["q"], payload=m.payload,
            priority=MessagePriority(h["p"]), created_at_ms=h["c"], expires_at_ms=h.get("x"),
            traceparent=h["tp"], correlation_id=h.get("co"), causation_id=h.get("ca"),
            origin=h.get("o"), tlp=h["tlp"], headers=h.get("h", {}))
        return self.codec.seal(env, qs.max_payload_bytes)

    def _publish_live(self, queue: str, qs: QueueSettings, items: list[Message]) -> list[str]:
        from .backend.cluster import node_client

        now = now_ms()
        # a cluster forbids PUBLISH in a pipeline; any one node relays it cluster-wide
        pipe = node_client(self.client, self.keys.channel(queue)).pipeline(transaction=False)
        ids = []
        for m in items:
            env, _ = self._envelope(queue, qs, m, now)
            pipe.publish(self.keys.channel(f"{queue}:{env.type}"),
                         self.codec.seal(env, qs.max_payload_bytes))
            ids.append(env.id)
        pipe.execute()
        return ids

    def metrics_key(self, keys: QueueKeys, at_ms: int, qs: QueueSettings | None = None) -> str:
        """The metrics hash of the time bucket containing ``at_ms``."""
        bucket = at_ms // 1000 // METRICS_BUCKET_S * METRICS_BUCKET_S
        return keys.metrics(bucket)

    # -- subscribing ----------------------------------------------------------------------------

    def subscribe(self, queue: str, type_pattern: str, handler: Any, **options: Any) -> Any:
        """Register ``handler`` for messages of ``queue`` whose type matches ``type_pattern``.

        Options: ``auto_ack`` (True), ``prefetch_count`` (100), ``max_concurrency`` (1),
        ``filter`` (a ``Filter``), ``group`` (consumer group; broadcast queues give each
        group every message), ``retry`` (a ``RetrySettings`` overriding the queue's).
        Returns the ``Subscription``; a ``Worker`` runs them (``run_worker`` is a shortcut).
        """
        from .consume.subscription import Subscription

        self.authorize("consume", queue)
        qs = self.declare(queue)
        sub = Subscription.create(queue, type_pattern, handler, qs, **options)
        self._subscriptions.append(sub)
        return sub

    @property
    def subscriptions(self) -> list[Any]:
        """Subscriptions registered with ``subscribe`` and not yet handed to a worker."""
        return list(self._subscriptions)

    def worker(self, **options: Any) -> Any:
        """A ``Worker`` running every subscription registered on this connection."""
        from .consume.worker import Worker

        return Worker(self, self._subscriptions, **options)

    # -- reading state ----------------------------------------------------------------------------

    def dlq(self, queue: str) -> DeadLetterQueue:
        """The dead-letter queue of ``queue``: list, inspect, replay, purge, trim.

        A partitioned queue's view spans every partition (``PartitionedDeadLetterQueue``).
        """
        from .admin.dlq import DeadLetterQueue

        self.authorize("manage", queue)
        layout = self.layout(queue)
        if layout.partitioned:
            from .admin.partitions import PartitionedDeadLetterQueue

            return PartitionedDeadLetterQueue(self, queue, layout.all)  # type: ignore[return-value]
        return DeadLetterQueue(self, queue)

    def health(self, queues: list[str] | None = None, window_s: float = 300.0,
               thresholds: Any = None) -> Any:
        """Run the health checks; returns a ``HealthReport`` (HTML in Jupyter, text here)."""
        from .observe.health import check_health

        return check_health(self, queues, window_s, thresholds)

    def breakers(self, queue: str) -> dict[str, dict[str, Any]]:
        """Circuit-breaker state of every worker lane on ``queue`` ("group:consumer" -> state)."""
        import orjson

        self.authorize("stats", queue)
        out: dict[str, dict[str, Any]] = {}
        for part in self.layout(queue).all:
            raw = self.client.hgetall(self.queue_keys(part).breakers)
            out.update({k.decode(): orjson.loads(v) for k, v in raw.items()})
        return out

    def stats(self, queues: Iterable[str] | None = None) -> list[QueueStats]:
        """Depth per queue and state (ready, in flight, delayed, dead), in one round trip.

        A partitioned queue's row sums its partitions (active and draining).
        """
        names = list(queues) if queues is not None else self.queues()
        for name in names:
            self.authorize("stats", name)
        parts = {name: self.layout(name).all for name in names}
        rows = self.stats_of_partitions([p for name in names for p in parts[name]])
        by_part = {row.queue: row for row in rows}
        return [sum_stats(name, [by_part[p] for p in parts[name]]) for name in names]

    def stats_of_partitions(self, names: Iterable[str]) -> list[QueueStats]:
        """Depth per stored (sub-)queue, one row each, in one round trip."""
        return depth_of(self, list(names))


def _content_key(m: Message) -> str:
    """The dedup key of a message without one on a deduplicating queue: its content hash."""
    digest = hashlib.blake2b(m.type.encode(), digest_size=16)
    digest.update(orjson.dumps(m.payload, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS))
    return "h:" + digest.hexdigest()


def _due_ms(delay: timedelta | float | None, deliver_at: datetime | None, now: int) -> int:
    if delay is not None and deliver_at is not None:
        raise ValidationError("give either delay or deliver_at, not both")
    if delay is not None:
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
        if seconds < 0:
            raise ValidationError(f"delay must be >= 0, got {seconds} s")
        # rounded up to the next millisecond: a delayed message is never due early
        return math.ceil(time.time() * 1000 + seconds * 1000) if seconds > 0 else 0
    if deliver_at is not None:
        if deliver_at.tzinfo is None:
            raise ValidationError("deliver_at must be timezone-aware (e.g. datetime.now(UTC))")
        return max(int(deliver_at.timestamp() * 1000), 0)
    return 0


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true or ``timeout_s`` passes; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
