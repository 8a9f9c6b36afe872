"""Server-rendered SVG charts for the dashboard: no browser library to load.

Why not plotly here (the notebooks' charts stay plotly): the dashboard must paint in under
3 s on a 2-core machine, and plotly's Jupyter renderer is a 4.8 MB script the page must
parse before any widget shows — measured with Voila and Chromium on this machine, tiles
appeared after 3.6-4.8 s with it and 2.0-2.4 s without. A live page redraws every few
seconds; an SVG string in an ``HTML`` widget is replaced in place with no flicker, and
every point carries a ``<title>`` tooltip.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

COLORS = ("#0969da", "#8250df", "#1a7f37", "#bf3989", "#bc4c00", "#0a7ea4", "#8c959f")
WIDTH, HEIGHT = 440, 230
EVENT_COLORS = {"published": "#0969da", "delivered": "#8250df", "acked": "#1a7f37",
                "retried": "#bf8700", "dead_lettered": "#cf222e", "expired": "#6e7781",
                "replayed": "#0a7ea4", "progress": "#4ac26b", "group_created": "#6e7781",
                "group_succeeded": "#1a7f37", "group_failed": "#cf222e"}
#: drawn as squares: the moments of a join (a group's callback, a chain's next step)
JOIN_EVENTS = frozenset({"group_created", "group_succeeded", "group_failed"})
_FONT = "font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif"
MONO = "ui-monospace,DejaVu Sans Mono,Menlo,Consolas,monospace"
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 30, 48


@dataclass(frozen=True)
class Series:
    """One line: a name and (time s, value) points (None values are gaps)."""

    name: str
    points: Sequence[tuple[float, float | None]]
    dashed: bool = False


def nice_ticks(high: float, count: int = 4) -> list[float]:
    """Round tick values from 0 to at least ``high`` (1, 2, 2.5 or 5 times a power of 10)."""
    if high <= 0 or not math.isfinite(high):
        return [0.0, 1.0]
    raw = high / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    return [i * step for i in range(int(math.ceil(high / step - 1e-9)) + 1)]


def _label(value: float, unit: str) -> str:
    if value >= 10_000:
        text = f"{value / 1000:,.0f}k"
    elif value >= 100 or value == int(value):
        text = f"{value:,.0f}"
    else:
        text = f"{value:.3g}"  # 0.05, 0.25, 2.5: distinct labels on small axes
    return f"{text}{unit}"


def line_chart(title: str, series: Sequence[Series], start_s: float, end_s: float, *,
               unit: str = "", empty: str = "nothing to show", name: str = "") -> str:
    """A time-series line chart over [start_s, end_s] with markers, axes and a legend."""
    w, h = WIDTH, HEIGHT
    plot_w, plot_h = w - LEFT - RIGHT, h - TOP - BOTTOM
    span = max(end_s - start_s, 1.0)
    values = [v for s in series for _, v in s.points if v is not None]
    high = max(values, default=0.0)
    ticks = nice_ticks(high * 1.05 if high else 1.0)
    top = ticks[-1] or 1.0

    def x(t: float) -> float:
        return LEFT + (t - start_s) / span * plot_w

    def y(v: float) -> float:
        return TOP + plot_h - v / top * plot_h

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {w} {h}' width='100%' "
             f"role='img' aria-label='{html.escape(title)}' data-chart='{html.escape(name)}' "
             f"data-series='{len(series)}' style='max-width:{w * 1.6:.0f}px;"
             "font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif'>",
             f"<text x='4' y='16' font-size='12.5' font-weight='600' fill='#1f2328'>"
             f"{html.escape(title)}</text>"]
    for tick in ticks:
        ty = y(tick)
        parts.append(f"<line x1='{LEFT}' x2='{w - RIGHT}' y1='{ty:.1f}' y2='{ty:.1f}' "
                     f"stroke='#eaeef2'/><text x='{LEFT - 6}' y='{ty + 3.5:.1f}' "
                     f"font-size='10' fill='#57606a' text-anchor='end'>"
                     f"{html.escape(_label(tick, unit))}</text>")
    for i in range(6):
        t = start_s + span * i / 5
        anchor = "start" if i == 0 else "end" if i == 5 else "middle"
        parts.append(f"<text x='{x(t):.1f}' y='{TOP + plot_h + 14}' font-size='10' "
                     f"fill='#57606a' text-anchor='{anchor}'>"
                     f"{time.strftime('%H:%M', time.localtime(t))}</text>")
    parts.append(f"<line x1='{LEFT}' x2='{w - RIGHT}' y1='{TOP + plot_h}' y2='{TOP + plot_h}'"
                 " stroke='#8c959f'/>")
    if not values:
        parts.append(f"<text x='{LEFT + plot_w / 2:.0f}' y='{TOP + plot_h / 2:.0f}' "
                     f"font-size='12' fill='#57606a' text-anchor='middle' data-empty='1'>"
                     f"{html.escape(empty)}</text>")
    for i, s in enumerate(series):
        color = COLORS[i % len(COLORS)]
        dash = " stroke-dasharray='3 3'" if s.dashed else ""
        for run in _runs(s.points, start_s, end_s):
            coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in run)
            parts.append(f"<polyline points='{coords}' fill='none' stroke='{color}' "
                         f"stroke-width='1.6'{dash}/>")
            for t, v in run:
                tip = (f"{s.name} · {time.strftime('%H:%M:%S', time.localtime(t))} · "
                       f"{_label(v, unit)}")
                parts.append(f"<circle cx='{x(t):.1f}' cy='{y(v):.1f}' r='2.4' fill='{color}'>"
                             f"<title>{html.escape(tip)}</title></circle>")
    parts.append(_legend(series, h - 14))
    parts.append("</svg>")
    return "".join(parts)


def _runs(points: Sequence[tuple[float, float | None]], start_s: float, end_s: float,
          ) -> list[list[tuple[float, float]]]:
    """The points inside the range, split at gaps (None)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for t, v in points:
        if v is None or not start_s <= t <= end_s:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append((t, v))
    return [r for r in runs if r]


