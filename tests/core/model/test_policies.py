"""The retry policy alone: its backoff curves, the cap, the jitter, and who may retry."""

from __future__ import annotations

import random

import pytest

from phantom_notebook.core.config.settings import RetrySettings
from phantom_notebook.core.errors import Reject, Retry
from phantom_notebook.core.model.policies import RetryPolicy


def _policy(**settings: object) -> RetryPolicy:
    return RetryPolicy(RetrySettings(**{"jitter": 0.0, **settings}))  # type: ignore[arg-type]


@pytest.mark.parametrize(("strategy", "delays"), [
    ("fixed", [1.5, 1.5, 1.5, 1.5, 1.5]),
    ("linear", [1.5, 3.0, 4.5, 6.0, 7.5]),
    ("exponential", [1.5, 4.5, 13.5, 40.5, 121.5])])
def test_each_backoff_strategy_grows_as_named(strategy: str, delays: list[float]) -> None:
    policy = _policy(backoff_strategy=strategy, initial_delay_s=1.5, multiplier=3.0,
                     max_delay_s=1000.0)
    assert [policy.delay_s(attempt) for attempt in range(1, 6)] == delays


def test_the_delay_is_capped_at_max_delay_before_and_after_the_jitter() -> None:
    assert _policy(initial_delay_s=10.0, max_delay_s=25.0).delay_s(4) == 25.0
    jittered = RetryPolicy(RetrySettings(initial_delay_s=10.0, max_delay_s=25.0, jitter=1.0))
    rng = random.Random(3)
    assert all(0.0 <= jittered.delay_s(9, rng) <= 25.0 for _ in range(200))
    assert _policy(initial_delay_s=0.0).delay_s(3) == 0.0


def test_the_jitter_draws_from_the_given_generator_within_its_fraction() -> None:
    policy = RetryPolicy(RetrySettings(initial_delay_s=8.0, max_delay_s=100.0, jitter=0.25))
    expected = 16.0 + random.Random(42).uniform(-4.0, 4.0)
    assert policy.delay_s(2, random.Random(42)) == expected
    draws = {policy.delay_s(2, random.Random(seed)) for seed in range(50)}
    assert len(draws) == 50 and all(12.0 <= d <= 20.0 for d in draws)
    assert min(draws) < 13.0 and max(draws) > 19.0  # the whole band is used


def test_a_delay_never_goes_below_zero() -> None:
    class Low(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return a * 3  # further below than any jitter could reach

    policy = RetryPolicy(RetrySettings(initial_delay_s=1.0, jitter=1.0))
    assert policy.delay_s(1, Low()) == 0.0


@pytest.mark.parametrize("error", [RuntimeError("boom"), Retry("again")],
                         ids=["failure", "retry-signal"])
def test_an_attempt_may_be_retried_up_to_max_retries_inclusive(error: BaseException) -> None:
    policy = _policy(max_retries=3)
    assert [policy.should_retry(n, error) for n in (1, 2, 3, 4, 5)] == [
        True, True, True, False, False]
    assert not _policy(max_retries=0).should_retry(1, error)


def test_a_reject_or_a_non_retryable_error_is_never_retried() -> None:
    policy = _policy(max_retries=5)
    assert not policy.should_retry(1, Reject("bad"))
    assert not policy.should_retry(1, KeyError("k"), (LookupError,))
    assert policy.should_retry(1, KeyError("k"), (ValueError,))
    assert policy.should_retry(1, KeyError("k"))
