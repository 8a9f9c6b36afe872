"""The join of a group: recording members' outcomes, deciding, reading it back.

A group's join is a hash in its callback queue's slot (``{<callback queue>}:join:<id>``);
``join.lua`` records each member's final outcome once and, when the group is decided,
adds the pre-sealed callback to the callback queue in the same call, so the callback is
enqueued exactly once however often members are redelivered. The callback's worker
reads the members' results from the join (``read_join``) for ``context.join``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..backend.records import JoinRecord
from ..errors import DecodeError, PhantomError
from ..model.codec import Codec
from ..model.routing import parent_of
from ..observe.metrics import RETENTION_S, metrics_key
from ..observe.tracing import TRACE_MAX_ENTRIES
from .codec import Result, open_result

if TYPE_CHECKING:
    from ..ports import Deployment


class GroupFailedError(PhantomError):
    """The error of a callback whose group failed (it is dead-lettered as
    ``group_failed`` and its handler does not run)."""


def record_members(mq: Deployment, records: Sequence[JoinRecord], now: int,
                   actor: str) -> list[int]:
    """Record members' outcomes in their joins: one ``join`` call per callback queue.
    Returns join.lua's code per record, in order (0 not recorded, 1 recorded, 2 decided
    the group)."""
    codes = [0] * len(records)
    by_queue: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_queue.setdefault(r.queue, []).append(i)
    for queue, index in by_queue.items():
        keys = mq.queue_keys(queue)
        joins: list[str] = []
        args: list[Any] = [len(index)]
        for i in index:
            r = records[i]
            key = keys.join(r.group_id)
            if key not in joins:
                joins.append(key)
            args += [8 + joins.index(key), r.member, r.message_id, r.state, r.sealed]
        qs = mq.declare(parent_of(queue))
        reply = mq.functions.join(
            keys, metrics_key(keys, now), "settle", joins, args, now_ms=now,
            metrics_ttl_s=RETENTION_S if qs.enable_metrics else 0,
            trace_cap=TRACE_MAX_ENTRIES if qs.enable_tracing else 0, actor=actor)
        for i, code in zip(index, reply, strict=True):
            codes[i] = int(code)
    return codes


def expire_join(mq: Deployment, queue: str, group_id: str, now: int, actor: str) -> bool:
    """Decide a group whose deadline came (members without an outcome fail as
    ``timeout``); True when that enqueued its callback."""
    keys = mq.queue_keys(queue)
    qs = mq.declare(parent_of(queue))
    reply = mq.functions.join(
        keys, metrics_key(keys, now), "expire", [keys.join(group_id)], [], now_ms=now,
        metrics_ttl_s=RETENTION_S if qs.enable_metrics else 0,
        trace_cap=TRACE_MAX_ENTRIES if qs.enable_tracing else 0, actor=actor)
    return int(reply) == 2


@dataclass(frozen=True)
class MemberResult:
    """One member of a group as its join recorded it."""

    index: int
    message_id: str
    state: str  # "ok", "failed", "timeout", or "" (no outcome yet)
    result: Result | None = None

    @property
    def ok(self) -> bool:
        """True when the member succeeded."""
        return self.state == "ok"

    @property
    def value(self) -> Any:
        """The member's return value (None unless it succeeded)."""
        return self.result.value if self.result is not None and self.result.ok else None

    @property
    def error(self) -> str:
        """Why the member failed ("" when it did not)."""
        if self.state == "timeout":
            return "no outcome before the group's deadline"
        if self.result is None or self.result.ok:
            return ""
        r = self.result
        return f"{r.error_type}: {r.error}" if r.error_type else r.error


@dataclass(frozen=True)
class JoinState:
    """A group's join: its status and each member's outcome."""

    group_id: str
    queue: str
    status: str  # "open", "succeeded", "failed" ("missing" when the join expired)
    members: list[MemberResult] = field(default_factory=list)
    needed: int = 0
    rule: str = "all"
    created_ms: int = 0
    decided_ms: int = 0
    deadline_ms: int = 0

    @property
    def succeeded(self) -> int:
        """How many members succeeded."""
        return sum(1 for m in self.members if m.ok)

    @property
    def failed(self) -> int:
        """How many members failed (timeouts included)."""
        return sum(1 for m in self.members if m.state in ("failed", "timeout"))

    @property
    def settled(self) -> int:
        """How many members have an outcome."""
        return sum(1 for m in self.members if m.state)

    @property
    def results(self) -> list[MemberResult]:
        """Every member, in the order the group was created."""
        return list(self.members)

    @property
    def values(self) -> list[Any]:
        """The return values of the members that succeeded, in member order."""
        return [m.value for m in self.members if m.ok]

    def summary(self) -> str:
        """One line: how the group ended and why (for errors and logs)."""
        n = len(self.members)
        text = f"group {self.group_id}: {self.succeeded} of {n} members succeeded"
        if self.status == "failed":
            text += f", {self.needed} needed"
        errors = [f"member {m.index}: {m.error}" for m in self.members if m.error][:3]
        return text + (f" ({'; '.join(errors)})" if errors else "")


def read_join(mq: Deployment, queue: str, group_id: str, *, open_results: bool = True
              ) -> JoinState:
    """The join of ``group_id`` (callback queue ``queue``), its results opened with the
    deployment's codec (a result that cannot be opened reads as failed ``unreadable``)."""
    raw = mq.client.hgetall(mq.queue_keys(queue).join(group_id))
    return parse_join(raw, queue, group_id, mq.codec if open_results else None)


def parse_join(raw: dict[Any, Any], queue: str, group_id: str, codec: Codec | None
               ) -> JoinState:
    """A ``JoinState`` from a join hash's HGETALL reply."""
    h = {_text(k): v for k, v in (raw or {}).items()}
    if not h:
        return JoinState(group_id, queue, "missing")
    n = int(h.get("n", 0))
    members = []
    for i in range(n):
        mid = _text(h.get(f"id:{i}", b""))
        state = _text(h.get(f"s:{i}", b""))
        result = None
        sealed = h.get(f"r:{i}")
        if sealed is not None and codec is not None:
            try:
                result = open_result(codec, sealed if isinstance(sealed, bytes)
                                     else str(sealed).encode(), mid)
            except DecodeError as exc:
                result = Result(mid, queue, False, error_type="DecodeError", error=str(exc),
                                reason="unreadable")
        members.append(MemberResult(i, mid, state, result))
    st = _text(h.get("st", b"open"))
    return JoinState(group_id, queue, st, members, int(h.get("need", 0)),
                     _text(h.get("rule", b"all")), int(h.get("created", 0)),
                     int(h.get("fired", 0) or 0), int(h.get("deadline", 0)))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["GroupFailedError", "JoinState", "MemberResult", "expire_join", "parse_join",
           "read_join", "record_members"]
