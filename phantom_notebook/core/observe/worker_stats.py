"""In-process counters and latency samples of a worker (the fleet view lives in Redis)."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field


@dataclass
class WorkerStats:
    """What one worker process has done since it started."""

    handled: int = 0
    acked: int = 0
    retried: int = 0
    dead_lettered: int = 0
    expired: int = 0
    reconnects: int = 0
    #: unexpected fetch/settle errors a lane survived, and the last one's text
    lane_errors: int = 0
    last_error: str = ""
    #: deliveries failed because their handler ran past handler_timeout_s
    timed_out: int = 0
    end_to_end_ms: deque[float] = field(default_factory=lambda: deque(maxlen=200_000))
    processing_ms: deque[float] = field(default_factory=lambda: deque(maxlen=200_000))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, action: str, end_to_end_ms: float, processing_ms: float,
               wait_ms: float) -> None:
        """Record one handled message and its latencies."""
        with self._lock:
            self.handled += 1
            self.end_to_end_ms.append(end_to_end_ms)
            self.processing_ms.append(processing_ms)

    def record_unlocked(self, end_to_end_ms: float, processing_ms: float) -> None:
        """Record one handled message; the caller serializes calls (a lane's lock)."""
        self.handled += 1
        self.end_to_end_ms.append(end_to_end_ms)
        self.processing_ms.append(processing_ms)

    def record_many(self, end_to_end_ms: list[int], processing_ms: list[int]) -> None:
        """Record a batch of handled messages; the caller serializes calls (a lane's lock)."""
        self.handled += len(end_to_end_ms)
        self.end_to_end_ms.extend(end_to_end_ms)
        self.processing_ms.extend(processing_ms)

    def settled(self, acked: int, retried: int, dead: int) -> None:
        """Count what a settle call wrote."""
        with self._lock:
            self.acked += acked
            self.retried += retried
            self.dead_lettered += dead

    def percentile(self, q: float, samples: str = "end_to_end_ms") -> float | None:
        """The ``q`` (0-100) percentile of a latency sample set, None when empty."""
        with self._lock:
            values = sorted(getattr(self, samples))
        if not values:
            return None
        index = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
        return float(values[index])
