"""Notebook helpers: wait until messages are settled, and refuse queue-name typos.

``wait_for(mq, ids)`` reads the lifecycle events the library already writes to each
queue's trace stream (no extra bookkeeping) and returns as soon as every id reached the
wanted state, or raises ``WaitTimeoutError`` naming the ids still open.
``known_queue(mq, name)`` is what ``messages_df``, the widgets and the ``pnb`` helpers use
so that ``"ioc-procesing"`` is an error naming the known queues, not an empty frame or a
new queue nobody consumes.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core.errors import PhantomError, UnknownQueueError, ValidationError
from ..core.observe.consumers import read_heartbeats
from ..core.observe.tracing import parse_entry

if TYPE_CHECKING:
    from ..core.queues import MessageQueue

#: the lifecycle events that end a message's life, per ``wait_for`` state
STATES: dict[str, frozenset[str]] = {
    "settled": frozenset({"acked", "dead_lettered", "expired"}),
    "acked": frozenset({"acked"}),
    "dead_lettered": frozenset({"dead_lettered"}),
    "delivered": frozenset({"delivered", "acked", "dead_lettered", "retried", "nacked"}),
}
_ALIASES = {"dead": "dead_lettered", "done": "settled", "processed": "settled"}


class WaitTimeoutError(PhantomError, TimeoutError):
    """Raised when ``wait_for`` runs out of time; ``.pending`` lists the ids still open."""

    def __init__(self, message: str, pending: list[str]) -> None:
        super().__init__(message)
        self.pending = pending


@dataclass(frozen=True)
class Settled:
    """What ``wait_for`` saw: the last matching event of each id, and how long it took."""

    events: dict[str, str]  # message id -> the event that satisfied the wait
    waited_s: float

    def __len__(self) -> int:
        return len(self.events)

    def counts(self) -> dict[str, int]:
        """How many ids ended with each event (``{"acked": 5, "dead_lettered": 1}``)."""
        out: dict[str, int] = {}
        for event in self.events.values():
            out[event] = out.get(event, 0) + 1
        return out


def wait_for(mq: MessageQueue, ids: str | Iterable[str], state: str = "settled", *,
             timeout_s: float = 30.0, queues: Iterable[str] | None = None,
             interval_s: float = 0.05) -> Settled:
    """Block until every message id in ``ids`` is ``state``; returns what each ended with.

    ``state``: ``settled`` (acked, dead-lettered or expired: nothing more will happen to
    it), ``acked``, ``dead_lettered`` or ``delivered`` (a consumer picked it up). Reads the
    trace streams of ``queues`` (default: every queue), only new entries on each poll.

    Raises ``WaitTimeoutError`` (a ``TimeoutError``) after ``timeout_s`` naming the ids
    still open, and ``ValidationError`` for an unknown ``state``.
    """
    wanted = STATES.get(_ALIASES.get(state, state))
    if wanted is None:
        raise ValidationError(f"unknown state {state!r}: use one of {', '.join(STATES)}")
    if timeout_s < 0:
        raise ValidationError(f"timeout_s must be >= 0, got {timeout_s}")
    todo = {ids} if isinstance(ids, str) else set(ids)
    started = time.monotonic()
    deadline = started + timeout_s
    seen: dict[str, str] = {}
    cursors: dict[str, str] = {}
    while True:
        for queue in list(queues) if queues is not None else mq.queues():
            _scan(mq, queue, cursors, todo, wanted, seen)
        if todo <= seen.keys():
            return Settled({i: seen[i] for i in todo}, time.monotonic() - started)
        if time.monotonic() >= deadline:
            pending = sorted(todo - seen.keys())
            shown = ", ".join(pending[:5]) + (" ..." if len(pending) > 5 else "")
            raise WaitTimeoutError(
                f"{len(pending)} of {len(todo)} message(s) not {state} after "
                f"{timeout_s:g} s: {shown} (is a worker consuming? see pnb.consumers_df(mq))",
                pending)
        time.sleep(interval_s)


def wait_until(predicate: Callable[[], Any], timeout_s: float = 30.0, *,
               what: str = "the condition", interval_s: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; returns that value.

    For conditions ``wait_for`` does not cover (results collected by a handler, a file
    written by a sink). Raises ``WaitTimeoutError`` naming ``what`` after ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(f"{what} did not happen within {timeout_s:g} s", [])
        time.sleep(interval_s)


def _scan(mq: MessageQueue, queue: str, cursors: dict[str, str], todo: set[str],
          wanted: frozenset[str], seen: dict[str, str]) -> None:
    """Read the trace entries of ``queue`` written since the last scan."""
    key = mq.queue_keys(queue).trace
    low = cursors.get(queue, "-")
    while True:
        batch = mq.client.xrange(key, min=low, max="+", count=1000)
        for entry_id, fields in batch:
            for ev in parse_entry(queue, entry_id, fields):
                if ev.event in wanted and ev.message_id in todo:
                    seen[ev.message_id] = ev.event
        if not batch:
            return
        last = batch[-1][0]
        low = "(" + (last.decode() if isinstance(last, bytes) else str(last))
        cursors[queue] = low
        if len(batch) < 1000:
            return


def known_queue(mq: MessageQueue, queue: str) -> str:
    """``queue`` when the deployment knows it, else ``UnknownQueueError`` naming the known.

    The error suggests the closest known name (``did you mean 'ioc-processing'?``) and
    says how to create a new queue on purpose (``mq.declare(name)``).
    """
    names = mq.queues()
    if queue in names:
        return queue
    close = difflib.get_close_matches(queue, names, n=1)
    hint = f" did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(names) if names else "(none yet)"
    raise UnknownQueueError(
        f"unknown queue {queue!r}.{hint} Known queues: {listed}. "
        f"To create a new queue on purpose: mq.declare({queue!r})")


def live_consumers(mq: MessageQueue, queues: Iterable[str], *, stale_after_s: float = 30.0,
                   ) -> dict[str, int]:
    """How many workers with a fresh heartbeat (under ``stale_after_s``) consume each queue."""
    names = list(queues)
    out = dict.fromkeys(names, 0)
    now = time.time()
    for beat in read_heartbeats(mq):
        if not beat.last_seen or now - beat.last_seen > stale_after_s:
            continue
        for queue in beat.queues:
            if queue in out:
                out[queue] += 1
    return out


NO_CONSUMER_HINT = ("start a worker: <code>worker = mq.worker().start()</code> in this "
                    "notebook, or <code>phantom-notebook worker MODULE:HANDLERS</code> "
                    "in a terminal")


def publish(mq: MessageQueue, queue: str, type: str, payload: Any,  # noqa: A002
            **options: Any) -> str:
    """``mq.publish`` for notebooks: refuses a queue the deployment does not know.

    (``mq.publish`` itself creates an undeclared queue; in a notebook that is nearly always
    a typo, and the messages would wait for a consumer that never comes.)
    """
    return mq.publish(known_queue(mq, queue), type, payload, **options)


__all__ = ["NO_CONSUMER_HINT", "STATES", "Settled", "WaitTimeoutError", "known_queue",
           "live_consumers", "publish", "wait_for", "wait_until"]
