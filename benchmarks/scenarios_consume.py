"""Consume + ack with a no-op handler in 1 and 2 worker processes, vs the raw loop."""

from __future__ import annotations

from typing import Any

import redis

from benchmarks.fleet import Fleet, Tally
from benchmarks.harness import BenchServer, RawCodec, Result, Sizes, connect, judge
from benchmarks.scenarios_publish import UNBOUNDED, _our_header, ours_stream, raw_batch

QUEUE = "bench-consume"
STREAM = "raw:consume"
PREFIX = "bc"
FILL_BATCH = 1000
STREAM_BATCH = 500


def fill_ours(url: str, profile: str, n: int, queue: str = QUEUE, prefix: str = PREFIX,
              **overrides: Any) -> tuple[float, bytes]:
    """Publish ``n`` messages the bulk way, ``publish_stream`` (atomic batches of 500, two
    in flight; Message objects built 1,000 at a time inside the timing); returns (seconds,
    a header)."""
    mq, features = connect(url, prefix, profile, **{**UNBOUNDED, **overrides})
    elapsed = n / ours_stream(mq, features, n, STREAM_BATCH, queue)
    header = _our_header(mq)
    mq.client.close()
    return elapsed, header


def fill_raw(url: str, codec: RawCodec, n: int, stream: str = STREAM) -> float:
    """Pipelined XADD of ``n`` messages into a plain stream with group ``workers``."""
    client = redis.Redis.from_url(url)
    client.xgroup_create(stream, "workers", id="0", mkstream=True)
    rate = raw_batch(client, codec, n, FILL_BATCH, stream)
    client.close()
    return n / rate


def drain(url: str, role: str, procs: int, spec: dict[str, Any], n: int,
          timeout_s: float) -> Tally:
    """Start ``procs`` workers on a pre-filled queue, release them, wait for ``n`` handled."""
    fleet = Fleet(url, timeout_s)
    try:
        fleet.spawn_workers(role, procs, {**spec, "procs": procs})
        fleet.go()
        tally = fleet.wait_handled(n)
    except BaseException:
        fleet.close()
        raise
    final = fleet.stop()
    final.count = max(final.count, tally.count)
    return final


#: a rate limit far above what one process reaches: the limiter runs, never binds
NON_BINDING = {"rate_limit": "10000000/s"}


def measure_ours(server: BenchServer, sizes: Sizes, profile: str, procs: int,
                 **overrides: Any) -> dict[str, Any]:
    """Fill, then drain with ``procs`` phantom_notebook workers."""
    server.flush()
    n = sizes.consume
    fill_s, header = fill_ours(server.url, profile, n)
    spec = {"prefix": PREFIX, "profile": profile, "queue": QUEUE, "prefetch": 500,
            "overrides": {**UNBOUNDED, **overrides}}
    t = drain(server.url, "ours-worker", procs, spec, n, sizes.worker_timeout_s)
    return {"rate": t.rate, "handled": t.count, "fill_s": fill_s,
            "drain_s": (t.last_ns - t.first_ns) / 1e9, "header": header}


def measure_raw(server: BenchServer, sizes: Sizes, profile: str, procs: int,
                header: bytes) -> dict[str, Any]:
    """Fill, then drain with ``procs`` raw XREADGROUP/XACK/XDEL loops."""
    server.flush()
    n = sizes.consume
    fill_s = fill_raw(server.url, RawCodec(profile, header), n)
    spec = {"stream": STREAM, "profile": profile, "header": header.hex()}
    t = drain(server.url, "raw-worker", procs, spec, n, sizes.worker_timeout_s)
    return {"rate": t.rate, "handled": t.count, "fill_s": fill_s,
            "drain_s": (t.last_ns - t.first_ns) / 1e9}


def run(server: BenchServer, sizes: Sizes, profile: str) -> list[Result]:
    """``consume.1proc`` and ``consume.2proc`` for ``profile``."""
    results = []
    # alternating rounds (ours, raw, ours, raw), best of each, as publish does: a slow
    # stretch of this VM then lands on both sides instead of on one measurement alone
    rounds = 2 if sizes.consume >= 100_000 else 1
    for procs in (1, 2):
        ours_runs: list[dict[str, Any]] = []
        raw_runs: list[dict[str, Any]] = []
        for _ in range(rounds):
            ours_runs.append(measure_ours(server, sizes, profile, procs))
            raw_runs.append(measure_raw(server, sizes, profile, procs,
                                        ours_runs[-1].pop("header")))
        ours = max(ours_runs, key=lambda r: float(r["rate"]))
        raw = max(raw_runs, key=lambda r: float(r["rate"]))
        res = Result(f"consume.{procs}proc", profile, "msg/s", ours["rate"], raw["rate"],
                     details={"messages": sizes.consume, "prefetch": 500, "rounds": rounds,
                              "ours": ours, "ceiling": raw,
                              "ours_runs": [r["rate"] for r in ours_runs],
                              "ceiling_runs": [r["rate"] for r in raw_runs],
                              "ours_e2e_runs": [sizes.consume / (r["fill_s"] + r["drain_s"])
                                                for r in ours_runs]})
        short = [r["handled"] for r in ours_runs if r["handled"] < sizes.consume]
        if short:
            res.details["error"] = f"only {min(short)} of {sizes.consume} handled"
        if profile == "on" and procs == 1:
            judge(res, ">= 60k msg/s and >= 0.35x", ours["rate"] >= 60_000,
                  (res.ratio or 0) >= 0.35)
        elif profile == "on":
            judge(res, ">= 100k msg/s", ours["rate"] >= 100_000)
        results.append(res)
    results.append(limited(server, sizes, profile))
    return results


def limited(server: BenchServer, sizes: Sizes, profile: str) -> Result:
    """``consume.limited``: one worker with a rate limit that never binds, against the same
    worker without one, measured alternately (the limiter's cost: a GCRA step per fetch)."""
    with_limit, without = [], []
    for _ in range(2):
        without.append(measure_ours(server, sizes, profile, 1)["rate"])
        with_limit.append(measure_ours(server, sizes, profile, 1, **NON_BINDING)["rate"])
    res = Result("consume.limited", profile, "msg/s", max(with_limit), max(without),
                 details={"messages": sizes.consume, "rate_limit": NON_BINDING["rate_limit"],
                          "ours_runs": with_limit, "ceiling_runs": without,
                          "ceiling": "the same worker without a rate limit"})
    judge(res, ">= 0.95x without a limit", (res.ratio or 0) >= 0.95)
    return res


def end_to_end(results: list[Result]) -> float | None:
    """Ours end to end in one worker process: N / (publish_stream fill time + drain time),
    the mean over the consume rounds (each peer runs once: no best-of for either side)."""
    for r in results:
        if r.scenario == "consume.1proc" and r.profile == "on":
            runs = r.details["ours_e2e_runs"]
            return float(sum(runs) / len(runs))
    return None
