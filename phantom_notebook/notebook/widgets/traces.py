"""``TraceExplorer``: a message id or trace id -> its timeline chart and hop table.

Headless::

    model = TraceExplorerModel(mq)
    hops = model.load(message_id)      # the whole trace: request -> result -> alert
    model.plot_timeline()              # go.Figure (never shown by the model)

A message id loads the message's whole trace by default (the request, the result it
caused, a follow-up alert...), so the timeline shows the hops across queues. The trace of
a group or a chain is a tree (each message names its parent): ``model.tree()`` gives its
lanes, ``describe()`` lists it indented under its one-line summary, and the chart draws
it (``plot_trace_timeline``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ...core.errors import ValidationError
from .. import tracetree
from ..charts import plot_trace_timeline
from ..frames import trace_df
from ._base import View, figure_output, heading, html_table, ipywidgets

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from ...core.queues import MessageQueue

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
HOP_COLUMNS = ("time", "elapsed_ms", "event", "queue", "actor", "message_id", "attempt",
               "detail")


class TraceExplorerModel:
    """Finds the lifecycle events of a message or a trace."""

    def __init__(self, mq: MessageQueue, *, whole_trace: bool = True) -> None:
        self.mq = mq
        self.whole_trace = whole_trace
        self.key: str | None = None
        self.hops: pd.DataFrame = trace_df(mq, trace_id="none", queues=[])  # empty, typed

    def __repr__(self) -> str:
        return f"TraceExplorerModel({self.key!r}, {len(self.hops)} hops)"

    def load(self, key: str, *, whole_trace: bool | None = None) -> pd.DataFrame:
        """The hops of message ``key`` (or of trace ``key``: 32 hex digits), oldest first.

        With ``whole_trace`` (the default) a message id brings its whole trace.
        """
        key = key.strip()
        if not key:
            raise ValidationError("give a message id or a trace id")
        whole = self.whole_trace if whole_trace is None else whole_trace
        if _TRACE_ID.match(key):
            hops = trace_df(self.mq, trace_id=key)
        else:
            hops = trace_df(self.mq, message_id=key)
            ids = [str(t) for t in hops["trace_id"].dropna().unique()]
            if whole and len(ids) == 1:
                hops = trace_df(self.mq, trace_id=ids[0])
        self.key, self.hops = key, hops
        return hops

    def hops_df(self) -> pd.DataFrame:
        """The hop table of the last ``load`` (the display columns of ``trace_df``)."""
        return self.hops.loc[:, list(HOP_COLUMNS)]

    def plot_timeline(self) -> go.Figure:
        """The timeline of the last ``load`` (``plot_trace_timeline``)."""
        return plot_trace_timeline(self.hops)

    def tree(self) -> list[tracetree.Lane]:
        """The tree of the last ``load`` depth-first (``tracetree.lanes``); [] when no
        message of it names a parent (a plain message, a request and its result...)."""
        hops = self.hops
        if hops.empty or not bool(hops["parent_id"].notna().any()):
            return []
        return tracetree.lanes(hops.loc[:, ["message_id", "queue", "event", "detail"]]
                               .to_dict("records"))

    def describe(self) -> str:
        """One line: how many messages and events, how long, how it ended; for a group or
        a chain, then its tree, one indented line per message (its last event, how long)."""
        if self.key is None:
            return "no message loaded"
        if self.hops.empty:
            return f"no trace events for {self.key} (unknown id, or the capped trace rolled over)"
        messages = self.hops["message_id"].nunique()
        took = float(self.hops["elapsed_ms"].iloc[-1])
        queues = ", ".join(dict.fromkeys(self.hops["queue"].astype(str)))
        line = (f"{messages} message(s), {len(self.hops)} events over {took:,.0f} ms "
                f"across {queues}; last event: {self.hops['event'].iloc[-1]}")
        tree = self.tree()
        return line + "\n" + tracetree.describe(tree, self._lane_notes(tree)) if tree else line

    def _lane_notes(self, tree: list[tracetree.Lane]) -> dict[str, str]:
        """lane key -> "acked · 3 events in 12 ms"; a group: "3 messages in 80 ms"."""
        notes: dict[str, str] = {}
        spans: dict[str, tuple[float, float]] = {}
        for mid, rows in self.hops.groupby("message_id", sort=False):
            ms = rows["elapsed_ms"].astype("float64")
            spans[str(mid)] = (float(ms.min()), float(ms.max()))
            notes[str(mid)] = (f"{rows['event'].iloc[-1]} · {len(rows)} events in "
                               f"{ms.max() - ms.min():,.0f} ms")
        for lane in tree:
            if lane.virtual:
                below = [spans[k] for k in tracetree.below(tree, lane.key) if k in spans]
                took = max(s[1] for s in below) - min(s[0] for s in below)
                notes[lane.key] = f"{len(below)} messages in {took:,.0f} ms"
        return notes


class TraceExplorer(View):
    """Type or receive a message/trace id; see its timeline and the hops as a table."""

    def __init__(self, mq: MessageQueue | None = None, *,
                 model: TraceExplorerModel | None = None, key: str = "") -> None:
        if model is None:
            if mq is None:
                raise ValidationError("give a MessageQueue or a model")
            model = TraceExplorerModel(mq)
        self.model = model
        w = ipywidgets()
        self.key = w.Text(value=key, placeholder="message id or 32-hex trace id",
                          description="Id", continuous_update=False,
                          layout=w.Layout(width="520px"))
        self.whole = w.Checkbox(value=model.whole_trace, description="whole trace",
                                indent=False, layout=w.Layout(width="120px"))
        self.load_button = w.Button(description="Show trace", icon="search",
                                    button_style="info")
        self.status = w.HTML()
        self.tree = w.HTML()  # the tree of a group / chain trace, as indented text
        self.chart = w.Output(layout=w.Layout(width="100%"))
        self.table = w.HTML(layout=w.Layout(width="100%"))
        self.load_button.on_click(lambda _: self.load())
        self.key.observe(lambda _: self.load(), "value")  # Enter or leaving the box
        self.widget = w.VBox([
            w.HTML(heading("Trace explorer", "every hop of a message across queues")),
            w.HBox([self.key, self.whole, self.load_button]), self.status, self.tree,
            self.chart, self.table],
            layout=w.Layout(border="1px solid #d0d7de", padding="8px", width="100%"))
        if key:
            self.load()

    def summary(self) -> str:
        return f"TraceExplorer: {self.model.describe()}"

    def show(self, key: str) -> None:
        """Load ``key`` (what ``IOCPublisher``'s *Open trace* calls)."""
        if self.key.value == key:
            self.load()
        else:
            self.key.value = key  # the observer loads it

    def load(self) -> None:
        """Load the id in the text box and draw it."""
        try:
            self.model.load(self.key.value, whole_trace=self.whole.value)
        except ValidationError as exc:
            self.status.value = f"<span class='pn-bad'>{_esc(str(exc))}</span>"
            return
        bad = self.model.hops.empty
        line, _, tree = self.model.describe().partition("\n")
        self.status.value = f"<span class='{'pn-bad' if bad else 'pn-muted'}'>" \
                            f"{_esc(line)}</span>"
        # inline styles: the HTML widget's line-height (28 px) would win over a class
        self.tree.value = (f"<pre data-trace-tree='{tree.count(chr(10)) + 1}' style='"
                           "font-family:ui-monospace,DejaVu Sans Mono,Menlo,Consolas,monospace;"
                           "font-size:12.5px;line-height:1.45;white-space:pre;margin:4px 0;"
                           f"color:#24292f'>{_esc(tree)}</pre>") if tree else ""
        if bad:
            self.chart.outputs = ()
            self.table.value = ""
            return
        figure_output(self.chart, self.model.plot_timeline())
        self.table.value = html_table(
            self.model.hops_df(), mono=("message_id", "actor"), max_rows=100,
            formats={"elapsed_ms": lambda v: f"+{int(v):,} ms",
                     "time": lambda v: v.strftime("%H:%M:%S.%f")[:-3] + " UTC"},
            headers={"elapsed_ms": "elapsed", "message_id": "message"})


def _esc(text: str) -> str:
    import html

    return html.escape(text)
