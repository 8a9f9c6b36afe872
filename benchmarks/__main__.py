"""``python -m benchmarks [--quick|--smoke] [--depth N] [--peers] [--out reports/]``.

Starts its own redis-server on a free port and measures every scenario for phantom_notebook
and the raw redis-py ceiling in one run, in both feature profiles ("off" and "on").
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.harness import PROFILES, BenchServer, Result, Sizes, judge

SCENARIOS = ("publish", "consume", "latency", "depth", "request", "group", "async")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smaller sizes (a few minutes)")
    mode.add_argument("--smoke", action="store_true", help="tiny sizes (CI smoke test)")
    p.add_argument("--depth", type=int, default=None,
                   help="messages in the depth scenario (default 1,000,000; quick 100,000)")
    p.add_argument("--peers", action="store_true", help="also measure the installed peers")
    p.add_argument("--peers-python", default=sys.executable,
                   help="interpreter that has the peers installed (default: this one)")
    p.add_argument("--peer-python", action="append", default=[], metavar="PEER=PYTHON",
                   help="interpreter for one peer whose pins clash (e.g. celery=/venv/bin/python)")
    p.add_argument("--profiles", default=",".join(PROFILES),
                   help="feature profiles to run (default: off,on)")
    p.add_argument("--only", default=",".join(SCENARIOS),
                   help=f"scenario groups to run (default: {','.join(SCENARIOS)})")
    p.add_argument("--redis-url", default=None,
                   help="use this (throwaway!) Redis instead of starting one: it is FLUSHED")
    p.add_argument("--out", type=Path, default=Path("reports"), help="report directory")
    return p.parse_args(argv)


def _scenarios() -> dict[str, Callable[[BenchServer, Sizes, str], list[Result]]]:
    from benchmarks import (
        scenarios_async,
        scenarios_consume,
        scenarios_depth,
        scenarios_latency,
        scenarios_publish,
        scenarios_results,
    )

    return {"publish": scenarios_publish.run, "consume": scenarios_consume.run,
            "latency": scenarios_latency.run, "depth": scenarios_depth.run,
            "request": scenarios_results.run_request, "group": scenarios_results.run_group,
            "async": scenarios_async.run}


def run_all(args: argparse.Namespace, server: BenchServer, sizes: Sizes) -> list[Result]:
    """Every selected scenario group in every selected profile; failures are recorded."""
    results: list[Result] = []
    table = _scenarios()
    for group in [g for g in args.only.split(",") if g]:
        for profile in [p for p in args.profiles.split(",") if p]:
            started = time.perf_counter()
            print(f"[bench] {group} / {profile} ...", flush=True)
            try:
                results.extend(table[group](server, sizes, profile))
            except Exception as exc:  # noqa: BLE001 - one failed scenario must not end the run
                print(f"[bench] {group} / {profile} FAILED: {type(exc).__name__}: {exc}",
                      flush=True)
                results.append(Result(f"{group}.error", profile, "-", None, details={
                    "error": f"{type(exc).__name__}: {exc}"}))
            print(f"[bench] {group} / {profile} done in {time.perf_counter() - started:.1f} s",
                  flush=True)
    return results


def run_peers(args: argparse.Namespace, server: BenchServer, sizes: Sizes,
              results: list[Result]) -> list[dict[str, Any]]:
    """Each peer in a subprocess; add ``peers.e2e`` (ours vs the fastest peer)."""
    from benchmarks import peers, scenarios_consume

    out = []
    pythons = dict(item.split("=", 1) for item in args.peer_python if "=" in item)
    for name in peers.PEERS:
        server.flush()
        print(f"[bench] peer {name} ...", flush=True)
        res = peers.measure(name, server.url, sizes.peers,
                            pythons.get(name, args.peers_python),
                            timeout_s=max(60.0, sizes.worker_timeout_s))
        print(f"[bench] peer {name}: " + (f"e2e {res['e2e_rate']:,.0f} msg/s" if res.get("ok")
                                          else f"skipped ({res.get('reason')})"), flush=True)
        out.append(res)
    ours = scenarios_consume.end_to_end(results)
    ok = [p for p in out if p.get("ok")]
    if ours is not None and ok:
        fastest = max(ok, key=lambda p: p["e2e_rate"])
        r = Result("peers.e2e", "on", "msg/s", ours, fastest["e2e_rate"], details={
            "fastest_peer": fastest["peer"], "peers": out,
            "ours_note": "publish_stream (batches of 500) fill + 1-process drain of "
                         "consume.1proc [on], mean of its rounds"})
        results.append(judge(r, f">= 10x fastest peer ({fastest['peer']})",
                             (r.ratio or 0) >= 10))
    return out


def meta(args: argparse.Namespace, server: BenchServer, mode: str, sizes: Sizes) -> dict[str, Any]:
    """Machine, versions and sizes of this run."""
    from importlib.metadata import version

    return {"started_utc": datetime.now(UTC).isoformat(timespec="seconds"), "mode": mode,
            "sizes": sizes.__dict__, "profiles": args.profiles, "python": sys.version.split()[0],
            "platform": platform.platform(), "cpus": os.cpu_count(),
            "redis_server": server.version(), "redis_py": version("redis"),
            "phantom_notebook": version("phantom_notebook"),
            "loadavg_start": os.getloadavg()}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns 0 (misses are reported, not an error) or 2 on failure."""
    args = parse(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    sizes = Sizes.for_mode(mode, args.depth)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out.mkdir(parents=True, exist_ok=True)
    # the process set-up of a worker (GC, GIL switch interval) for the in-process publish
    # scenarios; ours and the raw ceiling run in this same process, so both get it
    from phantom_notebook.core.config.tuning import tune_process_for_throughput

    tune_process_for_throughput()
    server = BenchServer(args.redis_url)
    try:
        info = meta(args, server, mode, sizes)
        info["process_tuning"] = "tune_process_for_throughput (ours and ceiling alike)"
        started = time.perf_counter()
        results = run_all(args, server, sizes)
        peer_results = run_peers(args, server, sizes, results) if args.peers else []
        info["duration_s"] = round(time.perf_counter() - started, 1)
        info["loadavg_end"] = os.getloadavg()
    finally:
        server.close()
    report.print_table(results, peer_results)
    _warn_if_busy(info)
    json_path = report.write_json(args.out / f"bench-{stamp}.json", info, results, peer_results)
    html_path = report.write_html(args.out / f"bench-{stamp}.html", info, results,
                                  peer_results)
    print(f"wrote {json_path} and {html_path}")
    return 2 if any(r.scenario.endswith(".error") for r in results) else 0


def _warn_if_busy(info: dict[str, Any]) -> None:
    cpus = info.get("cpus") or 1
    worst = max(info["loadavg_start"][0], info.get("loadavg_end", (0,))[0])
    if worst > cpus * 0.75:
        print(f"WARNING: load average {worst:.1f} on {cpus} CPUs during the run: other "
              f"processes competed for the CPU; ratios (measured back to back) are more "
              f"trustworthy than absolute rates")


if __name__ == "__main__":
    sys.exit(main())
