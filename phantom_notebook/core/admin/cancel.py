"""Cancel a message by id: removed when it waits (ready, delayed, retrying), asked to stop
when it is in flight (``context.cancelled``), and recorded as cancelled in the trace, the
metrics and the audit trail. Needs ``manage`` on the queue.

Finding the message reads the queue: first the stream entries around the time its id was
minted (UUIDv7), then every stream entry and delayed member, 1,000 at a time — an
operator's action, O(queue length) when the message is not near its publish time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..audit.inline import AuditItem, record_safely
from ..model.codec import peek_header
from ..model.envelope import now_ms
from ..observe.metrics import RETENTION_S, metrics_key
from ..observe.tracing import TRACE_MAX_ENTRIES

if TYPE_CHECKING:
    from ..ports import Deployment

PAGE = 1000
FLAG_TTL_MS = 24 * 3600 * 1000
_OUTCOME = {1: "cancelled", 2: "cancelling", 0: "not_found"}


def cancel(mq: Deployment, queue: str, message_id: str) -> str:
    """``"cancelled"`` (it was waiting and is gone), ``"cancelling"`` (in flight: its
    handler sees ``context.cancelled``), or ``"not_found"``."""
    mq.authorize("manage", queue)
    qs = mq.declare(queue)
    outcome = "not_found"
    for part, kind, level, what, header in _find(mq, queue, message_id):
        keys = mq.queue_keys(part)
        now = now_ms()
        tp = str(header.get("tp", ""))
        trace_id = tp.split("-")[1] if tp.count("-") >= 2 else ""
        reply = mq.functions.call("cancel", [
            *keys.streams, keys.delayed, metrics_key(keys, now), keys.trace, keys.cancels], [
            kind, level, what, message_id, f"{message_id}|{trace_id}|{header.get('a', 1)}|",
            RETENTION_S if qs.enable_metrics else 0,
            TRACE_MAX_ENTRIES if qs.enable_tracing else 0, mq.user, FLAG_TTL_MS, now])
        outcome = _OUTCOME[int(reply)]
        if outcome != "not_found":
            break
    record_safely(mq.audit, AuditItem("cancel", queue, outcome, message_ids=[message_id]))
    return outcome


def _find(mq: Deployment, queue: str, message_id: str
          ) -> Iterator[tuple[str, str, int, Any, dict[str, Any]]]:
    """(partition, "s" | "d", level, stream id | delayed member, header) of the message:
    stream entries near its mint time first, then every entry, then the delayed sets."""
    minted = _minted_ms(message_id)
    parts = mq.layout(queue).all
    if minted is not None:
        for part in parts:
            yield from _in_streams(mq, part, message_id, f"{minted - 1000}-0",
                                   f"{minted + 5000}-0")
    for part in parts:
        yield from _in_streams(mq, part, message_id, "-", "+")
        yield from _in_delayed(mq, part, message_id)


def _in_streams(mq: Deployment, part: str, message_id: str, lo: str, hi: str
                ) -> Iterator[tuple[str, str, int, Any, dict[str, Any]]]:
    for level, stream in enumerate(mq.queue_keys(part).streams):
        start = lo
        while True:
            page = mq.client.xrange(stream, start, hi, count=PAGE)
            for sid, fields in page:
                header = peek_header(fields.get(b"m", b""))
                if header.get("id") == message_id:
                    yield part, "s", level, sid, header
            if len(page) < PAGE:
                break
            start = "(" + page[-1][0].decode()


def _in_delayed(mq: Deployment, part: str, message_id: str
                ) -> Iterator[tuple[str, str, int, Any, dict[str, Any]]]:
    key, at = mq.queue_keys(part).delayed, 0
    while True:
        members = mq.client.zrange(key, at, at + PAGE - 1)
        for member in members:
            header = peek_header(member[1:])
            if header.get("id") == message_id:
                yield part, "d", int(member[:1]), member, header
        if len(members) < PAGE:
            return
        at += PAGE


def _minted_ms(message_id: str) -> int | None:
    """The millisecond a UUIDv7 id was minted (its first 48 bits), else None."""
    digits = message_id.replace("-", "")
    if len(digits) != 32 or digits[12] != "7":
        return None
    try:
        return int(digits[:12], 16)
    except ValueError:
        return None


__all__ = ["cancel"]
