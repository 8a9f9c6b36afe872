"""Live pub/sub lanes: Redis PSUBSCRIBE on topic patterns. Not durable, by design.

A message published to a ``pubsub`` queue reaches the subscribers connected at that moment
and nobody else: nothing is stored, nothing is retried. Use ``broadcast`` for durable fan-out.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import redis

from ..backend.records import Delivery
from ..errors import DecodeError
from ..model.envelope import now_ms
from ..observe.worker_stats import WorkerStats
from .context import MessageContext
from .subscription import Subscription

if TYPE_CHECKING:
    from ..ports import Deployment

log = logging.getLogger("phantom_notebook.worker")


class PubSubLane:
    """Delivers live messages of one pubsub queue to its subscriptions, in this thread."""

    broadcast = False

    def __init__(self, mq: Deployment, subs: list[Subscription], consumer: str,
                 stats: WorkerStats) -> None:
        self.mq = mq
        self.subs = subs
        self.queue = subs[0].queue
        self.group = subs[0].group
        self.consumer = consumer
        self.stats = stats
        self.settings = mq.declare(self.queue)
        self.keys = mq.queue_keys(self.queue)
        self.inflight: dict[str, Any] = {}
        # one PSUBSCRIBE per queue; type patterns are matched here. Redis ACLs compare
        # PSUBSCRIBE patterns literally, so one fixed pattern per queue keeps them simple.
        self.patterns = [mq.keys.channel(f"{self.queue}:*")]
        self.ready = threading.Event()

    def run(self, stop: threading.Event) -> None:
        """Listen until ``stop`` is set, reconnecting with backoff when Redis drops."""
        backoff = 0.05
        while not stop.is_set():
            pubsub = self.mq.client.pubsub(ignore_subscribe_messages=True)  # Any-typed client
            try:
                pubsub.psubscribe(*self.patterns)
                while not stop.is_set():
                    msg = pubsub.get_message(timeout=0.05)
                    if not self.ready.is_set() and pubsub.subscribed:
                        self.ready.set()
                    if msg is not None and msg["type"] == "pmessage":
                        self._deliver(msg["pattern"], msg["data"])
                    backoff = 0.05
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("pubsub %s: %s; reconnecting in %.2fs", self.queue, exc, backoff)
                self.ready.clear()
                stop.wait(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                pubsub.close()

    def _deliver(self, pattern: bytes | str, raw: bytes) -> None:
        try:
            env = self.mq.codec.open(raw)
        except DecodeError as exc:
            log.warning("pubsub %s: undecodable message dropped (%s)", self.queue, exc)
            return
        started = now_ms()
        delivery = Delivery(2, env.id, raw, 1)
        for sub in self.subs:
            if sub.matches(env):
                try:
                    sub.call(env, MessageContext(env, delivery, self))
                except Exception as exc:  # noqa: BLE001 - live delivery has no retry
                    log.warning("pubsub handler failed for %s (not retried): %r", env.id, exc)
                self.stats.record("ack", now_ms() - env.created_at_ms, now_ms() - started,
                                  started - env.created_at_ms)

    def drain(self, deadline: float) -> None:
        """Nothing to settle: pub/sub deliveries are not acknowledged."""

    def renew_old_leases(self, older_than_s: float) -> int:
        """Nothing to renew: pub/sub has no leases."""
        return 0

    def extend_leases(self, deliveries: list[Delivery]) -> None:
        """Nothing to extend: pub/sub has no leases."""

    def report_progress(self, ctx: Any, fraction: float, note: str) -> None:
        """Nothing to store: a pub/sub message has no result to report progress on."""

    def wait_ready(self, timeout_s: float = 5.0) -> bool:
        """Block until the subscription is live on the server (or ``timeout_s`` passes)."""
        deadline = time.monotonic() + timeout_s
        return self.ready.wait(max(deadline - time.monotonic(), 0))
