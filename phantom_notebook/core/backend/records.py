"""What travels to and from the server-side functions: deliveries, settlements, publish batches.

Named tuples on the hot paths (hundreds are built per batch: ~0.2 us each against ~0.9 us
for a frozen dataclass), so every record is read by name, never by position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from ..model.limits import FlowControl


class Delivery(NamedTuple):
    """One stream entry handed to a lane: where it lives and how often it was delivered.

    ``raw`` is the envelope bytes; an entry that carries no envelope field (a raw write
    that did not come from ``publish``) has ``raw == b""`` and its whole field list in
    ``fields``, so the lane can dead-letter it as ``decode_failed`` with what it held.
    """

    level: int
    stream_id: str
    raw: bytes
    delivery_count: int
    fields: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class FetchResult:
    """What ``fetch`` returned: deliveries, the next delayed due time, dead-lettered count."""

    deliveries: list[Delivery]
    next_due_ms: int | None
    dead_lettered: int
    #: with ``probe``: (level, undelivered entries) in priority order, for direct reads
    probed: list[tuple[int, int]] = field(default_factory=list)
    #: why nothing was granted: 0 not throttled, 1 paused, 2 rate limited, 3 at the
    #: global concurrency limit; ``wait_ms`` until the limiter grants again
    throttle: int = 0
    wait_ms: int = 0
    #: deliveries the flow control allowed (-1: not reported); caps the direct reads
    granted: int = -1
    #: requests and group members dead-lettered by the fetch (over max deliveries): the
    #: lane stores their failure so their waiters and joins learn of it
    dead_requests: tuple[bytes, ...] = ()


class AckRecord(NamedTuple):
    """A delivery to acknowledge (and delete, on queues that delete what they settle)."""

    level: int
    stream_id: str


class RetryRecord(NamedTuple):
    """A delivery to re-schedule: acked, and its new envelope due at ``due_ms``."""

    level: int
    stream_id: str
    due_ms: int
    envelope: bytes


class DeadRecord(NamedTuple):
    """A delivery to dead-letter: acked, and its envelope written to the DLQ with why."""

    level: int
    stream_id: str
    envelope: bytes
    reason: str
    error_type: str
    error: str
    traceback: str
    attempts: int
    consumer: str
    first_failure_ms: int


class ResultRecord(NamedTuple):
    """A request's result, stored in the settle call that acks (``mode`` "a") or
    dead-letters (``mode`` "d") its entry."""

    mode: str
    level: int
    stream_id: str
    message_id: str
    sealed: bytes
    ttl_ms: int
    state: str  # "done" or "failed"


class JoinRecord(NamedTuple):
    """A group member's final outcome, recorded in its group's join (``join.lua``) before
    the member's entry is settled."""

    queue: str  # the stored (partition) name of the callback queue holding the join
    group_id: str
    member: int  # the member's index in its group
    message_id: str
    state: str  # "ok" or "failed"
    sealed: bytes


@dataclass
class Settlement:
    """A batch of outcomes to write in one ``settle`` call, plus its metrics and traces."""

    acks: list[AckRecord]
    retries: list[RetryRecord]
    dead: list[DeadRecord]
    counters: dict[str, int]
    trace: dict[str, list[str]] = field(default_factory=dict)
    #: seen fields ("<id>:<attempt>") of deliveries handed back untouched (see claim.lua)
    unclaims: list[str] = field(default_factory=list)
    #: requests' results stored with their ack (or dead letter)
    results: list[ResultRecord] = field(default_factory=list)
    #: group members' outcomes, recorded in their joins before this batch is settled
    joins: list[JoinRecord] = field(default_factory=list)

    @classmethod
    def empty(cls) -> Settlement:
        """A settlement with nothing in it."""
        return cls([], [], [], {})

    def count(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to a metric counter of this batch."""
        self.counters[name] = self.counters.get(name, 0) + amount

    def event(self, name: str, item: str) -> None:
        """Add a trace item to the batch's ``name`` event."""
        self.trace.setdefault(name, []).append(item)

    def absorb(self, other: Settlement) -> None:
        """Put ``other`` (a batch that failed to write) in front of this one."""
        self.acks[:0] = other.acks
        self.retries[:0] = other.retries
        self.dead[:0] = other.dead
        for name, amount in other.counters.items():
            self.count(name, amount)
        for name, items in other.trace.items():
            self.trace.setdefault(name, [])[:0] = items
        self.unclaims[:0] = other.unclaims
        self.results[:0] = other.results
        self.joins[:0] = other.joins

    def __bool__(self) -> bool:
        return bool(self.acks or self.retries or self.dead or self.counters or self.trace
                    or self.unclaims or self.results or self.joins)

    def __len__(self) -> int:
        return len(self.acks) + len(self.retries) + len(self.dead) + \
            sum(1 for r in self.results if r.mode == "a")


@dataclass
class PublishColumns:
    """A publish batch as columns, one entry per message (see ``Functions.publish``)."""

    levels: list[int]
    dues: list[int]
    dedups: list[str | None]
    ids: list[str]
    trace_ids: list[str]
    envelopes: list[bytes]
    #: per message the detail appended to its published trace item ("" = none): the blind
    #: indicator tags of ``observe/indicators.py``; None when no message of the batch has one
    tags: list[str] | None = None

    @classmethod
    def from_rows(cls, rows: list[tuple[int, int, str | None, str, str, bytes]]
                  ) -> PublishColumns:
        """Columns of ``(level, due_ms, dedup_key, id, trace_id, envelope)`` rows."""
        return cls([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                   [r[3] for r in rows], [r[4] for r in rows], [r[5] for r in rows])

    def select(self, index: list[int]) -> PublishColumns:
        """The messages at ``index``, in that order."""
        tags = self.tags
        return PublishColumns([self.levels[i] for i in index], [self.dues[i] for i in index],
                              [self.dedups[i] for i in index], [self.ids[i] for i in index],
                              [self.trace_ids[i] for i in index],
                              [self.envelopes[i] for i in index],
                              None if tags is None else [tags[i] for i in index])


__all__ = ["AckRecord", "DeadRecord", "Delivery", "FetchResult", "FlowControl", "JoinRecord",
           "PublishColumns", "ResultRecord", "RetryRecord", "Settlement"]
