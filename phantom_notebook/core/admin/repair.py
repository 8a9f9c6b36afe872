"""Detect and repair what ACLs cannot prevent: streams whose last id lies in the future.

A role must hold XADD on the streams its functions write (Redis checks each command a
function runs against the caller), so it can also XADD with an explicit id of its own
choosing. ``XADD <key> 18446744073709551615-18446744073709551615 ...`` makes the stream
refuse every later append ("exhausted the last possible ID"): a queue stops taking
publishes, a DLQ stops taking dead letters, an audit stream stops taking entries. Such a
write is contained to keys the role may write; ``find_damage`` names every such stream
(health turns CRITICAL), and ``repair`` restores it with nothing lost
(``lua/repair_stream.lua``): queue data is added again with fresh ids, entries found in an
audit stream (forgeries by construction: genuine writers let Redis pick ids) are moved to
``...:audit-quarantine:<user>`` for forensics.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis

from ..audit.inline import AuditItem, record_safely
from ..audit.verify import audit_streams

if TYPE_CHECKING:
    from ..ports import Deployment

#: ids further ahead of the server clock than this are "in the future"
SLACK_S = 3600.0


@dataclass(frozen=True)
class StreamDamage:
    """One stream whose last id lies in the future."""

    key: str
    queue: str | None
    #: the (sub-)queue whose hash tag the key carries (None: a global audit stream)
    part: str | None
    last_id: str
    ahead_s: float
    entries: int

    @property
    def exhausted(self) -> bool:
        """True when the stream refuses every new entry (its last id is the maximum)."""
        return self.last_id.startswith("18446744073709551615-")


@dataclass
class RepairReport:
    """What ``repair`` did: per stream key, (entries moved, consumer groups reset)."""

    repaired: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def moved(self) -> int:
        """Entries added again (or quarantined) with fresh ids."""
        return sum(m for m, _ in self.repaired.values())


def stream_keys(mq: Deployment, queues: Iterable[str] | None = None
                ) -> list[tuple[str | None, str | None, str]]:
    """(queue, sub-queue, key) of every stream of ``queues`` (all), including each
    sub-queue's audit streams, and every global audit stream (queue None)."""
    out: list[tuple[str | None, str | None, str]] = []
    names = list(queues if queues is not None else mq.queues())
    parts: dict[str, tuple[str, str]] = {}
    for queue in names:
        for part in mq.layout(queue).all:
            keys = mq.queue_keys(part)
            parts[keys.base] = (queue, part)
            out += [(queue, part, k) for k in (*keys.streams, keys.dlq, keys.trace)]
    for key in audit_streams(mq.client, mq.keys.audit_patterns):
        base = key.rsplit(":audit:", 1)[0]
        if base in parts:
            out.append((*parts[base], key))
        elif base == mq.keys.prefix:
            out.append((None, None, key))
    return out


def find_damage(mq: Deployment, queues: Iterable[str] | None = None,
                slack_s: float = SLACK_S) -> list[StreamDamage]:
    """Every stream whose last generated id is more than ``slack_s`` ahead of Redis' clock.

    Needs ``XINFO STREAM`` (operators and admins; it shows entries, so stats-only roles do
    not hold it): raises ``redis.exceptions.NoPermissionError`` otherwise.
    """
    targets = stream_keys(mq, queues)
    sec, usec = mq.client.time()
    now_ms = int(sec) * 1000 + int(usec) // 1000
    pipe = mq.client.pipeline(transaction=False)
    for _, _, key in targets:
        pipe.xinfo_stream(key)
    damaged = []
    for (queue, part, key), info in zip(targets, pipe.execute(raise_on_error=False),
                                        strict=True):
        if isinstance(info, redis.exceptions.NoPermissionError):
            raise info
        if isinstance(info, Exception) or not isinstance(info, dict):
            continue  # no such key
        last = _text(info.get("last-generated-id", "0-0"))
        ms = int(last.split("-", 1)[0] or 0)
        if ms - now_ms > slack_s * 1000:
            damaged.append(StreamDamage(key, queue, part, last, (ms - now_ms) / 1000,
                                        int(info.get("length", 0))))
    return damaged


def repair(mq: Deployment, queues: Iterable[str] | None = None,
           slack_s: float = SLACK_S) -> RepairReport:
    """Repair every damaged stream of ``queues`` (all) and the audit trail; nothing lost."""
    report = RepairReport()
    audit = mq.audit
    for damage in find_damage(mq, queues, slack_s):
        key = damage.key
        is_audit = ":audit:" in key
        aside = key.replace(":audit:", ":audit-quarantine:") if is_audit else key
        detail = {"stream": key, "last_id": damage.last_id}
        # the repair is audited in this user's stream of the same slot, in the same call
        # (unless that is the damaged stream itself); else in its global stream
        mine = audit.stream_of(mq.queue_keys(damage.part)) \
            if audit is not None and damage.part is not None else None
        section = audit.section(mine, [AuditItem("repair", damage.queue or key,
                                                 detail=detail)]) \
            if audit is not None and mine is not None and mine != key else None
        moved, reset = mq.functions.call(
            "repair_stream", [key, aside],
            [int(slack_s * 1000), "quarantine" if is_audit else "requeue"], audit=section)
        report.repaired[key] = (int(moved), int(reset))
        if section is None:
            record_safely(audit, AuditItem("repair", damage.queue or key,
                                           detail={**detail, "moved": int(moved)}))
    return report


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["SLACK_S", "RepairReport", "StreamDamage", "find_damage", "repair", "stream_keys"]
