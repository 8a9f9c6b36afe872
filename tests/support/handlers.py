"""Handlers that worker subprocesses run in tests; they record into the test's Redis.

``PN_TEST_RECORD_URL`` / ``PN_TEST_RECORD_KEY`` say where: each handled message appends
``<id>:<delivery count>`` to ``<key>:started`` before its work and ``<key>:done`` after.
The payload's ``work_ms`` simulates handler work (an Event wait, not synchronization).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis

_client: Any = None


def _redis() -> Any:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["PN_TEST_RECORD_URL"])
    return _client


def record(message: Any, context: Any) -> None:
    """Record start, do ``work_ms`` of simulated work, record completion."""
    key = os.environ["PN_TEST_RECORD_KEY"]
    tag = f"{message.id}:{context.delivery_count}"
    _redis().rpush(f"{key}:started", tag)
    work_ms = message.payload.get("work_ms", 0) if isinstance(message.payload, dict) else 0
    if work_ms:
        threading.Event().wait(work_ms / 1000)  # simulated work
    _redis().rpush(f"{key}:done", tag)


def concurrent(message: Any, context: Any) -> None:
    """Like ``record``, and keep the most handlers running at once across every process
    (``<key>:running`` now, ``<key>:most`` the maximum) and each completion's time."""
    key = os.environ["PN_TEST_RECORD_KEY"]
    r = _redis()
    now = r.incr(f"{key}:running")
    r.zadd(f"{key}:most", {"most": now}, gt=True)
    work_ms = message.payload.get("work_ms", 0) if isinstance(message.payload, dict) else 0
    if work_ms:
        threading.Event().wait(work_ms / 1000)  # simulated work
    r.decr(f"{key}:running")
    sec, usec = r.time()
    r.rpush(f"{key}:done", f"{message.id}:{sec * 1000 + usec // 1000}")


def member(message: Any, context: Any) -> dict[str, Any]:
    """A group member's work: record ``<id>:<pid>:<delivery count>`` in ``<key>:started``,
    do ``work_ms`` of simulated work, return which member it was and who ran it."""
    key = os.environ["PN_TEST_RECORD_KEY"]
    _redis().rpush(f"{key}:started", f"{message.id}:{os.getpid()}:{context.delivery_count}")
    work_ms = message.payload.get("work_ms", 0)
    if work_ms:
        threading.Event().wait(work_ms / 1000)  # simulated work
    return {"member": message.payload["member"], "pid": os.getpid()}
