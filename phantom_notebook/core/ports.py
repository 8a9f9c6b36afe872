"""What the engine's parts need of each other, as Protocols: the runtime import graph stays a DAG.

``MessageQueue`` (``queues.py``) wires publish, consume, observe and admin together, so none
of them may import it. They take a ``Deployment`` instead: the part of a connection they
use. The consumer's helpers (context, middleware, breaker) take a ``LaneView``, not the
``Lane`` that imports them. Both are structural: ``MessageQueue`` and ``Lane`` satisfy them
without inheriting anything, and a test double needs only what a part really calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .audit.log import AuditLog
    from .backend.functions import Functions
    from .backend.keyspace import GlobalKeys, QueueKeys
    from .backend.records import Delivery
    from .config.settings import QueueSettings, Settings
    from .model.codec import Codec
    from .model.envelope import MessagePriority
    from .model.message import Message
    from .model.routing import Layout
    from .observe.depth import QueueStats
    from .observe.worker_stats import WorkerStats
    from .security.access import AccessPolicy


class Deployment(Protocol):
    """A connection to one phantom_notebook deployment (a Redis and a key prefix)."""

    client: Any
    settings: Settings
    codec: Codec
    origin: str | None
    role: str | None
    embedded: bool
    user: str
    keys: GlobalKeys
    access: AccessPolicy
    functions: Functions
    audit: AuditLog | None

    def declare(self, queue: str, kind: str | None = None, **overrides: Any) -> QueueSettings:
        """The settings of ``queue`` (declaring it if needed)."""
        ...

    def queue_keys(self, queue: str) -> QueueKeys:
        """The Redis keys of ``queue`` (or of one of its partitions)."""
        ...

    def layout(self, queue: str, fresh: bool = False) -> Layout:
        """The partitions of ``queue``."""
        ...

    def forget_layout(self, queue: str) -> None:
        """Drop the cached layout and settings of ``queue``."""
        ...

    def queues(self) -> list[str]:
        """Every declared queue name."""
        ...

    def authorize(self, action: str, queue: str = "*") -> None:
        """Raise ``PermissionDeniedError`` unless this connection's role may do ``action``."""
        ...

    def may_manage(self, queue: str) -> bool:
        """Whether this connection may declare ``queue``, create its groups and trim it."""
        ...

    def ensure_group(self, queue: str, group: str = ...) -> None:
        """Make sure consumer ``group`` exists on every stream of ``queue``."""
        ...

    def publish(self, queue: str, type: str, payload: Any, *,  # noqa: A002
                priority: MessagePriority | int | str = ...,
                delay: timedelta | float | None = None, deliver_at: datetime | None = None,
                headers: Mapping[str, str] | None = None, dedup_key: str | None = None,
                ttl_s: float | None = None, correlation_id: str | None = None,
                causation_id: str | None = None, traceparent: str | None = None,
                tlp: str = "CLEAR", wait_s: float | None = None,
                partition_key: str | None = None) -> str:
        """Publish one message; returns its id."""
        ...

    def publish_batch(self, queue: str, messages: Iterable[Message | tuple[str, Any]], *,
                      wait_s: float | None = None) -> list[str]:
        """Publish many messages atomically; returns their ids."""
        ...

    def stats(self, queues: Iterable[str] | None = None) -> list[QueueStats]:
        """Depth per queue and state."""
        ...

    def stats_of_partitions(self, names: Iterable[str]) -> list[QueueStats]:
        """Depth per stored (sub-)queue."""
        ...

    def breakers(self, queue: str) -> dict[str, dict[str, Any]]:
        """Circuit-breaker state of every lane on ``queue``."""
        ...


class LaneView(Protocol):
    """What a handler's context and the delivery policies see of the lane running them."""

    mq: Deployment
    queue: str
    group: str
    consumer: str
    broadcast: bool
    keys: QueueKeys
    settings: QueueSettings
    stats: WorkerStats

    def extend_leases(self, deliveries: list[Delivery]) -> None:
        """Reset the visibility timeout of ``deliveries``."""
        ...

    def report_progress(self, ctx: Any, fraction: float, note: str) -> None:
        """Remember a handler's progress for the next (throttled) write."""
        ...


__all__ = ["Deployment", "LaneView"]
