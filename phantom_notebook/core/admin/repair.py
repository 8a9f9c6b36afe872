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
from typing import TYPE_CHECKING

from ..audit.inline import AuditItem, record_safely
from ..backend.boundary import guarded
from ..observe.integrity import SLACK_S, StreamDamage, find_damage

if TYPE_CHECKING:
    from ..ports import Deployment


@dataclass
class RepairReport:
    """What ``repair`` did: per stream key, (entries moved, consumer groups reset)."""

    repaired: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def moved(self) -> int:
        """Entries added again (or quarantined) with fresh ids."""
        return sum(m for m, _ in self.repaired.values())


@guarded
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
        if damage.part is not None and key == mq.queue_keys(damage.part).dlq and int(moved):
            # requeued dead letters were deleted and added again: not a loss
            mq.client.hincrby(mq.queue_keys(damage.part).meta, "dlq_removed", int(moved))
        if section is None:
            record_safely(audit, AuditItem("repair", damage.queue or key,
                                           detail={**detail, "moved": int(moved)}))
    return report


__all__ = ["SLACK_S", "RepairReport", "StreamDamage", "find_damage", "repair"]
