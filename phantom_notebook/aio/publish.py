"""Publishing from asyncio: the same columns, envelopes and Redis Function as the
synchronous path (``core/publish/batch.py``), the round trip awaited on ``redis.asyncio``.

A batch is built and sealed by ``build_columns`` (CPU work, no I/O), then written with one
``FCALL`` per partition. The write is shielded from cancellation: a caller cancelled while
its batch is on the wire gets ``CancelledError`` only after every partition's call has
returned, so a cancelled publish never leaves half a batch behind (each call is atomic in
Redis; the shield makes the set of calls whole). Queues whose publish needs more than one
command on one connection (``durability`` set: ``WAIT`` after the call), pub/sub queues
(``PUBLISH``) and Cluster / Sentinel deployments run the synchronous path in a thread.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterable, Awaitable, Iterable
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any, TypeVar

import redis

from ..core.audit.inline import AuditItem
from ..core.backend.boundary import translate
from ..core.backend.connection import TRANSIENT_ERRORS
from ..core.backend.deploy import deploy, may_deploy
from ..core.backend.functions import publish_ids
from ..core.backend.keyspace import QueueKeys
from ..core.backend.records import PublishColumns
from ..core.config.settings import QueueSettings
from ..core.errors import PublishError, PublishStreamError, QueueFullError, ValidationError
from ..core.model.envelope import now_ms
from ..core.model.message import Message
from ..core.observe.metrics import RETENTION_S, metrics_key
from ..core.observe.tracing import TRACE_MAX_ENTRIES
from ..core.publish.batch import build_columns

if TYPE_CHECKING:
    from .queue import AsyncMessageQueue

T = TypeVar("T")


async def uncancellable(step: Awaitable[T]) -> T:
    """Await ``step`` to its end even when the caller is cancelled meanwhile; the
    cancellation is raised after it (its result is then dropped, its error logged by
    asyncio as retrieved)."""
    task = asyncio.ensure_future(step)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                continue
            except Exception:  # noqa: BLE001 - reported through task.exception() below
                break
        if not task.cancelled():
            task.exception()  # retrieved: the caller asked to stop, not to hear about it
        raise


@dataclass
class Prepared:
    """A batch built and sealed for one queue, not yet written."""

    queue: str
    qs: QueueSettings
    batch: PublishColumns
    routes: list[str] | None
    now: int


def check_wait(wait_s: float | None) -> None:
    """``wait_s`` must be None or a finite number of seconds >= 0."""
    if wait_s is not None and (isinstance(wait_s, bool) or not isinstance(wait_s, int | float)
                               or not 0 <= wait_s < math.inf):
        raise ValidationError(f"wait_s must be a finite number of seconds >= 0, got {wait_s!r}")


async def settings_of(amq: AsyncMessageQueue, queue: str) -> QueueSettings:
    """The settings of ``queue``: cached after the first call, declared (in a thread, it
    reads Redis) the first time."""
    mq = amq.sync
    if mq.registry.known(queue) is None:
        return await asyncio.to_thread(mq.declare, queue)
    return mq.declare(queue)  # known: no Redis


def needs_sync(amq: AsyncMessageQueue, qs: QueueSettings) -> bool:
    """True when a publish to a queue with ``qs`` takes the synchronous path (a thread)."""
    return not amq.native or qs.kind == "pubsub" or qs.durability != "none"


async def prepare(amq: AsyncMessageQueue, queue: str, qs: QueueSettings,
                  items: list[Message]) -> Prepared:
    """Build and seal ``items`` (no I/O, except reading the partition layout once a second)."""
    mq = amq.sync
    now = now_ms()
    layout = mq.registry.cached_layout(queue)
    if layout is None:
        try:
            layout = await asyncio.to_thread(mq.layout, queue)
        except TRANSIENT_ERRORS as exc:
            raise PublishError(f"publish of {len(items)} message(s) to {queue!r} was not "
                               f"confirmed ({type(exc).__name__}: {exc}); nothing was "
                               "written") from exc
    batch, routes = build_columns(mq, queue, qs, items, now,
                                  layout if layout.partitioned else None)
    return Prepared(queue, qs, batch, routes, now)


async def write(amq: AsyncMessageQueue, ready: Prepared, wait_s: float | None) -> list[str]:
    """Write a prepared batch, one call per partition, shielded from cancellation."""
    return await uncancellable(_write_routed(amq, ready, wait_s))


async def _write_routed(amq: AsyncMessageQueue, ready: Prepared,
                        wait_s: float | None) -> list[str]:
    mq, queue, batch = amq.sync, ready.queue, ready.batch
    if ready.routes is None:
        return await _write_columns(amq, queue, ready.qs, mq.queue_keys(queue), batch,
                                    ready.now, wait_s)
    ids: list[str] = [""] * len(ready.routes)
    for part in dict.fromkeys(ready.routes):
        index = [i for i, r in enumerate(ready.routes) if r == part]
        out = await _write_columns(amq, queue, ready.qs, mq.queue_keys(part),
                                   batch.select(index), ready.now, wait_s)
        for i, mid in zip(index, out, strict=True):
            ids[i] = mid
    return ids


async def _write_columns(amq: AsyncMessageQueue, queue: str, qs: QueueSettings,
                         keys: QueueKeys, batch: PublishColumns, now: int,
                         wait_s: float | None) -> list[str]:
    """``core.publish.batch.write_columns`` awaited: back off while the queue is full (up to
    ``wait_s``), the audit entry riding in the call."""
    mq = amq.sync
    deadline = time.monotonic() + (wait_s or 0)
    pause = 0.005
    while True:
        audit = mq.audit
        stream = audit.stream_of(keys) if audit is not None else ""
        section = None if audit is None else audit.section(
            stream, [AuditItem("publish", queue, message_ids=batch.ids)])
        key_list, argv = mq.functions.publish_args(
            keys, metrics_key(keys, now), batch, max_size=qs.max_queue_size,
            dedup_window_ms=int(qs.deduplication_window_s * 1000), now_ms=now,
            metrics_ttl_s=RETENTION_S if qs.enable_metrics else 0,
            trace_cap=TRACE_MAX_ENTRIES if qs.enable_tracing else 0, actor=mq.origin or "")
        try:
            reply = await fcall(amq, mq.functions.command("publish", key_list, argv, section))
        except redis.ResponseError as exc:
            if audit is not None:
                audit.failed(stream)
            # off the loop: an out-of-memory error reads INFO to say how full Redis is
            error = await asyncio.to_thread(translate, exc, mq.client, queue)
            if isinstance(error, QueueFullError) and time.monotonic() + pause <= deadline:
                await asyncio.sleep(pause)  # back-pressure: wait for consumers to make room
                pause = min(pause * 2, 0.25)
                continue
            raise error from None
        except TRANSIENT_ERRORS as exc:
            if audit is not None:
                audit.failed(stream)
            raise PublishError(
                f"publish of {len(batch.ids)} message(s) to {queue!r} was not confirmed "
                f"({type(exc).__name__}: {exc}); it may or may not have been written") from exc
        return publish_ids(batch, reply)


async def fcall(amq: AsyncMessageQueue, command: list[Any]) -> Any:
    """FCALL on the asyncio client; a library missing on the server (a restart without
    persistence) is loaded again when this client may, then the call is repeated once."""
    try:
        return await amq.client.fcall(*command)
    except redis.ResponseError as exc:
        if "Function not found" not in str(exc) or not may_deploy(
                amq.sync.functions.deploy_policy):
            raise
        await asyncio.to_thread(deploy, amq.sync.client)
        return await amq.client.fcall(*command)


async def publish_batch(amq: AsyncMessageQueue, queue: str,
                        messages: Iterable[Message | tuple[str, Any]],
                        wait_s: float | None) -> list[str]:
    """``AsyncMessageQueue.publish_batch``: all or nothing per partition; the ids in order."""
    mq = amq.sync
    mq.authorize("publish", queue)
    check_wait(wait_s)
    qs = await settings_of(amq, queue)
    items = [m if isinstance(m, Message) else Message(*m) for m in messages]
    if not items:
        return []
    if needs_sync(amq, qs):
        return await uncancellable(asyncio.to_thread(mq.publish_batch, queue, items,
                                                     wait_s=wait_s))
    return await write(amq, await prepare(amq, queue, qs, items), wait_s)


async def publish_stream(amq: AsyncMessageQueue, queue: str,
                         messages: AsyncIterable[Message | tuple[str, Any]]
                         | Iterable[Message | tuple[str, Any]],
                         batch_size: int) -> list[str]:
    """Publish an (async) iterable in atomic batches of ``batch_size``: batch k+1 is read and
    sealed while batch k is on the wire; batches are written in order. A batch that fails
    stops the stream with ``PublishStreamError`` listing every id Redis confirmed."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValidationError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    mq = amq.sync
    mq.authorize("publish", queue)
    qs = await settings_of(amq, queue)
    ids: list[str] = []
    inflight: asyncio.Task[list[str]] | None = None
    try:
        async for chunk in _chunks(messages, batch_size):
            if needs_sync(amq, qs):
                ready = None
            else:
                ready = await prepare(amq, queue, qs, chunk)  # while the previous is written
            if inflight is not None:
                ids += await inflight
                inflight = None
            if ready is None:
                ids += await publish_batch(amq, queue, chunk, None)
                continue
            inflight = asyncio.ensure_future(write(amq, ready, None))
            await asyncio.sleep(0)  # let it send its call before the next batch is built
        if inflight is not None:
            ids += await inflight
    except asyncio.CancelledError:
        if inflight is not None:
            await uncancellable(inflight)  # the batch on the wire completes; then stop
        raise
    except Exception as exc:
        if inflight is not None and not inflight.done():
            try:
                ids += await inflight
            except Exception:  # noqa: BLE001 - the first failure is the one reported
                pass
        raise PublishStreamError(
            f"publish stream to {queue!r} stopped after {len(ids)} confirmed message(s): "
            f"{type(exc).__name__}: {exc}", ids) from exc
    return ids


async def _chunks(messages: AsyncIterable[Message | tuple[str, Any]]
                  | Iterable[Message | tuple[str, Any]], size: int
                  ) -> AsyncIterable[list[Message]]:
    def norm(chunk: list[Message | tuple[str, Any]]) -> list[Message]:
        return [m if isinstance(m, Message) else Message(*m) for m in chunk]

    if isinstance(messages, AsyncIterable):
        chunk: list[Message | tuple[str, Any]] = []
        async for m in messages:
            chunk.append(m)
            if len(chunk) >= size:
                yield norm(chunk)
                chunk = []
        if chunk:
            yield norm(chunk)
        return
    it = iter(messages)
    while part := list(islice(it, size)):
        yield norm(part)


__all__ = ["fcall", "publish_batch", "publish_stream", "uncancellable"]
