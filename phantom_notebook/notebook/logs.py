"""Route the worker's breaker warnings to the widget that watches the queue.

A worker running in the kernel logs ``circuit breaker of <queue>/<group> is now open`` from
its own thread; Jupyter prints such a record under whichever cell happens to be running.
``route_breaker_logs(queues, sink)`` hands the records of those queues to ``sink`` (the
``QueueMonitor`` shows them in its own status area) and keeps them out of the cell
output; records of queues nobody watches are logged as before. When several monitors
watch a queue (a cell run twice), the newest one gets its records; a monitor that was
garbage-collected stops receiving (routes hold bound methods weakly).
"""

from __future__ import annotations

import itertools
import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

BREAKER_LOGGER = "phantom_notebook.breaker"
Sink = Callable[[str, str], None]  # (queue, message)

_lock = threading.Lock()
_routes: dict[int, tuple[frozenset[str], Callable[[], Sink | None]]] = {}
_order = itertools.count()


class _BreakerRouter(logging.Filter):
    """A logger filter: a watched queue's record goes to its sink and is not emitted."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        queue = str(args[0]) if args else ""
        with _lock:
            for key in sorted(_routes, reverse=True):  # the newest route first
                queues, ref = _routes[key]
                sink = ref()
                if sink is None:
                    del _routes[key]
                elif queue in queues:
                    break
            else:
                return True
        try:
            sink(queue, record.getMessage())
        except Exception:  # noqa: BLE001 - a closed widget must not break the worker
            return True
        return False


_ROUTER = _BreakerRouter()


def route_breaker_logs(queues: Iterable[str], sink: Sink) -> Callable[[], None]:
    """Send breaker records of ``queues`` to ``sink``; returns the function that undoes it."""
    key = next(_order)
    ref: Callable[[], Any] = weakref.WeakMethod(sink) if hasattr(sink, "__self__") else \
        (lambda: sink)
    logger = logging.getLogger(BREAKER_LOGGER)
    with _lock:
        _routes[key] = (frozenset(queues), ref)
        if _ROUTER not in logger.filters:
            logger.addFilter(_ROUTER)

    def undo() -> None:
        with _lock:
            _routes.pop(key, None)

    return undo


__all__ = ["BREAKER_LOGGER", "route_breaker_logs"]