def _legend(series: Sequence[Series], baseline: float) -> str:
    out, cursor = [], float(LEFT)
    for i, s in enumerate(series):
        label = s.name if len(s.name) <= 22 else s.name[:21] + "…"
        width = 16 + 6.2 * len(label)
        if cursor + width > WIDTH:
            break
        color = COLORS[i % len(COLORS)]
        out.append(f"<rect x='{cursor:.0f}' y='{baseline - 7}' width='10' height='3' "
                   f"fill='{color}'/><text x='{cursor + 14:.0f}' y='{baseline}' "
                   f"font-size='10' fill='#24292f'>{html.escape(label)}</text>")
        cursor += width + 10
    return "".join(out)


def timeline(hops: Sequence[tuple[float, str, str, str]], title: str) -> str:
    """A trace timeline: one lane per queue, a marker per event (time ms, queue, event,
    tooltip), time relative to the first event."""
    if not hops:
        return ""
    lanes = list(dict.fromkeys(q for _, q, _, _ in hops))
    first, last = hops[0][0], max(h[0] for h in hops)
    span = max(last - first, 1.0)
    lane_h, left = 28, 150
    w, h = 760, TOP + lane_h * len(lanes) + 34
    plot_w = w - left - 20
    colors = EVENT_COLORS
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {w} {h}' width='100%' "
             f"data-chart='trace' data-hops='{len(hops)}' style='max-width:{w}px;font-family:"
             "-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif'>",
             f"<text x='4' y='16' font-size='12.5' font-weight='600' fill='#1f2328'>"
             f"{html.escape(title)}</text>"]
    for i, lane in enumerate(lanes):
        ly = TOP + lane_h * i + lane_h / 2
        parts.append(f"<line x1='{left}' x2='{w - 20}' y1='{ly}' y2='{ly}' stroke='#eaeef2'/>"
                     f"<text x='{left - 8}' y='{ly + 4}' font-size='11' fill='#24292f' "
                     f"text-anchor='end' font-family='ui-monospace,Menlo,monospace'>"
                     f"{html.escape(lane[:20])}</text>")
    for t, queue, event, tip in hops:
        cx = left + (t - first) / span * plot_w
        cy = TOP + lane_h * lanes.index(queue) + lane_h / 2
        color = colors.get(event, "#57606a")
        parts.append(f"<circle cx='{cx:.1f}' cy='{cy}' r='5' fill='{color}' "
                     f"data-event='{html.escape(event)}'><title>{html.escape(tip)}</title>"
                     "</circle>")
    axis_y = TOP + lane_h * len(lanes) + 14
    for i in range(5):
        t = span * i / 4
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"
        parts.append(f"<text x='{left + plot_w * i / 4:.0f}' y='{axis_y}' font-size='10' "
                     f"fill='#57606a' text-anchor='{anchor}'>+{t:,.0f} ms</text>")
    legend_x = float(left)
    for event in dict.fromkeys(e for _, _, e, _ in hops):
        parts.append(f"<circle cx='{legend_x}' cy='{axis_y + 14}' r='4' "
                     f"fill='{colors.get(event, '#57606a')}'/><text x='{legend_x + 8}' "
                     f"y='{axis_y + 18}' font-size='10' fill='#24292f'>"
                     f"{html.escape(event)}</text>")
        legend_x += 16 + 6.2 * len(event)
    parts.append("</svg>")
    return "".join(parts).replace(f"viewBox='0 0 {w} {h}'", f"viewBox='0 0 {w} {h + 12}'")


