"""Schedules in Redis: add, find, list, pause, resume and remove them; fire one tick.

Where things live (``backend/keyspace.py``)::

    <prefix>:{<queue>}:sched   hash  name -> JSON spec (spec.py), in the queue's own slot
    <prefix>:{<part>}:fired    hash  name -> last tick fired (epoch ms), in the slot of the
                                     partition the schedule's messages go to (the queue
                                     itself unless it is partitioned)

Changing a schedule needs ``manage`` on its queue (client side: ``mq.authorize``; server
side: only managers hold write commands on ``{<queue>}:*``); listing needs ``stats``.
Each change is audited with ``record_safely`` in the user's global audit stream; each
fired tick is audited inside the ``pn1_fire`` call that writes its message.

Names are unique per deployment as far as the caller can see: adding a name that already
fires into another readable queue is refused, so ``unschedule(name)`` finds one schedule.
Adding a name that exists on the same queue replaces its spec (an application may declare
its schedules at every start): the fire state, the creation time and a pause are kept,
and a changed timing counts its ticks from the change.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import redis

from ..audit.inline import AuditItem, record_safely
from ..backend.boundary import translate
from ..backend.durability import check_waited, durable_node, wait_command
from ..errors import DecodeError, ValidationError
from ..model.envelope import MessagePriority, now_ms, trace_id_of
from ..model.message import TOOLKIT_HEADERS, Message
from ..model.routing import PARTITION_KEY_HEADER, key_hash
from ..observe.metrics import RETENTION_S, metrics_key
from ..observe.tracing import TRACE_MAX_ENTRIES, clean, item
from ..publish.batch import new_envelope
from .spec import (
    DEFAULT_GRACE_MS,
    NAME_HEADER,
    TICK_HEADER,
    Schedule,
    ScheduleSpec,
    check_catch_up,
    check_name,
)
from .timing import Timing, duration_ms

if TYPE_CHECKING:
    from ..ports import Deployment

log = logging.getLogger("phantom_notebook.schedule")

#: next fire times a listing shows per schedule
SHOWN_NEXT = 3


@dataclass(frozen=True)
class FireResult:
    """What one ``pn1_fire`` call did: ``fired`` (this call wrote the message) and the
    newest tick fired of the schedule (this one, or the one another scheduler fired)."""

    fired: bool
    last_ms: int
    message_id: str | None = None


# -- changes ---------------------------------------------------------------------------------

def add_schedule(mq: Deployment, name: str, queue: str, type_: str, payload: Any, *,
                 cron: str | None = None, every: timedelta | float | str | None = None,
                 tz: str | None = None, jitter: timedelta | float | str | None = None,
                 catch_up: str = "none", grace: timedelta | float | str | None = None,
                 priority: MessagePriority | int | str = MessagePriority.NORMAL,
                 headers: Mapping[str, str] | None = None, tlp: str = "CLEAR",
                 ttl_s: float | None = None) -> Schedule:
    """``MessageQueue.schedule``: store (or replace) a schedule; returns its view."""
    check_name(name)
    check_catch_up(catch_up)
    if "#" in queue:
        raise ValidationError(f"schedule into the queue, not its partition {queue!r}")
    mq.authorize("manage", queue)
    timing = Timing.of(cron, every, tz, jitter)
    grace_ms = DEFAULT_GRACE_MS if grace is None else duration_ms(grace, "grace")
    qs = mq.declare(queue)
    if qs.kind == "pubsub":
        raise ValidationError(f"{queue!r} is a pub/sub queue, which stores nothing: a tick "
                              "could not be claimed once; schedule into a stored queue")
    now = now_ms()
    env, _ = new_envelope(mq.origin, queue, qs, Message(
        type_, payload, priority, headers=dict(headers or {}), tlp=tlp, ttl_s=ttl_s), now)
    template = mq.codec.seal(env, qs.max_payload_bytes)
    found = find(mq, name)
    elsewhere = sorted(q for q in found if q != queue)
    if elsewhere:
        raise ValidationError(f"schedule {name!r} already fires into {elsewhere[0]!r}: "
                              f"remove it first (unschedule)")
    old = found.get(queue)
    spec = ScheduleSpec(
        name, queue, timing, template, catch_up, grace_ms, ttl_s,
        paused=old.paused if old else False,
        created_ms=old.created_ms if old else now,
        since_ms=old.since_ms if old and old.timing == timing else now,
        by=mq.origin or mq.user)
    mq.client.hset(mq.queue_keys(queue).schedules, name, spec.to_json())
    record_safely(mq.audit, AuditItem(
        "schedule_update" if old else "schedule_add", queue,
        detail={"schedule": name, "spec": timing.spec, "catch_up": catch_up,
                "type": spec.type}))
    return view(mq, [spec])[0]


def remove_schedule(mq: Deployment, name: str, queue: str | None = None) -> bool:
    """``MessageQueue.unschedule``: True when a schedule was removed, False when none
    by that name is visible."""
    spec = _one(mq, name, queue, missing_ok=True)
    if spec is None:
        return False
    mq.authorize("manage", spec.queue)
    pipe = mq.client.pipeline(transaction=False)
    pipe.hdel(mq.queue_keys(spec.queue).schedules, name)
    for part in _stored(mq, spec.queue):
        pipe.hdel(mq.queue_keys(part).fired, name)
    removed = pipe.execute()[0]
    record_safely(mq.audit, AuditItem("schedule_remove", spec.queue,
                                      detail={"schedule": name, "spec": spec.timing.spec}))
    return bool(removed)


def set_paused(mq: Deployment, name: str, paused: bool, queue: str | None = None) -> Schedule:
    """Pause or resume a schedule; returns its view. Ticks that fall due while a schedule
    is paused never fire, whatever its ``catch_up`` (resuming counts ticks from now)."""
    spec = _one(mq, name, queue)
    assert spec is not None
    mq.authorize("manage", spec.queue)
    if spec.paused != paused:
        spec = spec.with_changes(paused=paused,
                                 since_ms=spec.since_ms if paused else now_ms())
        mq.client.hset(mq.queue_keys(spec.queue).schedules, name, spec.to_json())
    record_safely(mq.audit, AuditItem("schedule_pause" if paused else "schedule_resume",
                                      spec.queue, detail={"schedule": name}))
    return view(mq, [spec])[0]


# -- reading ---------------------------------------------------------------------------------

def readable(mq: Deployment, queues: Iterable[str] | None = None) -> list[str]:
    """The declared queues (of ``queues``) whose schedules this connection may read."""
    names = list(queues) if queues is not None else mq.queues()
    if mq.role is None:
        return names
    return [q for q in names if mq.access.allows(mq.role, "stats", q)]


def load_specs(mq: Deployment, queues: Iterable[str]) -> list[ScheduleSpec]:
    """Every valid spec stored for ``queues`` (one round trip; a queue Redis refuses to
    show, or a spec that does not parse, is logged and left out)."""
    names = list(queues)
    pipe = mq.client.pipeline(transaction=False)
    for q in names:
        pipe.hgetall(mq.queue_keys(q).schedules)
    out: list[ScheduleSpec] = []
    for q, stored in zip(names, pipe.execute(raise_on_error=False), strict=True):
        if isinstance(stored, BaseException):
            log.debug("schedules of %r are not readable: %s", q, stored)
            continue
        for field, raw in sorted(stored.items()):
            name = field.decode() if isinstance(field, bytes) else str(field)
            try:
                out.append(ScheduleSpec.from_json(name, q, raw))
            except ValidationError as exc:
                log.warning("%s: skipped", exc)
    return out


def find(mq: Deployment, name: str) -> dict[str, ScheduleSpec]:
    """The schedules called ``name`` on every readable queue, by queue."""
    queues = readable(mq)
    pipe = mq.client.pipeline(transaction=False)
    for q in queues:
        pipe.hget(mq.queue_keys(q).schedules, name)
    found: dict[str, ScheduleSpec] = {}
    for q, raw in zip(queues, pipe.execute(raise_on_error=False), strict=True):
        if raw is not None and not isinstance(raw, BaseException):
            try:
                found[q] = ScheduleSpec.from_json(name, q, raw)
            except ValidationError as exc:
                log.warning("%s: skipped", exc)
    return found


def _one(mq: Deployment, name: str, queue: str | None, *,
         missing_ok: bool = False) -> ScheduleSpec | None:
    check_name(name)
    if queue is not None:
        mq.authorize("manage", queue)
        raw = mq.client.hget(mq.queue_keys(queue).schedules, name)
        found = {queue: ScheduleSpec.from_json(name, queue, raw)} if raw is not None else {}
    else:
        found = find(mq, name)
    if len(found) > 1:
        raise ValidationError(f"schedule {name!r} exists on queues {', '.join(sorted(found))}:"
                              " name the queue")
    if not found:
        if missing_ok:
            return None
        raise ValidationError(f"no schedule named {name!r}"
                              + (f" on queue {queue!r}" if queue else ""))
    return next(iter(found.values()))


def _stored(mq: Deployment, queue: str) -> tuple[str, ...]:
    """The queue and its partitions (active and draining): the fired hashes that may hold
    the ticks of its schedules."""
    layout = mq.layout(queue)
    return (queue, *layout.all) if layout.partitioned else (queue,)


def last_fired(mq: Deployment, specs: list[ScheduleSpec]) -> list[int]:
    """The newest tick each schedule fired (0 = never), across the queue's partitions."""
    pipe = mq.client.pipeline(transaction=False)
    counts = []
    for spec in specs:
        parts = _stored(mq, spec.queue)
        counts.append(len(parts))
        for part in parts:
            pipe.hget(mq.queue_keys(part).fired, spec.name)
    replies = iter(pipe.execute(raise_on_error=False))
    out = []
    for n in counts:
        values = [next(replies) for _ in range(n)]
        out.append(max([int(v) for v in values
                        if v is not None and not isinstance(v, BaseException)] or [0]))
    return out


