"""``QueueMonitor``: depth, throughput and latency of chosen queues, refreshed on an interval.

Headless (papermill, tests) call ``refresh()`` yourself; interactive, ``start()`` refreshes
every ``interval_s`` seconds on a background thread until ``stop()``::

    model = QueueMonitorModel(mq, ["ioc-processing", "ioc-results"])
    model.refresh()                # one snapshot: depth now + metrics of the window
    model.summary_df()             # one row per queue: depth, msg/s, p95 latency, errors
    model.plot_throughput()        # go.Figure; also plot_depth(), plot_latency()
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ...core.errors import ValidationError
from ...core.observe.metrics import MetricsStore
from .._dtypes import STRING, Window, seconds
from ..charts import plot_depth, plot_latency, plot_throughput
from ..frames import metrics_df, stats_df
from ..helpers import NO_CONSUMER_HINT, live_consumers
from ..logs import route_breaker_logs
from ._base import View, figure_output, heading, html_table, ipywidgets

try:
    import pandas as pd
except ImportError:  # pragma: no cover - exercised only without the extra
    from .. import require

    require("pandas")
    raise

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from ...core.observe.depth import QueueStats
    from ...core.queues import MessageQueue

RATE_WINDOW_S = 60.0
CHARTS = ("throughput", "latency", "depth")
_SUMMARY_COLUMNS: dict[str, Any] = {
    "queue": STRING, "depth": "Int64", "ready": "Int64", "in_flight": "Int64",
    "delayed": "Int64", "dead": "Int64", "published_per_s": "float64", "acked_per_s": "float64",
    "e2e_p95_ms": "Float64", "error_rate": "Float64", "consumers": "Int64"}


class QueueMonitorModel:
    """Snapshots of queue depth plus the metrics of a sliding window, on demand or timed."""

    def __init__(self, mq: MessageQueue, queues: Iterable[str] | None = None, *,
                 window: Window = "15min", interval_s: float = 2.0, history: int = 300) -> None:
        if interval_s <= 0:
            raise ValidationError(f"interval_s must be > 0, got {interval_s}")
        self.mq = mq
        self.queues: list[str] = list(queues) if queues is not None else mq.queues()
        self.window = window
        self.interval_s = interval_s
        self.snapshots: deque[pd.DataFrame] = deque(maxlen=history)
        self.metrics: pd.DataFrame = metrics_df(mq, [], window=window)
        self.refreshes = 0
        self.error: str | None = None
        self.consumers: dict[str, int] = {}
        self.last_stats: list[QueueStats] = []  # the last refresh's rows (paused state)
        self.alerts: deque[str] = deque(maxlen=5)  # breaker warnings of these queues
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[Any] = []

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"QueueMonitorModel({self.queues}, {state}, {self.refreshes} refreshes)"

    # -- data --------------------------------------------------------------------------------

    def refresh(self) -> pd.DataFrame:
        """Take one snapshot now; returns ``summary_df()`` (listeners are called too)."""
        seconds(self.window)  # fail early on a bad window
        stats = self.mq.stats(self.queues)
        snapshot = stats_df(self.mq, stats=stats)
        metrics = metrics_df(self.mq, self.queues, window=self.window)
        consumers = live_consumers(self.mq, self.queues)
        with self._changed:
            self.snapshots.append(snapshot)
            self.last_stats = stats
            self.metrics = metrics
            self.consumers = consumers
            self.refreshes += 1
            self._changed.notify_all()
        for listener in list(self._listeners):
            listener(self)
        return self.summary_df()

    def wait_for_refreshes(self, count: int, timeout_s: float = 10.0) -> bool:
        """Block until ``count`` refreshes happened in total (for tests and scripts)."""
        with self._changed:
            return self._changed.wait_for(lambda: self.refreshes >= count, timeout_s)

    def on_refresh(self, listener: Any) -> None:
        """Call ``listener(model)`` after every refresh (the widget redraws this way)."""
        self._listeners.append(listener)

    def depth_df(self) -> pd.DataFrame:
        """The latest depth snapshot (``stats_df``), empty before the first refresh."""
        with self._lock:
            return self.snapshots[-1] if self.snapshots else stats_df(self.mq, stats=[])

    def history_df(self) -> pd.DataFrame:
        """Every depth snapshot kept, concatenated (the depth-over-time chart's data)."""
        with self._lock:
            frames = list(self.snapshots)
        return pd.concat(frames, ignore_index=True) if frames else stats_df(self.mq, stats=[])

    def summary_df(self) -> pd.DataFrame:
        """One row per queue: depth now, rates and p95 latency of the last minute."""
        depth = self.depth_df().set_index("queue") if self.snapshots else None
        store = MetricsStore(self.mq)
        rows = []
        for queue in self.queues:
            last = store.window(queue, RATE_WINDOW_S)
            delivered = last.count("delivered")
            failed = last.count("retried") + last.count("dead_lettered")
            row: dict[str, Any] = {"queue": queue}
            if depth is not None and queue in depth.index:
                for col in ("depth", "ready", "in_flight", "delayed", "dead"):
                    row[col] = int(str(depth.at[queue, col]))
            row.update({
                "published_per_s": last.count("published") / RATE_WINDOW_S,
                "acked_per_s": last.count("acked") / RATE_WINDOW_S,
                "e2e_p95_ms": last.latency("e2e", 95),
                "error_rate": failed / delivered if delivered else None,
                "consumers": self.consumers.get(queue) if self.refreshes else None})
            rows.append(row)
        return pd.DataFrame({c: pd.Series([r.get(c) for r in rows], dtype=t)
                             for c, t in _SUMMARY_COLUMNS.items()})

    def unconsumed(self) -> dict[str, int]:
        """Queues with messages waiting or in flight but no live consumer: queue -> depth."""
        if not self.snapshots:
            return {}
        depth = self.depth_df()
        out = {}
        for queue, ready, in_flight, delayed in zip(
                depth["queue"], depth["ready"], depth["in_flight"], depth["delayed"],
                strict=True):
            waiting = int(ready or 0) + int(in_flight or 0) + int(delayed or 0)
            if waiting and not self.consumers.get(str(queue)):
                out[str(queue)] = waiting
        return out

    def plot_throughput(self) -> go.Figure:
        """Published vs acked per second over the window."""
        return plot_throughput(self.metrics)

    def plot_latency(self, kind: str = "e2e") -> go.Figure:
        """Latency percentiles over the window."""
        return plot_latency(self.metrics, kind=kind)

    def plot_depth(self) -> go.Figure:
        """Depth now (bars), or over time once several snapshots were taken (lines)."""
        return plot_depth(self.history_df() if len(self.snapshots) > 1 else self.depth_df())

    # -- timing ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the background thread refreshes."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> QueueMonitorModel:
        """Refresh now and then every ``interval_s`` on a daemon thread; returns self."""
        if self.running:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pn-queue-monitor",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop refreshing (waits for a refresh in progress to end)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
                self.error = None
            except Exception as exc:  # noqa: BLE001 - keep monitoring through a Redis blip
                self.error = f"{type(exc).__name__}: {exc}"
            self._stop.wait(self.interval_s)


class QueueMonitor(View):
    """Pick queues and an interval; see depth, throughput and latency, live or on demand.

    ``start()`` / ``stop()`` (or the buttons) control the background refresh; in a
    non-interactive run (papermill) call ``refresh()`` once instead.
    """

    def __init__(self, mq: MessageQueue | None = None, queues: Iterable[str] | None = None, *,
                 model: QueueMonitorModel | None = None, interval_s: float = 2.0,
                 window: Window = "15min") -> None:
        if model is None:
            if mq is None:
                raise ValidationError("give a MessageQueue or a model")
            model = QueueMonitorModel(mq, queues, interval_s=interval_s, window=window)
        self.model = model
        w = ipywidgets()
        known = list(dict.fromkeys([*model.queues, *model.mq.queues()]))
        self.queues = w.SelectMultiple(options=known, value=tuple(model.queues),
                                       description="Queues", rows=min(max(len(known), 3), 6),
                                       layout=w.Layout(width="320px"))
        self.interval = w.BoundedFloatText(value=model.interval_s, min=0.5, max=3600, step=0.5,
                                           description="Every (s)",
                                           layout=w.Layout(width="160px"))
        self.refresh_button = w.Button(description="Refresh", icon="sync")
        self.start_button = w.Button(description="Start", icon="play", button_style="success")
        self.stop_button = w.Button(description="Stop", icon="stop", button_style="warning",
                                    disabled=True)
        # operator controls on the selected queues (need manage; each action audited)
        self.pause_button = w.Button(description="Pause", icon="pause",
                                     tooltip="stop consumers of the selected queues within "
                                             "one fetch cycle (producers keep publishing)")
        self.resume_button = w.Button(description="Resume", icon="play-circle",
                                      tooltip="let consumers of the selected queues fetch again")
        self.cancel_id = w.Text(placeholder="message id to cancel", layout=w.Layout(width="300px"))
        self.cancel_button = w.Button(description="Cancel message", icon="ban",
                                      button_style="danger",
                                      tooltip="remove a waiting message from the selected "
                                              "queue, or ask a running one to stop")
        self.control_status = w.HTML()
        self.pause_button.on_click(lambda _: self.pause())
        self.resume_button.on_click(lambda _: self.resume())
        self.cancel_button.on_click(lambda _: self.cancel(self.cancel_id.value.strip()))
        self.status = w.HTML()
        self.hint = w.HTML()  # no consumer on a queue with messages
        self.alert = w.HTML()  # breaker warnings of these queues (not under a random cell)
        self.table = w.HTML(layout=w.Layout(width="100%"))
        self.charts = {name: w.Output(layout=w.Layout(width="100%")) for name in CHARTS}
        tabs = w.Tab(children=[self.charts[c] for c in CHARTS])
        for i, name in enumerate(CHARTS):
            tabs.set_title(i, name)
        self.refresh_button.on_click(lambda _: self.refresh())
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.queues.observe(self._queues_changed, "value")
        self.interval.observe(self._interval_changed, "value")
        model.on_refresh(lambda _: self._draw())
        self._unroute = route_breaker_logs(model.queues, self._breaker_logged)
        self.widget = w.VBox([
            w.HTML(heading("Queue monitor", "depth now; rates and p95 over the last minute")),
            w.HBox([self.queues, w.VBox([self.interval, w.HBox(
                [self.refresh_button, self.start_button, self.stop_button]), w.HBox(
                [self.pause_button, self.resume_button]), w.HBox(
                [self.cancel_id, self.cancel_button])])]),
            self.status, self.control_status, self.alert, self.hint, self.table, tabs],
            layout=w.Layout(border="1px solid #d0d7de", padding="8px", width="100%"))
        self._draw()

    def summary(self) -> str:
        state = "running" if self.model.running else "stopped"
        return f"QueueMonitor: {', '.join(self.model.queues) or 'no queue'} ({state}, " \
               f"{self.model.refreshes} refreshes)"

    def refresh(self) -> None:
        """One snapshot now (the headless path)."""
        self.model.refresh()

    def start(self) -> None:
        """Refresh every interval in the background."""
        self.model.start()
        self.start_button.disabled, self.stop_button.disabled = True, False
        self._draw()

    def stop(self) -> None:
        """Stop the background refresh."""
        self.model.stop()
        self.start_button.disabled, self.stop_button.disabled = False, True
        self._draw()

    def pause(self) -> None:
        """Pause the selected queues (``mq.pause``)."""
        self._control("paused", lambda q: self.model.mq.pause(q))

    def resume(self) -> None:
        """Resume the selected queues (``mq.resume``)."""
        self._control("resumed", lambda q: self.model.mq.resume(q))

    def cancel(self, message_id: str) -> None:
        """Cancel ``message_id`` in the selected queues (``mq.cancel``)."""
        if not message_id:
            self.control_status.value = "<span class='pn-bad'>give a message id</span>"
            return
        said: dict[str, str] = {}
        self._control("", lambda q: said.__setitem__(q, self.model.mq.cancel(q, message_id)))
        if said and not self.control_status.value:
            found = {q: o for q, o in said.items() if o != "not_found"}
            text = "; ".join(f"{_esc(q)}: {o}" for q, o in found.items()) or \
                f"{_esc(message_id)} is not waiting in {', '.join(map(_esc, said))}"
            self.control_status.value = f"<span class='pn-muted'>{text}</span>"

    def _control(self, verb: str, act: Any) -> None:
        """Run an operator action on each selected queue; refusals are shown, not raised."""
        from ...core.errors import PhantomError

        self.control_status.value = ""
        done = []
        for queue in self.model.queues:
            try:
                act(queue)
                done.append(queue)
            except PhantomError as exc:
                self.control_status.value = f"<span class='pn-bad'>{_esc(str(exc))}</span>"
                return
        if verb and done:
            self.control_status.value = (f"<span class='pn-muted'>{verb}: "
                                         f"{', '.join(map(_esc, done))}</span>")
        self.refresh()

    def close(self) -> None:
        """Stop routing breaker warnings here, then close the widgets."""
        self._unroute()
        super().close()

    def _breaker_logged(self, queue: str, message: str) -> None:
        self.model.alerts.append(message)
        self._draw_alerts()

    def _draw_alerts(self) -> None:
        import html

        self.alert.value = "".join(
            f"<div class='pn-bad' style='font-size:12.5px'>⚠ {html.escape(a)}</div>"
            for a in self.model.alerts)

    def _queues_changed(self, change: dict[str, Any]) -> None:
        self._unroute()
        self._unroute = route_breaker_logs(change["new"], self._breaker_logged)
        self.model.queues = list(change["new"])
        self.model.snapshots.clear()
        self.refresh()

    def _interval_changed(self, change: dict[str, Any]) -> None:
        self.model.interval_s = float(change["new"])

    def _draw(self) -> None:
        m = self.model
        state = "<span class='pn-ok'>live</span>" if m.running else \
            "<span class='pn-muted'>refresh stopped</span>"
        error = f" <span class='pn-bad'>{m.error}</span>" if m.error else ""
        paused = [s.queue for s in m.last_stats if s.paused or s.paused_groups]
        note = (" · <span class='pn-bad'>consumers paused: " + ", ".join(map(_esc, paused))
                + "</span>") if paused else ""
        self.status.value = (f"{state} <span class='pn-muted'>· {m.refreshes} refreshes · every "
                             f"{m.interval_s:g} s · window {m.window}</span>{note}{error}")
        if not m.refreshes:
            self.table.value = "<div class='pn-note'>press Refresh or Start</div>"
            return
        self.table.value = html_table(m.summary_df(), formats=_FORMATS, headers=_HEADERS)
        idle = m.unconsumed()
        self.hint.value = "" if not idle else (
            "<div style='background:#fff8c5;border:1px solid #d4a72c;padding:4px 8px;"
            "margin:4px 0;font-size:12.5px'>⚠ <b>no live consumer</b> on "
            + ", ".join(f"{_esc(q)} ({n:,} waiting)" for q, n in idle.items())
            + f": nothing will be processed. {NO_CONSUMER_HINT}.</div>")
        figure_output(self.charts["throughput"], m.plot_throughput())
        figure_output(self.charts["latency"], m.plot_latency())
        figure_output(self.charts["depth"], m.plot_depth())


def _num(fmt: str) -> Any:
    return lambda v: "—" if v is None or pd.isna(v) else format(v, fmt)


def _esc(text: str) -> str:
    import html

    return html.escape(text)


_HEADERS = {"in_flight": "in flight", "published_per_s": "published/s", "acked_per_s": "acked/s",
            "e2e_p95_ms": "p95 end-to-end (ms)", "error_rate": "error rate"}
_FORMATS = {"published_per_s": _num(",.1f"), "acked_per_s": _num(",.1f"),
            "e2e_p95_ms": _num(",.1f"), "error_rate": _num(".1%"),
            "consumers": lambda v: "—" if v is None or pd.isna(v) else
            ("<span class='pn-bad'>0</span>" if int(v) == 0 else f"{int(v)}")}
