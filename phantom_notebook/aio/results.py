"""Awaiting request results from asyncio: ``AsyncPendingResult``.

The same result hash and wake-up list as ``core/results/pending.py``: a waiter blocks on
the wake-up list (``BLMOVE`` of the list onto itself, one second at a time) on the asyncio
client, so a service can await thousands of requests without a thread each.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from ..core.errors import ResultTimeoutError
from ..core.results.codec import Result, open_result
from ..core.results.pending import WAIT_SLICE_S, PendingResult, Progress, progress_of

if TYPE_CHECKING:
    from .queue import AsyncMessageQueue


class AsyncPendingResult:
    """The handle of one request sent from asyncio: ``await handle`` gives the handler's
    return value (or raises ``TaskFailedError``); ``await handle.get()`` the ``Result``."""

    def __init__(self, mq: AsyncMessageQueue, handle: PendingResult) -> None:
        self._mq = mq
        #: the synchronous handle of the same request (for code that is not async)
        self.handle = handle
        self.id = handle.id
        self.queue = handle.queue
        self._result: Result | None = None

    def __repr__(self) -> str:
        state = "done" if self._result is not None else "pending"
        return f"AsyncPendingResult(id={self.id!r}, queue={self.queue!r}, {state})"

    async def _read(self) -> dict[str, Any]:
        if not self._mq.native:
            raw = await asyncio.to_thread(self._mq.sync.client.hgetall, self.handle.key)
        else:
            raw = await self._mq.client.hgetall(self.handle.key)
        return {(k.decode() if isinstance(k, bytes) else k): v for k, v in (raw or {}).items()}

    async def peek(self) -> Result | None:
        """The result if there is one now, else None (never waits)."""
        if self._result is None:
            fields = await self._read()
            if fields.get("v") is not None and fields.get("s") is not None:
                raw = fields["v"]
                data = raw if isinstance(raw, bytes) else str(raw).encode()
                self._result = open_result(self._mq.sync.codec, data, self.id)
        return self._result

    async def progress(self) -> Progress | None:
        """The latest progress the handler reported (1.0 once done; None before any)."""
        if self._result is not None:
            return Progress(1.0, "done" if self._result.ok else "failed",
                            self._result.finished_ms)
        return progress_of(await self._read())

    async def get(self, timeout: float | None = None) -> Result:
        """Wait up to ``timeout`` seconds (None: forever) for the ``Result`` (a failure is
        returned, not raised); ``ResultTimeoutError`` when none came in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._mq.native:
            return await asyncio.to_thread(self.handle.get, timeout)
        wake = self._mq.sync.queue_keys(self.handle.stored).result_wake(self.id)
        found = await self.peek() if self._result is not None or timeout == 0 else None
        while found is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise ResultTimeoutError(
                    f"no result for request {self.id} on {self.queue!r} after {timeout:g} s "
                    "(it may still be queued, running or retrying)")
            block = WAIT_SLICE_S if left is None else max(min(left, WAIT_SLICE_S), 0.001)
            await self._mq.client.blmove(wake, wake, block, "RIGHT", "LEFT")
            found = await self.peek()
        return found

    async def result(self, timeout: float | None = None) -> Any:
        """Wait for the handler's return value; raises ``TaskFailedError`` with the
        handler's failure or ``ResultTimeoutError``."""
        return (await self.get(timeout)).unwrap()

    def __await__(self) -> Generator[Any, None, Any]:
        return self.result().__await__()


__all__ = ["AsyncPendingResult"]
