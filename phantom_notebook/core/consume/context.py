"""The ``MessageContext`` a handler receives: settle the message, extend its lease, report
progress, read a group's results."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ..errors import ValidationError
from ..model.envelope import Envelope, new_traceparent, now_ms
from ..model.flow_headers import wants_result

if TYPE_CHECKING:
    from ..backend.keyspace import QueueKeys
    from ..backend.records import Delivery
    from ..ports import LaneView
    from ..results.join import JoinState


class Action(StrEnum):
    """What settling a delivery does."""

    ACK = "ack"          # processed: it leaves Redis
    RETRY = "retry"      # re-scheduled with attempt + 1 after ``delay_s``
    DEAD = "dead"        # dead-lettered with ``reason``
    DROP = "drop"        # acked without handling (expired with expired_action="drop")
    RELEASE = "release"  # handed back untouched, no attempt used (breaker opened)
    LEAVE = "leave"      # stays pending until reclaimed after the visibility timeout
    DEFER = "defer"      # over its key's rate limit: waits ``delay_s`` untouched (no attempt)


@dataclass
class Outcome:
    """How a delivery ended: an ``Action`` and, for retries and dead letters, why."""

    action: Action
    delay_s: float | None = None
    reason: str = ""
    error: BaseException | None = None
    #: a request's result: the handler's return value (stored when the message is acked)
    value: Any = None
    #: the result's TLP when the handler made it stricter than the request's
    tlp: str | None = None


class MessageContext:
    """Handed to every handler with the message: ack, nack, reject, extend the lease."""

    __slots__ = ("envelope", "delivery", "_lane", "_outcome", "received_ms", "_cancelled",
                 "join", "result_tlp", "_progress")

    def __init__(self, envelope: Envelope, delivery: Delivery, lane: LaneView,
                 received_ms: int | None = None) -> None:
        self.envelope = envelope
        self.delivery = delivery
        self._lane = lane
        self._outcome: Outcome | None = None
        self.received_ms = now_ms() if received_ms is None else received_ms
        self._cancelled = False
        #: the group's results when this message is a group's callback (``mq.group``,
        #: ``mq.chain``): a ``JoinState`` with each member's value or failure, else None
        self.join: JoinState | None = None
        #: the TLP of this request's result when the handler makes it stricter than the
        #: request's (``context.result_tlp = "RED"``); a laxer label is ignored
        self.result_tlp: str | None = None
        self._progress: float | None = None

    def __repr__(self) -> str:
        return (f"MessageContext(id={self.envelope.id!r}, queue={self.queue!r}, "
                f"delivery_count={self.delivery_count})")

    @property
    def queue(self) -> str:
        """The queue the message came from."""
        return self._lane.queue

    @property
    def group(self) -> str:
        """The consumer group this delivery belongs to."""
        return self._lane.group

    @property
    def consumer(self) -> str:
        """The name of the consumer (worker) handling the message."""
        return self._lane.consumer

    @property
    def keys(self) -> QueueKeys:
        """The Redis keys of the queue (or partition) this delivery came from."""
        return self._lane.keys

    @property
    def redis(self) -> Any:
        """The Redis client of the worker (for helpers such as ``idempotent``)."""
        return self._lane.mq.client

    @property
    def delivery_count(self) -> int:
        """How often Redis has handed out this stored entry (1 on first delivery)."""
        return self.delivery.delivery_count

    @property
    def attempt(self) -> int:
        """The processing attempt (1-based; grows with each retry).

        On broadcast queues the stored entry is shared by every group and never rewritten,
        so a retry there is a re-delivery of the same entry: the attempt is its delivery count.
        """
        if self._lane.broadcast:
            return max(self.envelope.attempt, self.delivery_count)
        return self.envelope.attempt

    @property
    def cancelled(self) -> bool:
        """True once an operator cancelled this message while it ran (``mq.cancel``;
        noticed within about half a second). A long handler should stop soon after;
        whatever it settles then is acked, never retried."""
        return self._cancelled

    @property
    def settled(self) -> bool:
        """True once ack, nack or reject has been called."""
        return self._outcome is not None

    def ack(self) -> None:
        """Mark the message processed: it leaves Redis in the next settle batch."""
        self._settle(Outcome(Action.ACK))

    def nack(self, requeue: bool = True, delay_s: float | None = None) -> None:
        """Give the message back: retry it (after ``delay_s``) or, with requeue=False, DLQ it."""
        if requeue:
            self._settle(Outcome(Action.RETRY, delay_s=delay_s, reason="nacked"))
        else:
            self._settle(Outcome(Action.DEAD, reason="nacked"))

    def reject(self, reason: str = "rejected") -> None:
        """Dead-letter the message now with ``reason``; it is not retried."""
        self._settle(Outcome(Action.DEAD, reason=reason))

    @property
    def is_request(self) -> bool:
        """True when someone waits for this handler's return value: a request, a group's
        member or callback, a chain's step (``mq.request`` / ``mq.group`` / ``mq.chain``).
        For a plain publish the return value is ignored."""
        headers = self.envelope.headers
        return bool(headers) and wants_result(headers)

    @property
    def previous(self) -> Any:
        """In a chain, the return value of the step before this one (None for the first
        step, or when it returned nothing)."""
        join = self.join
        if join is None or not join.members:
            return None
        return join.members[0].value if len(join.members) == 1 else join.values

    @property
    def progress_fraction(self) -> float | None:
        """The progress this handler last reported (None before the first report)."""
        return self._progress

    def progress(self, fraction: float, note: str = "") -> None:
        """Report how far the handler is (0.0 .. 1.0) with an optional short ``note``.

        Cheap to call in a tight loop: the worker writes the latest value at most twice a
        second per message (to the request's result hash, where ``pending.progress``
        reads it, and as a "progress" trace event). Notes are stored like trace details,
        in the clear: name steps, not indicator values.
        """
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) \
                or not 0.0 <= fraction <= 1.0:
            raise ValidationError(f"progress must be a number from 0.0 to 1.0, got {fraction!r}")
        self._progress = float(fraction)
        self._lane.report_progress(self, float(fraction), str(note)[:200])

    def extend_lease(self) -> None:
        """Reset the visibility timeout of this delivery (for long handlers)."""
        self._lane.extend_leases([self.delivery])

    def publish(self, queue: str, type: str, payload: Any, **options: Any) -> str:
        """Publish a follow-up message that shares this message's trace and correlation."""
        env = self.envelope
        trace_id = env.trace_id
        options.setdefault("correlation_id", env.correlation_id or env.id)
        options.setdefault("causation_id", env.id)
        if trace_id:
            options.setdefault("traceparent", new_traceparent(trace_id))
        return str(self._lane.mq.publish(queue, type, payload, **options))

    def _settle(self, outcome: Outcome) -> None:
        # first call wins; a handler settles its own message, so no lock is needed
        if self._outcome is None:
            self._outcome = outcome

    def take_outcome(self) -> Outcome | None:
        """The outcome the handler chose, if any (used by the worker)."""
        return self._outcome
