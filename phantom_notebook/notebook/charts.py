"""plotly figures of the ``frames`` DataFrames: each ``plot_*`` returns a ``go.Figure``.

None of them calls ``.show()``: the notebook displays the returned figure, a report embeds
it (``fig.write_html(path, include_plotlyjs=True)`` opens offline). Times are drawn in
UTC; an empty frame gives an empty chart that says so instead of raising.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Sequence

from ..core.observe.depth import QueueStats
from . import require, tracetree

try:
    import numpy as np
    import pandas as pd
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
except ImportError:  # pragma: no cover - exercised only without the extra
    require("plotly")
    require("pandas")
    raise

TEMPLATE = "plotly_white"
PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#B279A2", "#E45756", "#72B7B2", "#9D755D",
           "#EECA3B", "#FF9DA6", "#BAB0AC")
EVENT_COLOURS = {
    "published": "#4C78A8", "deduplicated": "#BAB0AC", "delivered": "#72B7B2",
    "acked": "#54A24B", "nacked": "#EECA3B", "retried": "#F58518",
    "dead_lettered": "#E45756", "expired": "#B279A2", "replayed": "#9D755D",
    "released": "#BAB0AC", "progress": "#8CD17D", "group_created": "#79706E",
    "group_succeeded": "#1A7F37", "group_failed": "#E45756"}
EVENT_SYMBOLS = {"dead_lettered": "x", "expired": "x", "acked": "star", "retried": "circle-open",
                 "delivered": "diamond", "replayed": "triangle-up", "progress": "circle-dot",
                 "group_created": "square-open", "group_succeeded": "square",
                 "group_failed": "square-x"}
#: a tree with more lanes than this is drawn per queue and consumer (one lane per message
#: of a huge group would be taller than any screen)
TREE_MAX_LANES = 120
_MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"
STATE_COLOURS = {"ready": "#4C78A8", "in_flight": "#F58518", "delayed": "#B279A2",
                 "dead": "#E45756"}
STATE_LABELS = {"ready": "ready", "in_flight": "in flight", "delayed": "delayed",
                "dead": "dead letters"}
LATENCY_LABELS = {"wait": "Queue wait (publish → delivery)",
                  "proc": "Processing time (delivery → settled)",
                  "e2e": "End-to-end latency (publish → settled)"}
_DASHES = ("solid", "dash", "dot", "dashdot")
_TIME = "time (UTC)"
ERRORS_HEIGHT = 520


def plot_throughput(metrics: pd.DataFrame,
                    events: Sequence[str] = ("published", "acked")) -> go.Figure:
    """Messages per second over time: published vs acked (``events``), per queue.

    Each bucket is a marker too (a burst inside one 10 s bucket is one visible point, not
    an invisible zero-length line); the x axis fits the buckets with traffic.
    """
    fig = go.Figure()
    queues = _queues(metrics)
    for qi, (queue, rows) in enumerate(_by_queue(metrics)):
        for ei, event in enumerate(events):
            colour = PALETTE[ei % len(PALETTE)] if len(queues) == 1 else PALETTE[qi % 10]
            y = _floats(rows[f"{event}_per_s"])
            fig.add_trace(go.Scatter(
                x=_utc(rows["time"]), y=y, mode="lines+markers" if len(y) <= 120 else "lines",
                name=_name(queue, event, queues), legendgroup=queue, line_shape="hv",
                marker={"size": 7 if len(y) <= 3 else 5,
                        "symbol": "circle" if ei % 2 == 0 else "diamond"},
                line={"color": colour, "width": 2, "dash": _DASHES[ei % 4]},
                hovertemplate=f"{html.escape(queue)} {event}: %{{y:,.1f}} msg/s<extra></extra>"))
    title = "Throughput: " + " vs ".join(events) + _per_bucket(metrics)
    fig = _finish(fig, title, _TIME, "messages per second", metrics.empty,
                  hovermode="x unified")
    fig.update_yaxes(rangemode="tozero")
    return _fit_x(fig, metrics, [f"{e}_per_s" for e in events])


def plot_latency(metrics: pd.DataFrame, kind: str = "e2e",
                 percentiles: Sequence[int] = (50, 95, 99)) -> go.Figure:
    """Latency percentiles over time in ms (``kind``: wait, proc or e2e), per queue.

    The y axis turns logarithmic when the largest value is over 20 times the smallest.
    """
    fig = go.Figure()
    queues = _queues(metrics)
    values: list[float] = []
    for qi, (queue, rows) in enumerate(_by_queue(metrics)):
        for pi, q in enumerate(percentiles):
            y = _floats(rows[f"{kind}_p{q}_ms"])
            values += [v for v in y if v > 0]
            colour = PALETTE[pi % 10] if len(queues) == 1 else PALETTE[qi % 10]
            fig.add_trace(go.Scatter(
                x=_utc(rows["time"]), y=y, mode="lines+markers" if len(y) <= 60 else "lines",
                name=_name(queue, f"p{q}", queues), legendgroup=queue, marker={"size": 5},
                connectgaps=False,
                line={"color": colour, "width": 2, "dash": _DASHES[pi % 4]},
                hovertemplate=f"{html.escape(queue)} p{q}: %{{y:,.2f}} ms<extra></extra>"))
    log = bool(values) and max(values) / min(values) > 20
    fig = _finish(fig, LATENCY_LABELS.get(kind, kind) + _per_bucket(metrics), _TIME,
                  "latency (ms, log scale)" if log else "latency (ms)", metrics.empty,
                  hovermode="x unified")
    if log:
        fig.update_yaxes(type="log")
    return _fit_x(fig, metrics, [f"{kind}_p{q}_ms" for q in percentiles])


def plot_depth(data: pd.DataFrame | Sequence[QueueStats]) -> go.Figure:
    """Queue depth by state: bars per queue for one snapshot, lines over time for several.

    ``data`` is a ``stats_df`` frame, a list of ``QueueStats``, or snapshots concatenated
    (several distinct ``time`` values): then one queue is drawn as stacked areas per
    state, several as one backlog line (ready + in flight + delayed) each.
    """
    frame = data if isinstance(data, pd.DataFrame) else _stats_frame(data)
    if "time" in frame.columns and frame["time"].nunique() > 1:
        return _depth_history(frame)
    latest = frame.drop_duplicates("queue", keep="last") if not frame.empty else frame
    fig = go.Figure()
    for state, label in STATE_LABELS.items():
        counts = _floats(latest[state]) if state in latest.columns else np.array([])
        fig.add_trace(go.Bar(
            x=list(latest["queue"].astype("string")), y=counts, name=label,
            text=[f"{n:,.0f}" if n else "" for n in counts], textposition="outside",
            cliponaxis=False,
            marker_color=STATE_COLOURS[state],
            hovertemplate=f"%{{x}} {label}: %{{y:,.0f}}<extra></extra>"))
    fig = _finish(fig, "Queue depth by state", "queue", "messages", frame.empty)
    fig.update_layout(barmode="group", bargap=0.25)
    fig.update_yaxes(rangemode="tozero")
    return fig


def plot_errors(metrics: pd.DataFrame, warn_rate: float = 0.05) -> go.Figure:
    """Error rate (%) and dead letters per bucket over time, per queue (two stacked panels).

    The dashed line marks ``warn_rate``, the health check's default warning threshold.
    A bucket with nothing delivered has no error rate: the line breaks there (missing
    buckets are put back as gaps, never interpolated across). The x axis fits the buckets
    with traffic.
    """
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        row_heights=[0.55, 0.45])
    queues = _queues(metrics)
    for qi, (queue, rows) in enumerate(_by_queue(metrics)):
        rows = _every_bucket(rows)
        colour = PALETTE[qi % 10] if len(queues) > 1 else PALETTE[4]
        x = _utc(rows["time"])
        fig.add_trace(go.Scatter(
            x=x, y=_floats(rows["error_rate"]) * 100, mode="lines+markers", connectgaps=False,
            name=_name(queue, "error rate", queues), legendgroup=queue, marker={"size": 5},
            line={"color": colour, "width": 2},
            hovertemplate=f"{html.escape(queue)} error rate: %{{y:.1f}} %<extra></extra>"),
            row=1, col=1)
        fig.add_trace(go.Bar(
            x=x, y=_floats(rows["dead_lettered"]), name=_name(queue, "dead letters", queues),
            legendgroup=queue, marker_color=colour, opacity=0.75,
            hovertemplate=f"{html.escape(queue)} dead letters: %{{y:,.0f}}<extra></extra>"),
            row=2, col=1)
    fig.add_hline(y=warn_rate * 100, line={"color": "#9a6700", "dash": "dash", "width": 1},
                  annotation_text=f"warn {warn_rate:.0%}", annotation_position="top left",
                  row=1, col=1)
    fig = _finish(fig, "Errors: error rate and dead letters" + _per_bucket(metrics), None,
                  None, metrics.empty, hovermode="x unified")
    # short titles: each must fit the height of its own panel (long ones ran into each other)
    fig.update_yaxes(title_text="error rate (%)", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="dead letters", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text=_TIME, row=2, col=1)
    fig.update_layout(barmode="stack", bargap=0.1, height=ERRORS_HEIGHT)
    return _fit_x(fig, metrics, ["delivered", "dead_lettered"])


def plot_dlq_reasons(dlq: pd.DataFrame) -> go.Figure:
    """Dead letters per reason (horizontal bars, most frequent on top; stacked by queue)."""
    fig = go.Figure()
    if not dlq.empty:
        counts: pd.DataFrame = (dlq.assign(reason=dlq["reason"].astype("string").fillna("(none)"),
                             queue=dlq["queue"].astype("string"))
                  .groupby(["reason", "queue"]).size().rename("n").reset_index())
        order = counts.groupby("reason")["n"].sum().sort_values(kind="stable").index.tolist()
        queues = sorted(counts["queue"].unique())
        for qi, queue in enumerate(queues):
            rows = counts[counts["queue"] == queue].set_index("reason").reindex(order)
            n = rows["n"].fillna(0).to_numpy(dtype=float)
            share = n / len(dlq) * 100
            fig.add_trace(go.Bar(
                y=order, x=n, orientation="h", name=str(queue),
                text=[f"{c:,.0f} ({p:.0f} %)" if c else "" for c, p in zip(n, share, strict=True)],
                textposition="auto", marker_color=PALETTE[qi % 10],
                hovertemplate=f"{html.escape(str(queue))}: %{{x:,.0f}} × %{{y}}<extra></extra>"))
        fig.update_layout(showlegend=len(queues) > 1, barmode="stack")
    fig = _finish(fig, "Dead letters by reason", "dead letters", "reason", dlq.empty)
    fig.update_layout(height=max(320, 140 + 40 * dlq["reason"].nunique()))
    return fig


def plot_trace_timeline(trace: pd.DataFrame, title: str | None = None) -> go.Figure:
    """A message's (or a trace's) hops as a timeline: one row per queue and consumer lane.

    Markers are the lifecycle events, colour-coded, labelled with the attempt; a grey line
    joins the hops of each message in order (wait in the queue, then processing...).
    Events too close to tell apart are nudged vertically within their lane.

    A trace whose messages name their parents (a group, a chain: ``trace_df``'s
    ``parent_id``) is drawn as a tree instead: one lane per message, depth-first from the
    group or chain (its own row, a bar over the time it took), the labels indented with
    branch glyphs, a dotted connector from each parent's lane down to its child's first
    event (up to ``TREE_MAX_LANES`` lanes; a bigger tree gets the lanes per queue).
    """
    df = trace.reset_index(drop=True)
    tree = _tree_of(df)
    if tree is not None:
        return _tree_timeline(df, tree, title)
    lanes: list[str] = []
    lane_of = []
    for queue, actor, event in zip(df["queue"], df["actor"], df["event"], strict=True):
        who = actor if isinstance(actor, str) and actor else (
            "(producer)" if event == "published" else "(no consumer)")
        lane = f"{queue} · {who}"
        if lane not in lanes:
            lanes.append(lane)
        lane_of.append(lanes.index(lane))
    elapsed = _floats(df["elapsed_ms"]) if not df.empty else np.array([])
    span = float(elapsed.max()) if len(elapsed) else 0.0
    scale, unit = (1000.0, "s") if span > 10_000 else (1.0, "ms")
    x = elapsed / scale
    y = _dodge(x, lane_of, max(span / scale, 1e-9) * 0.03)
    fig = go.Figure()
    for mid in dict.fromkeys(df["message_id"]):
        idx = np.flatnonzero((df["message_id"] == mid).to_numpy(dtype=bool))
        fig.add_trace(go.Scatter(x=x[idx], y=y[idx], mode="lines", hoverinfo="skip",
                                 line={"color": "rgba(90,90,90,0.45)", "width": 1.5},
                                 showlegend=False))
    _event_markers(fig, df, x, y, unit, labels=len(df) <= 60)
    fig = _finish(fig, title or _trace_title(df), f"time since first event ({unit})", None,
                  df.empty)
    fig.update_yaxes(tickmode="array", tickvals=list(range(len(lanes))), ticktext=lanes,
                     range=[len(lanes) - 0.5, -0.6], showgrid=False, zeroline=False,
                     title_text="queue · consumer")
    pad = max(span / scale, 1.0) * 0.04
    fig.update_xaxes(range=[-pad, span / scale + pad], zeroline=False)
    fig.update_layout(height=max(320, 200 + 90 * len(lanes)), hovermode="closest")
    return fig


def _tree_of(df: pd.DataFrame) -> list[tracetree.Lane] | None:
    """The tree lanes of a trace frame whose messages name parents, else None."""
    if df.empty:
        return None
    if "parent_id" in df.columns:
        linked = bool(df["parent_id"].notna().any()) or (
            "depth" in df.columns and bool(df["depth"].fillna(0).gt(0).any()))
    else:
        linked = tracetree.has_links(zip(df["message_id"], df["detail"], strict=True))
    if not linked or df["message_id"].nunique() > TREE_MAX_LANES:
        return None
    return tracetree.lanes(df.loc[:, ["message_id", "queue", "event", "detail"]]
                           .to_dict("records"))


def _tree_timeline(df: pd.DataFrame, tree: list[tracetree.Lane],
                   title: str | None) -> go.Figure:
    index = {lane.key: i for i, lane in enumerate(tree)}
    lane_of = [index[str(m)] for m in df["message_id"]]
    elapsed = _floats(df["elapsed_ms"])
    span = float(elapsed.max()) if len(elapsed) else 0.0
    scale, unit = (1000.0, "s") if span > 10_000 else (1.0, "ms")
    x = elapsed / scale
    y = _dodge(x, lane_of, max(span / scale, 1e-9) * 0.03, offsets=(0.0, -0.28, 0.28))
    first: dict[str, tuple[float, float]] = {}
    extent: dict[str, tuple[float, float]] = {}
    for mid, xi, yi in zip(df["message_id"].astype(str), x, y, strict=True):
        first.setdefault(mid, (float(xi), float(yi)))
        lo, hi = extent.get(mid, (float(xi), float(xi)))
        extent[mid] = (min(lo, float(xi)), max(hi, float(xi)))
    fig = go.Figure()
    # the group / chain rows: a bar over the time its messages took
    start = {k: v[0] for k, v in first.items()}
    for lane in tree:
        if not lane.virtual:
            continue
        spans = [extent[k] for k in tracetree.below(tree, lane.key) if k in extent]
        lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
        start[lane.key] = lo
        fig.add_trace(go.Scatter(
            x=[lo, hi], y=[index[lane.key]] * 2, mode="lines", showlegend=False,
            line={"color": "rgba(87,96,106,0.55)", "width": 6},
            hovertemplate=(f"<b>{html.escape(lane.label)}</b><br>{len(spans)} messages, "
                           f"{(hi - lo) * scale:,.0f} ms<extra></extra>")))
    # connectors, elbows as in a file tree: down from where the parent starts (a message's
    # first event, a group's bar) to the child's lane, then along it to its first event; a
    # child that started first (a chain's later step waits from the start) drops straight
    cx: list[float | None] = []
    cy: list[float | None] = []
    for lane in tree:
        if lane.parent is None or lane.key not in first:
            continue
        fx, fy = first[lane.key]
        px = min(start[lane.parent], fx)
        cx += [px, px, fx, None]
        cy += [float(index[lane.parent]), float(index[lane.key]), fy, None]
    if cx:
        fig.add_trace(go.Scatter(x=cx, y=cy, mode="lines", hoverinfo="skip",
                                 showlegend=False,
                                 line={"color": "rgba(87,96,106,0.7)", "width": 1,
                                       "dash": "dot"}))
    _releases(fig, df, tree, x, y)
    for mid in dict.fromkeys(df["message_id"]):
        idx = np.flatnonzero((df["message_id"] == mid).to_numpy(dtype=bool))
        fig.add_trace(go.Scatter(x=x[idx], y=y[idx], mode="lines", hoverinfo="skip",
                                 line={"color": "rgba(90,90,90,0.45)", "width": 1.5},
                                 showlegend=False))
    _event_markers(fig, df, x, y, unit, labels=len(df) <= 60, retries_only=True)
    fig = _finish(fig, title or _trace_title(df, tree), f"time since first event ({unit})",
                  None, df.empty)
    # plotly right-aligns tick labels: padded to one width in a monospace font, the branch
    # glyphs line up under each other
    width = max(len(lane.text) for lane in tree)
    fig.update_yaxes(tickmode="array", tickvals=list(range(len(tree))),
                     ticktext=[lane.text.ljust(width, "\u00a0") for lane in tree],
                     range=[len(tree) - 0.5, -0.6],
                     showgrid=True, gridcolor="#f0f2f4", zeroline=False, automargin=True,
                     tickfont={"family": _MONO, "size": 13, "color": "#24292f"},
                     title_text=None)
    pad = max(span / scale, 1.0) * 0.04
    fig.update_xaxes(range=[-pad, span / scale + pad], zeroline=False)
    fig.update_layout(height=max(320, 190 + 50 * len(tree)), hovermode="closest")
    return fig


def _releases(fig: go.Figure, df: pd.DataFrame, tree: list[tracetree.Lane], x: np.ndarray,
              y: np.ndarray) -> None:
    """A chain step waits for the step before: an arrow from that step's last event to the
    moment its join let this one run (``group_succeeded`` / ``group_failed``)."""
    ids = df["message_id"].astype("string")
    events = df["event"].astype("string")
    joins = events.isin(["group_succeeded", "group_failed"]).to_numpy(dtype=bool)
    shown = False
    for lane in tree:
        if lane.parent is None or lane.virtual:
            continue
        mine = np.flatnonzero((ids == lane.key).to_numpy(dtype=bool) & joins)
        theirs = np.flatnonzero((ids == lane.parent).to_numpy(dtype=bool))
        if not len(mine) or not len(theirs):
            continue
        to, fro = mine[0], theirs[-1]
        if not shown:  # a legend entry says what the arrows are
            shown = True
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name="next step released",
                                     line={"color": EVENT_COLOURS["group_succeeded"],
                                           "width": 1.3}))
        fig.add_annotation(x=x[to], y=y[to], ax=x[fro], ay=y[fro], xref="x", yref="y",
                           axref="x", ayref="y", text="", showarrow=True, arrowhead=2,
                           arrowsize=1.1, arrowwidth=1.3, standoff=8, startstandoff=7,
                           arrowcolor=EVENT_COLOURS.get(str(events.iloc[to]), "#57606a"))


def _event_markers(fig: go.Figure, df: pd.DataFrame, x: np.ndarray, y: np.ndarray,
                   unit: str, *, labels: bool, retries_only: bool = False) -> None:
    """One marker trace per event kind, colour-coded, the attempt under deliveries (only
    under redeliveries with ``retries_only``: one lane per message leaves less room)."""
    events = df["event"].astype("string")
    for event in dict.fromkeys(events):
        idx = np.flatnonzero((events == event).to_numpy(dtype=bool))
        rows = df.iloc[idx]
        text = [f"attempt {a}" if not retries_only or (pd.notna(a) and a > 1) else ""
                for a in rows["attempt"]]
        fig.add_trace(go.Scatter(
            x=x[idx], y=y[idx], name=event,
            mode="markers+text" if labels and event == "delivered" and any(text)
            else "markers",
            text=text, textposition="bottom center",
            textfont={"size": 11, "color": "#57606a"},
            marker={"size": 13, "color": EVENT_COLOURS.get(event, "#888"),
                    "symbol": EVENT_SYMBOLS.get(event, "circle"),
                    "line": {"width": 2 if event in ("retried", "group_created") else 1,
                             "color": EVENT_COLOURS.get(event, "#888")
                             if event in ("retried", "group_created") else "white"}},
            customdata=_trace_hover(rows),
            hovertemplate=(f"<b>{event}</b> +%{{x:,.1f}} {unit}<br>%{{customdata[0]}}"
                           "<extra></extra>")))


# -- helpers ------------------------------------------------------------------------------------

def _finish(fig: go.Figure, title: str, x_title: str | None, y_title: str | None,
            empty: bool, hovermode: str = "closest") -> go.Figure:
    fig.update_layout(
        template=TEMPLATE, title={"text": title, "x": 0.01, "xanchor": "left"},
        hovermode=hovermode, margin={"l": 70, "r": 30, "t": 90, "b": 60},
        legend={"orientation": "v", "yanchor": "top", "y": 1.0, "xanchor": "left", "x": 1.01},
        font={"size": 13})
    if x_title is not None:
        fig.update_xaxes(title_text=x_title)
    if y_title is not None:
        fig.update_yaxes(title_text=y_title)
    if empty:
        fig.add_annotation(text="no data", showarrow=False, xref="paper", yref="paper",
                           x=0.5, y=0.5, font={"size": 16, "color": "#57606a"})
        fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
        fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    return fig


def _fit_x(fig: go.Figure, metrics: pd.DataFrame, columns: Sequence[str]) -> go.Figure:
    """Fit the x axis to the buckets with traffic (plus one bucket either side).

    A 1 h window with a burst in its last minute otherwise draws a flat line with a spike
    at the edge. Leaves the axis alone when the traffic spans most of the window.
    """
    if metrics.empty or "time" not in metrics.columns:
        return fig
    cols = [c for c in columns if c in metrics.columns]
    busy = metrics[cols].astype("Float64").fillna(0).gt(0).any(axis=1) if cols else None
    if busy is None or not bool(busy.any()):
        return fig
    times = metrics["time"]
    step = pd.Timedelta(seconds=int(metrics["bucket_s"].iloc[0])) \
        if "bucket_s" in metrics.columns else pd.Timedelta(seconds=10)
    lo, hi = times[busy].min() - step, times[busy].max() + step
    if (hi - lo) >= 0.6 * (times.max() - times.min() + step):
        return fig
    lo, hi = max(lo, times.min() - step / 2), min(hi, times.max() + step / 2)
    fig.update_xaxes(range=[_naive(lo), _naive(hi)], autorange=False)
    return fig


def _every_bucket(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` (one queue) with a row for every bucket between the first and the last."""
    if len(rows) < 2 or "bucket_s" not in rows.columns:
        return rows
    step = pd.Timedelta(seconds=int(rows["bucket_s"].iloc[0]))
    full = pd.date_range(rows["time"].min(), rows["time"].max(), freq=step)
    if len(full) == len(rows):
        return rows
    return rows.set_index("time").reindex(full).rename_axis("time").reset_index()


