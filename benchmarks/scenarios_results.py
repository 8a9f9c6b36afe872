"""Results (issue #21): request/reply round-trip latency at an offered 1k requests/s, next
to plain publish -> handler start at the same rate; and fan-out of 3 with fan-in (groups/s)
next to plain publish + consume of the same 4 messages per group.

Request/reply, ours: a producer thread calls ``mq.request`` on an absolute 1 ms schedule
(open loop: it never waits for a result) and hands each ``PendingResult`` to a pool of
``WAITERS`` waiter threads, each calling ``pending.result()`` (HGETALL of the result hash,
then BLMOVE on its wake-up list until the settle call pushes to it, then HGETALL again).
The latency is what that user sees: ``perf_counter_ns`` from just before ``request()`` to
``result()`` returning, in the requesting process. The raw ceiling does the least a
redis-py request/reply can: XADD naming a reply list, a worker's XREADGROUP, then one
pipeline per batch of RPUSH reply + PEXPIRE + XACK + XDEL; the waiter BLPOPs the reply
and decodes it. Plain latency (ours and raw) is publish -> handler start, measured in the
worker from a ``time_ns`` stamp in the payload, as the latency scenarios do.

Fan-out/fan-in: one worker process subscribed to the 3 member queues and the callback
queue (one lane each), as ``consume.1proc`` runs one process. This process creates
``sizes.groups`` groups back to back while the worker runs; groups/s = groups / (first
``mq.group`` call -> every stream of the 4 queues empty, i.e. every member and callback
acked and deleted; polled every ``POLL_S``). The ceiling is the same worker handling 4
plain ``mq.publish`` messages per group (one per queue: the same 4 write round trips a
group makes, without results or joins). No dedup keys on either side (``Task`` has none).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from benchmarks.fleet import Fleet
from benchmarks.harness import BenchServer, RawCodec, Result, Sizes, connect, percentiles
from benchmarks.payload import MESSAGE_TYPE, ioc_payload
from benchmarks.scenarios_publish import UNBOUNDED, _our_header

QUEUE = "bench-request"
STREAM = "raw:request"
PREFIX = "bq"
RATE = 1_000
#: waiter threads sharing the pendings (each blocks in ``result()`` on one at a time)
WAITERS = 16
WARM = 50
RESULT_TIMEOUT_S = 30.0
#: what every handler returns (a request stores it as its result)
REPLY = {"verdict": "malicious", "score": 87, "sources": ["sandbox", "passive-dns"]}

FAN_PREFIX = "bf"
MEMBER_QUEUES = ("bench-fan-a", "bench-fan-b", "bench-fan-c")
JOIN_QUEUE = "bench-fan-join"
FAN_WARM = 20
POLL_S = 0.002


# -- request/reply latency -----------------------------------------------------------------

@dataclass
class Paced:
    """One paced run: requester-side latencies (requests) and the worker's tally."""

    latency_ns: list[int] = field(default_factory=list)
    handler_ns: list[int] = field(default_factory=list)
    call_ns: list[int] = field(default_factory=list)
    #: how late each send was against its schedule
    lag_ns: list[int] = field(default_factory=list)
    #: one request at a time after the paced run (no queueing: the bare round trip)
    closed_ns: list[int] = field(default_factory=list)
    failures: int = 0
    achieved: float = 0.0
    max_in_flight: int = 0
    max_backlog: int = 0
    commands: dict[str, float] = field(default_factory=dict)
    cpu_ms: dict[str, float] = field(default_factory=dict)
    #: Redis memory left per message after the run (results kept for their TTL)
    kept_bytes: float = 0.0


class Waiters:
    """A fixed pool of threads that wait for handed-over requests and time them."""

    def __init__(self, n: int, wait: Callable[[Any], object]) -> None:
        self.wait = wait
        self.items: queue.SimpleQueue[tuple[Any, int] | None] = queue.SimpleQueue()
        self.latency_ns: list[int] = []
        self.failures: list[str] = []
        self.done = 0
        self.threads = [threading.Thread(target=self._run, name=f"bench-waiter-{i}",
                                         daemon=True) for i in range(n)]
        for t in self.threads:
            t.start()

    def _run(self) -> None:
        while True:
            item = self.items.get()
            if item is None:
                return
            handle, started = item
            try:
                self.wait(handle)
            except Exception as exc:  # noqa: BLE001 - counted and reported, not raised
                self.failures.append(f"{type(exc).__name__}: {exc}")
            else:
                self.latency_ns.append(time.perf_counter_ns() - started)
            self.done += 1  # one waiter at a time per item; a lost increment only skews max

    def close(self, timeout_s: float) -> None:
        """Let every queued request finish, then stop the threads."""
        for _ in self.threads:
            self.items.put(None)
        deadline = time.monotonic() + timeout_s
        for t in self.threads:
            t.join(max(deadline - time.monotonic(), 0.1))


