"""Every retention policy in one place: what each queue keeps, for how long, and who trims.

| data | policy | enforced by |
|---|---|---|
| messages | ``message_ttl_s`` (expired ones: ``expired_action``) | consumers, at delivery |
| dead letters | ``dead_letter_ttl_s`` | ``apply_retention`` (``DeadLetterQueue.trim_expired``) |
| traces | the newest ``TRACE_MAX_ENTRIES`` events per partition | every write (XADD MAXLEN ~) |
| metrics | ``RETENTION_S`` per time bucket | Redis (each bucket's TTL) |
| audit trail | ``security.audit_retention_s`` / ``audit_max_entries`` | ``apply_retention``: a
  signed checkpoint first, then XTRIM exactly at it, so ``verify_audit`` still passes |
| restore ledgers | 14 days (``restore(ledger_ttl_s=)``) | Redis (TTL) |
| backup archives | ``--keep N`` newest in ``--output-dir`` | ``phantom-notebook backup --every`` |
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..audit.maintain import trim_all
from ..observe.metrics import RETENTION_S
from ..observe.tracing import TRACE_MAX_ENTRIES
from .registry import select_queues

if TYPE_CHECKING:
    from ..queues import MessageQueue


@dataclass(frozen=True)
class RetentionPolicy:
    """The retention that applies to one queue (``None``: kept until consumed)."""

    queue: str
    message_ttl_s: float | None
    expired_action: str
    dead_letter_ttl_s: float | None
    trace_max_entries: int
    metrics_retention_s: int
    audit_retention_s: float | None
    audit_max_entries: int | None

    def describe(self) -> str:
        """One line for the CLI."""
        def age(s: float | None) -> str:
            if s is None:
                return "kept"
            return f"{s / 86400:g} d" if s >= 86400 else f"{s / 3600:g} h" if s >= 3600 \
                else f"{s:g} s"
        audit = age(self.audit_retention_s)
        if self.audit_max_entries:
            audit += f", at most {self.audit_max_entries:,} entries"
        return (f"{self.queue}: messages {age(self.message_ttl_s)} (then "
                f"{self.expired_action}), dead letters {age(self.dead_letter_ttl_s)}, traces "
                f"newest {self.trace_max_entries:,} events"
                f"{'' if self.trace_max_entries else ' (off)'}, metrics "
                f"{age(float(self.metrics_retention_s))}, audit {audit}")


def retention_policies(mq: MessageQueue, queues: str | Iterable[str] | None = None
                       ) -> list[RetentionPolicy]:
    """The retention policy of every (selected) queue."""
    sec = mq.settings.security
    out = []
    for name in select_queues(mq.queues(), queues):
        qs = mq.declare(name)
        out.append(RetentionPolicy(
            name, qs.message_ttl_s, qs.expired_action,
            qs.dead_letter_ttl_s if qs.enable_dead_letter else None,
            TRACE_MAX_ENTRIES if qs.enable_tracing else 0,
            RETENTION_S if qs.enable_metrics else 0,
            sec.audit_retention_s, sec.audit_max_entries))
    return out


def apply_retention(mq: MessageQueue, queues: str | Iterable[str] | None = None
                    ) -> dict[str, int]:
    """Trim expired dead letters of every (selected) queue and the audit trail (checkpoint
    first). Needs ``manage`` (and, for the audit trail, checkpoint rights on every stream)."""
    removed = 0
    for name in select_queues(mq.queues(), queues):
        removed += mq.dlq(name).trim_expired()
    audit = 0
    if mq.audit is not None and (mq.audit.retention_s is not None
                                 or mq.audit.max_entries is not None):
        audit = trim_all(mq.audit)
    return {"dead_letters": removed, "audit": audit}


__all__ = ["RetentionPolicy", "apply_retention", "retention_policies"]
