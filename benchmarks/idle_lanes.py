"""What idle consumers cost Redis: ``python -m benchmarks.idle_lanes [--quick] [--out DIR]``.

Starts its own redis-server, declares 50 queues, then for 0, 100, 500 and 1,000 idle
lanes (consumer threads: ``Worker`` instances each subscribed to every queue, spread over
several processes) measures over a window the Redis CPU (``INFO cpu``: used_cpu_sys +
used_cpu_user), commands per second (``INFO stats``) and the busiest commands
(``INFO commandstats``), first with nothing published, then with a trickle of 100 msg/s
spread over the queues. Reports the per-lane cost and the modelled number of idle lanes
one Redis core carries (and a 6-master Cluster, each lane reading on one master); writes
``idle-lanes-<stamp>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from benchmarks.harness import BenchServer

QUEUES = 50
PREFIX = "idle"
LANES = (0, 100, 500, 1000)
LANES_PER_PROCESS = 200  # 4 Worker instances of 50 lanes each


def child(spec: dict[str, Any]) -> None:
    """One process: ``workers`` Workers, each with one no-op subscription per queue."""
    import phantom_notebook as pn

    handled = 0

    def handle(envelope: Any) -> None:
        nonlocal handled
        handled += 1

    started = []
    for w in range(spec["workers"]):
        mq = pn.connect(spec["url"], key_prefix=PREFIX, settings=pn.Settings(),
                        max_connections=spec["queues"] + 20)
        for q in range(spec["queues"]):
            mq.subscribe(f"q{q}", "*", handle, prefetch_count=10)
        started.append(mq.worker(name=f"idle-{os.getpid()}-{w}").start())
    client = redis.Redis.from_url(spec["url"], socket_timeout=None)
    client.rpush(f"{PREFIX}:ready", os.getpid())
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            if client.blpop([f"{PREFIX}:stop:{os.getpid()}"], timeout=5) is not None:
                break
        except redis.RedisError:
            time.sleep(0.5)  # a starved server: ask again
    for worker in started:
        worker.stop(grace_s=2)
    client.rpush(f"{PREFIX}:handled", handled)


def _redis_cpu(client: Any) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def _procs_cpu(pids: list[int]) -> float:
    tck = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tck
    return total


def measure(server: BenchServer, lanes: int, window_s: float, trickle: float,
            settle_s: float) -> dict[str, Any]:
    """Start ``lanes`` idle lanes, wait ``settle_s``, measure over ``window_s``."""
    client = redis.Redis.from_url(server.url, socket_timeout=None)
    client.delete(f"{PREFIX}:ready", f"{PREFIX}:handled")
    workers = lanes // QUEUES
    procs: list[subprocess.Popen[bytes]] = []
    per = max(LANES_PER_PROCESS // QUEUES, 1)
    while workers > 0:
        n = min(per, workers)
        spec = {"url": server.url, "queues": QUEUES, "workers": n}
        procs.append(subprocess.Popen([sys.executable, "-m", "benchmarks.idle_lanes",
                                       "--child", json.dumps(spec)]))
        workers -= n
    try:
        for _ in procs:
            if client.blpop([f"{PREFIX}:ready"], timeout=300) is None:
                raise RuntimeError("a worker process did not start within 300 s")
        time.sleep(settle_s)  # lanes past their first fetch, into their idle rhythm
        pids = [p.pid for p in procs]
        client.config_resetstat()
        cpu0, proc0, t0 = _redis_cpu(client), _procs_cpu(pids), time.monotonic()
        sent = 0
        if trickle:
            import phantom_notebook as pn

            mq = pn.connect(server.url, key_prefix=PREFIX, settings=pn.Settings())
            every = 1.0 / trickle
            nxt = time.monotonic()
            while time.monotonic() - t0 < window_s:
                mq.publish(f"q{sent % QUEUES}", "ioc.seen", {"i": sent})
                sent += 1
                nxt += every
                time.sleep(max(nxt - time.monotonic(), 0))  # pacing the trickle
            mq.close()
        else:
            time.sleep(window_s)  # the measurement window
        elapsed = time.monotonic() - t0
        cpu = (_redis_cpu(client) - cpu0) / elapsed
        proc_cpu = (_procs_cpu(pids) - proc0) / elapsed
        stats = client.info("stats")
        commands = client.info("commandstats")
        top = sorted(((k.removeprefix("cmdstat_"), v["calls"] / elapsed,
                       v["usec_per_call"]) for k, v in commands.items()),
                     key=lambda x: -x[1])[:6]
        total = int(stats["total_commands_processed"]) / elapsed
    finally:
        for p in procs:
            client.rpush(f"{PREFIX}:stop:{p.pid}", 1)
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
    return {"lanes": lanes, "processes": len(procs), "trickle_msg_s": trickle,
            "published": sent, "window_s": round(elapsed, 2), "redis_cpu": cpu,
            "commands_per_s": total, "workers_cpu": proc_cpu,
            "top_commands": [{"command": c, "per_s": round(r, 1), "usec_per_call": u}
                             for c, r, u in top]}


def model(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-lane Redis cost from the idle rows (slope over the baseline), and what it allows."""
    idle = [r for r in rows if not r["trickle_msg_s"]]
    base = next((r for r in idle if r["lanes"] == 0), None)
    top = max(idle, key=lambda r: r["lanes"])
    if base is None or not top["lanes"]:
        return {}
    per_lane = max((top["redis_cpu"] - base["redis_cpu"]) / top["lanes"], 1e-9)
    per_lane_cmds = (top["commands_per_s"] - base["commands_per_s"]) / top["lanes"]
    return {"redis_cpu_per_lane": per_lane, "commands_per_lane_s": per_lane_cmds,
            "worker_cpu_per_lane": (top["workers_cpu"] - base["workers_cpu"]) / top["lanes"],
            "idle_lanes_per_redis_core": int(1.0 / per_lane),
            "idle_lanes_6_master_cluster": int(6.0 / per_lane),
            "redis_cpu_at_1000_lanes": next((r["redis_cpu"] for r in idle
                                             if r["lanes"] == 1000), None)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.idle_lanes", description=__doc__)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="a 5 s window instead of 15 s")
    p.add_argument("--lanes", default=",".join(map(str, LANES)))
    p.add_argument("--out", type=Path, default=Path("reports"))
    p.add_argument("--label", default="", help="a name for this run in the report")
    args = p.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0
    window = 5.0 if args.quick else 15.0
    server = BenchServer()
    rows: list[dict[str, Any]] = []
    try:
        import phantom_notebook as pn

        mq = pn.connect(server.url, key_prefix=PREFIX, settings=pn.Settings())
        for q in range(QUEUES):
            mq.declare(f"q{q}")
        mq.close()
        for lanes in [int(x) for x in args.lanes.split(",")]:
            for trickle in (0.0, 100.0):
                row = measure(server, lanes, window, trickle, settle_s=3.0)
                rows.append(row)
                print(f"{lanes:5d} lanes  trickle {trickle:5.0f}/s  redis cpu "
                      f"{row['redis_cpu'] * 100:6.2f} %  {row['commands_per_s']:9.0f} cmd/s  "
                      f"workers cpu {row['workers_cpu'] * 100:6.1f} %  top "
                      f"{[(c['command'], c['per_s']) for c in row['top_commands'][:3]]}",
                      flush=True)
    finally:
        server.close()
    summary = model(rows)
    print(json.dumps(summary, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out / f"idle-lanes-{stamp}.json"
    out.write_text(json.dumps({"label": args.label, "window_s": window, "queues": QUEUES,
                               "rows": rows, "model": summary}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
