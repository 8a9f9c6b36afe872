"""The analyst layer (DataFrames, plotly charts, ipywidgets, papermill reports).

Behind the ``[notebook]`` extra: nothing here is imported by the core, and every module
that needs pandas / plotly / ipywidgets / papermill asks for it through ``require`` so a
missing package produces an actionable error instead of a bare ImportError.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..core.errors import PhantomError


class MissingExtraError(PhantomError, ImportError):
    """Raised when a notebook feature needs a package of the ``[notebook]`` extra."""


_LAZY = {**{n: "frames" for n in ("messages_df", "trace_df", "metrics_df", "stats_df",
                                  "health_df", "dlq_df", "audit_df", "consumers_df")},
         **{n: "charts" for n in ("plot_throughput", "plot_latency", "plot_depth",
                                  "plot_errors", "plot_dlq_reasons", "plot_trace_timeline")},
         "serve_metrics": "prometheus", "PhantomCollector": "prometheus",
         "run_health_report": "reports"}


def __getattr__(name: str) -> object:
    """Load DataFrame, chart and exporter helpers on first use (pandas/plotly stay unloaded)."""
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, "serve" if name == "serve_metrics" else name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def require(module: str) -> ModuleType:
    """Import ``module`` or raise ``MissingExtraError`` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module} is needed for this notebook feature: "
            f"pip install 'phantom_notebook[notebook]' ({exc})") from None


__all__ = ["MissingExtraError", "require", *_LAZY]
