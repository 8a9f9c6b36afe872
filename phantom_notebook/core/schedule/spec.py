"""What a recurring schedule is: its stored spec (JSON in Redis) and the view callers get.

The spec is stored in the hash ``<prefix>:{<queue>}:sched`` of the queue it fires into,
field = schedule name. The name and the queue come from *where* a spec is stored, never
from its JSON: a spec copied into another queue's hash cannot make a scheduler fire into a
queue its author may not manage. The message itself is a **template**: an envelope sealed
with the adding connection's codec (payload, type, priority, TLP, headers), so an
encrypted queue's scheduled payloads are as unreadable in Redis as its messages; the
envelope's authenticated header names the queue, checked again when a tick fires.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from ..errors import ValidationError
from ..model.codec import peek_header
from .timing import Timing, format_ms, zone

#: catch_up policies (see ``runner.plan``)
CATCH_UP = ("none", "last", "all")
#: the most ticks one catch-up fires ("all"): the newest ones
CATCH_UP_MAX = 1000
#: how late a tick may still fire under catch_up="none"
DEFAULT_GRACE_MS = 60_000
#: headers every fired message carries: which schedule, which tick (epoch ms)
NAME_HEADER = "pn-schedule"
TICK_HEADER = "pn-tick"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$")
_PRIORITIES = ("CRITICAL", "HIGH", "NORMAL", "LOW")


def check_name(name: object) -> str:
    """``name`` if it is a usable schedule name, else ``ValidationError``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationError(f"invalid schedule name {name!r}: use 1-128 characters from "
                              "A-Z a-z 0-9 . _ - starting with a letter or digit")
    return name


def check_catch_up(policy: object) -> str:
    """``policy`` if it is one of ``CATCH_UP``, else ``ValidationError``."""
    if policy not in CATCH_UP:
        raise ValidationError(f"catch_up must be one of {', '.join(CATCH_UP)}, got {policy!r}")
    return str(policy)


@dataclass(frozen=True)
class ScheduleSpec:
    """One stored schedule (``name`` and ``queue`` are where it is stored)."""

    name: str
    queue: str
    timing: Timing
    template: bytes
    catch_up: str = "none"
    grace_ms: int = DEFAULT_GRACE_MS
    ttl_s: float | None = None
    paused: bool = False
    created_ms: int = 0
    #: no tick at or before this fires: creation, the last resume, a change of timing
    since_ms: int = 0
    by: str = ""
    header: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.header:
            object.__setattr__(self, "header", peek_header(self.template))

    @property
    def type(self) -> str:
        """The message type each tick publishes (from the template's clear header)."""
        return str(self.header.get("t", "?"))

    @property
    def priority(self) -> str:
        """The priority name of the messages."""
        p = self.header.get("p", 2)
        return _PRIORITIES[p] if isinstance(p, int) and 0 <= p < 4 else str(p)

    @property
    def tlp(self) -> str:
        """The TLP of the messages."""
        return str(self.header.get("tlp", "CLEAR"))

    def to_json(self) -> bytes:
        """The stored form (without name and queue)."""
        t = self.timing
        return orjson.dumps({
            "v": 1, "cron": t.cron, "every_ms": t.every_ms, "tz": t.tz, "jitter_ms": t.jitter_ms,
            "catch_up": self.catch_up, "grace_ms": self.grace_ms, "ttl_s": self.ttl_s,
            "paused": self.paused, "created_ms": self.created_ms, "since_ms": self.since_ms,
            "by": self.by, "template": base64.b64encode(self.template).decode()})

    @classmethod
    def from_json(cls, name: str, queue: str, raw: bytes | str) -> ScheduleSpec:
        """Read a stored spec; ``ValidationError`` when it is not one of ours."""
        try:
            d = orjson.loads(raw)
            timing = Timing(cron=d["cron"], every_ms=int(d["every_ms"]), tz=str(d["tz"]),
                            jitter_ms=int(d["jitter_ms"]))
            if (timing.cron is None) == (timing.every_ms <= 0):
                raise ValueError("neither cron nor every")
            return cls(name=check_name(name), queue=queue, timing=timing,
                       template=base64.b64decode(d["template"], validate=True),
                       catch_up=check_catch_up(d["catch_up"]), grace_ms=int(d["grace_ms"]),
                       ttl_s=None if d.get("ttl_s") is None else float(d["ttl_s"]),
                       paused=bool(d["paused"]), created_ms=int(d["created_ms"]),
                       since_ms=int(d["since_ms"]), by=str(d.get("by", "")))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"schedule {name!r} of queue {queue!r} is not a valid "
                                  f"spec ({type(exc).__name__}: {exc})") from None

    def with_changes(self, **changes: Any) -> ScheduleSpec:
        """A changed copy."""
        return replace(self, **changes)


def _when(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


@dataclass(frozen=True)
class Schedule:
    """A schedule as ``mq.schedules()`` lists it (times are aware datetimes, UTC)."""

    name: str
    queue: str
    type: str
    spec: str
    catch_up: str
    paused: bool
    last_fired: datetime | None
    next_fires: tuple[datetime, ...]
    priority: str = "NORMAL"
    tlp: str = "CLEAR"
    tz: str = "UTC"
    created: datetime | None = None

    @classmethod
    def of(cls, spec: ScheduleSpec, last_ms: int | None,
           next_ms: tuple[int, ...]) -> Schedule:
        """The view of ``spec`` with its last and next fire times."""
        return cls(spec.name, spec.queue, spec.type, spec.timing.spec, spec.catch_up,
                   spec.paused, _when(last_ms),
                   tuple(d for d in map(_when, next_ms) if d is not None),
                   spec.priority, spec.tlp, spec.timing.tz, _when(spec.created_ms))

    @property
    def next_fire(self) -> datetime | None:
        """The next time it fires (None while paused)."""
        return self.next_fires[0] if self.next_fires else None

    def __str__(self) -> str:
        state = "paused" if self.paused else "active"
        last = _show(self.last_fired, self.tz) if self.last_fired else "never"
        nxt = ", ".join(_show(d, self.tz) for d in self.next_fires) or "-"
        return (f"{self.name}: {self.spec} -> {self.queue} ({self.type}, {self.priority}, "
                f"TLP:{self.tlp}), catch_up {self.catch_up}, {state}; last fired {last}; "
                f"next {nxt}")


def _show(when: datetime, tz: str) -> str:
    local = when.astimezone(zone(tz))
    return local.strftime("%Y-%m-%d %H:%M:%S %Z")


__all__ = ["CATCH_UP", "CATCH_UP_MAX", "DEFAULT_GRACE_MS", "NAME_HEADER", "TICK_HEADER",
           "Schedule", "ScheduleSpec", "check_catch_up", "check_name", "format_ms"]
