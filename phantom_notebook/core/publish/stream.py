"""Bulk publishing: a long sequence of messages in atomic batches, two batches in flight.

``publish_batch`` is one atomic script call: the caller builds and seals the whole batch,
then waits while Redis runs it, so Python and Redis take turns. ``publish_stream`` sends
batch k+1 before it reads the reply to batch k, so Redis runs one batch while Python
builds the next (feed imports, STIX bundles, backfills).

Each batch keeps ``publish_batch``'s promise (all of it or none of it: a bad message or a
full queue fails its batch with nothing of it written). The stream as a whole does not:
when a batch fails, the batches before it are written, and the one batch already in flight
behind it may be too. ``PublishStreamError.published`` lists every id Redis confirmed, so
the caller knows exactly what was written; with dedup keys the rest can simply be
published again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any

import redis

from ..backend.boundary import translate
from ..backend.connection import TRANSIENT_ERRORS
from ..backend.functions import publish_ids
from ..backend.records import PublishColumns
from ..errors import PublishStreamError, ValidationError
from ..model.envelope import now_ms
from ..model.message import Message
from ..observe.metrics import RETENTION_S, metrics_key
from ..observe.tracing import TRACE_MAX_ENTRIES
from .batch import build_columns

if TYPE_CHECKING:
    from ..ports import Deployment

DEFAULT_BATCH = 500


def publish_stream(mq: Deployment, queue: str, messages: Iterable[Message | tuple[str, Any]],
                   batch_size: int = DEFAULT_BATCH) -> list[str]:
    """Publish ``messages`` to ``queue`` in atomic batches, pipelined; returns every id."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValidationError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    mq.authorize("publish", queue)
    qs = mq.declare(queue)
    chunks = _chunks(mq, messages, batch_size)
    pipelined = (isinstance(mq.client, redis.Redis) and qs.kind != "pubsub"
                 and qs.durability == "none" and mq.audit is None
                 and not mq.layout(queue).partitioned)
    if not pipelined:
        # partitions, WAIT, audit entries and pub/sub have their own paths: batch by batch
        ids: list[str] = []
        for items in chunks:
            try:
                ids += mq.publish_batch(queue, items)
            except Exception as exc:
                raise _failed(queue, ids, exc) from exc
        return ids
    return _pipelined(mq, queue, chunks)


class _Pipeline:
    """Batches of one stream sent on one connection, replies read one batch behind."""

    def __init__(self, mq: Deployment, queue: str, conn: Any) -> None:
        self.mq, self.queue, self.conn = mq, queue, conn
        self.qs = mq.declare(queue)
        self.keys = mq.queue_keys(queue)
        self.ids: list[str] = []
        self.inflight: deque[PublishColumns] = deque()
        self.failure: Exception | None = None

    def send(self, items: list[Message]) -> None:
        """Build, seal and send one batch (nothing is read)."""
        mq, qs, keys = self.mq, self.qs, self.keys
        now = now_ms()
        batch, _ = build_columns(mq, self.queue, qs, items, now, None)
        key_list, argv = mq.functions.publish_args(
            keys, metrics_key(keys, now), batch, max_size=qs.max_queue_size,
            dedup_window_ms=int(qs.deduplication_window_s * 1000), now_ms=now,
            metrics_ttl_s=RETENTION_S if qs.enable_metrics else 0,
            trace_cap=TRACE_MAX_ENTRIES if qs.enable_tracing else 0, actor=mq.origin or "")
        self.conn.send_command("FCALL", *mq.functions.command("publish", key_list, argv))
        self.inflight.append(batch)

    def take_reply(self) -> None:
        """Read the reply of the oldest batch in flight."""
        batch = self.inflight.popleft()
        try:
            self.ids.extend(publish_ids(batch, self.conn.read_response()))
        except redis.ResponseError as exc:  # the reply was read: the connection is in step
            self.failure = self.failure or translate(exc, self.mq.client, self.queue)


def _pipelined(mq: Deployment, queue: str, chunks: Iterator[list[Message]]) -> list[str]:
    pool = mq.client.connection_pool
    conn: Any = None
    line: _Pipeline | None = None
    try:
        conn = pool.get_connection()
        line = _Pipeline(mq, queue, conn)
        try:
            for items in chunks:
                line.send(items)
                if len(line.inflight) > 1:
                    line.take_reply()
                    if line.failure is not None:
                        break
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:  # a bad message: its batch was never sent
            line.failure = exc
        while line.inflight:
            line.take_reply()
    except TRANSIENT_ERRORS as exc:
        if conn is not None:
            conn.disconnect()
        done = line.ids if line is not None else []
        raise PublishStreamError(
            f"publish stream to {queue!r} lost its connection after {len(done)} confirmed "
            f"message(s) ({type(exc).__name__}: {exc}); the batches in flight may or may not "
            f"have been written", done) from exc
    finally:
        if conn is not None:
            pool.release(conn)
    if line.failure is not None:
        raise _failed(queue, line.ids, line.failure) from line.failure
    return line.ids


def _failed(queue: str, ids: list[str], exc: Exception) -> PublishStreamError:
    return PublishStreamError(
        f"publish stream to {queue!r} stopped after {len(ids)} confirmed message(s): "
        f"{type(exc).__name__}: {exc}", ids)


def _chunks(mq: Deployment, messages: Iterable[Message | tuple[str, Any]],
            size: int) -> Iterator[list[Message]]:
    it = iter(messages)
    while chunk := list(islice(it, size)):
        yield [m if isinstance(m, Message) else Message(*m) for m in chunk]