def view(mq: Deployment, specs: list[ScheduleSpec], at_ms: int | None = None) -> list[Schedule]:
    """The views of ``specs``: last fired and the next ``SHOWN_NEXT`` fire times."""
    now = now_ms() if at_ms is None else at_ms
    out = []
    for spec, last in zip(specs, last_fired(mq, specs), strict=True):
        nexts: tuple[int, ...] = ()
        if not spec.paused:
            ticks = spec.timing.after(max(now - spec.timing.jitter_ms, spec.since_ms, last))
            due = (spec.timing.due(spec.name, t) for t in ticks)
            nexts = tuple(d for _, d in zip(range(SHOWN_NEXT + 1), due, strict=False)
                          if d > now)[:SHOWN_NEXT]
        out.append(Schedule.of(spec, last or None, nexts))
    return out


def list_schedules(mq: Deployment, queues: Iterable[str] | None = None) -> list[Schedule]:
    """``MessageQueue.schedules``: every schedule on the readable queues, by queue, name."""
    return view(mq, load_specs(mq, readable(mq, queues)))


# -- firing ----------------------------------------------------------------------------------

def template_of(mq: Deployment, spec: ScheduleSpec) -> Message:
    """The message a tick publishes, from the spec's sealed template (``DecodeError`` when
    this connection's codec cannot open it or it was sealed for another queue)."""
    env = mq.codec.open(spec.template)
    if env.queue != spec.queue:
        raise DecodeError("queue_mismatch", f"schedule {spec.name!r} of {spec.queue!r} holds "
                                            f"a template sealed for {env.queue!r}")
    user = {k: v for k, v in env.headers.items()
            if not k.startswith("pn-") or k in TOOLKIT_HEADERS}
    return Message(env.type, env.payload, env.priority, headers=user, ttl_s=spec.ttl_s,
                   tlp=env.tlp)


