"""Operator controls: pause and resume a queue, or one consumer group of it.

Pausing writes ``paused`` (or ``paused:<group>``) into the meta hash of the queue and of
every partition; the fetch function reads it in every call, so consumers stop within one
fetch cycle while producers keep publishing (nothing is refused, nothing lost); resuming
removes it and the backlog flows again. Both need ``manage`` on the queue and are audited.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..audit.inline import AuditItem, record_safely
from ..model.envelope import now_ms

if TYPE_CHECKING:
    from ..ports import Deployment


def _field(group: str | None) -> str:
    return "paused" if group is None else f"paused:{group}"


def set_paused(mq: Deployment, queue: str, paused: bool, group: str | None = None) -> None:
    """Pause (``paused=True``) or resume ``queue`` (or only consumer ``group`` of it)."""
    mq.authorize("manage", queue)
    mq.declare(queue)
    parts = [mq.queue_keys(queue)] + [mq.queue_keys(p) for p in mq.layout(queue, fresh=True).all
                                      if p != queue]
    pipe = mq.client.pipeline(transaction=False)
    for keys in parts:
        if paused:
            pipe.hset(keys.meta, _field(group), now_ms())
            # a consumer blocked on an idle queue looks again now, and sees the pause
            pipe.xadd(keys.wake, {"p": "1"}, maxlen=64, approximate=True)
        else:
            pipe.hdel(keys.meta, _field(group))
    pipe.execute()
    record_safely(mq.audit, AuditItem("pause" if paused else "resume", queue, "ok",
                                      detail={"group": group} if group else {}))


__all__ = ["set_paused"]
