"""Cross-cutting delivery policies as middleware: each one small and testable alone.

A lane asks its middleware, in order:

* ``admit(lane)`` before fetching — how many more messages it may take now (``None`` = no
  limit; ``0`` = none, e.g. an open circuit breaker);
* ``before_process(lane, env, ctx)`` after decoding — an ``Outcome`` short-circuits the
  handler (an expired message is dead-lettered, never handed over);
* ``after_process(lane, sub, env, ctx, error, outcome)`` after the handler — may rewrite the
  outcome (the retry policy turns an exhausted retry into a dead letter).

Every hook of ``Middleware`` is a no-op, so a policy overrides only what it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..model.envelope import Envelope, now_ms
from ..model.policies import RetryPolicy
from ..model.tlp import tlp_rank
from .context import Action, MessageContext, Outcome

if TYPE_CHECKING:
    from ..ports import LaneView
    from .subscription import Subscription


class Middleware:
    """Base class: hooks that do nothing."""

    def admit(self, lane: LaneView) -> int | None:
        """How many messages ``lane`` may fetch now; None means no limit from this policy."""
        return None

    def before_process(self, lane: LaneView, env: Envelope, ctx: MessageContext) -> Outcome | None:
        """Return an outcome to settle the message without calling its handler."""
        return None

    def after_process(self, lane: LaneView, sub: Subscription, env: Envelope, ctx: MessageContext,
                      error: BaseException | None, outcome: Outcome) -> Outcome:
        """Inspect or replace the outcome of a handled message."""
        return outcome


class TTLMiddleware(Middleware):
    """An expired message never reaches a handler: dead-lettered (``expired``) or dropped."""

    def before_process(self, lane: LaneView, env: Envelope, ctx: MessageContext) -> Outcome | None:
        if not env.is_expired(now_ms()):
            return None
        lane.stats.expired += 1
        if lane.settings.expired_action == "drop":
            return Outcome(Action.DROP, reason="expired")
        return Outcome(Action.DEAD, reason="expired")


class RetryMiddleware(Middleware):
    """Failed handling is retried with backoff through the delayed set, then dead-lettered."""

    def after_process(self, lane: LaneView, sub: Subscription, env: Envelope, ctx: MessageContext,
                      error: BaseException | None, outcome: Outcome) -> Outcome:
        if outcome.action != "retry":
            return outcome
        policy = RetryPolicy(sub.retry_settings)
        if error is not None and not policy.should_retry(ctx.attempt, error, sub.non_retryable):
            reason = "non_retryable" if isinstance(error, sub.non_retryable) else \
                "handler_timeout" if outcome.reason == "handler_timeout" else \
                "retries_exhausted"
            return Outcome(Action.DEAD, reason=reason, error=error)
        if error is None and ctx.attempt > sub.retry_settings.max_retries:
            return Outcome(Action.DEAD, reason="retries_exhausted")
        if outcome.delay_s is None:
            outcome.delay_s = policy.delay_s(ctx.attempt)
        return outcome


class IntegrityMiddleware(Middleware):
    """Refuse envelopes sealed for another queue (a copied stream entry still authenticates,
    so the queue named in its authenticated header must be the one it was read from)."""

    def before_process(self, lane: LaneView, env: Envelope, ctx: MessageContext) -> Outcome | None:
        if env.queue != lane.queue:
            return Outcome(Action.DEAD, reason="queue_mismatch",
                           error=ValueError(f"envelope for queue {env.queue!r} found in "
                                            f"{lane.queue!r}"))
        return None


class TLPMiddleware(Middleware):
    """A message marked above a subscription's ``max_tlp`` is dead-lettered (``tlp_denied``)."""

    def after_route(self, lane: LaneView, sub: Subscription, env: Envelope) -> Outcome | None:
        """Called once the subscription is known; None lets the message through."""
        if sub.max_tlp is None or tlp_rank(env.tlp) <= tlp_rank(sub.max_tlp):
            return None
        return Outcome(Action.DEAD, reason="tlp_denied", error=PermissionError(
            f"message is TLP:{env.tlp}, subscription accepts up to TLP:{sub.max_tlp}"))


def default_middleware() -> list[Middleware]:
    """The policies every lane runs, in order (the breaker is added per lane)."""
    return [IntegrityMiddleware(), TTLMiddleware(), RetryMiddleware()]
