"""Each stock delivery policy alone, without a worker: what it returns for each case.

The lane, subscription and context are the few attributes a policy reads; the worker tests
(test_fault_tolerance.py, test_custom_middleware.py, test_tlp_gate.py) run the same
policies on real Redis.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from phantom_notebook.core.config.settings import RetrySettings
from phantom_notebook.core.consume import middleware
from phantom_notebook.core.consume.context import Action, Outcome
from phantom_notebook.core.consume.middleware import (
    IntegrityMiddleware,
    Middleware,
    RetryMiddleware,
    TLPMiddleware,
    TTLMiddleware,
    default_middleware,
)
from phantom_notebook.core.errors import Reject, Retry
from phantom_notebook.core.model.envelope import Envelope

NOW = 1_800_000_000_000
RETRY = RetrySettings(max_retries=2, initial_delay_s=1.5, multiplier=2.0, jitter=0.0)


def _env(**fields: Any) -> Envelope:
    return Envelope("m1", "t", "intel", {"ioc": "x"}, **fields)


def _lane(expired_action: str = "dead_letter", queue: str = "intel") -> Any:
    return SimpleNamespace(queue=queue, stats=SimpleNamespace(expired=5),
                           settings=SimpleNamespace(expired_action=expired_action))


def _ctx(**fields: Any) -> Any:
    return SimpleNamespace(**fields)


def _sub(non_retryable: tuple[type[BaseException], ...] = ()) -> Any:
    return SimpleNamespace(retry_settings=RETRY, non_retryable=non_retryable)


def _retry(attempt: int, error: BaseException | None, outcome: Outcome | None = None) -> Outcome:
    return RetryMiddleware().after_process(
        _lane(), _sub((LookupError,)), _env(), _ctx(attempt=attempt), error,
        outcome or Outcome(Action.RETRY))


def test_the_base_middleware_changes_nothing() -> None:
    base, outcome = Middleware(), Outcome(Action.ACK)
    assert base.admit(_lane()) is None
    assert base.before_process(_lane(), _env(), _ctx()) is None
    assert base.after_process(_lane(), _sub(), _env(), _ctx(), None,
                              outcome) is outcome


def test_the_stock_policies_run_integrity_then_ttl_then_retry() -> None:
    assert [type(m) for m in default_middleware()] == [IntegrityMiddleware, TTLMiddleware,
                                                       RetryMiddleware]


@pytest.mark.parametrize(("action", "expected"), [("dead_letter", Action.DEAD),
                                                  ("drop", Action.DROP)])
def test_a_message_expiring_now_is_settled_expired_and_counted_once(
        monkeypatch: pytest.MonkeyPatch, action: str, expected: Action) -> None:
    monkeypatch.setattr(middleware, "now_ms", lambda: NOW)
    lane = _lane(action)
    outcome = TTLMiddleware().before_process(lane, _env(expires_at_ms=NOW), _ctx())
    assert outcome is not None
    assert (outcome.action, outcome.reason, outcome.error) == (expected, "expired", None)
    assert lane.stats.expired == 6


def test_a_message_expiring_later_or_never_goes_to_its_handler(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(middleware, "now_ms", lambda: NOW)
    lane = _lane()
    for env in (_env(expires_at_ms=NOW + 1), _env()):
        assert TTLMiddleware().before_process(lane, env, _ctx()) is None
    assert lane.stats.expired == 5


def test_an_envelope_naming_another_queue_is_dead_lettered_as_queue_mismatch() -> None:
    gate = IntegrityMiddleware()
    assert gate.before_process(_lane(queue="intel"), _env(), _ctx()) is None
    outcome = gate.before_process(_lane(queue="automation"), _env(), _ctx())
    assert outcome is not None
    assert (outcome.action, outcome.reason) == (Action.DEAD, "queue_mismatch")
    assert isinstance(outcome.error, ValueError)
    assert str(outcome.error) == "envelope for queue 'intel' found in 'automation'"


def test_outcomes_other_than_retry_pass_through_the_retry_policy_untouched() -> None:
    for action in (Action.ACK, Action.DEAD, Action.DROP, Action.RELEASE):
        outcome = Outcome(action, reason="r")
        assert _retry(9, RuntimeError("x"), outcome) is outcome


def test_a_failed_attempt_within_max_retries_is_retried_after_the_backoff() -> None:
    outcome = _retry(2, RuntimeError("boom"))
    assert (outcome.action, outcome.delay_s) == (Action.RETRY, 3.0)
    assert _retry(1, RuntimeError("boom")).delay_s == 1.5
    assert _retry(1, None).delay_s == 1.5  # a nack without an error
    asked = _retry(1, Retry("later", delay_s=9.0), Outcome(Action.RETRY, delay_s=9.0))
    assert (asked.action, asked.delay_s) == (Action.RETRY, 9.0)


@pytest.mark.parametrize(("error", "reason", "outcome_reason"), [
    (RuntimeError("boom"), "retries_exhausted", ""),
    (TimeoutError("slow"), "handler_timeout", "handler_timeout"),
    (RuntimeError("slow"), "handler_timeout", "handler_timeout"),
])
def test_a_failure_past_max_retries_is_dead_lettered_with_why(
        error: BaseException, reason: str, outcome_reason: str) -> None:
    outcome = _retry(3, error, Outcome(Action.RETRY, reason=outcome_reason))
    assert (outcome.action, outcome.reason, outcome.error) == (Action.DEAD, reason, error)


def test_a_non_retryable_error_or_a_reject_is_dead_lettered_on_the_first_attempt() -> None:
    lookup = KeyError("no such indicator")
    outcome = _retry(1, lookup)
    assert (outcome.action, outcome.reason, outcome.error) == (Action.DEAD, "non_retryable",
                                                               lookup)
    rejected = Reject("bad")
    outcome = _retry(1, rejected)
    assert (outcome.action, outcome.reason, outcome.error) == (Action.DEAD,
                                                               "retries_exhausted", rejected)


def test_a_retry_without_an_error_past_max_retries_is_dead_lettered_as_exhausted() -> None:
    assert _retry(2, None).action == Action.RETRY  # attempt == max_retries: one more
    outcome = _retry(3, None)
    assert (outcome.action, outcome.reason, outcome.error) == (Action.DEAD,
                                                               "retries_exhausted", None)
    assert outcome.delay_s is None


def test_the_tlp_gate_is_not_a_per_message_hook() -> None:
    gate = TLPMiddleware()
    assert gate.before_process(_lane(), _env(tlp="RED"), _ctx()) is None
    assert gate.admit(_lane()) is None
