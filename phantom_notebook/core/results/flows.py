"""Requests, groups and chains: publishing work whose results someone waits for.

* ``request``: one message whose handler's return value (or failure) is stored, sealed,
  with the queue; ``PendingResult`` waits for it.
* ``group``: members fanned out to any queues, and a callback that runs once when the
  group is decided (``on="all" | "any" | n``; ``min_success``, ``fail_fast``,
  ``ignore_failures``). The join is created (in the callback queue's slot, with the
  pre-sealed callback and a deadline message) before any member is published, so no
  member can settle before its join exists.
* ``chain``: steps run one after another, each a group of one whose callback is the
  next step (``context.previous`` is the step before's return value).

Every message of a group or chain shares one trace; members and the first step name the
group (or chain) id as their cause, and each later step its predecessor, so the trace
timeline draws the tree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..backend.records import PublishColumns
from ..errors import ValidationError
from ..model.envelope import MessagePriority, new_id, new_traceparent, now_ms, trace_id_of
from ..model.flow_headers import DEADLINE_TYPE, JOINED, MEMBER, REPLY
from ..model.message import EngineMessage, Message
from ..model.routing import key_hash
from ..observe.metrics import RETENTION_S, metrics_key
from ..observe.tracing import TRACE_MAX_ENTRIES
from ..publish.batch import build_columns, write_routed
from .join import JoinState, read_join
from .pending import PendingResult

if TYPE_CHECKING:
    from ..ports import Deployment

DEFAULT_RESULT_TTL_S = 24 * 3600.0
DEFAULT_GROUP_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class Task:
    """One unit of work in a group or chain: a message for ``queue``."""

    queue: str
    type: str
    payload: Any
    priority: MessagePriority | int | str = MessagePriority.NORMAL
    headers: dict[str, str] = field(default_factory=dict)
    tlp: str = "CLEAR"
    partition_key: str | None = None


def _seconds(value: timedelta | float | None, name: str, default: float) -> float:
    if value is None:
        return default
    s = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(s, bool) or not isinstance(s, int | float) or not 0 < s < math.inf:
        raise ValidationError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(s)


def _check_queue(mq: Deployment, queue: str) -> None:
    mq.authorize("publish", queue)
    kind = mq.declare(queue).kind
    if kind in ("broadcast", "pubsub"):
        raise ValidationError(f"requests need a work queue: {queue!r} is a {kind} queue "
                              "(every group gets each message, so no one result exists)")


def request_many(mq: Deployment, queue: str, messages: Iterable[Message | tuple[str, Any]], *,
                 timeout: timedelta | float | None = None,
                 result_ttl: timedelta | float | None = None) -> list[PendingResult]:
    """Publish many requests to ``queue`` in one round trip per partition."""
    _check_queue(mq, queue)
    ids, routes = _publish(mq, queue, request_messages(messages, timeout, result_ttl))
    return [PendingResult(mq, queue, r, i) for i, r in zip(ids, routes, strict=True)]


def request_messages(messages: Iterable[Message | tuple[str, Any]],
                     timeout: timedelta | float | None,
                     result_ttl: timedelta | float | None) -> list[Message]:
    """``messages`` as requests: the reply header (the result's time to live) set, and
    ``timeout`` (when given) as their time to live. Raises ``ValidationError`` for a
    ``timeout`` or ``result_ttl`` that is not a positive number of seconds."""
    ttl_ms = int(_seconds(result_ttl, "result_ttl", DEFAULT_RESULT_TTL_S) * 1000)
    expire = _seconds(timeout, "timeout", 1.0) if timeout is not None else None
    items: list[Message] = []
    for m in messages:
        msg = m if isinstance(m, Message) else Message(*m)
        items.append(_engine(msg, {REPLY: str(ttl_ms)}, expire))
    return items


def check_request_queue(mq: Deployment, queue: str) -> None:
    """``publish`` on ``queue`` is allowed and it is a work queue (one result exists)."""
    _check_queue(mq, queue)


def _engine(m: Message, extra: dict[str, str], ttl_s: float | None) -> EngineMessage:
    """``m`` as an engine message with the result headers ``extra`` (and ``ttl_s``, when
    given, as its time to live)."""
    return EngineMessage(m.type, m.payload, m.priority, m.delay, m.deliver_at,
                         {**m.headers, **extra}, m.dedup_key,
                         ttl_s if ttl_s is not None else m.ttl_s, m.correlation_id,
                         m.causation_id, m.traceparent, m.tlp, m.partition_key)


def _publish(mq: Deployment, queue: str, items: list[Message]) -> tuple[list[str], list[str]]:
    """Publish ``items``; their ids and the stored (partition) name each went to."""
    qs = mq.declare(queue)
    now = now_ms()
    layout = mq.layout(queue)
    cols, routes = build_columns(mq, queue, qs, items, now,
                                 layout if layout.partitioned else None)
    ids = write_routed(mq, queue, qs, cols, routes, now, None)
    return ids, routes if routes is not None else [queue] * len(ids)


def _stored_for(mq: Deployment, queue: str, partition_key: str) -> str:
    layout = mq.layout(queue)
    return layout.route(key_hash(partition_key)) if layout.partitioned else queue


@dataclass
class _Built:
    """A message sealed for its queue but not yet published."""

    queue: str
    stored: str
    id: str
    level: int
    sealed: bytes
    trace_id: str
    msg: Message


def _build(mq: Deployment, queue: str, msg: Message, now: int) -> _Built:
    qs = mq.declare(queue)
    layout = mq.layout(queue)
    cols, routes = build_columns(mq, queue, qs, [msg], now,
                                 layout if layout.partitioned else None)
    return _Built(queue, routes[0] if routes else queue, cols.ids[0], cols.levels[0],
                  cols.envelopes[0], cols.trace_ids[0], msg)


def _write(mq: Deployment, built: Sequence[_Built], now: int) -> None:
    """Publish built messages as sealed (one call per queue partition)."""
    by_queue: dict[str, list[_Built]] = {}
    for b in built:
        by_queue.setdefault(b.queue, []).append(b)
    for queue, items in by_queue.items():
        # each "published" trace event names the message's parent: the trace draws a tree
        cols = PublishColumns([b.level for b in items], [0] * len(items),
                              [None] * len(items), [b.id for b in items],
                              [b.trace_id for b in items], [b.sealed for b in items],
                              [f"parent {b.msg.causation_id}" for b in items])
        write_routed(mq, queue, mq.declare(queue), cols, [b.stored for b in items], now,
                     None)


def _rule(on: str | int, n: int, min_success: int | None, fail_fast: bool,
          ignore_failures: bool) -> tuple[str, int]:
    """(rule, successes needed) of a group's failure semantics."""
    if on == "all":
        need = 0 if ignore_failures else (n if min_success is None else min_success)
        if isinstance(need, bool) or not isinstance(need, int) or not 0 <= need <= n:
            raise ValidationError(f"min_success must be 0..{n} (the members), got {min_success!r}")
        return "all", need
    if min_success is not None or ignore_failures:
        raise ValidationError("min_success and ignore_failures go with on='all'; with "
                              "on='any' or a count the callback runs at that many successes")
    if on == "any":
        return "count", 1
    if isinstance(on, bool) or not isinstance(on, int) or not 1 <= on <= n:
        raise ValidationError(f"on must be 'all', 'any' or a count 1..{n}, got {on!r}")
    return "count", on


class GroupHandle:
    """A fanned-out group: its members' handles, its join, and its callback's result."""

    def __init__(self, mq: Deployment, group_id: str, members: list[PendingResult],
                 callback: PendingResult, join_queue: str) -> None:
        self._mq = mq
        self.id = group_id
        self.members = members
        self.callback = callback
        self._join_queue = join_queue

    def __repr__(self) -> str:
        return f"GroupHandle(id={self.id!r}, members={len(self.members)})"

    def state(self) -> JoinState:
        """The join now: status ("open", "succeeded", "failed") and each member's outcome."""
        return read_join(self._mq, self._join_queue, self.id)

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the callback's return value (``TaskFailedError`` when the group
        failed: the callback is dead-lettered as ``group_failed``, or the callback
        itself failed)."""
        return self.callback.result(timeout)


def group(mq: Deployment, members: Sequence[Task], then: Task, *, on: str | int = "all",
          min_success: int | None = None, fail_fast: bool = False,
          ignore_failures: bool = False, timeout: timedelta | float | None = None,
          result_ttl: timedelta | float | None = None,
          _cause: str | None = None, _traceparent: str | None = None) -> GroupHandle:
    """Fan ``members`` out and run ``then`` once the group is decided (see module doc)."""
    members = list(members)
    if not members or not all(isinstance(t, Task) for t in members) or not isinstance(then, Task):
        raise ValidationError("group needs one or more member Tasks and a Task to run then")
    rule, need = _rule(on, len(members), min_success, fail_fast, ignore_failures)
    for t in [*members, then]:
        _check_queue(mq, t.queue)
    ttl_s = _seconds(result_ttl, "result_ttl", DEFAULT_RESULT_TTL_S)
    limit_s = _seconds(timeout, "timeout", DEFAULT_GROUP_TIMEOUT_S)
    now = now_ms()
    gid = new_id(now)
    tp = _traceparent or new_traceparent()
    trace_id = trace_id_of(tp)
    ttl = str(int(ttl_s * 1000))
    join_queue = _stored_for(mq, then.queue, gid)
    ref = f"{join_queue}|{gid}"
    callback = _build(mq, then.queue, _task_message(
        then, {JOINED: ref, REPLY: ttl}, tp, gid, gid, partition_key=gid), now)
    built = [_build(mq, t.queue, _task_message(
        t, {MEMBER: f"{ref}|{i}", REPLY: ttl}, new_traceparent(trace_id), gid, _cause or gid),
        now) for i, t in enumerate(members)]
    deadline = now + int(limit_s * 1000)
    sentinel = _build(mq, then.queue, EngineMessage(
        DEADLINE_TYPE, {"group": gid}, priority=MessagePriority.CRITICAL,
        headers={JOINED: ref}, traceparent=tp, correlation_id=gid, causation_id=gid,
        partition_key=gid), now)
    _create_join(mq, join_queue, gid, rule, need, fail_fast, callback,
                 [b.id for b in built], deadline, sentinel, int(limit_s * 1000) + int(ttl),
                 now)
    _write(mq, built, now)
    return GroupHandle(
        mq, gid, [PendingResult(mq, b.queue, b.stored, b.id) for b in built],
        PendingResult(mq, callback.queue, callback.stored, callback.id), join_queue)


def _task_message(t: Task, extra: dict[str, str], traceparent: str, correlation: str,
                  cause: str, partition_key: str | None = None) -> EngineMessage:
    return EngineMessage(t.type, t.payload, priority=t.priority,
                         headers={**t.headers, **extra}, traceparent=traceparent,
                         correlation_id=correlation, causation_id=cause, tlp=t.tlp,
                         partition_key=partition_key if partition_key is not None
                         else t.partition_key)


def _create_join(mq: Deployment, queue: str, gid: str, rule: str, need: int,
                 fail_fast: bool, callback: _Built, member_ids: list[str], deadline: int,
                 sentinel: _Built, ttl_ms: int, now: int) -> None:
    keys = mq.queue_keys(queue)
    qs = mq.declare(callback.queue)
    item = f"{callback.id}|{callback.trace_id}|1|parent {callback.msg.causation_id}"
    mq.functions.join(
        keys, metrics_key(keys, now), "create", [keys.join(gid)],
        [ttl_ms, len(member_ids), need, rule, "1" if fail_fast else "0", callback.level,
         callback.sealed, deadline, str(sentinel.level).encode() + sentinel.sealed, item,
         *member_ids], now_ms=now, metrics_ttl_s=RETENTION_S if qs.enable_metrics else 0,
        trace_cap=TRACE_MAX_ENTRIES if qs.enable_tracing else 0, actor=mq.origin or "")


def chain(mq: Deployment, steps: Sequence[Task], *, timeout: timedelta | float | None = None,
          result_ttl: timedelta | float | None = None) -> PendingResult:
    """Run ``steps`` in order, each after the one before succeeded, passing its return
    value (``context.previous``); returns the last step's handle. A failed step stops
    the chain: the steps after it are dead-lettered as ``group_failed`` (the last
    step's result names the failure)."""
    steps = list(steps)
    if not steps or not all(isinstance(t, Task) for t in steps):
        raise ValidationError("chain needs one or more Tasks")
    for t in steps:
        _check_queue(mq, t.queue)
    ttl_s = _seconds(result_ttl, "result_ttl", DEFAULT_RESULT_TTL_S)
    limit_s = _seconds(timeout, "timeout", DEFAULT_GROUP_TIMEOUT_S)
    now = now_ms()
    cid = new_id(now)
    tp = new_traceparent()
    trace_id = trace_id_of(tp)
    ttl = str(int(ttl_s * 1000))
    joins = [new_id(now) for _ in steps[1:]]  # join i: step i settles, step i + 1 runs
    queues = [_stored_for(mq, steps[i + 1].queue, j) for i, j in enumerate(joins)]
    built: list[_Built] = []
    cause = cid
    for i, t in enumerate(steps):
        extra = {REPLY: ttl}
        if i < len(joins):
            extra[MEMBER] = f"{queues[i]}|{joins[i]}|0"
        if i > 0:
            extra[JOINED] = f"{queues[i - 1]}|{joins[i - 1]}"
        b = _build(mq, t.queue, _task_message(
            t, extra, new_traceparent(trace_id), cid, cause,
            partition_key=joins[i - 1] if i > 0 else None), now)
        built.append(b)
        cause = b.id
    deadline = now + int(limit_s * 1000)
    for i, gid in enumerate(joins):
        nxt = built[i + 1]
        sentinel = _build(mq, nxt.queue, EngineMessage(
            DEADLINE_TYPE, {"group": gid}, priority=MessagePriority.CRITICAL,
            headers={JOINED: f"{queues[i]}|{gid}"}, traceparent=tp, correlation_id=cid,
            causation_id=cid, partition_key=gid), now)
        _create_join(mq, queues[i], gid, "all", 1, False, nxt, [built[i].id], deadline,
                     sentinel, int(limit_s * 1000) + int(ttl), now)
    _write(mq, built[:1], now)
    last = built[-1]
    return PendingResult(mq, last.queue, last.stored, last.id)


__all__ = ["DEFAULT_GROUP_TIMEOUT_S", "DEFAULT_RESULT_TTL_S", "GroupHandle", "Task", "chain",
           "check_request_queue", "group", "request_many", "request_messages"]
