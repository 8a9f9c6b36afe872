"""The analyst layer (DataFrames, plotly charts, ipywidgets, papermill reports).

One import gives all of it:

```python
import phantom_notebook.notebook as pnb

mq = pnb.connect("redis://localhost:6379/0")
ids = [pnb.publish(mq, "ioc-processing", "ioc.enrichment.request", {...})]
pnb.wait_for(mq, ids)                      # until acked / dead-lettered
pnb.messages_df(mq, "ioc-processing")      # compact; columns="all" for every column
pnb.plot_throughput(pnb.metrics_df(mq))
pnb.IOCPublisher(mq)                       # also QueueMonitor, TraceExplorer, DLQBrowser
pnb.verdicts_df(pnb.enrich_and_score(mq, iocs).wait())   # fan-out/fan-in risk scores
```

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
         **{n: "widgets" for n in ("IOCPublisher", "IOCPublisherModel", "QueueMonitor",
                                   "QueueMonitorModel", "TraceExplorer", "TraceExplorerModel",
                                   "DLQBrowser", "DLQBrowserModel")},
         **{n: "helpers" for n in ("wait_for", "wait_until", "known_queue", "publish",
                                   "live_consumers", "WaitTimeoutError")},
         "verdicts_df": "scoring",
         "serve_metrics": "prometheus", "PhantomCollector": "prometheus",
         "run_health_report": "reports"}
#: names from the layers below, so an analyst imports one module (``... as pnb``)
_BELOW = {"connect": "phantom_notebook.core", "MessageQueue": "phantom_notebook.core",
          "PhantomError": "phantom_notebook.core.errors",
          "extract_iocs": "phantom_notebook.intel", "IOC": "phantom_notebook.intel",
          "TLP": "phantom_notebook.intel", "IOCMessageProducer": "phantom_notebook.intel",
          "defang": "phantom_notebook.intel.defang", "refang": "phantom_notebook.intel.defang",
          "enrich_and_score": "phantom_notebook.intel.pipeline",
          "subscribe_scoring": "phantom_notebook.intel.pipeline"}


def __getattr__(name: str) -> object:
    """Load frames, charts, widgets and helpers on first use (pandas/plotly stay unloaded)."""
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, "serve" if name == "serve_metrics" else name)
    if name in _BELOW:
        return getattr(importlib.import_module(_BELOW[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def require(module: str) -> ModuleType:
    """Import ``module`` or raise ``MissingExtraError`` saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module} is needed for this notebook feature: "
            f"pip install 'phantom_notebook[notebook]' ({exc})") from None


def __dir__() -> list[str]:
    """Tab completion in Jupyter lists the lazy names too (``pnb.<Tab>``)."""
    return sorted(__all__)


__all__ = ["MissingExtraError", "require", *_LAZY, *_BELOW]
