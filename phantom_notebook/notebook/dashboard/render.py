"""HTML of the dashboard's parts: header, tiles, queue table, workers, dead letters.

Pure functions of a ``Snapshot`` (no Redis): every number is escaped, every element the
browser tests read carries a ``data-*`` attribute with the exact value.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Iterable

from ...core.admin.dlq import DeadLetter
from .model import QueueRow, Snapshot, Tiles, WorkerRow

CSS = """
<style>
.pn-dash {font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
          color: #1f2328; font-size: 13px;}
.pn-bar {display: flex; align-items: center; gap: 14px; background: #0d1117; color: #e6edf3;
         padding: 10px 16px; border-radius: 8px; flex-wrap: wrap;}
.pn-bar .pn-title {font-size: 16px; font-weight: 650; letter-spacing: .2px;}
.pn-bar .pn-where {color: #9aa4af; font-family: ui-monospace, Menlo, Consolas, monospace;
                   font-size: 12px;}
.pn-bar .pn-grow {flex: 1;}
.pn-pill {display: inline-block; padding: 2px 9px; border-radius: 999px; font-size: 12px;
          font-weight: 600; white-space: nowrap;}
.pn-pill.ok {background: #1a7f37; color: #fff;} .pn-pill.warn {background: #bf8700; color: #fff;}
.pn-pill.critical, .pn-pill.bad {background: #cf222e; color: #fff;}
.pn-pill.role {background: #30363d; color: #e6edf3;} .pn-pill.unknown {background: #6e7781;
 color: #fff;}
.pn-live {color: #3fb950;} .pn-stale {color: #f85149;}
.pn-tiles {display: grid; grid-template-columns: repeat(auto-fill, minmax(128px, 1fr));
           gap: 10px; margin: 12px 0 4px 0;}
.pn-tile {border: 1px solid #d0d7de; border-radius: 8px; padding: 10px 12px; background: #fff;
          min-height: 74px;}
.pn-tile .pn-label {color: #57606a; font-size: 11.5px; text-transform: uppercase;
                    letter-spacing: .4px; font-weight: 600;}
.pn-tile .pn-value {font-size: 24px; font-weight: 650; margin-top: 2px;
                    font-variant-numeric: tabular-nums;}
.pn-tile .pn-sub {color: #57606a; font-size: 12px; margin-top: 1px; white-space: nowrap;
                  overflow: hidden; text-overflow: ellipsis;}
.pn-tile.warn {border-color: #d4a72c; background: #fff8c5;}
.pn-tile.critical {border-color: #ff8182; background: #ffebe9;}
.pn-tile.wide {grid-column: span 2;}
.pn-checks {margin: 4px 0 0 0; padding: 0; list-style: none; font-size: 12px;}
.pn-checks li {white-space: nowrap; overflow: hidden; text-overflow: ellipsis;}
.pn-section {font-size: 14px; font-weight: 650; margin: 16px 0 6px 0;}
.pn-section .pn-note {font-weight: 400;}
.pn-grid {border-collapse: collapse; width: 100%; font-size: 12.5px;
          font-variant-numeric: tabular-nums;}
.pn-grid th {text-align: right; background: #f6f8fa; border-bottom: 1px solid #d0d7de;
             padding: 5px 8px; font-weight: 600; color: #24292f; white-space: nowrap;}
.pn-grid td {text-align: right; padding: 4px 8px; border-bottom: 1px solid #eaeef2;
             white-space: nowrap;}
.pn-grid th.l, .pn-grid td.l {text-align: left;}
.pn-grid tr.alarm td {background: #fff1f0;}
.pn-grid tr:hover td {background: #f3f6fa;}
.pn-badge {display: inline-block; padding: 0 6px; border-radius: 4px; font-size: 11px;
           font-weight: 700;}
.pn-badge.bad {background: #cf222e; color: #fff;} .pn-badge.warn {background: #bf8700;
 color: #fff;}
.pn-badge.ok {background: #dafbe1; color: #1a7f37;} .pn-badge.off {background: #eaeef2;
 color: #57606a;}
.pn-mono {font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;}
.pn-muted {color: #57606a;} .pn-bad {color: #cf222e; font-weight: 600;}
.pn-ok {color: #1a7f37; font-weight: 600;} .pn-note {color: #57606a; font-size: 12px;}
.pn-scroll {overflow-x: auto; max-width: 100%;}
.pn-detail {background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px;
            padding: 8px 10px; white-space: pre-wrap; font-size: 12px; max-height: 320px;
            overflow: auto;}
</style>
"""

_STATUS_CLASS = {"ok": "ok", "warn": "warn", "critical": "critical"}


def esc(value: object) -> str:
    """HTML-escaped text of ``value``."""
    return html.escape(str(value))


def count(n: int) -> str:
    """``12,345``."""
    return f"{n:,}"


def duration(s: float | None) -> str:
    """A short duration: ``—``, ``850 ms``, ``42 s``, ``7 min``, ``3.2 h``, ``∞``."""
    if s is None:
        return "—"
    if math.isinf(s):
        return "∞"
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def rate(per_s: float) -> str:
    """Messages per second, two significant places for small rates."""
    if not per_s:
        return "0"
    return f"{per_s:,.0f}" if per_s >= 100 else f"{per_s:.1f}" if per_s >= 1 else f"{per_s:.2f}"


def ms(value: float | None) -> str:
    """A latency in ms (``—`` when unknown)."""
    if value is None:
        return "—"
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


def header(where: str, role: str | None, user: str, operator: bool, snapshot: Snapshot | None,
           refresh_s: float, error: str | None = None) -> str:
    """The dark bar: title, deployment, role, identity, liveness and overall health."""
    if snapshot is None:
        live = "<span class='pn-muted'>connecting…</span>"
        health = "<span class='pn-pill unknown'>health: …</span>"
    else:
        age = time.time() - snapshot.at
        stale = age > max(3 * refresh_s, 10)
        cls = "pn-stale" if stale or error else "pn-live"
        stamp = time.strftime("%H:%M:%S", time.localtime(snapshot.at))
        live = (f"<span class='{cls}' data-updated='{snapshot.at:.3f}'>● "
                f"{'stale' if stale else 'live'}</span> <span class='pn-where'>updated {stamp}"
                f" · every {refresh_s:g} s</span>")
        status = snapshot.tiles.health
        health = (f"<span class='pn-pill {_STATUS_CLASS.get(status, 'unknown')}' "
                  f"data-health='{esc(status)}'>health: {esc(status.upper())}</span>")
    mode = "operator" if operator else "read-only"
    err = f"<span class='pn-pill bad' title='{esc(error)}'>refresh failed</span>" \
        if error else ""
    return (f"{CSS}<div class='pn-dash'><div class='pn-bar'>"
            f"<span class='pn-title'>phantom_notebook · operations</span>"
            f"<span class='pn-where'>{esc(where)}</span><span class='pn-grow'></span>"
            f"{live}{err}{health}"
            f"<span class='pn-pill role' data-role='{esc(role or '')}' data-mode='{mode}'>"
            f"{esc(user)} · {esc(role or 'no role')} · {mode}</span></div></div>")


def tiles(t: Tiles) -> str:
    """The tiles row."""
    oldest_cls = "warn" if (t.oldest_age_s or 0) > 300 else ""
    drain_cls = "critical" if t.drain_s is not None and math.isinf(t.drain_s) else \
        "warn" if (t.drain_s or 0) > 900 else ""
    cards = [
        _health_tile(t),
        _tile("queues", "Queues", count(t.queues), t.queues, "visible to this role"),
        _tile("waiting", "Waiting", count(t.waiting), t.waiting,
              "ready + in flight + delayed"),
        _tile("oldest", "Oldest waiting", duration(t.oldest_age_s),
              "" if t.oldest_age_s is None else f"{t.oldest_age_s:.3f}",
              esc(t.oldest_queue) if t.oldest_queue else "nothing waits", oldest_cls),
        _tile("drain", "Time to drain", duration(t.drain_s),
              "" if t.drain_s is None else str(t.drain_s),
              f"{esc(t.drain_queue)}: no acks" if t.drain_s is not None and
              math.isinf(t.drain_s) else f"slowest: {esc(t.drain_queue)}" if t.drain_queue
              else "nothing waits", drain_cls),
        _tile("workers", "Workers online", count(t.workers_online), t.workers_online,
              f"of {t.workers_total} with a heartbeat",
              "critical" if t.workers_online == 0 and t.waiting else ""),
        _tile("breakers", "Open breakers", count(t.open_breakers), t.open_breakers,
              "circuit breakers open" if t.open_breakers else "all closed",
              "critical" if t.open_breakers else ""),
        _tile("dead", "Dead · 5 min", count(t.dead_in_window), t.dead_in_window,
              f"{t.dead_total:,} stored", "warn" if t.dead_in_window else ""),
    ]
    return f"{CSS}<div class='pn-dash'><div class='pn-tiles'>{''.join(cards)}</div></div>"


def _tile(name: str, label: str, shown: str, value: object, sub: str, cls: str = "") -> str:
    return (f"<div class='pn-tile {cls}' data-tile='{name}'><div class='pn-label'>{label}</div>"
            f"<div class='pn-value' data-value='{esc(value)}'>{esc(shown)}</div>"
            f"<div class='pn-sub'>{sub}</div></div>")


def _health_tile(t: Tiles) -> str:
    cls = {"critical": "critical", "warn": "warn"}.get(t.health, "")
    if t.worst_checks:
        items = "".join(
            f"<li title='{esc(c.message)}'><span class='pn-badge "
            f"{'bad' if c.status == 'critical' else 'warn'}'>{esc(c.status)}</span> "
            f"{esc(c.name)} · {esc(c.target)}: {esc(c.value)}</li>" for c in t.worst_checks)
        sub = f"<ul class='pn-checks'>{items}</ul>"
    else:
        sub = "<div class='pn-sub'>every check ok</div>" if t.health == "ok" else \
            "<div class='pn-sub'>not checked yet</div>"
    checked = f"checked {duration(t.health_age_s)} ago" if t.health_age_s is not None else ""
    return (f"<div class='pn-tile wide {cls}' data-tile='health'><div class='pn-label'>"
            f"Health <span style='text-transform:none;font-weight:400'>{checked}</span></div>"
            f"<div class='pn-value' data-value='{esc(t.health)}'>{esc(t.health.upper())}</div>"
            f"{sub}</div>")


QUEUE_HEADERS = ("queue", "kind", "ready", "in flight", "delayed", "dead", "oldest",
                 "drain", "in/s", "acked/s", "p95", "p99", "errors", "consumers", "breakers")


def queue_table(rows: Iterable[QueueRow], text_filter: str = "") -> str:
    """The per-queue table, queues needing attention first."""
    wanted = [r for r in rows if text_filter.lower() in r.queue.lower()]
    if not wanted:
        return "<div class='pn-note'>no queue matches</div>" if text_filter else \
            "<div class='pn-note'>no queues yet: declare one or publish a message</div>"
    wanted.sort(key=lambda r: (not (r.no_consumer and r.waiting), -r.open_breakers,
                               -r.waiting, r.queue))
    head = "".join(f"<th class='{'l' if h in ('queue', 'kind') else ''}'>{h}</th>"
                   for h in QUEUE_HEADERS)
    body = []
    for r in wanted:
        alarm = r.no_consumer and r.waiting > 0
        consumers = ("<span class='pn-badge bad'>NO CONSUMER</span>" if alarm else
                     "<span class='pn-badge off'>none</span>" if r.no_consumer else
                     f"{r.consumers}")
        breakers = f"<span class='pn-badge bad'>{r.open_breakers} open</span>" \
            if r.open_breakers else "<span class='pn-muted'>closed</span>"
        errors = f"{r.error_rate:.1%}"
        if r.error_rate >= 0.05:
            errors = f"<span class='pn-bad'>{errors}</span>"
        parts = f" <span class='pn-muted'>×{r.partitions}</span>" if r.partitions > 1 else ""
        body.append(
            f"<tr class='{'alarm' if alarm else ''}' data-queue='{esc(r.queue)}' "
            f"data-ready='{r.ready}' data-in-flight='{r.in_flight}' data-delayed='{r.delayed}' "
            f"data-dead='{r.dead}' data-consumers='{r.consumers}'>"
            f"<td class='l pn-mono'>{esc(r.queue)}{parts}</td><td class='l'>{esc(r.kind)}</td>"
            f"<td>{count(r.ready)}</td><td>{count(r.in_flight)}</td><td>{count(r.delayed)}</td>"
            f"<td>{count(r.dead)}</td><td>{duration(r.oldest_age_s)}</td>"
            f"<td>{duration(r.drain_s)}</td><td>{rate(r.published_per_s)}</td>"
            f"<td>{rate(r.acked_per_s)}</td><td>{ms(r.p95_ms)}</td><td>{ms(r.p99_ms)}</td>"
            f"<td>{errors}</td><td>{consumers}</td><td>{breakers}</td></tr>")
    return (f"{CSS}<div class='pn-dash pn-scroll'><table class='pn-grid' data-table='queues'>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def worker_table(workers: Iterable[WorkerRow]) -> str:
    """The workers table, online first."""
    rows = list(workers)
    if not rows:
        return ("<div class='pn-note'>no worker has sent a heartbeat: start one with "
                "<code>phantom-notebook worker MODULE:HANDLERS</code></div>")
    head = ("<tr><th class='l'>worker</th><th class='l'>host</th><th>pid</th>"
            "<th class='l'>queues</th><th>last heartbeat</th><th>in flight</th>"
            "<th>handled</th><th>errors</th><th class='l'>state</th></tr>")
    body = []
    for w in rows:
        state = "<span class='pn-badge ok'>online</span>" if w.online else \
            "<span class='pn-badge bad'>offline</span>"
        errors = f"<span class='pn-bad' title='{esc(w.last_error)}'>{w.errors:,}</span>" \
            if w.errors else "0"
        queues = ", ".join(sorted({q.split("#", 1)[0] for q in w.queues}))
        body.append(
            f"<tr data-worker='{esc(w.name)}'><td class='l pn-mono'>{esc(w.name)}</td>"
            f"<td class='l'>{esc(w.host)}</td><td>{w.pid}</td><td class='l'>{esc(queues)}</td>"
            f"<td>{duration(w.last_seen_s)} ago</td><td>{w.in_flight:,}</td>"
            f"<td>{w.handled:,}</td><td>{errors}</td><td class='l'>{state}</td></tr>")
    return (f"{CSS}<div class='pn-dash pn-scroll'><table class='pn-grid' data-table='workers'>"
            f"<thead>{head}</thead><tbody>{''.join(body)}</tbody></table></div>")


def letter_table(letters: Iterable[DeadLetter]) -> str:
    """One page of dead letters (no payloads)."""
    rows = list(letters)
    if not rows:
        return "<div class='pn-note'>no dead letters</div>"
    head = ("<tr><th class='l'>dead at (UTC)</th><th class='l'>queue</th><th class='l'>reason"
            "</th><th class='l'>type</th><th>attempts</th><th class='l'>error</th>"
            "<th class='l'>message</th></tr>")
    body = []
    for d in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d.last_failure_ms / 1000))
        error = d.error.splitlines()[0][:90] if d.error else ""
        body.append(
            f"<tr data-dlq='{esc(d.dlq_id)}'><td class='l'>{when}</td>"
            f"<td class='l pn-mono'>{esc(d.queue)}</td><td class='l'>{esc(d.reason)}</td>"
            f"<td class='l'>{esc(d.type or '—')}</td><td>{d.attempts}</td>"
            f"<td class='l' title='{esc(error)}'>{esc(error[:60])}</td>"
            f"<td class='l pn-mono'>{esc(d.message_id or '—')}</td></tr>")
    return (f"{CSS}<div class='pn-dash pn-scroll'><table class='pn-grid' data-table='dlq'>"
            f"<thead>{head}</thead><tbody>{''.join(body)}</tbody></table></div>")


def section(title: str, note: str = "") -> str:
    """A section heading."""
    extra = f" <span class='pn-note'>{esc(note)}</span>" if note else ""
    return f"{CSS}<div class='pn-dash'><div class='pn-section'>{esc(title)}{extra}</div></div>"


__all__ = ["CSS", "header", "letter_table", "queue_table", "section", "tiles", "worker_table"]
