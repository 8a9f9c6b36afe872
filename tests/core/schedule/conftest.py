"""Schedule tests: a clock the tests move, and reading back what the schedules fired."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import phantom_notebook as pn
from phantom_notebook.core.schedule import store
from phantom_notebook.core.schedule.spec import NAME_HEADER, TICK_HEADER


class Clock:
    """The time the schedule store sees (adding, resuming, listing), in epoch ms.

    ``zero`` is a whole 10 s of real time just ahead; the store's clock starts 0.3 s after
    it, so an ``every=1s`` schedule added then has its first tick at ``zero + 1 s``.
    """

    def __init__(self, zero_ms: int) -> None:
        self.zero = zero_ms
        self.ms = zero_ms + 300

    def __call__(self) -> int:
        return self.ms

    def at(self, seconds: float) -> float:
        """Epoch seconds ``seconds`` after zero (for ``run_once(now=...)``)."""
        return (self.zero + round(seconds * 1000)) / 1000

    def tick(self, seconds: float) -> int:
        """The tick (epoch ms) ``seconds`` after zero."""
        return self.zero + round(seconds * 1000)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    """A clock for the schedule store; tests pass explicit times to ``run_once``."""
    c = Clock((store.now_ms() // 10_000 + 1) * 10_000)
    monkeypatch.setattr(store, "now_ms", c)
    yield c


def fired(mq: pn.MessageQueue, queue: str) -> list[tuple[str, int]]:
    """(schedule, tick) of every message stored in ``queue`` (every partition), by tick."""
    out = []
    for part in mq.layout(queue, fresh=True).all:
        for stream in mq.queue_keys(part).streams:
            for _, fields in mq.client.xrange(stream):
                env = mq.codec.open(fields[b"m"])
                out.append((env.headers[NAME_HEADER], int(env.headers[TICK_HEADER])))
    return sorted(out, key=lambda x: x[1])


def ticks(mq: pn.MessageQueue, queue: str) -> list[int]:
    """The ticks fired into ``queue``, in order."""
    return [t for _, t in fired(mq, queue)]


# the ACL fixtures (a server of our own with one user per built-in role)
from tests.core.security.conftest import admin, connect_as, server, users  # noqa: E402, F401
