"""Repartitioning a queue, and the dead letters of a partitioned queue as one view.

Partition names, routing and the ``Layout`` are pure and live in ``model/routing.py``.
Envelopes keep the parent queue name (handlers see ``ioc-processing``), so a message can
move between partitions without being re-sealed.

The layout lives in the parent's ``meta`` hash: ``partitions`` (N) and ``draining`` (older
sub-queues still consumed after a repartition). ``repartition()`` switches producers to a
new layout and moves not-yet-delivered entries out of the old partitions; whatever it
cannot move (in flight, delayed, published by a producer still on the old layout) is
consumed where it is: workers keep a lane on every draining partition.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from ..backend.boundary import public
from ..backend.records import AckRecord, PublishColumns, Settlement
from ..consume.subscription import DEFAULT_GROUP
from ..errors import ValidationError
from ..model.codec import peek_header
from ..model.envelope import now_ms
from ..model.routing import Layout, partition_names
from ..observe.metrics import metrics_key
from .dlq import DeadLetter, DeadLetterNotFoundError, DeadLetterQueue

if TYPE_CHECKING:
    from ..ports import Deployment


@dataclass(frozen=True)
class RepartitionReport:
    """What ``repartition`` did."""

    queue: str
    old: Layout
    new: Layout
    moved: int
    left_to_drain: int


def repartition(mq: Deployment, queue: str, count: int, *, move: bool = True,
                batch: int = 500) -> RepartitionReport:
    """Change the partition count of ``queue`` without losing a message.

    1. The new sub-queues get the consumer groups of the old ones; the parent's meta
       switches producers to the new layout (they re-read it within a second) and
       lists the old partitions as draining, which workers keep consuming.
    2. With ``move`` (not for broadcast queues), entries no consumer has received yet are
       taken from each old partition as the group's consumer ``pn-repartition``, published
       into the partition their key routes to, then acked and deleted: a crash in between
       leaves them pending, so they are reclaimed and delivered (at least once, never lost).
    """
    qs = mq.declare(queue)
    if qs.kind == "pubsub":
        raise ValidationError("a pub/sub queue has nothing stored to partition")
    meta = mq.queue_keys(queue).meta
    old = Layout.read(mq.client, queue, meta)
    new_active = partition_names(queue, count)
    draining = tuple(p for p in old.all if p not in new_active)
    groups = _groups(mq, old.all) or ({DEFAULT_GROUP} if qs.kind != "broadcast" else set())
    for part in new_active:
        keys = mq.queue_keys(part)
        for group in groups:
            for stream in keys.streams:
                _create_group(mq, stream, group)
    mq.client.hset(meta, mapping={"partitions": count, "draining": ",".join(draining)})
    new = Layout(queue, count, new_active, draining)
    mq.forget_layout(queue)
    moved = 0
    if move and qs.kind != "broadcast" and len(groups) == 1:
        group = next(iter(groups))
        for part in draining:
            moved += _move_out(mq, queue, part, new, group, batch)
    left = sum(s.depth for s in mq.stats_of_partitions(draining)) if draining else 0
    return RepartitionReport(queue, old, new, moved, left)


def _groups(mq: Deployment, parts: tuple[str, ...]) -> set[str]:
    pipe = mq.client.pipeline(transaction=False)
    for part in parts:
        for stream in mq.queue_keys(part).streams:
            pipe.xinfo_groups(stream)
    out: set[str] = set()
    for reply in pipe.execute(raise_on_error=False):
        if isinstance(reply, list):
            for g in reply:
                name = g.get("name")
                out.add(name.decode() if isinstance(name, bytes) else str(name))
    return out


def _create_group(mq: Deployment, stream: str, group: str) -> None:
    try:
        mq.client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _move_out(mq: Deployment, queue: str, part: str, new: Layout, group: str,
              batch: int) -> int:
    keys = mq.queue_keys(part)
    consumer = "pn-repartition"
    moved = 0
    while True:
        reply = mq.client.xreadgroup(group, consumer, {s: ">" for s in keys.streams},
                                     count=batch)
        if not reply:
            return moved
        targets: dict[str, list[tuple[int, int, str | None, str, str, bytes]]] = {}
        settlement = Settlement.empty()
        for stream, entries in reply:
            name = stream.decode() if isinstance(stream, bytes) else stream
            level = keys.streams.index(name)
            for sid, fields in entries:
                raw = fields.get(b"m")
                if not isinstance(raw, bytes):
                    continue  # no envelope: left pending, a worker reclaims and DLQs it
                header = peek_header(raw)
                mid = str(header.get("id", ""))
                target = new.route_header(header)
                targets.setdefault(target, []).append((level, 0, None, mid, "", raw))
                sid_text = sid.decode() if isinstance(sid, bytes) else str(sid)
                settlement.acks.append(AckRecord(level, sid_text))
        now = now_ms()
        for target, rows in targets.items():
            tkeys = mq.queue_keys(target)
            mq.functions.publish(tkeys, metrics_key(tkeys, now), PublishColumns.from_rows(rows),
                                 max_size=None, dedup_window_ms=1, now_ms=now, metrics_ttl_s=0)
        mq.functions.settle(keys, metrics_key(keys, now), settlement, group=group, delete=True,
                            now_ms=now, metrics_ttl_s=0)
        moved += len(settlement.acks)


@public
class PartitionedDeadLetterQueue:
    """The dead letters of every partition of a queue, as one view.

    Counting, listing (merged newest first), summaries, replay, purge and trimming span
    every partition; a replayed letter goes back into the partition it died in.
    """

    def __init__(self, mq: Deployment, queue: str, parts: tuple[str, ...]) -> None:
        self.mq = mq
        self.queue = queue
        self.parts: list[DeadLetterQueue] = []
        for part in parts:
            d = DeadLetterQueue(mq, queue)
            d.keys = mq.queue_keys(part)
            d.key = d.keys.dlq
            self.parts.append(d)

    def __repr__(self) -> str:
        return f"PartitionedDeadLetterQueue({self.queue!r}, partitions={len(self.parts)})"

    def __len__(self) -> int:
        return sum(len(d) for d in self.parts)

    def list(self, *, limit: int | None = 100, newest_first: bool = True,
             **filters: Any) -> list[DeadLetter]:
        """Dead letters of every partition matching ``filters``, merged by time."""
        per = [d.list(limit=limit, newest_first=newest_first, **filters) for d in self.parts]
        merged: Iterator[DeadLetter] = heapq.merge(
            *per, key=lambda x: _order(x.dlq_id), reverse=newest_first)
        out = list(merged)
        return out if limit is None else out[:limit]

    def count(self, **filters: Any) -> int:
        """How many dead letters match, over every partition."""
        return sum(d.count(**filters) for d in self.parts)

    def get(self, dlq_or_message_id: str) -> DeadLetter:
        """One dead letter by DLQ entry id or message id, from whichever partition has it."""
        for d in self.parts:
            try:
                return d.get(dlq_or_message_id)
            except DeadLetterNotFoundError:
                continue
        raise DeadLetterNotFoundError(f"no dead letter {dlq_or_message_id!r} in queue "
                                      f"{self.queue!r}")

    def summary(self) -> dict[str, int]:
        """Dead letters per reason, summed over partitions."""
        out: dict[str, int] = {}
        for d in self.parts:
            for reason, n in d.summary().items():
                out[reason] = out.get(reason, 0) + n
        return out

    def replay(self, ids: Any = None, **options: Any) -> Any:
        """Replay in every partition (ids are looked up where they live); returns the sum."""
        return self._each("replay", ids, **options)

    def purge(self, ids: Any = None, **options: Any) -> Any:
        """Purge in every partition; returns the sum."""
        return self._each("purge", ids, **options)

    def trim_expired(self, now_ms: int | None = None) -> int:
        """Drop dead letters past their retention in every partition."""
        return sum(d.trim_expired(now_ms) for d in self.parts)

    def _each(self, action: str, ids: Any, **options: Any) -> Any:
        if ids is None:
            results = [getattr(d, action)(None, **options) for d in self.parts if len(d)]
        else:
            wanted = [ids] if isinstance(ids, str) else list(ids)
            results = []
            for d in self.parts:
                mine = []
                for i in wanted:
                    try:
                        d.get(i)
                        mine.append(i)
                    except DeadLetterNotFoundError:
                        continue
                if mine:
                    results.append(getattr(d, action)(mine, **options))
        if all(isinstance(r, int) for r in results):
            return sum(results)
        return results


def _order(dlq_id: str) -> tuple[int, int]:
    ms, _, seq = dlq_id.partition("-")
    return int(ms or 0), int(seq or 0)
