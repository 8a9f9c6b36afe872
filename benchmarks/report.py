"""Output: a rich table on stdout, ``bench-<UTC>.json`` and a plotly ``bench-<UTC>.html``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from benchmarks.harness import Result

UNIT_TITLES = {
    "msg/s": ("Throughput (higher is better)", "messages per second"),
    "ms": ("Latency (lower is better)", "milliseconds"),
    "bytes/msg": ("Memory per queued message (lower is better)", "bytes per message"),
    "groups/s": ("Fan-out/fan-in throughput (higher is better)", "groups per second"),
}


def _fmt(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit in ("msg/s", "groups/s"):
        return f"{value:,.0f}"
    if unit == "ms":
        return f"{value:.3f}"
    return f"{value:,.1f}"


def table(results: list[Result], peers: list[dict[str, Any]]) -> Table:
    """The results as a rich table (scenario, ours, ceiling, ratio, target, pass/miss)."""
    t = Table(title="phantom_notebook vs raw redis-py ceiling", show_lines=False)
    for col, justify in (("scenario", "left"), ("profile", "left"), ("unit", "left"),
                         ("ours", "right"), ("ceiling", "right"), ("ratio", "right"),
                         ("target", "left"), ("result", "left")):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in results:
        verdict = "" if r.passed is None else ("[green]pass" if r.passed else "[red]MISS")
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        t.add_row(r.scenario, r.profile, r.unit, _fmt(r.ours, r.unit),
                  _fmt(r.ceiling, r.unit), ratio, r.target, verdict)
    for p in peers:
        if p.get("ok"):
            t.add_row(f"peer.{p['peer']}", "default", "msg/s", "-",
                      f"enq {p['enqueue_rate']:,.0f}", "-",
                      f"e2e {p['e2e_rate']:,.0f} msg/s", "")
        else:
            t.add_row(f"peer.{p['peer']}", "-", "-", "-", "-", "-",
                      f"skipped: {p.get('reason', '?')}"[:60], "")
    return t


def print_table(results: list[Result], peers: list[dict[str, Any]]) -> None:
    """Print the table and the pass/miss summary to stdout."""
    console = Console(width=160)
    console.print(table(results, peers))
    judged = [r for r in results if r.passed is not None]
    missed = [f"{r.scenario}[{r.profile}]" for r in judged if not r.passed]
    console.print(f"targets: {len(judged) - len(missed)} of {len(judged)} met"
                  + (f"; missed: {', '.join(missed)}" if missed else ""))


def write_json(path: Path, meta: dict[str, Any], results: list[Result],
               peers: list[dict[str, Any]]) -> Path:
    """Write every result (with ratio and details) and the run's metadata."""
    doc = {"meta": meta, "results": [r.as_dict() for r in results], "peers": peers}
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY,
                                  default=_default))
    return path


def _default(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return obj.hex()
    raise TypeError(type(obj).__name__)


def write_html(path: Path, meta: dict[str, Any], results: list[Result],
               peers: list[dict[str, Any]]) -> Path:
    """Grouped bars ours vs ceiling per scenario (one panel per unit), ratios annotated."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    units = [u for u in UNIT_TITLES if any(r.unit == u for r in results)]
    rows = len(units) + (1 if any(p.get("ok") for p in peers) else 0)
    titles = [UNIT_TITLES[u][0] for u in units]
    if rows > len(units):
        titles.append("End to end, one worker process: ours vs peers (higher is better)")
    fig = make_subplots(rows=max(rows, 1), cols=1, subplot_titles=titles,
                        vertical_spacing=0.25 / max(rows, 1))
    for row, unit in enumerate(units, start=1):
        rs = [r for r in results if r.unit == unit]
        labels = [f"{r.scenario} [{r.profile}]" for r in rs]
        fig.add_trace(go.Bar(
            name="phantom_notebook", x=labels, y=[r.ours for r in rs], marker_color="#2b6cb0",
            text=[f"{r.ratio:.2f}x" if r.ratio is not None else "" for r in rs],
            textposition="outside", showlegend=row == 1, legendgroup="ours",
            hovertemplate="%{x}<br>ours %{y:,.3f} " + unit + "<extra></extra>"),
            row=row, col=1)
        fig.add_trace(go.Bar(
            name="raw redis-py ceiling", x=labels, y=[r.ceiling for r in rs],
            marker_color="#a0aec0", showlegend=row == 1, legendgroup="ceiling",
            hovertemplate="%{x}<br>ceiling %{y:,.3f} " + unit + "<extra></extra>"),
            row=row, col=1)
        fig.update_yaxes(title_text=UNIT_TITLES[unit][1], row=row, col=1)
        fig.update_xaxes(title_text="scenario [feature profile]", tickangle=-30, row=row,
                         col=1)
    if rows > len(units):
        _peer_panel(fig, go, rows, results, peers)
    fig.update_layout(
        title=f"phantom_notebook benchmark — {meta.get('started_utc', '')} — mode "
              f"{meta.get('mode', '')} — bar labels: ours / ceiling",
        barmode="group", height=520 * max(rows, 1), template="plotly_white",
        legend={"orientation": "h", "y": 1.02, "x": 0})
    fig.write_html(str(path), include_plotlyjs=True, full_html=True)
    return path


def _peer_panel(fig: Any, go: Any, row: int, results: list[Result],
                peers: list[dict[str, Any]]) -> None:
    ok = [p for p in peers if p.get("ok")]
    ours = next((r.ours for r in results if r.scenario == "peers.e2e"), None)
    names = ["phantom_notebook"] + [p["peer"] for p in ok]
    values = [ours] + [p["e2e_rate"] for p in ok]
    fig.add_trace(go.Bar(name="end to end", x=names, y=values, marker_color="#38a169",
                         text=[f"{v:,.0f}" if v else "" for v in values],
                         textposition="outside", showlegend=False), row=row, col=1)
    fig.update_yaxes(title_text="messages per second", type="log", row=row, col=1)
    fig.update_xaxes(title_text="queue library", row=row, col=1)