def _naive(stamp: pd.Timestamp) -> str:
    return str(stamp.tz_convert("UTC").tz_localize(None).isoformat())


def _by_queue(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    if frame.empty:
        return []
    keys = frame["queue"].astype("string").fillna("")
    return [(str(q), frame[keys == q]) for q in dict.fromkeys(keys)]


def _queues(frame: pd.DataFrame) -> list[str]:
    return [q for q, _ in _by_queue(frame)]


def _name(queue: str, what: str, queues: list[str]) -> str:
    return what if len(queues) == 1 else f"{queue} · {what}"


def _per_bucket(metrics: pd.DataFrame) -> str:
    if metrics.empty or "bucket_s" not in metrics.columns:
        return ""
    step = int(metrics["bucket_s"].iloc[0])
    return f"  <sup>(per {step} s bucket)</sup>" if step < 60 else \
        f"  <sup>(per {step // 60} min bucket)</sup>"


def _utc(times: pd.Series) -> np.ndarray:
    """Times as naive UTC datetime64 (plotly.js ignores zones; the axis says UTC)."""
    naive: np.ndarray = times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    return naive


def _floats(values: pd.Series) -> np.ndarray:
    return values.astype("Float64").to_numpy(dtype=float, na_value=np.nan)


def _stats_frame(stats: Sequence[QueueStats]) -> pd.DataFrame:
    return pd.DataFrame([{"queue": s.queue, "ready": s.ready, "in_flight": s.in_flight,
                          "delayed": s.delayed, "dead": s.dead} for s in stats],
                        columns=["queue", "ready", "in_flight", "delayed", "dead"])


def _depth_history(frame: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    queues = _queues(frame)
    for qi, (queue, rows) in enumerate(_by_queue(frame.sort_values("time"))):
        x = _utc(rows["time"])
        if len(queues) == 1:
            for state in ("ready", "in_flight", "delayed"):
                fig.add_trace(go.Scatter(
                    x=x, y=_floats(rows[state]), name=STATE_LABELS[state], stackgroup="depth",
                    mode="lines", line={"color": STATE_COLOURS[state], "width": 1},
                    hovertemplate=f"{STATE_LABELS[state]}: %{{y:,.0f}}<extra></extra>"))
        else:
            backlog = sum(_floats(rows[s]) for s in ("ready", "in_flight", "delayed"))
            fig.add_trace(go.Scatter(
                x=x, y=backlog, name=f"{queue} · backlog", mode="lines", legendgroup=queue,
                line={"color": PALETTE[qi % 10], "width": 2},
                hovertemplate=f"{html.escape(queue)} backlog: %{{y:,.0f}}<extra></extra>"))
        fig.add_trace(go.Scatter(
            x=x, y=_floats(rows["dead"]), name=_name(queue, "dead letters", queues),
            mode="lines", legendgroup=queue,
            line={"color": STATE_COLOURS["dead"] if len(queues) == 1 else PALETTE[qi % 10],
                  "width": 2, "dash": "dash"},
            hovertemplate=f"{html.escape(queue)} dead letters: %{{y:,.0f}}<extra></extra>"))
    fig = _finish(fig, "Queue depth over time", _TIME, "messages", frame.empty,
                  hovermode="x unified")
    fig.update_yaxes(rangemode="tozero")
    return fig


def _dodge(x: np.ndarray, lanes: list[int], gap: float,
           offsets: tuple[float, float, float] = (0.0, -0.22, 0.22)) -> np.ndarray:
    """Lane positions, nudged up/down when an event sits within ``gap`` of the previous."""
    y = np.array(lanes, dtype=float)
    last: dict[int, tuple[float, int]] = {}
    for i, lane in enumerate(lanes):
        prev = last.get(lane)
        step = (prev[1] + 1) % 3 if prev is not None and x[i] - prev[0] < gap else 0
        y[i] = lane + offsets[step]
        last[lane] = (x[i], step)
    return y


def _trace_hover(rows: pd.DataFrame) -> list[list[str]]:
    out = []
    for r in rows.to_dict("records"):
        detail = "" if pd.isna(r["detail"]) else "<br>" + "<br>".join(
            textwrap.wrap(html.escape(str(r["detail"])), 70)[:4])
        actor = "—" if pd.isna(r["actor"]) else html.escape(str(r["actor"]))
        stamp = r["time"].strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        out.append([f"message {r['message_id']}<br>queue {html.escape(str(r['queue']))}, "
                    f"actor {actor}, attempt {r['attempt']}<br>{stamp} UTC{detail}"])
    return out


def _trace_title(df: pd.DataFrame, tree: Sequence[tracetree.Lane] = ()) -> str:
    if df.empty:
        return "Message trace"
    roots = [lane for lane in tree if lane.virtual]
    if len(roots) == 1 and roots[0].label.split()[0] in ("group", "chain"):
        kind, gid = roots[0].label.split()[:2]
        tid = str(df["trace_id"].dropna().iloc[0])[:12] if df["trace_id"].notna().any() else "?"
        took = float(df["elapsed_ms"].iloc[-1])
        duration = f"{took / 1000:,.1f} s" if took > 10_000 else f"{took:,.0f} ms"
        return (f"{kind.capitalize()} {gid}  <sup>trace {tid}…, "
                f"{df['message_id'].nunique()} messages, {len(df)} events, {duration}, "
                f"last: {df['event'].iloc[-1]}</sup>")
    messages = df["message_id"].nunique()
    last = str(df["event"].iloc[-1])
    took = float(df["elapsed_ms"].iloc[-1])
    duration = f"{took / 1000:,.1f} s" if took > 10_000 else f"{took:,.0f} ms"
    if messages == 1:
        return (f"Trace of message {df['message_id'].iloc[0]}  <sup>{len(df)} events, "
                f"{duration}, last: {last}</sup>")
    tid = str(df["trace_id"].dropna().iloc[0])[:12] if df["trace_id"].notna().any() else "?"
    return f"Trace {tid}…  <sup>{messages} messages, {len(df)} events, {duration}</sup>"
