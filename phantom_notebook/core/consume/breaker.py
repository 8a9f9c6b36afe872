"""Circuit breaker per subscription lane: stop pulling while a downstream fails.

It protects a downstream (an enrichment API, a SIEM), not the queue from its own bad
messages, so it counts only what says something about the downstream: the outcome of
*fresh* messages (first attempt, first delivery). A ``Reject``, a schema or decode error,
a retry of a message that failed before and a message that keeps killing its worker
(poison, told by its delivery count) are the retry policy's and the dead-letter queue's
business; counting them let 1 % of poison cycle every breaker open, so a few bad messages
stalled whole queues.

CLOSED -> OPEN when, in the last ``monitoring_period_s`` (a sliding window of one-second
buckets), at least ``minimum_calls`` fresh messages were handled, at least
``failure_threshold`` of them failed, and failures are at least ``failure_rate_threshold``
of them (resilience4j's ``minimumNumberOfCalls`` / ``failureRateThreshold``);
OPEN -> HALF_OPEN after ``recovery_timeout_s``; HALF_OPEN lets ``half_open_max_calls``
fresh messages through as probes (retries fetched meanwhile run but are not probes): that
many successes close it, a failing probe opens it again. While open the lane fetches
nothing, so messages wait in the queue instead of being burned into the dead-letter queue.
Off unless a subscription or queue configures it (``BreakerSettings(enabled=True)``).
Transitions are written to the queue's ``breakers`` hash (one HSET per transition), so
stats, health and the notebooks see every worker's breakers.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from ..config.settings import BreakerSettings
from ..errors import Reject, Retry
from ..model.envelope import Envelope
from .context import MessageContext, Outcome
from .middleware import Middleware

if TYPE_CHECKING:
    from ..ports import Deployment, LaneView
    from .subscription import Subscription

log = logging.getLogger("phantom_notebook.breaker")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    """The breaker state machine (pure: time comes from ``clock``)."""

    def __init__(self, settings: BreakerSettings,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[CircuitBreaker], None] | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.state = CLOSED
        self.opened_at: float | None = None
        self.probes_started = 0
        self.probe_successes = 0
        self.transitions = 0
        self._on_change = on_change
        self._lock = threading.Lock()
        self._width = max(int(math.ceil(settings.monitoring_period_s)), 1)
        #: per one-second bucket: [bucket second, calls, failures]
        self._buckets = [[-1, 0, 0] for _ in range(self._width)]

    def __repr__(self) -> str:
        calls, failures = self.window()
        return f"CircuitBreaker(state={self.state!r}, window={failures}/{calls} failed)"

    def window(self) -> tuple[int, int]:
        """(calls, failures) of fresh messages in the sliding window."""
        now = int(self.clock())
        calls = failures = 0
        for second, c, f in self._buckets:
            if now - second < self._width:
                calls, failures = calls + c, failures + f
        return calls, failures

    def permits(self) -> int | None:
        """How many more calls may start now (None = unlimited)."""
        if not self.settings.enabled:
            return None
        with self._lock:
            self._advance()
            if self.state == CLOSED:
                return None
            if self.state == OPEN:
                return 0
            return max(self.settings.half_open_max_calls - self.probes_started, 0)

    def started(self, count: int = 1) -> None:
        """Record that ``count`` fresh calls started (counts probes when half-open)."""
        if self.state != HALF_OPEN:
            return  # read without the lock: only a half-open breaker counts starts
        with self._lock:
            if self.state == HALF_OPEN:
                self.probes_started += count

    def record(self, success: bool, count: int = 1) -> None:
        """Record the result of ``count`` fresh calls."""
        if not self.settings.enabled:
            return
        with self._lock:
            now = self.clock()
            if self.state == HALF_OPEN:
                if not success:
                    self._set(OPEN, now)
                    return
                self.probe_successes += count
                if self.probe_successes >= self.settings.half_open_max_calls:
                    self._reset_window()
                    self._set(CLOSED, now)
                return
            if self.state == OPEN:
                return
            second = int(now)
            bucket = self._buckets[second % self._width]
            if bucket[0] != second:
                bucket[0], bucket[1], bucket[2] = second, 0, 0
            bucket[1] += count
            if not success:
                bucket[2] += count
                self._maybe_open(now)

    def _maybe_open(self, now: float) -> None:
        s = self.settings
        calls, failures = self.window()
        if calls >= s.minimum_calls and failures >= s.failure_threshold \
                and failures >= s.failure_rate_threshold * calls:
            self._set(OPEN, now)

    def _reset_window(self) -> None:
        for bucket in self._buckets:
            bucket[0], bucket[1], bucket[2] = -1, 0, 0

    def _advance(self) -> None:
        if self.state == OPEN and self.opened_at is not None and \
                self.clock() - self.opened_at >= self.settings.recovery_timeout_s:
            self._set(HALF_OPEN, self.clock())

    def _set(self, state: str, now: float) -> None:
        self.state = state
        self.transitions += 1
        if state == OPEN:
            self.opened_at = now
        if state in (OPEN, HALF_OPEN):
            self.probes_started = self.probe_successes = 0
        if self._on_change is not None:
            self._on_change(self)

    def snapshot(self) -> dict[str, object]:
        """The state as plain data (stored in Redis for stats, health and notebooks)."""
        calls, failures = self.window()
        return {"state": self.state, "window_calls": calls, "window_failures": failures,
                "transitions": self.transitions, "probes_started": self.probes_started,
                "updated": time.time()}


def counts(error: BaseException | None, ctx: MessageContext) -> bool:
    """Whether an outcome says something about the downstream (see the module doc)."""
    if ctx.envelope.attempt != 1 or ctx.delivery.delivery_count != 1:
        return False  # a retry, or a message that was delivered before (poison)
    return error is None or not isinstance(error, Reject | Retry)


class BreakerMiddleware(Middleware):
    """Applies one lane's circuit breaker: gates fetching, counts handler failures.

    ``on_change`` receives the breaker after every transition (the lane stores its state
    in Redis with ``store_breaker_state``); the middleware knows nothing of the lane.
    """

    def __init__(self, settings: BreakerSettings,
                 on_change: Callable[[CircuitBreaker], None] | None = None) -> None:
        self.breaker = CircuitBreaker(settings, on_change=on_change)

    def admit(self, lane: LaneView) -> int | None:
        return self.breaker.permits()

    def before_process(self, lane: LaneView, env: Envelope,
                       ctx: MessageContext) -> Outcome | None:
        if env.attempt == 1 and ctx.delivery.delivery_count == 1:
            self.breaker.started()
        return None

    def after_process(self, lane: LaneView, sub: Subscription, env: Envelope,
                      ctx: MessageContext, error: BaseException | None,
                      outcome: Outcome) -> Outcome:
        if counts(error, ctx):
            self.breaker.record(success=error is None)
        return outcome


def store_breaker_state(lane: LaneView, breaker: CircuitBreaker) -> None:
    """Write ``breaker``'s state to the queue's ``breakers`` hash (one HSET) and log it."""
    log.warning("circuit breaker of %s/%s is now %s", lane.queue, lane.group, breaker.state)
    state = {**breaker.snapshot(), "consumer": lane.consumer, "group": lane.group}
    try:
        lane.mq.client.hset(lane.keys.breakers, f"{lane.group}:{lane.consumer}",
                            orjson.dumps(state))
    except Exception as exc:  # noqa: BLE001 - visibility must not break the worker
        log.debug("could not store breaker state: %s", exc)


def read_breakers(mq: Deployment, queue: str) -> dict[str, dict[str, Any]]:
    """The stored state of every lane's breaker on ``queue`` ("group:consumer" -> state)."""
    out: dict[str, dict[str, Any]] = {}
    for part in mq.layout(queue).all:
        raw = mq.client.hgetall(mq.queue_keys(part).breakers)
        out.update({k.decode(): orjson.loads(v) for k, v in raw.items()})
    return out
