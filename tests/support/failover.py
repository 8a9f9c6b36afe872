"""Publish and consume continuously, kill a master, and measure the resume and the losses."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import phantom_notebook as pn
from phantom_notebook.core.model.routing import key_hash
from tests.support.collect import Collector, eventually


@dataclass
class FailoverReport:
    """What one failover run measured (times in seconds from the SIGKILL)."""

    durability: str
    confirmed: int = 0
    delivered: int = 0
    lost: int = 0
    duplicates: int = 0
    publish_errors: int = 0
    promoted_s: float | None = None
    publish_resume_s: float | None = None
    resume_s: float = float("nan")
    resumed: bool = False
    lost_ids: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        def fmt(x: float | None) -> str:
            return "-" if x is None else f"{x:.2f}s"
        return (f"promoted after {fmt(self.promoted_s)}, publishes confirmed again after "
                f"{fmt(self.publish_resume_s)}, flow resumed (post-kill message delivered) after "
                f"{fmt(self.resume_s)}; confirmed {self.confirmed}, delivered "
                f"{self.delivered} distinct ({self.duplicates} redeliveries), "
                f"confirmed-but-lost {self.lost}, unconfirmed publishes {self.publish_errors}")


def run_failover_flow(mq: pn.MessageQueue, queue: str, *, kill: Callable[[], None],
                      promoted: Callable[[], bool], affected: set[str],
                      before: int = 500, after: int = 500) -> FailoverReport:
    """Flow messages through ``queue``, ``kill()`` mid-flow, wait for recovery, count.

    Each message ``n`` is published alone with partition key ``str(n)`` so the producer
    knows which partition it went to; only publishes that returned count as confirmed.
    """
    qs = mq.declare(queue)
    layout = mq.layout(queue)
    report = FailoverReport(qs.durability)
    got = Collector()
    mq.subscribe(queue, "*", got, prefetch_count=50)
    confirmed: dict[int, float] = {}
    routed: dict[int, str] = {}
    stop = threading.Event()
    lock = threading.Lock()

    def produce() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            part = layout.route(key_hash(str(n))) if layout.partitioned else queue
            started = time.time()  # a publish counts as post-kill only if it began after
            try:
                mq.publish(queue, "flow", n, partition_key=str(n))
            except pn.PublishError:
                report.publish_errors += 1
                stop.wait(0.02)
                continue
            with lock:
                confirmed[n] = started
                routed[n] = part
            time.sleep(0.001)  # ~ a few hundred messages a second: a steady flow

    worker = mq.worker(poll_ms=50).start()
    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        assert got.wait_for(before, timeout_s=60), "the flow never started"
        killed_at = time.time()
        kill()
        if eventually(promoted, timeout_s=40, interval_s=0.05):
            report.promoted_s = time.time() - killed_at

        def post_kill_on_affected_delivered() -> bool:
            with lock:
                wanted = {n for n, t in confirmed.items()
                          if t > killed_at and routed[n] in affected}
            return any(p in wanted for p in got.payloads)

        report.resumed = eventually(post_kill_on_affected_delivered, timeout_s=60,
                                    interval_s=0.02)
        with lock:
            after_kill = sorted(t for n, t in confirmed.items()
                                if t > killed_at and routed[n] in affected)
        if after_kill:
            report.publish_resume_s = after_kill[0] - killed_at
        if report.resumed:
            with lock:
                post = {n: t for n, t in confirmed.items()
                        if t > killed_at and routed[n] in affected}
            firsts = [ms / 1000 for p, ms in zip(got.payloads, got.received_ms, strict=False)
                      if p in post]
            report.resume_s = min(firsts) - killed_at
        target = len(confirmed) + after
        eventually(lambda: len(confirmed) >= target, timeout_s=30)
    finally:
        stop.set()
        producer.join(timeout=30)
    with lock:
        sent = set(confirmed)

    def all_delivered() -> bool:
        return sent <= set(got.payloads)

    eventually(all_delivered, timeout_s=40, interval_s=0.1)
    worker.stop(grace_s=5)
    seen = got.payloads
    report.confirmed = len(sent)
    report.delivered = len(set(seen) & sent)
    report.duplicates = len(seen) - len(set(seen))
    report.lost_ids = sorted(sent - set(seen))
    report.lost = len(report.lost_ids)
    return report
