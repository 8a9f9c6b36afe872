"""The dashboard's three charts: throughput, p95 latency, depth — never blank.

Each chart spans a fixed time range ending now (15 minutes for the metric charts, at least
5 for depth), draws markers on its lines (one point is still visible), shows at most
``TOP`` queues (the busiest; the rest summed as "other queues") and says in words when
there is nothing to draw. SVG strings (see ``svg``): nothing for the browser to load.
"""

from __future__ import annotations

from .model import CHART_WINDOW_S, Snapshot
from .svg import Series, line_chart

TOP = 6
DEPTH_MIN_RANGE_S = 300


def _busiest(snapshot: Snapshot) -> list[str]:
    totals = {q: sum(p[1] + p[2] for p in pts) for q, pts in snapshot.series.items()}
    return sorted(totals, key=lambda q: -totals[q])[:TOP]


def throughput(snapshot: Snapshot) -> str:
    """Acked messages per second per queue (10 s buckets), the busiest queues."""
    chosen = _busiest(snapshot)
    series = [Series(q, [(p[0], p[2]) for p in snapshot.series[q]]) for q in chosen]
    rest = [q for q in snapshot.series if q not in chosen]
    if rest:
        points = snapshot.series[rest[0]]
        series.append(Series(f"{len(rest)} other queues", [
            (points[j][0], sum(snapshot.series[q][j][2] for q in rest))
            for j in range(len(points))], dashed=True))
    end = snapshot.at
    return line_chart("Throughput · acked msg/s", series, end - CHART_WINDOW_S, end,
                      empty="no messages settled in the last 15 minutes", name="throughput")


def latency(snapshot: Snapshot) -> str:
    """p95 end-to-end latency (publish -> settled) per queue and 10 s bucket."""
    series = [Series(q, [(p[0], p[3]) for p in snapshot.series[q]])
              for q in _busiest(snapshot)]
    series = [s for s in series if any(v is not None for _, v in s.points)]
    end = snapshot.at
    return line_chart("Latency · p95 publish → settled", series, end - CHART_WINDOW_S, end,
                      unit=" ms", empty="no latency measured in the last 15 minutes",
                      name="latency")


def depth(snapshot: Snapshot) -> str:
    """Messages waiting per queue over this page's refreshes, the deepest queues."""
    history = snapshot.depth_history
    end = snapshot.at
    start = min(history[0][0] if history else end, end - DEPTH_MIN_RANGE_S)
    latest = history[-1][1] if history else {}
    chosen = [q for q in sorted(latest, key=lambda q: -latest[q]) if latest[q]][:TOP]
    series = [Series(q, [(t, float(d.get(q, 0))) for t, d in history]) for q in chosen]
    return line_chart("Depth · messages waiting", series, start, end,
                      empty="every queue is empty", name="depth")


__all__ = ["depth", "latency", "throughput"]
