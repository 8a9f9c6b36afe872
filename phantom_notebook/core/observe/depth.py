"""Queue depth: how many messages are ready, in flight, delayed and dead, per queue."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..backend.keyspace import QueueKeys
from ..model.envelope import MessagePriority

if TYPE_CHECKING:
    from ..ports import Deployment


@dataclass(frozen=True)
class QueueStats:
    """The depth of one queue, split by state."""

    queue: str
    kind: str
    ready: int
    in_flight: int
    delayed: int
    dead: int
    by_priority: dict[str, int]
    #: consumers stopped fetching (``mq.pause``): the whole queue, and single groups
    paused: bool = False
    paused_groups: tuple[str, ...] = ()

    @property
    def depth(self) -> int:
        """Messages waiting or being handled (excludes dead letters)."""
        return self.ready + self.in_flight + self.delayed


def depth_of(mq: Deployment, names: list[str]) -> list[QueueStats]:
    """Depth of each stored (sub-)queue in ``names``, one pipelined round trip."""
    pipe = mq.client.pipeline(transaction=False)
    for name in names:
        keys = mq.queue_keys(name)
        pipe.hgetall(keys.meta)
        for stream in keys.streams:
            pipe.xlen(stream)
        for stream in keys.streams:
            pipe.xinfo_groups(stream)
        pipe.zcard(keys.delayed)
        pipe.xlen(keys.dlq)
    out = pipe.execute(raise_on_error=False)
    result = []
    step = 3 + 2 * len(QueueKeys("", "x").streams)
    for i, name in enumerate(names):
        row = out[i * step:(i + 1) * step]
        meta = row[0] if isinstance(row[0], dict) else {}
        kind = meta.get(b"kind", b"priority").decode()
        lengths = [_int(x) for x in row[1:5]]
        groups = [g if isinstance(g, list) else [] for g in row[5:9]]
        stats = _stats(name, kind, lengths, groups, _int(row[9]), _int(row[10]))
        paused_groups = tuple(sorted(k.decode()[7:] for k in meta
                                     if k.startswith(b"paused:")))
        result.append(dataclasses.replace(stats, paused=b"paused" in meta,
                                          paused_groups=paused_groups))
    return result


def sum_stats(name: str, rows: list[QueueStats]) -> QueueStats:
    """One row for a partitioned queue: the sum of its partitions' rows."""
    if len(rows) == 1:
        return dataclasses.replace(rows[0], queue=name)
    kinds = [r.kind for r in rows if r.kind != "priority"]
    by = {level: sum(r.by_priority.get(level, 0) for r in rows) for level in rows[0].by_priority}
    return QueueStats(name, kinds[0] if kinds else "priority", sum(r.ready for r in rows),
                      sum(r.in_flight for r in rows), sum(r.delayed for r in rows),
                      sum(r.dead for r in rows), by, any(r.paused for r in rows),
                      tuple(sorted({g for r in rows for g in r.paused_groups})))


def _stats(name: str, kind: str, lengths: list[int], groups: list[list[dict[str, Any]]],
           delayed: int, dead: int) -> QueueStats:
    levels = [p.name for p in MessagePriority]
    if kind == "broadcast":
        ready_by = [max((_int(g.get("lag")) for g in gs), default=n) for n, gs in
                    zip(lengths, groups, strict=True)]
        in_flight = sum(max((_int(g.get("pending")) for g in gs), default=0) for gs in groups)
        ready = sum(ready_by)
    else:
        in_flight = sum(sum(_int(g.get("pending")) for g in gs) for gs in groups)
        ready_by = lengths
        ready = max(sum(lengths) - in_flight, 0)
    return QueueStats(name, kind, ready, in_flight, delayed, dead,
                      dict(zip(levels, ready_by, strict=True)))


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def queue_stats(mq: Deployment, names: list[str]) -> list[QueueStats]:
    """One row per queue in ``names``; a partitioned queue's row sums its partitions."""
    parts = {name: mq.layout(name).all for name in names}
    rows = depth_of(mq, [p for name in names for p in parts[name]])
    by_part = {row.queue: row for row in rows}
    return [sum_stats(name, [by_part[p] for p in parts[name]]) for name in names]
