"""Circuit breaker per subscription lane: stop pulling while a downstream keeps failing.

CLOSED -> OPEN after ``failure_threshold`` consecutive failures within ``monitoring_period_s``
(a success resets the count, as in pybreaker and Polly: a steady trickle of bad messages in
heavy traffic is the retry policy's business, a downstream that fails every call is ours);
OPEN -> HALF_OPEN after ``recovery_timeout_s``; HALF_OPEN lets at most
``half_open_max_calls`` probe messages through: that many successes close it, any failure
opens it again. While open the lane fetches nothing, so messages wait in the queue instead of
being burned into the dead-letter queue. Transitions are written to the queue's ``breakers``
hash (one HSET per transition) so notebooks see every worker's breakers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from ..config.settings import BreakerSettings
from ..errors import Reject
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
        self.failures: deque[float] = deque()
        self.probes_started = 0
        self.probe_successes = 0
        self.transitions = 0
        self._on_change = on_change
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self.state!r}, recent_failures={len(self.failures)})"

    def permits(self) -> int | None:
        """How many more calls may start now (None = unlimited)."""
        with self._lock:
            self._advance()
            if self.state == CLOSED or not self.settings.enabled:
                return None
            if self.state == OPEN:
                return 0
            return max(self.settings.half_open_max_calls - self.probes_started, 0)

    def started(self, count: int = 1) -> None:
        """Record that ``count`` calls started (counts probes when half-open)."""
        if self.state != HALF_OPEN:
            return  # read without the lock: only a half-open breaker counts starts
        with self._lock:
            if self.state == HALF_OPEN:
                self.probes_started += count

    def record(self, success: bool, count: int = 1) -> None:
        """Record the result of one call (or of ``count`` successful calls at once)."""
        if success and self.state == CLOSED and not self.failures:
            return  # the common case, no lock: nothing to reset and nothing to count
        with self._lock:
            now = self.clock()
            if self.state == HALF_OPEN:
                if not success:
                    self._set(OPEN, now)
                else:
                    self.probe_successes += count
                    if self.probe_successes >= self.settings.half_open_max_calls:
                        self.failures.clear()
                        self._set(CLOSED, now)
                return
            if not self.settings.enabled or self.state == OPEN:
                return
            if success:
                self.failures.clear()  # the threshold counts consecutive failures
                return
            self.failures.append(now)
            while self.failures and now - self.failures[0] > self.settings.monitoring_period_s:
                self.failures.popleft()
            if len(self.failures) >= self.settings.failure_threshold:
                self._set(OPEN, now)

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
        """The state as plain data (stored in Redis for the notebook layer)."""
        return {"state": self.state, "recent_failures": len(self.failures),
                "transitions": self.transitions, "probes_started": self.probes_started,
                "updated": time.time()}


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
        self.breaker.started()
        return None

    def after_process(self, lane: LaneView, sub: Subscription, env: Envelope,
                      ctx: MessageContext, error: BaseException | None,
                      outcome: Outcome) -> Outcome:
        if error is None or not isinstance(error, Reject):
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
