"""Typed columns for the notebook frames: UTC times, nullable ints, strings, categoricals."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from ..core.errors import ValidationError
from . import require

try:
    import pandas as pd
except ImportError:  # pragma: no cover - exercised only without the extra
    require("pandas")
    raise

UTC = pd.DatetimeTZDtype("ns", "UTC")
STRING = pd.StringDtype()
#: the epoch milliseconds a nanosecond time can hold (1677-09-21 to 2262-04-11), whole ms
MS_RANGE = (-(-pd.Timestamp.min.value // 1_000_000), pd.Timestamp.max.value // 1_000_000)
#: a duration: "15min", "1h", a timedelta or seconds
Window = str | timedelta | float | int


def frame(rows: list[dict[str, Any]], schema: Mapping[str, Any]) -> pd.DataFrame:
    """Build a frame with exactly ``schema``'s columns and dtypes (empty rows too)."""
    return pd.DataFrame({name: column([r.get(name) for r in rows], dtype)
                         for name, dtype in schema.items()})


def column(values: list[Any], dtype: Any) -> pd.Series:
    """``values`` as a Series of ``dtype`` (``("cat", known, ordered)``: keeps unknowns).

    Times are epoch milliseconds; those that are no number or lie past ``MS_RANGE`` are
    missing (NaT).
    """
    if isinstance(dtype, tuple):
        _, known, ordered = dtype
        extra = sorted({str(v) for v in values if v is not None} - set(known))
        cats = pd.CategoricalDtype(pd.Index([*known, *extra], dtype=str), ordered=ordered)
        return pd.Series([None if v is None else str(v) for v in values], dtype=cats)
    if dtype is UTC:
        ms = pd.Series([number(v) for v in values], dtype="float64")
        ms = ms.where(ms.between(*MS_RANGE))  # a time past the range is missing, not an error
        return pd.to_datetime(ms, unit="ms", utc=True).astype(UTC)
    if dtype == "bool":
        return pd.Series([bool(v) for v in values], dtype="bool")
    if dtype == "float64":
        return pd.Series([number(v) for v in values], dtype="float64")
    if dtype == "Int64":
        return pd.Series([None if v is None else int(v) for v in values], dtype="Int64")
    return pd.Series([None if v is None else str(v) for v in values], dtype=STRING)


def seconds(value: Window) -> float:
    """A duration in seconds; ``ValidationError`` when it cannot be read."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(pd.Timedelta(value).total_seconds())
    except ValueError:
        raise ValidationError(f"not a duration: {value!r} (e.g. '15min', '1h')") from None


def epoch_s(value: datetime | float | None) -> float:
    """Unix seconds of an aware datetime or a number (now when None)."""
    if value is None:
        return time.time()
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValidationError("now must be timezone-aware (e.g. datetime.now(UTC))")
        return value.timestamp()
    return float(value)


def number(value: Any) -> float | None:
    """``value`` as a float, or None when it is not a number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def text(value: Any) -> str:
    """``value`` as text (bytes decoded as UTF-8)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
