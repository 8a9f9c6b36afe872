"""The ``df.phantom`` accessor: charts, defanging and redaction on our DataFrames.

Importing ``phantom_notebook.notebook.frames`` (or this module) registers it::

    trace_df(mq, message_id=mid).phantom.plot_timeline()
    iocs.phantom.defang("value")            # a copy with the indicators defanged
    dlq_df(mq, "q").phantom.redact()         # a copy safe to paste into a ticket

DataFrame in, DataFrame (or ``go.Figure``) out: the accessor never changes the frame.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import require

try:
    import pandas as pd
except ImportError:  # pragma: no cover - exercised only without the extra
    require("pandas")
    raise

if TYPE_CHECKING:
    import plotly.graph_objects as go

#: columns ``redact`` masks by default (free text that may quote payloads or secrets)
SENSITIVE_COLUMNS = ("payload", "error", "traceback", "detail", "decode_error", "headers")
#: columns ``defang`` looks for when none is named
IOC_COLUMNS = ("ioc", "value", "indicator", "ioc_value", "observable")
_TLP_ORDER = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")


def defang_value(value: Any, ioc_type: Any = None) -> Any:
    """``intel.defang`` for one cell; non-indicators and missing values come back unchanged."""
    from ..core.errors import ValidationError
    from ..intel.defang import defang

    if not isinstance(value, str) or not value.strip():
        return value
    try:
        return defang(value, ioc_type if isinstance(ioc_type, str) and ioc_type else None)
    except ValidationError:
        return value


@pd.api.extensions.register_series_accessor("phantom")
class PhantomSeriesAccessor:
    """``series.phantom``: defang a column of indicator values."""

    def __init__(self, series: pd.Series) -> None:
        self._s = series

    def defang(self) -> pd.Series:
        """A copy with every valid indicator defanged (``evil.com`` -> ``evil[.]com``)."""
        return self._s.map(defang_value).astype(self._s.dtype)


@pd.api.extensions.register_dataframe_accessor("phantom")
class PhantomAccessor:
    """``df.phantom``: plots for our frames, ``defang`` and ``redact`` for any frame."""

    def __init__(self, df: pd.DataFrame) -> None:
        self._df = df

    # -- data ------------------------------------------------------------------------------

    def defang(self, column: str | None = None, *, ioc_type_column: str | None = None,
               ) -> pd.DataFrame:
        """A copy with the indicators of ``column`` defanged (others left unchanged).

        Without ``column`` the first of ``ioc``, ``value``, ``indicator``, ``ioc_value``,
        ``observable`` present is used. ``ioc_type_column`` names a column of IOC types
        (``ipv4``, ``url``...) so values are not re-classified.
        """
        name = column or next((c for c in IOC_COLUMNS if c in self._df.columns), None)
        if name is None or name not in self._df.columns:
            raise KeyError(f"no indicator column: name one (columns: {list(self._df.columns)})")
        out = self._df.copy()
        types: Iterable[Any] = (out[ioc_type_column] if ioc_type_column
                                else [None] * len(out))
        values = [defang_value(v, t) for v, t in zip(out[name], types, strict=True)]
        out[name] = pd.Series(values, index=out.index, dtype=out[name].dtype)
        return out

    def redact(self, columns: Iterable[str] | None = None, *, min_tlp: str | None = None,
               mask: str = "[redacted]") -> pd.DataFrame:
        """A copy with sensitive text columns replaced by ``mask`` (missing values stay NA).

        ``columns`` defaults to those of ``SENSITIVE_COLUMNS`` present. With ``min_tlp``
        (e.g. ``"AMBER"``) only rows whose ``tlp`` is at least that restrictive are masked.
        """
        names = [c for c in (columns if columns is not None else SENSITIVE_COLUMNS)
                 if c in self._df.columns]
        out = self._df.copy()
        rows = pd.Series(True, index=out.index)
        if min_tlp is not None:
            if "tlp" not in out.columns:
                raise KeyError("min_tlp needs a 'tlp' column")
            limit = _TLP_ORDER.index(min_tlp.upper().removeprefix("TLP:"))
            rank = out["tlp"].astype("string").map(
                lambda v: _TLP_ORDER.index(v) if v in _TLP_ORDER else len(_TLP_ORDER),
                na_action="ignore")
            rows = rank.fillna(len(_TLP_ORDER)).astype(int) >= limit
        for name in names:
            column = out[name].astype("string")
            out[name] = column.mask(rows & column.notna(), mask)
        return out

    # -- charts ----------------------------------------------------------------------------

    def plot_timeline(self, **kwargs: Any) -> go.Figure:
        """``plot_trace_timeline`` of a ``trace_df`` frame."""
        from .charts import plot_trace_timeline

        return plot_trace_timeline(self._df, **kwargs)

    def plot_throughput(self, **kwargs: Any) -> go.Figure:
        """``plot_throughput`` of a ``metrics_df`` frame."""
        from .charts import plot_throughput

        return plot_throughput(self._df, **kwargs)

    def plot_latency(self, **kwargs: Any) -> go.Figure:
        """``plot_latency`` of a ``metrics_df`` frame."""
        from .charts import plot_latency

        return plot_latency(self._df, **kwargs)

    def plot_errors(self, **kwargs: Any) -> go.Figure:
        """``plot_errors`` of a ``metrics_df`` frame."""
        from .charts import plot_errors

        return plot_errors(self._df, **kwargs)

    def plot_depth(self, **kwargs: Any) -> go.Figure:
        """``plot_depth`` of a ``stats_df`` frame (or several concatenated snapshots)."""
        from .charts import plot_depth

        return plot_depth(self._df, **kwargs)

    def plot_dlq_reasons(self, **kwargs: Any) -> go.Figure:
        """``plot_dlq_reasons`` of a ``dlq_df`` frame."""
        from .charts import plot_dlq_reasons

        return plot_dlq_reasons(self._df, **kwargs)

    def plot(self, **kwargs: Any) -> go.Figure:
        """The natural chart of this frame, recognised by its columns."""
        cols = set(self._df.columns)
        if {"event", "elapsed_ms"} <= cols:
            return self.plot_timeline(**kwargs)
        if {"published_per_s", "acked_per_s"} <= cols:
            return self.plot_throughput(**kwargs)
        if {"ready", "in_flight", "delayed", "dead"} <= cols:
            return self.plot_depth(**kwargs)
        if {"dlq_id", "reason"} <= cols:
            return self.plot_dlq_reasons(**kwargs)
        raise TypeError("no default chart for this frame: call a plot_* method")
