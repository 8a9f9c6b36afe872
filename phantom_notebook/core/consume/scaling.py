"""Consumer scaling: supervise N worker processes, growing and shrinking on depth and lag.

``ScalePolicy`` is the pure decision (no I/O, a clock passed in): scale up by one when
the depth per process stayed above ``up_depth_per_process`` (or the oldest waiting
message stayed older than ``up_lag_s``) for ``up_after_s``; scale down by one when the
depth per process stayed below ``down_depth_per_process`` for ``down_after_s``. The gap
between the two thresholds and the two hold times is the hysteresis: a queue hovering
around one threshold does not make the fleet flap. ``Supervisor`` observes the queues,
asks the policy, and starts or SIGTERMs (drain, exit 0) ``phantom-notebook worker``
subprocesses; a child that dies is replaced.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..ports import Deployment

log = logging.getLogger("phantom_notebook.scaling")


@dataclass
class ScalePolicy:
    """When to add or remove a worker process (see the module doc)."""

    min_processes: int = 1
    max_processes: int = 4
    up_depth_per_process: float = 1000.0
    up_after_s: float = 10.0
    down_depth_per_process: float = 100.0
    down_after_s: float = 60.0
    up_lag_s: float | None = None
    _above_since: float | None = field(default=None, repr=False)
    _below_since: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.min_processes <= self.max_processes:
            raise ConfigError("worker.processes",
                              f"min {self.min_processes} / max {self.max_processes}",
                              "1 <= min-processes <= max-processes")
        if self.down_depth_per_process > self.up_depth_per_process:
            raise ConfigError("worker.scale_down_depth", "above the scale-up depth",
                              "down depth <= up depth (the gap is the hysteresis)")

    def clamp(self, n: int) -> int:
        """``n`` within [min, max]."""
        return max(self.min_processes, min(self.max_processes, n))

    def decide(self, now: float, depth: int, lag_s: float, current: int) -> int:
        """The number of processes to run now, given the observed depth and lag."""
        current = max(current, 1)
        per = depth / current
        hot = per > self.up_depth_per_process or (
            self.up_lag_s is not None and lag_s > self.up_lag_s)
        cold = per < self.down_depth_per_process and not hot
        if not hot:
            self._above_since = None
        elif self._above_since is None:
            self._above_since = now
        if not cold:
            self._below_since = None
        elif self._below_since is None:
            self._below_since = now
        if self._above_since is not None and now - self._above_since >= self.up_after_s \
                and current < self.max_processes:
            self._above_since = now  # the next step needs another full hold time
            return self.clamp(current + 1)
        if self._below_since is not None and now - self._below_since >= self.down_after_s \
                and current > self.min_processes:
            self._below_since = now
            return self.clamp(current - 1)
        return self.clamp(current)


def observe(mq: Deployment, queues: Sequence[str]) -> tuple[int, float]:
    """Total depth (ready + delayed-due + in flight) of ``queues`` and the oldest ready age."""
    from ..model.envelope import now_ms

    depth = sum(s.ready + s.in_flight for s in mq.stats(list(queues)))
    oldest: int | None = None
    for queue in queues:
        for part in mq.layout(queue).all:
            for stream in mq.queue_keys(part).streams:
                first = mq.client.xrange(stream, count=1)
                if first:
                    sid = first[0][0]
                    ms = int((sid.decode() if isinstance(sid, bytes) else sid).split("-")[0])
                    oldest = ms if oldest is None else min(oldest, ms)
    lag = 0.0 if oldest is None else max(now_ms() - oldest, 0) / 1000
    return depth, lag


class Supervisor:
    """Runs ``command`` as 1..N worker processes sized by ``policy`` from ``queues``' depth."""

    def __init__(self, mq: Deployment, queues: Sequence[str], command: Sequence[str],
                 policy: ScalePolicy, *, initial: int | None = None, interval_s: float = 1.0,
                 grace_s: float = 30.0, env: dict[str, str] | None = None) -> None:
        self.mq = mq
        self.queues = list(queues)
        self.command = list(command)
        self.policy = policy
        self.interval_s = interval_s
        self.grace_s = grace_s
        self.env = env
        self.target = policy.clamp(initial or policy.min_processes)
        self.procs: list[subprocess.Popen[bytes]] = []
        self._retiring: list[subprocess.Popen[bytes]] = []  # SIGTERMed, still draining
        self.history: list[tuple[float, int, int, float]] = []  # time, n, depth, lag
        self._stop = threading.Event()

    def _spawn(self) -> None:
        self.procs.append(subprocess.Popen(self.command, env=self.env))

    def _retire(self) -> None:
        proc = self.procs.pop()  # newest first
        proc.send_signal(signal.SIGTERM)  # drains, settles and exits 0
        self._retiring.append(proc)

    def step(self, now: float | None = None) -> int:
        """Replace dead children, observe, decide and resize once; returns the target."""
        self.procs = [p for p in self.procs if p.poll() is None]
        self._retiring = [p for p in self._retiring if p.poll() is None]
        try:
            depth, lag = observe(self.mq, self.queues)
        except Exception as exc:  # noqa: BLE001 - Redis briefly away: keep the fleet as is
            log.warning("scaling: cannot observe queues (%s)", exc)
            depth, lag = -1, 0.0
        if depth >= 0:
            self.target = self.policy.decide(time.monotonic() if now is None else now, depth,
                                             lag, self.target)
        while len(self.procs) < self.target:
            self._spawn()
        while len(self.procs) > self.target:
            self._retire()
        self.history.append((time.time(), self.target, depth, lag))
        return self.target

    def run(self, install_signals: bool = True) -> int:
        """Supervise until SIGTERM/SIGINT, then stop every child (drained); returns 0."""
        if install_signals and threading.current_thread() is threading.main_thread():
            def on_signal(signum: int, frame: Any) -> None:
                self._stop.set()

            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)
        while not self._stop.is_set():
            self.step()
            self._stop.wait(self.interval_s)
        self.close()
        return 0

    def stop(self) -> None:
        """Ask ``run`` to return."""
        self._stop.set()

    def close(self) -> None:
        """SIGTERM every child and wait for it (SIGKILL after the grace period)."""
        everyone = self.procs + self._retiring
        for p in everyone:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for p in everyone:
            try:
                p.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs, self._retiring = [], []
