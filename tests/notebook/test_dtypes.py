"""The typed-column helpers of the frames: every dtype, missing values, durations, times."""

from __future__ import annotations

import math
from datetime import UTC as TZ_UTC
from datetime import datetime, timedelta
from types import SimpleNamespace

import pandas as pd
import pytest

import phantom_notebook as pn
from phantom_notebook.notebook import _dtypes
from phantom_notebook.notebook._dtypes import (
    MS_RANGE,
    STRING,
    UTC,
    column,
    epoch_s,
    frame,
    number,
    seconds,
    text,
)


def test_a_categorical_keeps_its_known_values_in_order_then_the_unknown_ones_sorted() -> None:
    s = column(["LOW", None, "zeta", "HIGH", "alpha", "zeta"], ("cat", ("HIGH", "LOW"), True))
    dtype = s.dtype
    assert isinstance(dtype, pd.CategoricalDtype) and dtype.ordered
    assert list(dtype.categories) == ["HIGH", "LOW", "alpha", "zeta"]
    assert s.iloc[0] == "LOW" and pd.isna(s.iloc[1]) and s.iloc[2] == "zeta"
    unordered = column([3, None], ("cat", (), False))
    loose = unordered.dtype
    assert isinstance(loose, pd.CategoricalDtype)
    assert not loose.ordered and list(loose.categories) == ["3"]
    assert unordered.iloc[0] == "3"


def test_categories_are_text_even_when_there_are_none_yet() -> None:
    text_index = pd.Index([], dtype=str).dtype
    for values in ([], [None, None], [None]):
        dtype = column(values, ("cat", ("a",) if values == [None] else (), False)).dtype
        assert isinstance(dtype, pd.CategoricalDtype)
        assert dtype.categories.dtype == text_index
        assert len(dtype.categories) == (1 if values == [None] else 0)


def test_times_in_ms_become_utc_nanosecond_timestamps_and_non_numbers_missing() -> None:
    s = column([1_700_000_000_123, None, "junk", 0], UTC)
    assert s.dtype == UTC and str(s.dtype) == "datetime64[ns, UTC]"
    assert s.iloc[0] == pd.Timestamp(1_700_000_000_123, unit="ms", tz="UTC")
    assert pd.isna(s.iloc[1]) and pd.isna(s.iloc[2])
    assert s.iloc[3] == pd.Timestamp(0, unit="ms", tz="UTC")


def test_times_past_the_nanosecond_range_are_missing_not_an_error() -> None:
    low, high = MS_RANGE
    assert (low, high) == (-9_223_372_036_854, 9_223_372_036_854)  # 1677-09-21 to 2262-04-11
    s = column([high, high + 1, low, low - 1, 1e17, -math.inf, math.inf], UTC)
    assert s.dtype == UTC
    assert s.iloc[0] == pd.Timestamp("2262-04-11 23:47:16.854", tz="UTC")
    assert s.iloc[2] == pd.Timestamp("1677-09-21 00:12:43.146", tz="UTC")
    assert [pd.isna(v) for v in s] == [False, True, False, True, True, True, True]
    assert column([high + 1], UTC).isna().all() and column([low - 1], UTC).isna().all()


def test_bools_floats_ints_and_text_each_get_their_dtype() -> None:
    flags = column([1, 0, None, "x"], "bool")
    assert str(flags.dtype) == "bool" and flags.tolist() == [True, False, False, True]
    floats = column([1, "2.5", None, True, "x"], "float64")
    assert str(floats.dtype) == "float64"
    assert floats.tolist()[:2] == [1.0, 2.5] and floats.iloc[2:].isna().all()
    ints = column([3, None, "7", 2.0], "Int64")
    assert str(ints.dtype) == "Int64" and ints.tolist()[0] == 3 and pd.isna(ints.iloc[1])
    assert ints.iloc[2] == 7 and ints.iloc[3] == 2
    words = column(["a", None, 5, b"x"], STRING)
    assert words.dtype == STRING and words.iloc[0] == "a" and pd.isna(words.iloc[1])
    assert words.iloc[2] == "5" and words.iloc[3] == "b'x'"


def test_a_frame_has_exactly_the_schema_s_columns_even_without_rows() -> None:
    schema = {"when": UTC, "n": "Int64", "name": STRING, "ok": "bool", "x": "float64"}
    empty = frame([], schema)
    assert list(empty.columns) == list(schema) and empty.empty
    assert [str(t) for t in empty.dtypes] == ["datetime64[ns, UTC]", "Int64", "string", "bool",
                                              "float64"]
    rows = frame([{"n": 1, "name": "a", "extra": 9}, {"when": 0, "ok": True}], schema)
    assert list(rows.columns) == list(schema) and len(rows) == 2
    assert rows["n"].tolist()[0] == 1 and pd.isna(rows["n"].iloc[1])
    assert rows["ok"].tolist() == [False, True] and rows["name"].iloc[0] == "a"


@pytest.mark.parametrize(("value", "expected"), [
    ("15min", 900.0), ("1h", 3600.0), (timedelta(minutes=2), 120.0), (90, 90.0), (2.5, 2.5)])
def test_a_duration_reads_as_seconds(value: _dtypes.Window, expected: float) -> None:
    assert seconds(value) == expected and isinstance(seconds(value), float)


def test_a_duration_that_is_not_one_is_refused_with_an_example() -> None:
    with pytest.raises(pn.ValidationError, match=r"not a duration: 'soon' \(e.g. '15min', '1h'\)"):
        seconds("soon")


def test_a_time_is_an_aware_datetime_or_a_number_and_now_by_default(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert epoch_s(datetime(2026, 1, 1, tzinfo=TZ_UTC)) == 1_767_225_600.0
    assert epoch_s(12) == 12.0 and isinstance(epoch_s(12), float)
    monkeypatch.setattr(_dtypes, "time", SimpleNamespace(time=lambda: 42.5))
    assert epoch_s(None) == 42.5
    with pytest.raises(pn.ValidationError) as caught:
        epoch_s(datetime(2026, 1, 1))
    assert str(caught.value) == "now must be timezone-aware (e.g. datetime.now(UTC))"


@pytest.mark.parametrize(("value", "expected"), [
    (3, 3.0), (2.5, 2.5), ("4.25", 4.25), (b"7", 7.0), (True, None), (False, None),
    (None, None), ("x", None), ([1], None), (float("inf"), math.inf)])
def test_a_number_is_a_float_or_none(value: object, expected: float | None) -> None:
    got = number(value)
    assert got == expected and (got is None or isinstance(got, float))


def test_text_decodes_bytes_as_utf8_and_replaces_what_is_not() -> None:
    assert text(b"caf\xc3\xa9") == "café" and text(b"\xff") == "\ufffd"
    assert text(7) == "7" and text("x") == "x"
