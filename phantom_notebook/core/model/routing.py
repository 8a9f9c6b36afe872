"""Partition routing (pure): sub-queue names, routing hashes, and a queue's ``Layout``.

A queue declared with ``partitions=N`` keeps its kind, settings and registry entry under
its own name; its messages live in N sub-queues ``<queue>#<i>`` (each its own streams,
delayed set, DLQ, metrics and trace, all under the tag ``{<queue>#<i>}``), so every
function call stays single-slot. Sub-queue tags are chosen so partition ``i`` hashes into
the ``i``-th of N equal slices of the 16384 slots: with the usual contiguous, equal slot
ranges per master the partitions land evenly on every master (``<queue>#<i>`` when it
already falls in its slice, else the first ``<queue>#<i>.<k>`` that does).

Routing: a message goes to partition ``hash(partition key) mod N``; the key defaults to
the IOC value of the payload (``payload["ioc"]["value"]`` or a string ``payload["ioc"]``),
else the message id. Messages of one key stay in one stream, so their order holds.
Repartitioning (moving messages between layouts) is ``admin/partitions.py``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from redis.crc import key_slot

from ..errors import ValidationError

SLOTS = 16384
MAX_PARTITIONS = 256
PARTITION_KEY_HEADER = "pn-pk"


def partition_names(queue: str, count: int) -> tuple[str, ...]:
    """The sub-queue names of ``queue`` split ``count`` ways (``(queue,)`` for 1)."""
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_PARTITIONS:
        raise ValidationError(f"partitions must be an integer 1..{MAX_PARTITIONS}, got {count!r}")
    if count == 1:
        return (queue,)
    names = []
    for i in range(count):
        lo, hi = i * SLOTS // count, (i + 1) * SLOTS // count
        name, k = f"{queue}#{i}", 0
        while not lo <= key_slot(name.encode()) < hi:
            k += 1
            name = f"{queue}#{i}.{k}"
        names.append(name)
    return tuple(names)


def parent_of(stored: str) -> str:
    """The queue a stored name belongs to: ``"ioc-feed"`` for ``"ioc-feed#2.7"`` (queue
    names cannot contain ``#``), the name itself when it is no partition."""
    return stored.split("#", 1)[0]


def key_hash(key: str) -> str:
    """The routing hash of a partition key (stored in the envelope, never the key itself)."""
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


def default_partition_key(payload: Any, message_id: str) -> str:
    """The IOC value of ``payload`` when it has one, else the message id."""
    if isinstance(payload, dict):
        ioc = payload.get("ioc")
        if isinstance(ioc, dict) and isinstance(ioc.get("value"), str | int):
            return str(ioc["value"])
        if isinstance(ioc, str):
            return ioc
    return message_id


@dataclass(frozen=True)
class Layout:
    """Where a queue's messages live: the partitions producers write and those draining."""

    queue: str
    count: int
    active: tuple[str, ...]
    draining: tuple[str, ...] = ()

    @property
    def partitioned(self) -> bool:
        """True when the queue has (or had) sub-queues."""
        return self.active != (self.queue,) or bool(self.draining)

    @property
    def all(self) -> tuple[str, ...]:
        """Every sub-queue holding messages: active first, then draining."""
        return self.active + tuple(p for p in self.draining if p not in self.active)

    def route(self, hashed_key: str) -> str:
        """The active partition for a hashed partition key."""
        return self.active[int(hashed_key, 16) % self.count]

    def route_header(self, header: Any) -> str:
        """The active partition of a stored message, from its clear header: its hashed
        partition key (``pn-pk``), else the hash of its id; the first partition when the
        header names neither (an undecodable entry)."""
        hdrs = header.get("h") if isinstance(header, dict) else None
        hashed = hdrs.get(PARTITION_KEY_HEADER) if isinstance(hdrs, dict) else None
        if hashed:
            return self.route(str(hashed))
        mid = header.get("id") if isinstance(header, dict) else None
        if isinstance(mid, str) and mid:
            return self.route(key_hash(mid))
        return self.active[0]

    @classmethod
    def read(cls, client: Any, queue: str, meta_key: str) -> Layout:
        """Read the layout from the parent's meta hash (unpartitioned when absent)."""
        pipe = client.pipeline(transaction=False)
        pipe.hget(meta_key, "partitions")
        pipe.hget(meta_key, "draining")
        count_raw, draining_raw = pipe.execute()
        count = int(count_raw) if count_raw else 1
        draining = tuple(p for p in (draining_raw or b"").decode().split(",") if p)
        return cls(queue, count, partition_names(queue, count), draining)



__all__ = ["MAX_PARTITIONS", "PARTITION_KEY_HEADER", "SLOTS", "Layout", "default_partition_key",
           "key_hash", "parent_of", "partition_names"]
