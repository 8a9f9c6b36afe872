"""Terminal tables (rich) for the CLI: demo summary and queue stats."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from .core import QueueStats
    from .demo import QueueResult


def _console() -> Console:
    """A console at least 110 columns wide, so tables stay readable when piped."""
    probe = Console()
    return probe if probe.width >= 110 else Console(width=110)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def demo_table(results: Sequence[QueueResult], elapsed_s: float, where: str,
               console: Console | None = None) -> None:
    """Print the demo summary: one row per queue, totals, elapsed time."""
    console = console or _console()
    table = Table(title=f"phantom-notebook demo on {where}", title_justify="left")
    for name, justify in [("queue", "left"), ("kind", "left"), ("published", "right"),
                          ("consumed", "right"), ("dead-lettered", "right"),
                          ("retried", "right"), ("p50 ms", "right"), ("p99 ms", "right")]:
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    all_latencies: list[float] = []
    for r in results:
        consumed = f"{r.consumed:,}"
        if r.kind == "broadcast":
            consumed += " (x2 groups)"
        table.add_row(r.queue, r.kind, f"{r.published:,}", consumed, f"{r.dead_lettered:,}",
                      f"{r.retried:,}", _ms(r.percentile(50)), _ms(r.percentile(99)))
        all_latencies += r.latencies_ms
    from .demo import QueueResult as _QR

    total = _QR("total", "", sum(r.published for r in results),
                sum(r.consumed for r in results), sum(r.dead_lettered for r in results),
                sum(r.retried for r in results), all_latencies)
    table.add_section()
    table.add_row("total", "", f"{total.published:,}", f"{total.consumed:,}",
                  f"{total.dead_lettered:,}", f"{total.retried:,}",
                  _ms(total.percentile(50)), _ms(total.percentile(99)), style="bold")
    console.print(table)
    console.print(f"finished in {elapsed_s:.2f} s — latency is publish -> handled; delayed "
                  "messages count from their publish time, so their latency includes the delay.")


def stats_table(rows: Sequence[QueueStats], console: Console | None = None) -> None:
    """Print depth per queue and state."""
    console = console or _console()
    table = Table(title="queues", title_justify="left")
    for name in ["queue", "kind", "ready", "in flight", "delayed", "dead", "by priority"]:
        table.add_column(name, justify="left" if name in ("queue", "kind", "by priority")
                         else "right")
    for r in rows:
        prio = " ".join(f"{k[0]}:{v}" for k, v in r.by_priority.items() if v)
        table.add_row(r.queue, r.kind, f"{r.ready:,}", f"{r.in_flight:,}", f"{r.delayed:,}",
                      f"{r.dead:,}", prio or "-")
    if not rows:
        console.print("no queues yet")
        return
    console.print(table)