def _commands(client: Any) -> dict[str, int]:
    stats = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def _cpu(client: Any, pids: list[int]) -> dict[str, float]:
    """CPU seconds so far of this process, the worker processes (Linux /proc) and Redis."""
    info = client.info("cpu")
    workers = 0.0
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        workers += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    try:  # the whole machine's busy time: what other processes took shows as "other"
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        machine = (sum(ticks[:8]) - ticks[3] - ticks[4]) / tick  # minus idle and iowait
    except (OSError, ValueError, IndexError):
        machine = 0.0
    return {"requester": time.process_time(), "worker": workers,
            "redis": float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
            "machine": machine}


def _cpu_per(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
    """CPU ms per request (or group) of each process between two ``_cpu`` snapshots;
    ``other``: the machine's busy time not spent by this process, the worker or Redis
    (other processes competing for the CPUs, and the kernel's share for no one)."""
    out = {k: round((after[k] - before[k]) * 1e3 / n, 3) for k in before}
    out["other"] = round(out.pop("machine") - out["requester"] - out["worker"]
                         - out["redis"], 3)
    return out


def _per(before: dict[str, int], after: dict[str, int], n: int) -> dict[str, float]:
    """Commands per request (or group) between two ``INFO commandstats`` (INFO left out)."""
    out = {k: (v - before.get(k, 0)) / n for k, v in after.items() if k != "info"}
    return {k: round(v, 2) for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v >= 0.01}


class Side:
    """What one paced run sends and waits for: ours or raw, requests or plain messages."""

    def __init__(self, server: BenchServer, profile: str, ours: bool, reply: bool) -> None:
        self.ours, self.reply, self.profile = ours, reply, profile
        self.mq, self.features = connect(server.url, PREFIX, profile, **UNBOUNDED)
        self.header = _our_header(self.mq)
        self.codec = RawCodec(profile, self.header)
        self.client = redis.Redis.from_url(server.url)

    def start_worker(self, fleet: Fleet) -> None:
        """Spawn the worker process (not released yet)."""
        if self.ours:
            self.mq.ensure_group(QUEUE, "workers")
            fleet.spawn_workers("ours-worker", 1, {"prefix": PREFIX, "profile": self.profile,
                                                   "queue": QUEUE, "prefetch": 100,
                                                   "returns": REPLY})
            return
        self.client.xgroup_create(STREAM, "workers", id="0", mkstream=True)
        fleet.spawn_workers("raw-reply-worker" if self.reply else "raw-worker", 1,
                            {"stream": STREAM, "profile": self.profile,
                             "header": self.header.hex(), "returns": REPLY})

    def issue(self, i: int, payload: dict[str, Any]) -> Any:
        """Send request (or message) ``i``; its handle (a PendingResult, or a reply key)."""
        dedup = f"rq{i}" if self.features.dedup else None
        if self.ours and self.reply:
            return self.mq.request(QUEUE, MESSAGE_TYPE, payload, dedup_key=dedup)
        if self.ours:
            return self.mq.publish(QUEUE, MESSAGE_TYPE, payload, dedup_key=dedup)
        key = f"raw:reply:{i}"
        fields: dict[Any, Any] = {"m": self.codec.encode(payload), "r": key}
        self.client.xadd(STREAM, fields)
        return key

    def wait(self, handle: Any) -> object:
        """Block until the result of ``handle`` is there (what a waiter thread does)."""
        if self.ours:
            return handle.result(timeout=RESULT_TIMEOUT_S)
        got: Any = self.client.blpop([handle], timeout=RESULT_TIMEOUT_S)
        if got is None:
            raise TimeoutError(f"no reply on {handle}")
        return self.codec.decode(got[1])

    def close(self) -> None:
        """Close both clients."""
        self.client.close()
        self.mq.client.close()


def _warm_up(side: Side, fleet: Fleet, waiters: Waiters | None) -> None:
    """``WARM`` requests (or messages) without a time stamp: the worker does not record
    them, and the waiters forget their latencies."""
    warm = [side.issue(-1 - i, ioc_payload(i)) for i in range(WARM)]
    if waiters is not None:
        for handle in warm:
            waiters.items.put((handle, time.perf_counter_ns()))
    fleet.wait_handled(WARM)
    deadline = time.monotonic() + RESULT_TIMEOUT_S
    while waiters is not None and waiters.done < WARM and time.monotonic() < deadline:
        time.sleep(0.01)
    if waiters is not None:
        waiters.latency_ns.clear()


def _produce(side: Side, n: int, waiters: Waiters | None, out: Paced) -> None:
    """The producer thread: ``n`` sends on an absolute ``1 / RATE`` schedule (open loop:
    it never waits for a result; behind schedule it sends at once, and the lag is noted)."""
    every_ns = 1_000_000_000 // RATE

    def produce() -> None:
        t0 = time.perf_counter_ns()
        for i in range(n):
            due = t0 + i * every_ns
            pause = due - time.perf_counter_ns()
            if pause > 0:
                time.sleep(pause / 1e9)
            payload = ioc_payload(i)
            payload["t_ns"] = time.time_ns()
            started = time.perf_counter_ns()
            out.lag_ns.append(max(started - due, 0))
            handle = side.issue(i, payload)
            out.call_ns.append(time.perf_counter_ns() - started)
            if waiters is not None:
                waiters.items.put((handle, started))
                out.max_in_flight = max(out.max_in_flight, WARM + i + 1 - waiters.done)
                out.max_backlog = max(out.max_backlog, waiters.items.qsize())
        out.achieved = n / ((time.perf_counter_ns() - t0) / 1e9)

    producer = threading.Thread(target=produce, name="bench-producer", daemon=True)
    producer.start()
    producer.join()


def _closed_loop(side: Side, n: int) -> list[int]:
    """``n`` requests one after another in this thread: the round trip without queueing."""
    out = []
    for i in range(n):
        started = time.perf_counter_ns()
        side.wait(side.issue(1_000_000 + i, ioc_payload(i)))
        out.append(time.perf_counter_ns() - started)
    return out


def paced(server: BenchServer, sizes: Sizes, profile: str, ours: bool,
          reply: bool) -> Paced:
    """``sizes.requests`` requests (``reply``) or plain messages at ``RATE``/s."""
    server.flush()
    fleet = Fleet(server.url, sizes.worker_timeout_s)
    side = Side(server, profile, ours, reply)
    out = Paced()
    n = sizes.requests
    try:
        side.start_worker(fleet)
        fleet.go()
        waiters = Waiters(WAITERS, side.wait) if reply else None
        _warm_up(side, fleet, waiters)
        pids = [p.pid for p in fleet.procs]
        before, cpu_before = _commands(side.client), _cpu(side.client, pids)
        memory = int(side.client.info("memory")["used_memory"])
        _produce(side, n, waiters, out)
        if waiters is not None:
            waiters.close(RESULT_TIMEOUT_S)
            out.latency_ns = waiters.latency_ns
            out.failures = max(n - len(out.latency_ns), 0)
        fleet.wait_handled(WARM + n)
        out.cpu_ms = _cpu_per(cpu_before, _cpu(side.client, pids), n)
        out.commands = _per(before, _commands(side.client), n)
        out.kept_bytes = (int(side.client.info("memory")["used_memory"]) - memory) / n
        if reply:
            out.closed_ns = _closed_loop(side, max(n // 6, 20))
    except BaseException:
        fleet.close()
        raise
    finally:
        side.close()
    out.handler_ns = fleet.stop().latency_ns
    return out


def _ms(values_ns: list[int], *qs: float) -> list[float]:
    return [v / 1e6 for v in percentiles(values_ns, *qs)]


def _lat(values: list[int]) -> dict[str, Any]:
    p50, p99, p999 = _ms(values, 50, 99, 99.9)
    return {"samples": len(values), "p50_ms": p50, "p99_ms": p99, "p999_ms": p999,
            "max_ms": max(values, default=0) / 1e6}


def _summary(p: Paced, values: list[int]) -> dict[str, Any]:
    return {**_lat(values), "achieved_rate": round(p.achieved, 1),
            "call_p50_ms": _ms(p.call_ns, 50)[0], "call_p99_ms": _ms(p.call_ns, 99)[0],
            "schedule_lag_p99_ms": _ms(p.lag_ns, 99)[0],
            "schedule_lag_max_ms": max(p.lag_ns, default=0) / 1e6,
            "commands_per_message": p.commands, "cpu_ms_per_message": p.cpu_ms,
            "redis_bytes_kept_per_message": round(p.kept_bytes, 1)}


def request_reply(server: BenchServer, sizes: Sizes, profile: str) -> list[Result]:
    """``request.reply@1k.p50/p99`` (ours vs the raw reply loop) and
    ``request.plain@1k.p50/p99`` (publish -> handler start, ours vs raw XADD)."""
    ours_req = paced(server, sizes, profile, ours=True, reply=True)
    raw_req = paced(server, sizes, profile, ours=False, reply=True)
    ours_plain = paced(server, sizes, profile, ours=True, reply=False)
    raw_plain = paced(server, sizes, profile, ours=False, reply=False)
    tag = f"{RATE // 1000}k"
    results = []
    req = {"requests": sizes.requests, "rate": RATE, "waiter_threads": WAITERS,
           "measured": "request() call -> pending.result() returned, in the requester",
           "ours": {**_summary(ours_req, ours_req.latency_ns),
                    "failures": ours_req.failures, "max_in_flight": ours_req.max_in_flight,
                    "max_waiter_backlog": ours_req.max_backlog,
                    "request_to_handler_start": _lat(ours_req.handler_ns),
                    "closed_loop": _lat(ours_req.closed_ns)},
           "ceiling": {**_summary(raw_req, raw_req.latency_ns),
                       "failures": raw_req.failures, "max_in_flight": raw_req.max_in_flight,
                       "request_to_handler_start": _lat(raw_req.handler_ns),
                       "closed_loop": _lat(raw_req.closed_ns)},
           "ceiling_is": "raw XADD (reply list named) -> XREADGROUP -> RPUSH reply + XACK + "
                         "XDEL -> BLPOP, same pace and waiter pool"}
    plain = {"messages": sizes.requests, "rate": RATE,
             "measured": "publish -> handler start (time_ns in the payload, in the worker)",
             "ours": _summary(ours_plain, ours_plain.handler_ns),
             "ceiling": _summary(raw_plain, raw_plain.handler_ns),
             "ceiling_is": "raw XADD -> XREADGROUP COUNT 500"}
    behind = [f"{name} offered only {p.achieved:,.0f}/s" for name, p in
              (("ours", ours_req), ("ceiling", raw_req), ("ours plain", ours_plain),
               ("ceiling plain", raw_plain)) if p.achieved < 0.95 * RATE]
    if behind:  # the producer could not keep the schedule: the process ran out of CPU
        req["note"] = plain["note"] = "requester behind schedule: " + ", ".join(behind)
    for q, o, c in zip(("p50", "p99"), _ms(ours_req.latency_ns, 50, 99),
                       _ms(raw_req.latency_ns, 50, 99), strict=True):
        res = Result(f"request.reply@{tag}.{q}", profile, "ms", o, c, higher_is_better=False,
                     details=req)
        if ours_req.failures:
            res.details = {**req, "error": f"{ours_req.failures} requests without a result"}
        results.append(res)
    for q, o, c in zip(("p50", "p99"), _ms(ours_plain.handler_ns, 50, 99),
                       _ms(raw_plain.handler_ns, 50, 99), strict=True):
        results.append(Result(f"request.plain@{tag}.{q}", profile, "ms", o, c,
                              higher_is_better=False, details=plain))
    return results


# -- fan-out of 3, fan-in ------------------------------------------------------------------

def _empty(client: Any, streams: list[str]) -> bool:
    pipe = client.pipeline(transaction=False)
    for s in streams:
        pipe.xlen(s)
    return bool(sum(pipe.execute()) == 0)


def fan(server: BenchServer, sizes: Sizes, profile: str, grouped: bool) -> dict[str, Any]:
    """``sizes.groups`` groups (``grouped``) or 4 plain messages per group, created back to
    back while one worker process consumes the 4 queues; rate until every entry is acked."""
    import phantom_notebook as pn

    server.flush()
    fleet = Fleet(server.url, sizes.worker_timeout_s)
    mq, _ = connect(server.url, FAN_PREFIX, profile, **UNBOUNDED)
    client = redis.Redis.from_url(server.url)
    queues = [*MEMBER_QUEUES, JOIN_QUEUE]
    streams = [s for q in queues for s in mq.queue_keys(q).streams]
    last: Any = None
    try:
        for q in queues:
            mq.ensure_group(q, "workers")
        fleet.spawn_workers("ours-worker", 1, {"prefix": FAN_PREFIX, "profile": profile,
                                               "queues": queues, "prefetch": 500,
                                               "returns": REPLY})
        fleet.go()

        def one(i: int) -> Any:
            if grouped:
                return mq.group([pn.Task(q, MESSAGE_TYPE, ioc_payload(i)) for q in MEMBER_QUEUES],
                                then=pn.Task(JOIN_QUEUE, "ioc.enrichment.joined", {"seq": i}))
            for q in MEMBER_QUEUES:
                mq.publish(q, MESSAGE_TYPE, ioc_payload(i))
            return mq.publish(JOIN_QUEUE, "ioc.enrichment.joined", {"seq": i})

        for i in range(FAN_WARM):
            one(-1 - i)
        fleet.wait_handled(4 * FAN_WARM)
        time.sleep(0.1)
        n = sizes.groups
        before = _commands(client)
        pids = [p.pid for p in fleet.procs]
        cpu_before = _cpu(client, pids)
        start = time.perf_counter()
        for i in range(n):
            last = one(i)
        created = time.perf_counter() - start
        deadline = time.monotonic() + sizes.worker_timeout_s
        while not _empty(client, streams) and time.monotonic() < deadline:
            time.sleep(POLL_S)
        elapsed = time.perf_counter() - start
        cpu = _cpu_per(cpu_before, _cpu(client, pids), n)
        per_group = _per(before, _commands(client), n)
        tally = fleet.wait_handled(4 * (FAN_WARM + n))
        check: dict[str, Any] = {}
        if grouped:
            check = {"last_callback_result_ok": last.result(timeout=5) == REPLY,
                     "last_group_status": last.state().status}
        dead = sum(s.dead for s in mq.stats(queues))
    except BaseException:
        fleet.close()
        raise
    finally:
        client.close()
        mq.client.close()
    final = fleet.stop()
    handled = max(final.count, tally.count) - 4 * FAN_WARM
    out = {"rate": n / elapsed, "groups": n, "elapsed_s": elapsed,
           "create_rate": n / created, "handled": handled, "dead_letters": dead,
           "messages_per_s": 4 * n / elapsed, "commands_per_group": per_group,
           "cpu_ms_per_group": cpu, **check}
    if handled < 4 * n or dead or (grouped and not check["last_callback_result_ok"]):
        out["error"] = f"{handled} of {4 * n} handled, {dead} dead letters, {check}"
    return out


def fan_in(server: BenchServer, sizes: Sizes, profile: str) -> list[Result]:
    """``group.fanout3``: groups/s of 3 members + a callback, vs 4 plain messages a group;
    alternating rounds (ours, plain, ours, plain), best of each, as consume does."""
    rounds = 2 if sizes.groups >= 1_000 else 1
    ours_runs: list[dict[str, Any]] = []
    plain_runs: list[dict[str, Any]] = []
    for _ in range(rounds):
        ours_runs.append(fan(server, sizes, profile, grouped=True))
        plain_runs.append(fan(server, sizes, profile, grouped=False))
    ours = max(ours_runs, key=lambda r: float(r["rate"]))
    plain = max(plain_runs, key=lambda r: float(r["rate"]))
    res = Result("group.fanout3", profile, "groups/s", ours["rate"], plain["rate"], details={
        "groups": sizes.groups, "rounds": rounds, "worker": "1 process, 4 subscriptions "
        "(3 member queues + the callback queue), prefetch 500", "ours": ours,
        "ceiling": plain, "ceiling_is": "4 plain publishes per group (3 member queues + "
        "the callback queue), same worker, no results or joins",
        "ours_runs": [r["rate"] for r in ours_runs],
        "ceiling_runs": [r["rate"] for r in plain_runs],
        "measured": "first create -> every stream of the 4 queues empty (all acked)"})
    errors = [r["error"] for r in ours_runs + plain_runs if "error" in r]
    if errors:
        res.details["error"] = "; ".join(errors)
    return [res]


def run_request(server: BenchServer, sizes: Sizes, profile: str) -> list[Result]:
    """The ``request`` scenario group."""
    return request_reply(server, sizes, profile)


def run_group(server: BenchServer, sizes: Sizes, profile: str) -> list[Result]:
    """The ``group`` scenario group."""
    return fan_in(server, sizes, profile)
