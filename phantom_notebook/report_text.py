"""Terminal tables (rich) for the CLI: demo summary and queue stats."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from .core import QueueStats
    from .demo import DemoSummary, QueueResult
    from .intel.pipeline import ScoringStatus, Verdict


def _console() -> Console:
    """A console at least 120 columns wide, so tables stay readable when piped."""
    probe = Console()
    return probe if probe.width >= 120 else Console(width=120)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 1000 else f"{value:,.1f}"


def demo_table(results: Sequence[QueueResult], elapsed_s: float, where: str,
               console: Console | None = None) -> None:
    """Print the demo summary: one row per queue, totals, footnotes and what the run produced.

    ``results`` from ``run_demo``; when it carries a ``summary`` (a ``DemoSummary``), lines
    on enrichment, risk, alerts, the alerts file and dead letters follow the table.
    """
    console = console or _console()
    table = Table(title=f"phantom-notebook demo on {where}", title_justify="left")
    for name, justify in [("queue", "left"), ("kind", "left"), ("published", "right"),
                          ("consumed", "right"), ("dead-lettered", "right"),
                          ("retried", "right"), ("p50 ms", "right"), ("p99 ms", "right")]:
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for r in results:
        consumed = f"{r.consumed:,}" + (" (x2 groups)" if r.kind == "broadcast" else "")
        live = r.kind == "pubsub"
        table.add_row(f"{r.queue}{'¹' if live else ''}", r.kind, f"{r.published:,}", consumed,
                      "n/a" if live else f"{r.dead_lettered:,}",
                      "n/a" if live else f"{r.retried:,}",
                      _ms(r.percentile(50)), _ms(r.percentile(99)))
    table.add_section()
    table.add_row("total", "", f"{sum(r.published for r in results):,}",
                  f"{sum(r.consumed for r in results):,}",
                  f"{sum(r.dead_lettered for r in results):,}",
                  f"{sum(r.retried for r in results):,}", "", "", style="bold")
    console.print(table)
    for line in (
            f"finished in {elapsed_s:.2f} s",
            "published, dead-lettered, retried: the queue metrics stored in Redis (what the "
            "health report and dashboards read)",
            "consumed (handled OK), latency: measured around each handler, publish -> handled, "
            "time waiting in the queue included",
            "  (ioc-processing: the backlog of requests published in batches; delayed queue: "
            "the delay itself)",
            "¹ pub/sub is live, not durable: a message reaches only the subscribers connected "
            "at that moment; nothing is stored"):
        console.print(line, highlight=False, soft_wrap=True)
    summary = getattr(results, "summary", None)
    if summary is not None:
        console.print(_summary_line(summary), highlight=False, soft_wrap=True)


def _summary_line(summary: DemoSummary) -> str:
    levels = summary.risk_levels
    alerts = ", ".join(f"{group} {n:,}" for group, n in summary.alerts.items())
    dead = ", ".join(f"{n:,} {reason}" for reason, n in summary.dead_reasons.items()) or "none"
    line = (f"pipeline: {summary.enriched:,} indicators enriched; "
            f"{levels.get('critical', 0):,} scored critical, {levels.get('high', 0):,} high\n"
            f"alerts delivered: {alerts}\n"
            f"alerts file (the soc group's JSON lines): {escape(str(summary.alerts_file))}\n"
            f"dead letters: {dead}")
    if summary.mismatches:
        line += "\n[bold red]metrics and handlers disagree:[/] " + "; ".join(summary.mismatches)
    return line


def stats_table(rows: Sequence[QueueStats], console: Console | None = None) -> None:
    """Print depth per queue and state."""
    console = console or _console()
    table = Table(title="queues", title_justify="left")
    for name in ["queue", "kind", "ready", "in flight", "delayed", "dead", "by priority"]:
        table.add_column(name, justify="left" if name in ("queue", "kind", "by priority")
                         else "right")
    for r in rows:
        prio = " ".join(f"{k[0]}:{v}" for k, v in r.by_priority.items() if v)
        kind = f"{r.kind} (paused)" if r.paused else r.kind
        if r.paused_groups:
            kind += f" ({', '.join(r.paused_groups)} paused)"
        table.add_row(r.queue, kind, f"{r.ready:,}", f"{r.in_flight:,}", f"{r.delayed:,}",
                      f"{r.dead:,}", prio or "-")
    if not rows:
        console.print("no queues yet")
        return
    console.print(table)


@contextmanager
def scoring_progress(total: int, console: Console | None = None
                     ) -> Iterator[Callable[[ScoringStatus], None]]:
    """A rich bar of a scoring run for ``ScoringRun.wait(progress=...)``: yields the
    callable that takes each ``ScoringStatus`` (the bar: the whole run; the text: risk
    scores, then the enrichment requests behind them)."""
    with Progress(TextColumn("scoring"), BarColumn(), TextColumn("{task.fields[status]}"),
                  TimeElapsedColumn(), console=console or _console()) as bar:
        task = bar.add_task("scoring", total=total, status=f"0/{total} done")

        def update(status: ScoringStatus) -> None:
            bar.update(task, completed=status.fraction * total, status=status.describe())

        yield update


_LEVEL_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "green"}


def scores_table(verdicts: Sequence[Verdict], console: Console | None = None,
                 title: str = "risk per indicator") -> None:
    """Print one row per indicator, riskiest first: its score, level, the enricher queues
    that answered and the score's factors."""
    console = console or _console()
    table = Table(title=title, title_justify="left")
    for name, justify in [("indicator", "left"), ("type", "left"), ("risk", "right"),
                          ("level", "left"), ("enrichers", "right"), ("why", "left")]:
        table.add_column(name, justify=justify,  # type: ignore[arg-type]
                         no_wrap=name not in ("indicator", "why"), overflow="fold",
                         max_width=34 if name == "indicator" else None)
    rows = sorted(verdicts, key=lambda v: (v.risk_score is None, -(v.risk_score or 0),
                                           v.ioc.value))
    for v in rows:
        row = v.as_row()
        level = row["risk_level"]
        table.add_row(escape(row["value"]), row["type"],
                      "-" if v.risk_score is None else str(v.risk_score),
                      f"[{_LEVEL_STYLE.get(level, 'dim')}]{level}[/]", row["enrichers"],
                      escape(row["breakdown"] + (f" (missing: {row['missing']})"
                                                 if row["missing"] else "")))
    console.print(table)
