"""Start worker / publisher subprocesses, release them together, collect their tallies."""

from __future__ import annotations

import subprocess
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis

from benchmarks.harness import reap, spawn


@dataclass
class Tally:
    """What the workers of one run handled: count and first/last handled time (ns)."""

    count: int = 0
    first_ns: int = 0
    last_ns: int = 0
    latency_ns: list[int] = field(default_factory=list)
    lateness_ns: list[int] = field(default_factory=list)
    background: list[tuple[int, float]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Messages per second from the first handled to the last handled."""
        span = (self.last_ns - self.first_ns) / 1e9
        return self.count / span if span > 0 else 0.0


class Fleet:
    """The subprocesses of one measurement, coordinated through ``bench:<run>:*`` keys."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.run = uuid.uuid4().hex[:10]
        self.client = redis.Redis.from_url(url)
        self.timeout_s = timeout_s
        self.procs: list[subprocess.Popen[bytes]] = []
        self.workers = 0

    def spawn_workers(self, role: str, n: int, spec: dict[str, Any]) -> None:
        """Start ``n`` workers of ``role`` and wait until all are ready (not yet consuming)."""
        for _ in range(n):
            self.procs.append(spawn(role, {**spec, "url": self.url, "run": self.run}))
        self.workers += n
        deadline = time.monotonic() + 60
        while self.client.llen(f"bench:{self.run}:ready") < self.workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                self.close()
                raise RuntimeError(f"{role} workers did not become ready")
            time.sleep(0.01)

    def spawn_background(self, role: str, spec: dict[str, Any]) -> None:
        """Start a paced background publisher (runs until ``stop``)."""
        self.procs.append(spawn(role, {**spec, "url": self.url, "run": self.run}))

    def go(self) -> None:
        """Release every ready worker at once."""
        if self.workers:
            self.client.lpush(f"bench:{self.run}:go", *(["1"] * self.workers))

    def tally(self) -> Tally:
        """The current totals over every worker."""
        t = Tally()
        firsts, lasts = [], []
        for value in self.client.hgetall(f"bench:{self.run}:stat").values():
            count, first, last = (int(x) for x in value.split())
            t.count += count
            if count:
                firsts.append(first)
                lasts.append(last)
        t.first_ns = min(firsts, default=0)
        t.last_ns = max(lasts, default=0)
        return t

    def wait_handled(self, total: int) -> Tally:
        """Block until the workers handled ``total`` messages (or the timeout passes)."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            t = self.tally()
            if t.count >= total or time.monotonic() > deadline:
                return t
            if any(p.poll() not in (None, 0) for p in self.procs):
                raise RuntimeError("a benchmark subprocess failed")
            time.sleep(0.02)

    def stop(self) -> Tally:
        """Stop everything, wait for the exit markers and return the final tallies."""
        self.client.set(f"bench:{self.run}:stop", 1)
        reap(self.procs, timeout_s=30)
        t = self.tally()
        for blob in self.client.lrange(f"bench:{self.run}:latency", 0, -1):
            t.latency_ns.extend(orjson.loads(blob))
        for blob in self.client.lrange(f"bench:{self.run}:lateness", 0, -1):
            t.lateness_ns.extend(orjson.loads(blob))
        for value in self.client.hgetall(f"bench:{self.run}:bg").values():
            sent, elapsed = value.split()
            t.background.append((int(sent), float(elapsed)))
        self.client.close()
        return t

    def close(self) -> None:
        """Stop without collecting (error path)."""
        try:
            self.client.set(f"bench:{self.run}:stop", 1)
        except redis.RedisError:
            pass
        reap(self.procs, timeout_s=10)
