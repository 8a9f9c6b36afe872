"""Rate limits and global concurrency as the fetch function enforces them (pure).

``"600/min"`` is 600 deliveries per minute; units ``s``/``sec``/``second``, ``m``/``min``/
``minute``, ``h``/``hour``, ``d``/``day``, optionally with a count (``"5/10s"``). The
algorithm is GCRA (the generic cell rate algorithm: a token bucket kept as one
timestamp): emission interval ``T = period / rate``, burst ``b`` (default one second's
worth, at least 1), tolerance ``tau = (b - 1) * T``. Over any window of length ``W`` at
most ``W / T + b`` deliveries are handed out, shared by every worker process and
machine (the state and the clock are Redis's). A partitioned queue splits the rate and
the concurrency evenly over its partitions (each partition's limiter lives in its slot).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ..config.rates import parse_rate
from ..errors import ValidationError


class FlowControl(NamedTuple):
    """A lane's limits as ``fetch.lua`` takes them."""

    interval_us: float
    tau_us: float
    max_running: int
    lease_ms: int
    limiter: str


def flow_control(rate_limit: str | None, burst: int | None, max_in_flight: int | None, *,
                 group: str, lease_ms: int, partitions: int = 1) -> FlowControl | None:
    """The ``FlowControl`` of one lane (None when nothing limits it)."""
    if rate_limit is None and not max_in_flight:
        return None
    interval = tau = 0.0
    if rate_limit is not None:
        count, period = parse_rate(rate_limit)
        interval = period * 1e6 / count * max(partitions, 1)  # us per delivery, per partition
        if burst is None:
            burst = max(1, math.floor(count / period))  # one second's worth
        if burst < 1:
            raise ValidationError(f"rate_limit_burst must be at least 1, got {burst}")
        tau = (max(1, math.ceil(burst / max(partitions, 1))) - 1) * interval
    running = 0
    if max_in_flight:
        if max_in_flight < 1:
            raise ValidationError(f"max_in_flight_global must be at least 1, got {max_in_flight}")
        running = max(1, math.ceil(max_in_flight / max(partitions, 1)))
    return FlowControl(interval, tau, running, lease_ms, f"g:{group}")


__all__ = ["FlowControl", "flow_control", "parse_rate"]
