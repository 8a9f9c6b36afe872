"""Waiting for results: ``PendingResult`` (one request), ``wait_all`` (many, with a
progress bar), ``read_results``.

A request's result hash lives with the queue (partition) its message went to:
``{<queue>}:res:<id>`` holds the state (``s``: done/failed), the sealed result (``v``) and
the latest progress (``p``, ``note``, ``pt``). A waiter blocks on the wake-up list the
settle call pushes to (``BLMOVE`` of the list onto itself, so every waiter wakes and the
element stays), one second at a time, and reads the hash again after each wake-up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import DecodeError, ResultTimeoutError, ValidationError
from .codec import Result, open_result

if TYPE_CHECKING:
    from ..ports import Deployment

#: how long one blocking wait lasts before the hash is read again (s)
WAIT_SLICE_S = 1.0
#: how often ``wait_all`` reads the states of many requests (s)
POLL_S = 0.2


@dataclass(frozen=True)
class Progress:
    """The latest progress a handler reported (``context.progress``)."""

    fraction: float
    note: str = ""
    at_ms: int = 0


class PendingResult:
    """The handle of one request: its progress, then its result."""

    def __init__(self, mq: Deployment, queue: str, stored: str, message_id: str) -> None:
        self._mq = mq
        self.queue = queue
        #: the stored (partition) name of the queue the request went to
        self.stored = stored
        self.id = message_id
        self._result: Result | None = None

    def __repr__(self) -> str:
        state = "done" if self._result is not None else "pending"
        return f"PendingResult(id={self.id!r}, queue={self.queue!r}, {state})"

    @property
    def key(self) -> str:
        """The result hash of this request."""
        return self._mq.queue_keys(self.stored).result(self.id)

    def _read(self) -> dict[str, Any]:
        raw = self._mq.client.hgetall(self.key)
        return {(k.decode() if isinstance(k, bytes) else k): v for k, v in (raw or {}).items()}

    @property
    def done(self) -> bool:
        """True once the request has a result (success or failure)."""
        return self.peek() is not None

    @property
    def progress(self) -> Progress | None:
        """The latest progress (1.0 once done; None before the handler reported any)."""
        if self._result is not None:
            return Progress(1.0, "done" if self._result.ok else "failed",
                            self._result.finished_ms)
        fields = self._read()
        return progress_of(fields)

    def peek(self) -> Result | None:
        """The result if there is one now, else None (never waits)."""
        if self._result is None:
            fields = self._read()
            if fields.get("v") is not None and fields.get("s") is not None:
                self._result = self._open(fields["v"])
        return self._result

    def get(self, timeout: float | None = None, *, progress: bool = False) -> Result:
        """Wait up to ``timeout`` seconds (None: forever) for the ``Result`` (a failure
        is returned, not raised); ``ResultTimeoutError`` when none came in time.
        ``progress=True`` shows the handler's progress as a live bar (tqdm.auto)."""
        if progress:
            return self._watch(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        wake = self._mq.queue_keys(self.stored).result_wake(self.id)
        if self._result is not None or timeout == 0:
            found = self.peek()
            if found is not None:
                return found
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise ResultTimeoutError(
                    f"no result for request {self.id} on {self.queue!r} after {timeout:g} s "
                    "(it may still be queued, running or retrying)")
            # block first: the wake-up element stays in the list once the result is stored,
            # so a result that is there already returns at once (two round trips, not four)
            block = WAIT_SLICE_S if left is None else max(min(left, WAIT_SLICE_S), 0.001)
            self._mq.client.blmove(wake, wake, block, "RIGHT", "LEFT")
            found = self.peek()
            if found is not None:
                return found

    def result(self, timeout: float | None = None, *, progress: bool = False) -> Any:
        """Wait for the handler's return value; raises ``TaskFailedError`` with the
        handler's failure (type, message, DLQ reason) or ``ResultTimeoutError``.
        ``progress=True`` shows the handler's progress as a live bar meanwhile."""
        return self.get(timeout, progress=progress).unwrap()

    def _watch(self, timeout: float | None) -> Result:
        """``get`` with a bar of the reported progress, refreshed every ``POLL_S``."""
        try:
            tqdm = _tqdm()
        except ImportError:
            return self.get(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        name = f"request {self.id[-8:]}"
        bar = tqdm(total=100, desc=name, unit="%", ncols=100,
                   bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}")
        try:
            while True:
                fields = self._read()
                now = progress_of(fields)
                if now is not None:
                    bar.n = round(now.fraction * 100)
                    bar.set_description_str(f"{name}: {now.note}" if now.note else name,
                                            refresh=False)
                    bar.refresh()
                if fields.get("s") is not None:
                    return self.get(0)
                if deadline is not None and time.monotonic() >= deadline:
                    return self.get(0)  # raises ResultTimeoutError
                time.sleep(POLL_S)  # the bar's refresh interval, not synchronization
        finally:
            bar.close()

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.to_thread(self.result).__await__()

    def _open(self, raw: Any) -> Result:
        data = raw if isinstance(raw, bytes) else str(raw).encode()
        return open_result(self._mq.codec, data, self.id)


def progress_of(fields: dict[str, Any]) -> Progress | None:
    """The ``Progress`` in a result hash's fields (None when none was reported)."""
    if fields.get("s") is not None:
        return Progress(1.0, _text(fields.get("s")), int(fields.get("at", 0) or 0))
    p = fields.get("p")
    if p is None:
        return None
    return Progress(float(p), _text(fields.get("note", b"")), int(fields.get("pt", 0) or 0))


@dataclass(frozen=True)
class BatchStatus:
    """Where a batch of requests stands (what the progress bar shows)."""

    total: int
    done: int
    failed: int
    running: float  # the summed progress of those not finished

    def describe(self) -> str:
        """``"37/40 done, 2 failed"``."""
        text = f"{self.done + self.failed}/{self.total} done"
        return text + (f", {self.failed} failed" if self.failed else "")


def batch_status(mq: Deployment, pendings: Sequence[PendingResult]) -> BatchStatus:
    """The states of many requests in one pipelined round trip."""
    pipe = mq.client.pipeline(transaction=False)
    for p in pendings:
        pipe.hmget(p.key, ["s", "p"])
    done = failed = 0
    running = 0.0
    for state, fraction in pipe.execute():
        if state is None:
            running += float(fraction) if fraction is not None else 0.0
        elif _text(state) == "done":
            done += 1
        else:
            failed += 1
    return BatchStatus(len(pendings), done, failed, running)


def wait_all(mq: Deployment, pendings: Iterable[PendingResult], timeout: float | None = None,
             *, progress: bool | Callable[[BatchStatus], None] = True) -> list[Result]:
    """Wait until every request has a result; returns them in order (failures
    included: check ``ok``). ``progress``: a live bar (tqdm.auto: a widget in notebooks,
    text elsewhere; none when tqdm is not installed), or a callable given each
    ``BatchStatus``. ``ResultTimeoutError`` names how many are missing after ``timeout``."""
    items = list(pendings)
    if not all(isinstance(p, PendingResult) for p in items):
        raise ValidationError("wait_all takes the PendingResult handles mq.request returned")
    deadline = None if timeout is None else time.monotonic() + timeout
    report = progress if callable(progress) else _bar(len(items)) if progress else None
    try:
        while True:
            status = batch_status(mq, items)
            if report is not None:
                report(status)
            if status.done + status.failed == status.total:
                break
            if deadline is not None and time.monotonic() >= deadline:
                missing = status.total - status.done - status.failed
                raise ResultTimeoutError(f"{missing} of {status.total} requests have no "
                                         f"result after {timeout:g} s")
            time.sleep(POLL_S)  # a poll interval (not synchronization): the bar's refresh
    finally:
        close = getattr(report, "close", None)
        if close is not None:
            close()
    return [p.get(0.0 if timeout is not None else None) for p in items]


class _Bar:
    """A tqdm.auto bar fed with ``BatchStatus`` updates."""

    def __init__(self, total: int) -> None:
        tqdm = _tqdm()
        self._bar = tqdm(total=total, desc=f"0/{total} done", unit="req", ncols=100,
                         bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}")

    def __call__(self, status: BatchStatus) -> None:
        self._bar.n = status.done + status.failed
        self._bar.set_description_str(status.describe(), refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


def _tqdm() -> Any:
    """A tqdm.auto bar factory (a widget in notebooks, text 100 columns wide elsewhere);
    ImportError without the notebook extra."""
    from tqdm.auto import tqdm  # type: ignore[import-untyped]
    if "notebook" in tqdm.__module__:
        return lambda **options: tqdm(**{k: v for k, v in options.items() if k != "ncols"})
    return tqdm


def _bar(total: int) -> Callable[[BatchStatus], None] | None:
    try:
        return _Bar(total)
    except ImportError:
        return None


def read_results(mq: Deployment, queue: str, ids: Iterable[str]) -> dict[str, Result | None]:
    """The results of requests sent to ``queue`` (every partition is looked in), by id:
    None where there is none (yet, or any more). A result that cannot be opened (wrong
    key, tampered) raises ``DecodeError``."""
    wanted = list(ids)
    parts = mq.layout(queue).all
    pipe = mq.client.pipeline(transaction=False)
    for mid in wanted:
        for part in parts:
            pipe.hget(mq.queue_keys(part).result(mid), "v")
    replies = iter(pipe.execute())
    out: dict[str, Result | None] = {}
    for mid in wanted:
        found = [r for r in (next(replies) for _ in parts) if r is not None]
        out[mid] = open_result(mq.codec, found[0] if isinstance(found[0], bytes)
                               else str(found[0]).encode(), mid) if found else None
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["BatchStatus", "DecodeError", "PendingResult", "Progress", "batch_status",
           "progress_of", "read_results", "wait_all"]
