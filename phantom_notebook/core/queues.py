"""``MessageQueue``: the public facade over one deployment (a Redis and a key prefix).

The only module that wires the engine's parts together: declaring and discovering queues
(``admin/registry.py``), publishing (``publish/``), subscribing and running workers
(``consume/``), and reading state (``observe/``, ``admin/dlq.py``). Each method is a short
call into the part that does the work; the parts see this object only as a ``Deployment``
(``ports.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import redis

from .admin.cancel import cancel as cancel_message
from .admin.controls import set_paused
from .admin.dlq import DeadLetterQueue
from .admin.partitions import PartitionedDeadLetterQueue, RepartitionReport, repartition
from .admin.registry import QueueRegistry, ensure_group
from .audit.inline import AuditItem, open_audit, record_safely
from .backend.boundary import public
from .backend.functions import Functions
from .backend.keyspace import GlobalKeys, QueueKeys
from .backup.restore import RestoreReport, restore_backup
from .backup.take import BackupReport, take_backup
from .config.settings import QueueSettings, Settings
from .consume.breaker import read_breakers
from .consume.subscription import DEFAULT_GROUP, Subscription
from .consume.worker import Worker
from .errors import PermissionDeniedError, ValidationError
from .model.codec import Codec, PlainCodec
from .model.envelope import MessagePriority
from .model.message import Message
from .model.routing import Layout
from .observe.depth import QueueStats, depth_of, queue_stats
from .observe.health import HealthReport, HealthThresholds, check_health
from .publish.batch import publish_batch
from .publish.stream import publish_stream
from .results.codec import Result
from .results.flows import GroupHandle, Task, chain, group, request_many
from .results.pending import PendingResult, read_results, wait_all
from .schedule import store as _schedules
from .schedule.runner import Scheduler
from .schedule.spec import Schedule
from .security.access import AccessPolicy
from .testing import wait_until

_DECLARE_ACTIONS = ("publish", "consume", "manage")


@public
class MessageQueue:
    """A connection to one phantom_notebook deployment (a Redis and a key prefix)."""

    def __init__(self, client: redis.Redis, settings: Settings,
                 codec: Codec | None = None, origin: str | None = None,
                 user: str = "default") -> None:
        # redis-py's command stubs are unions of sync/async results; treat replies as Any
        self.client: Any = client
        self.settings = settings
        self.codec: Codec = codec or PlainCodec()
        self.origin = origin
        self.keys = GlobalKeys(settings.redis.key_prefix)
        self.functions = Functions(client, settings.redis.deploy_functions)
        #: the ACL user this connection authenticated as (names its audit streams)
        self.user = user
        self.embedded = settings.redis.url is None
        self.role = settings.security.role
        self.access = AccessPolicy.from_dict(settings.roles)
        if self.role is not None:
            self.access.role(self.role)  # unknown role: ConfigError now, not at first use
        self.audit = open_audit(self, settings, user)
        self.registry = QueueRegistry(self)
        self._subscriptions: list[Subscription] = []

    def __repr__(self) -> str:
        where = "embedded" if self.embedded else repr(self.settings.redis)
        role = f", role={self.role!r}" if self.role else ""
        return f"MessageQueue({where}, prefix={self.keys.prefix!r}{role})"

    def close(self) -> None:
        """Release this queue's connections (the publish connection, then the pool)."""
        self.functions.pinned.close()
        self.client.close()

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
            record_safely(self.audit, AuditItem("permission_denied", queue, "denied",
                                                detail={"action": action}))
            raise

    # -- queues -------------------------------------------------------------------------------

    def declare(self, queue: str, kind: str | None = None, **overrides: Any) -> QueueSettings:
        """Create (or look up) ``queue`` and return its settings.

        The kind is stored in Redis so every process agrees on it; declaring an existing
        queue with a different kind raises ``ValidationError``.
        """
        if self.role is not None and not any(
                self.access.allows(self.role, a, queue) for a in _DECLARE_ACTIONS):
            self.authorize("publish", queue)
        known = self.registry.known(queue)  # every publish comes here: no lock, no Redis
        if known is not None and kind in (None, known.kind) and not overrides:
            return known
        return self.registry.declare(queue, kind, overrides)

    def queue_keys(self, queue: str) -> QueueKeys:
        """The Redis keys of ``queue``."""
        return self.registry.queue_keys(queue)

    def layout(self, queue: str, fresh: bool = False) -> Layout:
        """The partitions of ``queue`` (re-read from Redis every second)."""
        return self.registry.layout(queue, fresh)

    def forget_layout(self, queue: str) -> None:
        """Drop the cached layout and settings of ``queue`` (after ``repartition``)."""
        self.registry.forget(queue)

    def repartition(self, queue: str, partitions: int, *, move: bool = True
                    ) -> RepartitionReport:
        """Change the partition count of ``queue``, losing nothing (``admin/partitions.py``)."""
        return repartition(self, queue, partitions, move=move)

    def queues(self) -> list[str]:
        """Every queue name known to this deployment, sorted."""
        return self.registry.names()

    def ensure_group(self, queue: str, group: str = DEFAULT_GROUP) -> None:
        """Make sure consumer ``group`` exists on every stream of ``queue`` (creating it
        needs ``manage`` on the queue when a role is set)."""
        ensure_group(self, queue, group, may_create=self.may_manage(queue))

    def may_manage(self, queue: str) -> bool:
        """Whether this connection may declare ``queue``, create its groups and trim it
        (no role, or a role with ``manage`` on it)."""
        return self.registry.may_create(queue)

    # -- publishing ---------------------------------------------------------------------------

    def publish(self, queue: str, type: str, payload: Any, *,  # noqa: A002 - the public name
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
        return publish_batch(self, queue, [msg], wait_s)[0]

    def publish_batch(self, queue: str, messages: Iterable[Message | tuple[str, Any]], *,
                      wait_s: float | None = None) -> list[str]:
        """Publish many messages to ``queue`` in one round trip; returns their ids in order.

        All or nothing: a bad message raises before anything is written, and a batch that
        does not fit under ``max_queue_size`` raises ``QueueFullError`` with nothing written
        (after waiting up to ``wait_s`` seconds for room, when given). A publish Redis could
        not confirm (connection lost, timeout) raises ``PublishError``: the caller always
        knows; with a ``dedup_key`` it is safe to publish again.
        """
        return publish_batch(self, queue, messages, wait_s)

    def publish_stream(self, queue: str, messages: Iterable[Message | tuple[str, Any]], *,
                       batch_size: int = 500) -> list[str]:
        """Publish a long sequence in atomic batches of ``batch_size``, two in flight (Redis
        runs one batch while the next is built); returns every id. A batch that fails stops
        the stream with ``PublishStreamError`` listing what was written."""
        return publish_stream(self, queue, messages, batch_size)

    # -- requests, groups and chains (core/results) -------------------------------------------

    def request(self, queue: str, type: str, payload: Any, *,  # noqa: A002 - the public name
                timeout: timedelta | float | None = None,
                result_ttl: timedelta | float | None = None, **options: Any) -> PendingResult:
        """Publish a request: its handler's return value (or failure) is stored, sealed
        like a message, for ``result_ttl`` (default 1 day). Returns a ``PendingResult``:
        ``.result(timeout=)`` (or ``await``) gives the value or raises
        ``TaskFailedError``; ``.progress`` what the handler reported. ``timeout``: the
        request expires unprocessed after that long (its ``ttl_s``). ``options``: those
        of ``publish`` (priority, headers, tlp, partition_key, ...)."""
        return request_many(self, queue, [Message(type, payload, **options)],
                            timeout=timeout, result_ttl=result_ttl)[0]

    def request_batch(self, queue: str, messages: Iterable[Message | tuple[str, Any]], *,
                      timeout: timedelta | float | None = None,
                      result_ttl: timedelta | float | None = None) -> list[PendingResult]:
        """Publish many requests in one round trip per partition; one handle each."""
        return request_many(self, queue, messages, timeout=timeout, result_ttl=result_ttl)

    def results(self, ids: Iterable[str | PendingResult], queue: str | None = None
                ) -> dict[str, Result | None]:
        """The stored results of requests by id (None: none yet, or expired). ``ids``:
        handles, or message ids of requests sent to ``queue``."""
        handles = [i for i in ids]
        out: dict[str, Result | None] = {}
        for h in handles:
            if isinstance(h, PendingResult):
                out[h.id] = h.peek()
        plain = [h for h in handles if not isinstance(h, PendingResult)]
        if plain:
            if queue is None:
                raise ValidationError("results(ids) needs the queue the requests went to")
            self.authorize("publish", queue)
            out.update(read_results(self, queue, plain))
        return out

    def wait_all(self, pendings: Iterable[PendingResult], timeout: float | None = None, *,
                 progress: bool | Any = True) -> list[Result]:
        """Wait for many requests with a live progress bar ("37/40 done, 2 failed");
        returns their ``Result`` objects in order (failures included)."""
        return wait_all(self, pendings, timeout, progress=progress)

    def group(self, members: Iterable[Task], then: Task, **options: Any) -> GroupHandle:
        """Fan ``members`` out to their queues and run ``then`` once when the group is
        decided: ``on`` ("all", "any" or a count), ``min_success``, ``fail_fast``,
        ``ignore_failures``, ``timeout`` (the deadline; members without an outcome then
        fail as "timeout"), ``result_ttl``. The callback's handler reads each member's
        result in ``context.join``; a failed group dead-letters the callback as
        ``group_failed`` instead. The join is one Redis Function call per settle batch:
        the callback is enqueued exactly once even when workers are killed."""
        return group(self, list(members), then, **options)

    def chain(self, steps: Iterable[Task], **options: Any) -> PendingResult:
        """Run ``steps`` one after another, each getting the previous return value as
        ``context.previous``; returns the last step's handle (``timeout``,
        ``result_ttl``)."""
        return chain(self, list(steps), **options)

    # -- subscribing --------------------------------------------------------------------------

    def subscribe(self, queue: str, type_pattern: str, handler: Any,
                  **options: Any) -> Subscription:
        """Register ``handler`` for messages of ``queue`` whose type matches ``type_pattern``.

        Options: ``auto_ack`` (True), ``prefetch_count`` (100), ``max_concurrency`` (1),
        ``filter`` (a ``Filter``), ``group`` (consumer group; broadcast queues give each
        group every message), ``retry`` (a ``RetrySettings`` overriding the queue's),
        ``breaker``, ``max_tlp``, ``non_retryable``. A ``Worker`` runs them.
        """
        self.authorize("consume", queue)
        qs = self.declare(queue)
        sub = Subscription.create(queue, type_pattern, handler, qs, **options)
        self._subscriptions.append(sub)
        return sub

    @property
    def subscriptions(self) -> list[Subscription]:
        """Subscriptions registered with ``subscribe`` and not yet handed to a worker."""
        return list(self._subscriptions)

    def worker(self, **options: Any) -> Worker:
        """A ``Worker`` running every subscription registered on this connection."""
        return Worker(self, self._subscriptions, **options)

    # -- recurring schedules (core/schedule) --------------------------------------------------

    def schedule(self, name: str, queue: str, type: str, payload: Any, *,  # noqa: A002
                 cron: str | None = None, every: timedelta | float | str | None = None,
                 tz: str | None = None, jitter: timedelta | float | str | None = None,
                 catch_up: str = "none", grace: timedelta | float | str | None = None,
                 priority: MessagePriority | int | str = MessagePriority.NORMAL,
                 headers: Mapping[str, str] | None = None, tlp: str = "CLEAR",
                 ttl_s: float | None = None) -> Schedule:
        """Publish ``payload`` to ``queue`` on ``cron`` (in ``tz``) or ``every`` interval,
        each tick exactly once however many schedulers run; ``catch_up`` ("none", "last",
        "all") says what fires of the ticks missed while none ran. Adding an existing
        name again replaces its spec. Needs ``manage``; audited. A ``Scheduler``
        (``phantom-notebook scheduler``) fires the ticks."""
        return _schedules.add_schedule(
            self, name, queue, type, payload, cron=cron, every=every, tz=tz, jitter=jitter,
            catch_up=catch_up, grace=grace, priority=priority, headers=headers, tlp=tlp,
            ttl_s=ttl_s)

    def schedules(self, queues: str | Iterable[str] | None = None) -> list[Schedule]:
        """The schedules of the queues this connection may read, with their last and next
        fire times."""
        return _schedules.list_schedules(self, [queues] if isinstance(queues, str) else queues)

    def unschedule(self, name: str, queue: str | None = None) -> bool:
        """Remove a schedule (True when one was removed). Needs ``manage``; audited."""
        return _schedules.remove_schedule(self, name, queue)

    def pause_schedule(self, name: str, queue: str | None = None) -> Schedule:
        """Stop a schedule firing; ticks while paused never fire. Needs ``manage``."""
        return _schedules.set_paused(self, name, True, queue)

    def resume_schedule(self, name: str, queue: str | None = None) -> Schedule:
        """Let a paused schedule fire again, from its next tick. Needs ``manage``."""
        return _schedules.set_paused(self, name, False, queue)

    def scheduler(self, **options: Any) -> Scheduler:
        """A ``Scheduler`` firing this deployment's schedules (``start()``/``stop()``,
        ``run()``, ``run_once(now)``); options: ``queues``, ``refresh_s``."""
        return Scheduler(self, **options)

    # -- reading state ------------------------------------------------------------------------

    def dlq(self, queue: str) -> DeadLetterQueue | PartitionedDeadLetterQueue:
        """The dead-letter queue of ``queue``: list, inspect, replay, purge, trim.

        Reading needs ``stats`` on the queue; replay, purge and trim need ``manage`` (checked
        when called). A partitioned queue's view spans every partition
        (``PartitionedDeadLetterQueue``).
        """
        self.authorize("stats", queue)
        layout = self.layout(queue)
        if layout.partitioned:
            return PartitionedDeadLetterQueue(self, queue, layout.all)
        return DeadLetterQueue(self, queue)

    def pause(self, queue: str, group: str | None = None) -> None:
        """Stop consumers of ``queue`` (or of one ``group``) within one fetch cycle;
        producers keep publishing. Needs ``manage``; audited."""
        set_paused(self, queue, True, group)

    def resume(self, queue: str, group: str | None = None) -> None:
        """Let consumers of a paused ``queue`` (or ``group``) fetch again."""
        set_paused(self, queue, False, group)

    def cancel(self, queue: str, message_id: str) -> str:
        """Cancel a message: ``"cancelled"`` when it was waiting (ready, delayed,
        retrying: removed), ``"cancelling"`` when in flight (its handler sees
        ``context.cancelled``), ``"not_found"``. Needs ``manage``; traced and audited."""
        return cancel_message(self, queue, message_id)

    def backup(self, output: str | Path, *, queues: str | Iterable[str] | None = None,
               audit: bool = False, **options: Any) -> BackupReport:
        """Write a signed, compressed archive of the queues to ``output`` (``core/backup``):
        every message in every state, dead letters, dedup windows, groups, optionally the
        audit trail; each partition snapshotted at one point while work goes on."""
        return take_backup(self, output, queues=queues, audit=audit, **options)

    def restore(self, archive: str | Path, *, queues: str | Iterable[str] | None = None,
                dry_run: bool = False, **options: Any) -> RestoreReport:
        """Restore an archive written by ``backup`` (verified first; idempotent; any
        topology and partition count)."""
        return restore_backup(self, archive, queues=queues, dry_run=dry_run, **options)

    def health(self, queues: list[str] | None = None, window_s: float = 300.0,
               thresholds: HealthThresholds | None = None) -> HealthReport:
        """Run the health checks; returns a ``HealthReport`` (HTML in Jupyter, text here)."""
        return check_health(self, queues, window_s, thresholds)

    def breakers(self, queue: str) -> dict[str, dict[str, Any]]:
        """Circuit-breaker state of every worker lane on ``queue`` ("group:consumer" -> state)."""
        self.authorize("stats", queue)
        return read_breakers(self, queue)

    def stats(self, queues: str | Iterable[str] | None = None) -> list[QueueStats]:
        """Depth per queue and state (ready, in flight, delayed, dead), in one round trip.

        A partitioned queue's row sums its partitions (active and draining).
        """
        if isinstance(queues, str):
            queues = [queues]  # stats("ioc-feed"), not the characters of the name
        names = list(queues) if queues is not None else self.queues()
        for name in names:
            self.authorize("stats", name)
        return queue_stats(self, names)

    def stats_of_partitions(self, names: Iterable[str]) -> list[QueueStats]:
        """Depth per stored (sub-)queue, one row each, in one round trip."""
        return depth_of(self, list(names))


__all__ = ["DEFAULT_GROUP", "Message", "MessageQueue", "wait_until"]
