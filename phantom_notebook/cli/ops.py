"""Reports, the Prometheus exporter and the benchmarks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from .. import core
from .common import add_connection, connect, print_help


def register(sub: Any) -> None:
    """Add ``report``, ``metrics`` and ``bench``."""
    report = sub.add_parser("report", help="Scheduled reports (papermill).",
                            description="Scheduled reports (papermill).")
    report_sub = report.add_subparsers(dest="report_command", metavar="REPORT")
    health = report_sub.add_parser(
        "health", help="Run notebooks/health_report.ipynb, write reports/health-<UTC>.ipynb "
                       "and .html (no code); exit 2 when health is critical.")
    health.add_argument("--redis-url", default=None,
                        help="Redis to report on (default: embedded with a seeded demo load)")
    health.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="notebook parameter (JSON or text)")
    health.add_argument("--output-dir", default="reports", help="where reports land")
    health.add_argument("--notebook", default=None, help="a different report notebook")
    health.set_defaults(func=_report_health)
    report.set_defaults(func=lambda args: print_help(report))

    metrics = sub.add_parser("metrics", help="Prometheus exporter.",
                             description="Prometheus exporter.")
    metrics_sub = metrics.add_subparsers(dest="metrics_command", metavar="ACTION")
    serve = add_connection(metrics_sub.add_parser(
        "serve", help="Serve /metrics for Prometheus (reads Redis on each scrape)."))
    serve.add_argument("--port", type=int, default=9464, help="port (default 9464)")
    serve.add_argument("--addr", default="127.0.0.1", help="bind address (0.0.0.0 to expose)")
    serve.add_argument("--queue", action="append", help="queues to export (default: all)")
    serve.add_argument("--no-health", action="store_true", help="skip health checks per scrape")
    serve.set_defaults(func=_metrics_serve)
    metrics.set_defaults(func=lambda args: print_help(metrics))

    bench = sub.add_parser("bench", help="Run the benchmark suite (see benchmarks/).",
                           description="Run the benchmark suite: ours vs the raw redis-py "
                                       "ceiling (and peers with --peers).", add_help=False)
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(func=run_bench)


def _report_health(args: argparse.Namespace) -> int:
    from ..notebook.reports import run_health_report

    params: dict[str, Any] = {}
    for name, value in args.parameter:
        try:
            params[name] = orjson.loads(value)
        except orjson.JSONDecodeError:
            params[name] = value
    result = run_health_report(args.redis_url, parameters=params, output_dir=args.output_dir,
                               notebook=args.notebook)
    print(f"health: {result.status.upper()}")
    print(f"notebook: {result.notebook}")
    print(f"html:     {result.html}")
    return result.exit_code


def _metrics_serve(args: argparse.Namespace) -> int:
    from ..notebook.prometheus import run

    return int(run(connect(args), args.port, args.addr, queues=args.queue,
                   include_health=not args.no_health) or 0)


def run_bench(args: argparse.Namespace) -> int:
    """Run ``benchmarks`` from the source checkout this package lives in."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "benchmarks").is_dir() and str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    try:
        from benchmarks.__main__ import main as bench_main
    except ImportError:
        raise core.ValidationError("the benchmarks ship with the source tree: run from a "
                                   "checkout (./run bench)") from None
    return int(bench_main(args.bench_args) or 0)
