"""Rates as settings write them: ``"600/min"``, ``"10/s"``, ``"5/10s"``, ``"1000/h"``."""

from __future__ import annotations

import re

from ..errors import ValidationError

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)?\s*"
                   r"(s|sec|second|seconds|m|min|minute|minutes|h|hour|hours|d|day|days)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(text: str) -> tuple[float, float]:
    """``(count, period_s)`` of a rate such as ``"600/min"`` or ``"5/10s"``."""
    m = _RATE.match(text) if isinstance(text, str) else None
    if not m or float(m.group(1)) <= 0 or (m.group(2) is not None and float(m.group(2)) <= 0):
        raise ValidationError(f"invalid rate limit {text!r}: use <count>/<unit>, e.g. "
                              "600/min, 10/s, 5/10s, 1000/h")
    period = float(m.group(2) or 1) * _UNIT_S[m.group(3)[0]]
    return float(m.group(1)), period


__all__ = ["parse_rate"]
