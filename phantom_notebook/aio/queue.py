"""``AsyncMessageQueue``: the asyncio facade over one deployment.

Built by ``await phantom_notebook.aio.connect(...)``. It holds the synchronous
``MessageQueue`` of the same connection (``sync``: settings, codec and keys, roles, the
audit chain, the queue registry) and a ``redis.asyncio`` client (``client``). The hot path
awaits Redis directly: ``publish``, ``publish_batch``, ``publish_stream``, ``request`` and
waiting for results call the same Redis Functions with the same envelopes as the
synchronous API, so sync and async producers and consumers share one queue. Reads and
administration (``stats``, ``health``, ``dlq()``, ``declare``) run the synchronous call in a
thread (``asyncio.to_thread``): one implementation of each, never blocking the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from ..core.admin.dlq import DeadLetter, DeadLetterQueue
from ..core.config.settings import QueueSettings
from ..core.consume.subscription import Subscription
from ..core.model.envelope import MessagePriority
from ..core.model.message import Message
from ..core.observe.depth import QueueStats
from ..core.observe.health import HealthReport, HealthThresholds
from ..core.queues import MessageQueue
from ..core.results.codec import Result
from ..core.results.flows import check_request_queue, request_messages
from ..core.results.pending import PendingResult
from . import publish as _publish
from .client import native, open_async_client
from .results import AsyncPendingResult
from .worker import AsyncWorker

T = TypeVar("T")


class AsyncDeadLetterQueue:
    """The dead-letter queue of one queue, its reads and actions awaited (each runs the
    synchronous ``DeadLetterQueue`` method in a thread)."""

    def __init__(self, dlq: Any) -> None:
        #: the synchronous view (``DeadLetterQueue`` or ``PartitionedDeadLetterQueue``)
        self.sync = dlq

    def __repr__(self) -> str:
        return f"Async{self.sync!r}"

    async def list(self, **options: Any) -> list[DeadLetter]:
        """Dead letters, newest first (``reason``, ``type_pattern``, ``limit``, ...)."""
        return await asyncio.to_thread(self.sync.list, **options)

    async def count(self, **options: Any) -> int:
        """How many dead letters match (``reason``, ``type_pattern``)."""
        return await asyncio.to_thread(self.sync.count, **options)

    async def get(self, dlq_or_message_id: str) -> DeadLetter:
        """One dead letter by its DLQ entry id or its message id."""
        return await asyncio.to_thread(self.sync.get, dlq_or_message_id)

    async def summary(self) -> dict[str, int]:
        """Dead letters per reason."""
        return await asyncio.to_thread(self.sync.summary)

    async def replay(self, ids: str | Iterable[str] | None = None, **options: Any) -> Any:
        """Publish dead letters again (``confirm=True`` for all; needs ``manage``)."""
        return await asyncio.to_thread(self.sync.replay, ids, **options)

    async def purge(self, ids: str | Iterable[str] | None = None, **options: Any) -> Any:
        """Delete dead letters (``confirm=True`` for all; needs ``manage``)."""
        return await asyncio.to_thread(self.sync.purge, ids, **options)


class AsyncMessageQueue:
    """A connection to one phantom_notebook deployment for asyncio programs."""

    def __init__(self, sync: MessageQueue, client: Any) -> None:
        #: the synchronous ``MessageQueue`` of the same connection
        self.sync = sync
        #: the ``redis.asyncio`` client (None for a Cluster or Sentinel deployment, whose
        #: calls run the synchronous engine in a thread)
        self.client = client
        self.native = client is not None
        self._subscriptions: list[Subscription] = []

    def __repr__(self) -> str:
        return f"Async{self.sync!r}"

    @property
    def settings(self) -> Any:
        """The ``Settings`` of this connection."""
        return self.sync.settings

    async def close(self) -> None:
        """Release both clients' connections."""
        if self.client is not None:
            await self.client.aclose()
            # a client given its pool does not close it: every socket, before the loop ends
            await self.client.connection_pool.disconnect()
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> AsyncMessageQueue:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _off_loop(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(call, *args, **kwargs)

    # -- queues -------------------------------------------------------------------------------

    async def declare(self, queue: str, kind: str | None = None,
                      **overrides: Any) -> QueueSettings:
        """Create (or look up) ``queue`` and return its settings (``MessageQueue.declare``)."""
        return await self._off_loop(self.sync.declare, queue, kind, **overrides)

    async def queues(self) -> list[str]:
        """Every queue name known to this deployment, sorted."""
        return await self._off_loop(self.sync.queues)

    # -- publishing ---------------------------------------------------------------------------

    async def publish(self, queue: str, type: str, payload: Any, *,  # noqa: A002
                      priority: MessagePriority | int | str = MessagePriority.NORMAL,
                      delay: timedelta | float | None = None,
                      deliver_at: datetime | None = None,
                      headers: Mapping[str, str] | None = None, dedup_key: str | None = None,
                      ttl_s: float | None = None, correlation_id: str | None = None,
                      causation_id: str | None = None, traceparent: str | None = None,
                      tlp: str = "CLEAR", wait_s: float | None = None,
                      partition_key: str | None = None) -> str:
        """Publish one message; returns its id (``MessageQueue.publish``: the same options,
        errors and envelope). Cancelled while on the wire, the write completes before
        ``CancelledError`` is raised: never half a write."""
        msg = Message(type, payload, priority, delay, deliver_at, headers or {}, dedup_key,
                      ttl_s, correlation_id, causation_id, traceparent, tlp, partition_key)
        return (await _publish.publish_batch(self, queue, [msg], wait_s))[0]

    async def publish_batch(self, queue: str, messages: Iterable[Message | tuple[str, Any]],
                            *, wait_s: float | None = None) -> list[str]:
        """Publish many messages in one round trip per partition, all or nothing per
        partition; returns their ids in order (``MessageQueue.publish_batch``)."""
        return await _publish.publish_batch(self, queue, messages, wait_s)

    async def publish_stream(self, queue: str,
                             messages: AsyncIterable[Message | tuple[str, Any]]
                             | Iterable[Message | tuple[str, Any]], *,
                             batch_size: int = 500) -> list[str]:
        """Publish an async (or plain) iterable in atomic batches of ``batch_size``, the
        next batch read and sealed while the previous one is written; returns every id.
        A failing batch raises ``PublishStreamError`` listing what was written."""
        return await _publish.publish_stream(self, queue, messages, batch_size)

    # -- requests -----------------------------------------------------------------------------

    async def request(self, queue: str, type: str, payload: Any, *,  # noqa: A002
                      timeout: timedelta | float | None = None,
                      result_ttl: timedelta | float | None = None,
                      **options: Any) -> AsyncPendingResult:
        """Publish a request (``MessageQueue.request``); ``await`` the returned handle for
        the handler's return value."""
        return (await self.request_batch(queue, [Message(type, payload, **options)],
                                         timeout=timeout, result_ttl=result_ttl))[0]

    async def request_batch(self, queue: str, messages: Iterable[Message | tuple[str, Any]],
                            *, timeout: timedelta | float | None = None,
                            result_ttl: timedelta | float | None = None
                            ) -> list[AsyncPendingResult]:
        """Publish many requests in one round trip per partition; one handle each."""
        qs = await _publish.settings_of(self, queue)
        check_request_queue(self.sync, queue)
        items = request_messages(messages, timeout, result_ttl)
        if _publish.needs_sync(self, qs):
            handles = await _publish.uncancellable(asyncio.to_thread(
                self.sync.request_batch, queue, items, timeout=timeout,
                result_ttl=result_ttl))
            return [AsyncPendingResult(self, h) for h in handles]
        ready = await _publish.prepare(self, queue, qs, items)
        ids = await _publish.write(self, ready, None)
        routes = ready.routes if ready.routes is not None else [queue] * len(ids)
        return [AsyncPendingResult(self, PendingResult(self.sync, queue, r, i))
                for i, r in zip(ids, routes, strict=True)]

    async def results(self, handles: Iterable[AsyncPendingResult]
                      ) -> dict[str, Result | None]:
        """The stored result of each handle now (None: none yet, or expired)."""
        return {h.id: await h.peek() for h in handles}

    # -- subscribing --------------------------------------------------------------------------

    async def subscribe(self, queue: str, type_pattern: str, handler: Any,
                        **options: Any) -> Subscription:
        """Register ``handler`` (async handlers run on this loop) for messages of ``queue``
        whose type matches ``type_pattern``; options of ``MessageQueue.subscribe``."""
        self.sync.authorize("consume", queue)
        qs = await _publish.settings_of(self, queue)  # declared off the loop the first time
        sub = Subscription.create(queue, type_pattern, handler, qs, **options)
        self._subscriptions.append(sub)
        return sub

    @property
    def subscriptions(self) -> list[Subscription]:
        """Subscriptions registered with ``subscribe`` on this connection."""
        return list(self._subscriptions)

    def worker(self, **options: Any) -> AsyncWorker:
        """An ``AsyncWorker`` running this connection's subscriptions:
        ``async with mq.worker():`` or ``await mq.worker().run()``."""
        return AsyncWorker(self, self._subscriptions, **options)

    # -- reading state ------------------------------------------------------------------------

    async def stats(self, queues: str | Iterable[str] | None = None) -> list[QueueStats]:
        """Depth per queue and state (``MessageQueue.stats``)."""
        if queues is not None and not isinstance(queues, str):
            queues = list(queues)
        return await self._off_loop(self.sync.stats, queues)

    async def health(self, queues: list[str] | None = None, window_s: float = 300.0,
                     thresholds: HealthThresholds | None = None) -> HealthReport:
        """Run the health checks (``MessageQueue.health``)."""
        return await self._off_loop(self.sync.health, queues, window_s, thresholds)

    async def dlq(self, queue: str) -> AsyncDeadLetterQueue:
        """The dead-letter queue of ``queue`` (``MessageQueue.dlq``), awaited."""
        view: DeadLetterQueue | Any = await self._off_loop(self.sync.dlq, queue)
        return AsyncDeadLetterQueue(view)

    async def pause(self, queue: str, group: str | None = None) -> None:
        """Stop consumers of ``queue`` within one fetch cycle (``MessageQueue.pause``)."""
        await self._off_loop(self.sync.pause, queue, group)

    async def resume(self, queue: str, group: str | None = None) -> None:
        """Let consumers of a paused ``queue`` fetch again."""
        await self._off_loop(self.sync.resume, queue, group)

    async def cancel(self, queue: str, message_id: str) -> str:
        """Cancel a message (``MessageQueue.cancel``)."""
        return await self._off_loop(self.sync.cancel, queue, message_id)


async def connect(url: str | None = None, **options: Any) -> AsyncMessageQueue:
    """Connect from asyncio; the arguments of ``phantom_notebook.connect`` (``settings``,
    ``origin``, ``codec``, Redis options). The server is checked at once (off the loop);
    with no URL this is the embedded Redis the synchronous API of this process shares."""
    from ..core import connect as connect_sync

    sync = await asyncio.to_thread(connect_sync, url, **options)
    client = open_async_client(sync.settings.redis) if native(sync.settings.redis) else None
    return AsyncMessageQueue(sync, client)


__all__ = ["AsyncDeadLetterQueue", "AsyncMessageQueue", "connect"]
