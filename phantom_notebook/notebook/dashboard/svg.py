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
from collections.abc import Sequence
from dataclasses import dataclass

COLORS = ("#0969da", "#8250df", "#1a7f37", "#bf3989", "#bc4c00", "#0a7ea4", "#8c959f")
WIDTH, HEIGHT = 440, 230
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
    colors = {"published": "#0969da", "delivered": "#8250df", "acked": "#1a7f37",
              "retried": "#bf8700", "dead_lettered": "#cf222e", "expired": "#6e7781",
              "replayed": "#0a7ea4"}
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


__all__ = ["Series", "line_chart", "nice_ticks", "timeline"]