@dataclass(frozen=True)
class TreeLane:
    """One row of a trace tree: a message, or its group / chain (``virtual``: no events)."""

    key: str
    text: str  #: the label with its branch glyphs: ``├─ ioc-vt · 7a6ab9b07039``
    parent: str | None = None
    virtual: bool = False
    level: int = 0


def tree_timeline(hops: Sequence[tuple[float, str, str, str]], lanes: Sequence[TreeLane],
                  title: str) -> str:
    """A trace of a group or a chain as a tree: one lane per message (``hops``: time ms,
    message id, event, tooltip) in ``lanes`` order, the labels indented, a dotted elbow
    from each parent's lane to its child's first event, a bar over each group's time."""
    if not hops or not lanes:
        return ""
    row = {lane.key: i for i, lane in enumerate(lanes)}
    hops = [h for h in hops if h[1] in row]
    first_ms, last_ms = min(h[0] for h in hops), max(h[0] for h in hops)
    span = max(last_ms - first_ms, 1.0)
    lane_h, char_w = 26, 6.7  # 11 px monospace: ~6.7 px a character
    left = min(int(12 + char_w * max(len(lane.text) for lane in lanes)), 420)
    w = max(760, left + 480)
    h = TOP + lane_h * len(lanes) + 34
    plot_w = w - left - 24

    def cx(t: float) -> float:
        return left + (t - first_ms) / span * plot_w

    def cy(key: str) -> float:
        return TOP + lane_h * row[key] + lane_h / 2

    spans: dict[str, tuple[float, float]] = {}
    for t, key, _, _ in hops:
        lo, hi = spans.get(key, (t, t))
        spans[key] = (min(lo, t), max(hi, t))
    start = {k: v[0] for k, v in spans.items()}
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {w} {h + 12}' width='100%' "
             f"data-chart='trace' data-tree='{len(lanes)}' data-hops='{len(hops)}' "
             f"style='max-width:{w}px;{_FONT}'>",
             f"<text x='4' y='16' font-size='12.5' font-weight='600' fill='#1f2328'>"
             f"{html.escape(title)}</text>"]
    for lane in lanes:  # rows: a faint line per message, a bar per group over its time
        y = cy(lane.key)
        parts.append(f"<line x1='{left}' x2='{w - 20}' y1='{y}' y2='{y}' stroke='#f0f2f4'/>"
                     f"<text x='6' y='{y + 4}' font-size='11' fill='#24292f' "
                     f"font-family='{MONO}' xml:space='preserve' data-lane='"
                     f"{html.escape(lane.key)}' data-level='{lane.level}'>"
                     f"{html.escape(lane.text)}</text>")
        if lane.virtual:
            below = [spans[k] for k in _below(lanes, lane.key) if k in spans]
            if below:
                lo, hi = min(b[0] for b in below), max(b[1] for b in below)
                start[lane.key] = lo
                parts.append(f"<line x1='{cx(lo):.1f}' x2='{cx(hi):.1f}' y1='{y}' y2='{y}' "
                             "stroke='#8c959f' stroke-width='5' stroke-linecap='round'>"
                             f"<title>{html.escape(lane.text)}: {len(below)} messages, "
                             f"{hi - lo:,.0f} ms</title></line>")
    for lane in lanes:  # elbows: down from where the parent starts, along to the child
        if lane.parent is None or lane.parent not in row or lane.key not in spans:
            continue
        fx = cx(spans[lane.key][0])
        px = min(cx(start.get(lane.parent, spans[lane.key][0])), fx)
        parts.append(f"<polyline points='{px:.1f},{cy(lane.parent)} {px:.1f},{cy(lane.key)} "
                     f"{fx:.1f},{cy(lane.key)}' fill='none' stroke='#8c959f' "
                     "stroke-dasharray='2 2' data-link='1'/>")
    for key, (lo, hi) in spans.items():  # each message: a line from its first to last event
        parts.append(f"<line x1='{cx(lo):.1f}' x2='{cx(hi):.1f}' y1='{cy(key)}' "
                     f"y2='{cy(key)}' stroke='#afb8c1' stroke-width='1.5'/>")
    parts.append(_releases(hops, lanes, cx, cy))
    last: dict[str, tuple[float, int]] = {}  # events too close to tell apart: nudged
    for t, key, event, tip in hops:
        x = cx(t)
        prev = last.get(key)
        step = (prev[1] + 1) % 3 if prev is not None and x - prev[0] < 9 else 0
        last[key] = (x, step)
        parts.append(_marker(x, cy(key) + (0, -6, 6)[step], event, tip))
    axis_y = TOP + lane_h * len(lanes) + 14
    parts.append(_axis(left, plot_w, axis_y, span))
    parts.append(_event_legend([e for _, _, e, _ in hops], float(left), axis_y))
    parts.append("</svg>")
    return "".join(parts)


