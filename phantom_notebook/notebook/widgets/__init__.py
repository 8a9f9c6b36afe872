"""ipywidgets 8 views for analysts, each a thin view over a model that does the work.

=================  =======================  ==========================================
widget             model (headless)         what it does
=================  =======================  ==========================================
``IOCPublisher``   ``IOCPublisherModel``    text -> IOCs (defanged) -> publish -> ids
``QueueMonitor``   ``QueueMonitorModel``    depth, throughput, latency; start/stop
``TraceExplorer``  ``TraceExplorerModel``   message / trace id -> timeline + hop table
``DLQBrowser``     ``DLQBrowserModel``      filter, inspect (redacted), replay, purge
=================  =======================  ==========================================

Tests and papermill use the models (or set widget ``.value`` and call ``.click()``);
nothing here blocks waiting for a person, and nothing starts a thread unless asked.
"""

from __future__ import annotations

from .dlq import DLQBrowser, DLQBrowserModel, PurgePlan
from .monitor import QueueMonitor, QueueMonitorModel
from .publisher import IOCPublisher, IOCPublisherModel
from .traces import TraceExplorer, TraceExplorerModel

__all__ = ["DLQBrowser", "DLQBrowserModel", "IOCPublisher", "IOCPublisherModel", "PurgePlan",
           "QueueMonitor", "QueueMonitorModel", "TraceExplorer", "TraceExplorerModel"]
