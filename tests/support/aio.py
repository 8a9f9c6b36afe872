"""Running asyncio code from a test in a thread of its own.

Playwright's sync API (the browser suite's session fixture) keeps an event loop running in
the main thread for the whole session, so a plain ``asyncio.run`` there fails with "cannot
be called from a running event loop" in every test after the first browser test.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def in_thread(fn: Callable[[], T]) -> T:
    """``fn()`` in a new thread; its result, or its exception raised here."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            out["error"] = exc

    thread = threading.Thread(target=target, name="test-asyncio")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]  # type: ignore[no-any-return]


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)`` in a thread with no event loop of its own yet."""
    return in_thread(lambda: asyncio.run(coro))


async def wait_until_async(predicate: Callable[[], Awaitable[bool]], timeout_s: float,
                           interval_s: float = 0.01) -> bool:
    """``wait_until`` for a condition that must be awaited (e.g. a DLQ count): poll it until
    true or ``timeout_s`` passes; returns its last value."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        if await predicate():
            return True
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(interval_s)