def _releases(hops: Sequence[tuple[float, str, str, str]], lanes: Sequence[TreeLane],
              cx: Callable[[float], float], cy: Callable[[str], float]) -> str:
    """A chain step waits for the step before: an arrow from that step's last event to the
    moment its join let this one run."""
    last: dict[str, float] = {}
    joined: dict[str, tuple[float, str]] = {}
    for t, key, event, _ in hops:
        last[key] = t
        if event in ("group_succeeded", "group_failed"):
            joined.setdefault(key, (t, event))
    out = []
    for lane in lanes:
        if lane.parent in last and lane.key in joined:
            t, event = joined[lane.key]
            color = EVENT_COLORS[event]
            out.append(f"<line x1='{cx(last[lane.parent]):.1f}' y1='{cy(lane.parent)}' "
                       f"x2='{cx(t):.1f}' y2='{cy(lane.key) - 6}' stroke='{color}' "
                       f"stroke-width='1.2' marker-end='url(#pn-arrow-{event})' "
                       "data-release='1'/>")
    if not out:
        return ""
    heads = "".join(
        f"<marker id='pn-arrow-{e}' viewBox='0 0 8 8' refX='7' refY='4' markerWidth='7' "
        f"markerHeight='7' orient='auto'><path d='M0,0 L8,4 L0,8 z' "
        f"fill='{EVENT_COLORS[e]}'/></marker>" for e in ("group_succeeded", "group_failed"))
    return f"<defs>{heads}</defs>" + "".join(out)


def _below(lanes: Sequence[TreeLane], key: str) -> list[str]:
    out, frontier = [], {key}
    for lane in lanes:
        if lane.parent in frontier:
            out.append(lane.key)
            frontier.add(lane.key)
    return out


def _marker(x: float, y: float, event: str, tip: str | None, r: float = 5.0) -> str:
    """An event's marker (a square for a join's moments); ``tip``: hover text and the
    ``data-event`` the tests read (None: a legend swatch)."""
    color = EVENT_COLORS.get(event, "#57606a")
    tag = f" data-event='{html.escape(event)}'><title>{html.escape(tip)}</title>" \
        if tip is not None else ">"
    if event in JOIN_EVENTS:
        fill = "#fff" if event == "group_created" else color
        return (f"<rect x='{x - r + 0.5:.1f}' y='{y - r + 0.5:.1f}' width='{2 * r - 1}' "
                f"height='{2 * r - 1}' fill='{fill}' stroke='{color}' "
                f"stroke-width='1.5'{tag}</rect>")
    return f"<circle cx='{x:.1f}' cy='{y:.1f}' r='{r}' fill='{color}' stroke='#fff' " \
           f"stroke-width='0.8'{tag}</circle>"


def _axis(left: float, plot_w: float, axis_y: float, span: float) -> str:
    digits = 1 if span < 20 else 0  # +1.5 ms, not +2 ms twice
    out = []
    for i in range(5):
        anchor = "start" if i == 0 else "end" if i == 4 else "middle"
        out.append(f"<text x='{left + plot_w * i / 4:.0f}' y='{axis_y}' font-size='10' "
                   f"fill='#57606a' text-anchor='{anchor}'>+{span * i / 4:,.{digits}f} ms"
                   "</text>")
    return "".join(out)


def _event_legend(events: Sequence[str], x: float, axis_y: float) -> str:
    out = []
    for event in dict.fromkeys(events):
        out.append(_marker(x, axis_y + 14, event, None, r=4.0) +
                   f"<text x='{x + 8}' y='{axis_y + 18}' font-size='10' fill='#24292f'>"
                   f"{html.escape(event)}</text>")
        x += 16 + 6.2 * len(event)
    return "".join(out)


__all__ = ["EVENT_COLORS", "MONO", "Series", "TreeLane", "line_chart", "nice_ticks", "timeline",
           "tree_timeline"]
