"""The queue engine: settings, envelopes, Lua scripts, queues and workers (no notebook deps)."""

from __future__ import annotations

from typing import Any

from .admin.dlq import DeadLetter, DeadLetterNotFoundError, DeadLetterQueue
from .backend.boundary import guarded
from .config.settings import BreakerSettings, QueueSettings, RedisSettings, RetrySettings, Settings
from .config.tuning import overlap_fits, tune_process_for_throughput
from .consume.context import Action, MessageContext, Outcome
from .consume.idempotency import idempotent
from .consume.middleware import Middleware
from .consume.subscription import Filter, Subscription
from .consume.worker import Worker
from .errors import (
    AuditError,
    CapacityError,
    ConfigError,
    ConnectionLostError,
    DecodeError,
    NotDeployedError,
    PayloadError,
    PermissionDeniedError,
    PhantomError,
    PublishError,
    PublishStreamError,
    QueueFullError,
    Reject,
    ResultTimeoutError,
    Retry,
    ServerError,
    TaskFailedError,
    UnknownQueueError,
    UnknownQueueKindError,
    ValidationError,
)
from .model.codec import Codec, PlainCodec
from .model.envelope import Envelope, MessagePriority
from .observe.depth import QueueStats
from .observe.health import HealthCheck, HealthReport, health_rule, remove_health_rule
from .queues import Message, MessageQueue
from .results.codec import Result
from .results.flows import GroupHandle, Task
from .results.join import GroupFailedError, JoinState, MemberResult
from .results.pending import BatchStatus, PendingResult, Progress


@guarded
def connect(url: str | None = None, *, settings: Settings | None = None,
            origin: str | None = None, codec: Codec | None = None,
            **redis_options: Any) -> MessageQueue:
    """Connect to a phantom_notebook deployment, checking the server right away.

    With no ``url`` and no ``$PHANTOM_REDIS_URL`` this is the embedded in-process Redis
    (fakeredis with Lua), shared by every producer, consumer and widget of the process.
    ``redis://``, ``rediss://`` and ``unix://`` URLs reach a real server through one pool;
    ``redis+cluster://`` and ``redis+sentinel://`` a Cluster or a Sentinel-managed master.
    ``redis_options`` override fields of ``RedisSettings`` (e.g. ``key_prefix="team-a"``).
    ``origin`` names this producer; with keys or origin keys configured (``[security]`` or
    ``$PHANTOM_KEYS`` / ``$PHANTOM_ORIGIN_KEY`` / ``$PHANTOM_TRUSTED_ORIGINS``) payloads are
    sealed with AES-256-GCM and signed; ``codec`` overrides that choice.

    Raises ``ConnectionLostError`` when the server cannot be reached (it is asked at once,
    not at first use), ``ConfigError`` for a refused login or bad settings, and
    ``NotDeployedError`` when the server lacks this client's functions and this user may
    not load them (the message names ``phantom-notebook deploy``).
    """
    import dataclasses

    from .backend.connection import open_client, prepare, resolve_url
    from .security.codec_factory import build_codec

    base = settings or Settings.load()
    target = resolve_url(url) if url is not None or base.redis.url is None else base.redis.url
    fields = {f.name: getattr(base.redis, f.name) for f in dataclasses.fields(base.redis)}
    fields.update(redis_options, url=target)
    redis_settings = RedisSettings(**fields)
    full = dataclasses.replace(base, redis=redis_settings)
    who = origin or full.security.origin
    chosen = codec if codec is not None else build_codec(full.security, who)
    client = open_client(redis_settings)
    user = prepare(client, redis_settings, restricted=full.security.role is not None)
    return MessageQueue(client, full, codec=chosen, origin=who, user=user)


__all__ = [
    "AuditError",
    "BreakerSettings",
    "CapacityError",
    "NotDeployedError",
    "ServerError",
    "UnknownQueueError",
    "Codec",
    "PlainCodec",
    "ConfigError",
    "ConnectionLostError",
    "DeadLetter",
    "DeadLetterNotFoundError",
    "DeadLetterQueue",
    "DecodeError",
    "Envelope",
    "Filter",
    "BatchStatus",
    "GroupFailedError",
    "GroupHandle",
    "JoinState",
    "MemberResult",
    "Message",
    "MessageContext",
    "PendingResult",
    "Progress",
    "Result",
    "ResultTimeoutError",
    "Task",
    "TaskFailedError",
    "MessagePriority",
    "MessageQueue",
    "PayloadError",
    "PermissionDeniedError",
    "PhantomError",
    "PublishError",
    "PublishStreamError",
    "QueueFullError",
    "QueueSettings",
    "QueueStats",
    "RedisSettings",
    "Reject",
    "Middleware",
    "HealthCheck",
    "HealthReport",
    "health_rule",
    "remove_health_rule",
    "Outcome",
    "Action",
    "Retry",
    "RetrySettings",
    "Settings",
    "Subscription",
    "UnknownQueueKindError",
    "ValidationError",
    "Worker",
    "tune_process_for_throughput",
    "connect",
    "overlap_fits",
    "idempotent",
]
