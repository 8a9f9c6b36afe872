"""Pure decisions: how long to back off before a retry, and what to do with a failure."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..config.settings import RetrySettings
from ..errors import Reject, Retry


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for failed attempts: fixed, linear or exponential, capped, with jitter."""

    settings: RetrySettings

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed ``attempt`` (1-based) before the next one."""
        s = self.settings
        if s.backoff_strategy == "fixed":
            base = s.initial_delay_s
        elif s.backoff_strategy == "linear":
            base = s.initial_delay_s * attempt
        else:
            base = s.initial_delay_s * s.multiplier ** (attempt - 1)
        base = min(base, s.max_delay_s)
        if s.jitter:
            spread = base * s.jitter
            base += (rng or random).uniform(-spread, spread)
        return max(0.0, min(base, s.max_delay_s))

    def should_retry(self, attempt: int, exc: BaseException,
                     non_retryable: tuple[type[BaseException], ...] = ()) -> bool:
        """True when failed ``attempt`` may be retried given the exception raised."""
        if isinstance(exc, Reject) or isinstance(exc, non_retryable):
            return False
        if isinstance(exc, Retry):
            return attempt <= self.settings.max_retries
        return attempt <= self.settings.max_retries
