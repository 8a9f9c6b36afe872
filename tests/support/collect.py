"""A thread-safe handler that records what it was given, and waiting helpers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from phantom_notebook import Envelope, MessageContext


class Collector:
    """Records every message handed to it (payload, envelope, context details)."""

    def __init__(self, on_message: Callable[[Envelope, MessageContext], None] | None = None):
        self.envelopes: list[Envelope] = []
        self.delivery_counts: list[int] = []
        self.received_ms: list[float] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._on_message = on_message

    def __call__(self, message: Envelope, context: MessageContext) -> None:
        if self._on_message is not None:
            self._on_message(message, context)
        with self._changed:
            self.envelopes.append(message)
            self.delivery_counts.append(context.delivery_count)
            self.received_ms.append(time.time() * 1000)
            self._changed.notify_all()

    @property
    def payloads(self) -> list[Any]:
        """The payloads in the order they were handled."""
        with self._lock:
            return [e.payload for e in self.envelopes]

    def wait_for(self, count: int, timeout_s: float = 10.0) -> bool:
        """Wait until at least ``count`` messages were handled, or the deadline passes."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while len(self.envelopes) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True


def eventually(predicate: Callable[[], bool], timeout_s: float = 10.0,
               interval_s: float = 0.01) -> bool:
    """Poll ``predicate`` until true or the deadline passes (a condition wait, not a sleep)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()