def fire(mq: Deployment, spec: ScheduleSpec, tick: int, floor: int,
         message: Message | None = None) -> FireResult:
    """Fire ``tick`` of ``spec`` in one ``pn1_fire`` call: exactly one of any number of
    concurrent callers writes the message (see ``lua/fire.lua``).

    ``floor``: no tick at or before it fires. Raises ``QueueFullError`` (the tick stays
    unclaimed), ``AuditError``, ``PermissionDeniedError`` and the other boundary errors.
    """
    queue = spec.queue
    qs = mq.declare(queue)
    msg = message or template_of(mq, spec)
    now = now_ms()
    env, _ = new_envelope(mq.origin, queue, qs, msg, now)
    extra = {NAME_HEADER: spec.name, TICK_HEADER: str(tick)}
    part = queue
    layout = mq.layout(queue)
    if layout.partitioned:
        hashed = key_hash(f"schedule:{spec.name}")
        extra[PARTITION_KEY_HEADER] = hashed
        part = layout.route(hashed)
    env = env.replace(headers={**env.headers, **extra})
    raw = mq.codec.seal(env, qs.max_payload_bytes)
    keys = mq.queue_keys(part)
    level = 2 if qs.kind == "fifo" else int(env.priority)
    detail = clean(f"schedule {spec.name} tick {tick}")
    key_list = [*keys.streams, keys.delayed, keys.fired, metrics_key(keys, now), keys.trace]
    argv: list[Any] = [spec.name, tick, floor, qs.max_queue_size or 0,
                       RETENTION_S if qs.enable_metrics else 0,
                       TRACE_MAX_ENTRIES if qs.enable_tracing else 0, mq.origin or "", level,
                       item(env.id, trace_id_of(env.traceparent), 1, detail), raw]
    audit = mq.audit
    stream = audit.stream_of(keys) if audit is not None else ""
    section = None if audit is None else audit.section(stream, [AuditItem(
        "schedule_fire", queue, message_ids=[env.id],
        detail={"schedule": spec.name, "tick": tick})])
    then = wait_command(qs)
    try:
        reply = mq.functions.call("fire", key_list, argv, audit=section, then=then,
                                  client=None if then is None else
                                  durable_node(mq.client, qs, queue, keys.meta))
    except redis.ResponseError as exc:
        if audit is not None:
            audit.failed(stream)
        raise translate(exc, mq.client, queue) from None
    except BaseException:
        if audit is not None:
            audit.failed(stream)
        raise
    after = None
    if then is not None:
        reply, after = reply
    won, last = int(reply[0]) == 1, int(reply[1])
    if not won:
        if audit is not None:
            audit.failed(stream)  # its entry was not appended: the next starts a new chain
        return FireResult(False, last)
    if part != queue:
        # a copy in the parent's slot (not atomic with the claim: a cluster cannot): the
        # floor of the next fire after a repartition moved the schedule to a new partition
        mq.client.hset(mq.queue_keys(queue).fired, spec.name, tick)
    if then is not None:
        check_waited(after, qs, queue)
    return FireResult(True, last, env.id)


__all__ = ["FireResult", "add_schedule", "find", "fire", "last_fired", "list_schedules",
           "load_specs", "readable", "remove_schedule", "set_paused", "template_of", "view"]
