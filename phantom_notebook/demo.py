"""``phantom-notebook demo``: an end-to-end run across every queue kind, with a summary.

It publishes a few thousand IOC-like messages to one queue of each kind, runs a worker that
consumes them all (a few are malformed and end in the dead-letter queue, a few fail once and
are retried), and returns per-queue figures: published, consumed, dead-lettered and the
publish -> handled latency percentiles.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .core import Envelope, Message, MessageContext, MessageQueue, Reject
from .core.pubsub import PubSubLane

QUEUES = {
    "ioc-processing": "priority",
    "threat-analysis": "fifo",
    "scheduled-enrichment": "delayed",
    "alerts-live": "pubsub",
    "alerts": "broadcast",
}
BROADCAST_GROUPS = ("soc", "incident-response")
_TYPES = ["ipv4", "domain", "url", "sha256", "email"]


@dataclass
class QueueResult:
    """What happened on one queue during the demo."""

    queue: str
    kind: str
    published: int = 0
    consumed: int = 0
    dead_lettered: int = 0
    retried: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def percentile(self, q: float) -> float | None:
        """The ``q`` percentile (0-100) of publish -> handled latency, in ms."""
        if not self.latencies_ms:
            return None
        values = sorted(self.latencies_ms)
        return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def fake_ioc(rng: random.Random, i: int) -> dict[str, Any]:
    """An IOC-like payload of ~300 bytes (deterministic for a seed)."""
    kind = _TYPES[i % len(_TYPES)]
    value = {
        "ipv4": f"203.0.{rng.randrange(113, 114)}.{rng.randrange(1, 255)}",
        "domain": f"c2-{rng.randrange(10**6):06d}.example.net",
        "url": f"http://login-{rng.randrange(10**4)}.example.org/auth?id={i}",
        "sha256": f"{rng.getrandbits(256):064x}",
        "email": f"phish{rng.randrange(999)}@example.com",
    }[kind]
    return {"ioc": {"type": kind, "value": value, "tlp": "AMBER", "confidence": rng.randrange(101),
                    "source": "demo-feed", "tags": ["demo", kind]},
            "options": {"include_reputation": True, "include_relationships": i % 3 == 0}}


class _Recorder:
    """A handler that records per-queue results; rejects malformed and fails some once."""

    def __init__(self, results: dict[str, QueueResult]) -> None:
        self.results = results
        self.lock = threading.Lock()
        self.done = threading.Condition(self.lock)

    def __call__(self, message: Envelope, context: MessageContext) -> None:
        payload = message.payload
        if isinstance(payload, dict) and payload.get("malformed"):
            with self.done:
                self.results[message.queue].dead_lettered += 1
                self.done.notify_all()
            raise Reject("malformed indicator")
        if isinstance(payload, dict) and payload.get("flaky") and context.attempt == 1:
            with self.lock:
                self.results[message.queue].retried += 1
            raise RuntimeError("enrichment provider timed out (demo)")
        with self.done:
            result = self.results[message.queue]
            result.consumed += 1
            result.latencies_ms.append(time.time() * 1000 - message.created_at_ms)
            self.done.notify_all()

    def wait(self, expected: dict[str, int], timeout_s: float) -> bool:
        """Wait until every queue has handled (consumed + dead-lettered) what was expected."""
        deadline = time.monotonic() + timeout_s
        with self.done:
            while any(self.results[q].consumed + self.results[q].dead_lettered < n
                      for q, n in expected.items()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.done.wait(left)
        return True


def run_demo(mq: MessageQueue, total: int = 3000, seed: int = 7,
             timeout_s: float = 60.0) -> tuple[list[QueueResult], float]:
    """Publish ``total`` messages across every queue kind, consume them, return the results."""
    rng = random.Random(seed)
    results = {q: QueueResult(q, kind) for q, kind in QUEUES.items()}
    for queue, kind in QUEUES.items():
        mq.declare(queue, kind=kind, retry=mq.settings.queue_defaults.retry.__class__(
            max_retries=2, initial_delay_s=0.05, jitter=0.0))
    recorder = _Recorder(results)
    for queue in QUEUES:
        if queue == "alerts":
            for group in BROADCAST_GROUPS:
                mq.subscribe(queue, "*", recorder, group=group, prefetch_count=200)
        else:
            mq.subscribe(queue, "*", recorder, prefetch_count=200)
    started = time.perf_counter()
    worker = mq.worker(poll_ms=20).start()
    try:
        for lane in worker.lanes:
            if isinstance(lane, PubSubLane):
                lane.wait_ready()
        expected = _publish_all(mq, rng, total, results)
        finished = recorder.wait(expected, timeout_s)
    finally:
        worker.stop(grace_s=5)
    if not finished:
        raise TimeoutError("the demo did not finish in time: is the worker running?")
    return list(results.values()), time.perf_counter() - started


def _publish_all(mq: MessageQueue, rng: random.Random, total: int,
                 results: dict[str, QueueResult]) -> dict[str, int]:
    share = {"ioc-processing": 0.5, "threat-analysis": 0.2, "scheduled-enrichment": 0.1,
             "alerts-live": 0.05, "alerts": 0.15}
    priorities = ["CRITICAL", "HIGH", "NORMAL", "NORMAL", "LOW"]
    expected: dict[str, int] = {}
    for queue, fraction in share.items():
        n = max(int(total * fraction), 1)
        batch = []
        for i in range(n):
            payload = fake_ioc(rng, i)
            if queue != "alerts-live":  # live pub/sub has no retries and no DLQ, by design
                if i % 97 == 13:
                    payload["malformed"] = True
                if i % 50 == 7:
                    payload["flaky"] = True
            delay = timedelta(milliseconds=rng.randrange(50, 1000)) \
                if queue == "scheduled-enrichment" else None
            batch.append(Message("ioc.enrichment.request", payload,
                                 priorities[i % len(priorities)], delay=delay))
        for start in range(0, n, 500):
            mq.publish_batch(queue, batch[start:start + 500])
        results[queue].published = n
        fan_out = len(BROADCAST_GROUPS) if queue == "alerts" else 1
        expected[queue] = n * fan_out
    return expected
