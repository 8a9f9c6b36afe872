"""Latency: CRITICAL publish -> handler start under NORMAL background traffic, and delayed
delivery lateness. Timestamps are ``time.time_ns()`` carried in the payload (the envelope's
``created_at_ms`` has only millisecond resolution)."""

from __future__ import annotations

import random
import time
from typing import Any

import redis

from benchmarks.fleet import Fleet, Tally
from benchmarks.harness import (
    BenchServer,
    RawCodec,
    Result,
    Sizes,
    connect,
    judge,
    percentiles,
)
from benchmarks.payload import MESSAGE_TYPE, ioc_payload
from benchmarks.scenarios_publish import UNBOUNDED, _our_header

QUEUE = "bench-latency"
STREAM = "raw:latency"
PREFIX = "bl"
PROBE_EVERY_S = 0.005
RATES = (2_000, 10_000)
WARMUP_S = 0.5


def _pace(n: int, every_s: float, send: Any) -> None:
    """Call ``send(i)`` ``n`` times on an absolute schedule of ``every_s``."""
    next_at = time.perf_counter()
    for i in range(n):
        send(i)
        next_at += every_s
        pause = next_at - time.perf_counter()
        if pause > 0:
            time.sleep(pause)


def critical(server: BenchServer, sizes: Sizes, profile: str, rate: int,
             ours: bool) -> Tally:
    """Probe latency (ns) with ``rate`` msg/s of background traffic on the same queue."""
    from phantom_notebook import MessagePriority

    server.flush()
    fleet = Fleet(server.url, sizes.worker_timeout_s)
    mq, features = connect(server.url, PREFIX, profile, **UNBOUNDED)
    header = _our_header(mq)
    codec = RawCodec(profile, header)
    client = redis.Redis.from_url(server.url)
    try:
        if ours:
            mq.ensure_group(QUEUE, "workers")
            fleet.spawn_workers("ours-worker", 1, {"prefix": PREFIX, "profile": profile,
                                                   "queue": QUEUE, "prefetch": 100})
            fleet.spawn_background("ours-bg", {"prefix": PREFIX, "profile": profile,
                                               "queue": QUEUE, "rate": rate})
        else:
            client.xgroup_create(STREAM, "workers", id="0", mkstream=True)
            fleet.spawn_workers("raw-worker", 1, {"stream": STREAM, "profile": profile,
                                                  "header": header.hex()})
            fleet.spawn_background("raw-bg", {"stream": STREAM, "profile": profile,
                                              "header": header.hex(), "rate": rate})
        fleet.go()
        time.sleep(WARMUP_S if sizes.probes >= 1_000 else 0.1)

        def send(i: int) -> None:
            payload = ioc_payload(i)
            payload["t_ns"] = time.time_ns()
            if ours:
                mq.publish(QUEUE, MESSAGE_TYPE, payload, priority=MessagePriority.CRITICAL,
                           dedup_key=f"probe{i}" if features.dedup else None)
            else:
                client.xadd(STREAM, {"m": codec.encode(payload)})

        _pace(sizes.probes, PROBE_EVERY_S, send)
        time.sleep(0.2)
    except BaseException:
        fleet.close()
        raise
    finally:
        client.close()
        mq.client.close()
    return fleet.stop()


def delayed(server: BenchServer, sizes: Sizes, profile: str) -> Tally:
    """Lateness (handled - due, ns) of messages published with a 100-500 ms delay."""
    server.flush()
    fleet = Fleet(server.url, sizes.worker_timeout_s)
    mq, features = connect(server.url, PREFIX, profile, **UNBOUNDED)
    rng = random.Random(7)
    try:
        mq.ensure_group(QUEUE, "workers")
        fleet.spawn_workers("ours-worker", 1, {"prefix": PREFIX, "profile": profile,
                                               "queue": QUEUE, "prefetch": 100})
        fleet.go()

        def send(i: int) -> None:
            delay = rng.uniform(0.1, 0.5)
            payload = ioc_payload(i)
            payload["due_ns"] = time.time_ns() + int(delay * 1e9)
            mq.publish(QUEUE, MESSAGE_TYPE, payload, delay=delay,
                       dedup_key=f"d{i}" if features.dedup else None)

        _pace(sizes.delayed, 0.002, send)
        fleet.wait_handled(sizes.delayed)
    except BaseException:
        fleet.close()
        raise
    finally:
        mq.client.close()
    return fleet.stop()


def _ms(values_ns: list[int], *qs: float) -> list[float]:
    return [v / 1e6 for v in percentiles(values_ns, *qs)]


def run(server: BenchServer, sizes: Sizes, profile: str) -> list[Result]:
    """CRITICAL p50/p99/p999 at each background rate, then delayed lateness p50/p99."""
    results = []
    for rate in RATES:
        ours = critical(server, sizes, profile, rate, ours=True)
        raw = critical(server, sizes, profile, rate, ours=False)
        o, c = _ms(ours.latency_ns, 50, 99, 99.9), _ms(raw.latency_ns, 50, 99, 99.9)
        tag = f"{rate // 1000}k"
        details = {"probes": sizes.probes, "ours_samples": len(ours.latency_ns),
                   "ceiling_samples": len(raw.latency_ns), "background_rate": rate,
                   "background_achieved": _achieved(ours), "ceiling_bg_achieved":
                   _achieved(raw), "ours_max_ms": max(ours.latency_ns, default=0) / 1e6}
        for q, ov, cv in zip(("p50", "p99", "p999"), o, c, strict=True):
            res = Result(f"latency.critical@{tag}.{q}", profile, "ms", ov, cv,
                         higher_is_better=False, details=details)
            if profile == "on" and rate == 2_000 and q == "p99":
                judge(res, "< 2 ms", ov < 2.0)
            elif profile == "on" and rate == 2_000 and q == "p999":
                judge(res, "< 5 ms", ov < 5.0)
            results.append(res)
    late = delayed(server, sizes, profile)
    p50, p99 = _ms(late.lateness_ns, 50, 99)
    for q, value in (("p50", p50), ("p99", p99)):
        results.append(Result(f"delayed.lateness.{q}", profile, "ms", value, None,
                              higher_is_better=False, details={
                                  "messages": sizes.delayed, "samples": len(late.lateness_ns),
                                  "min_ms": min(late.lateness_ns, default=0) / 1e6,
                                  "note": "no raw ceiling: Redis has no delayed primitive"}))
    return results


def _achieved(t: Tally) -> float:
    sent = sum(s for s, _ in t.background)
    elapsed = max((e for _, e in t.background), default=0.0)
    return sent / elapsed if elapsed else 0.0
