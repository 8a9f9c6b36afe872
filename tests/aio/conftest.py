"""Fixtures of the asyncio API tests: a backend (real redis-server, then the embedded one)
and a unique key prefix; each test runs its coroutine with ``run_async`` (``asyncio.run``
in a thread of its own: the browser suite keeps a loop running in the main thread)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

import phantom_notebook as pn


@pytest.fixture(params=["redis", "embedded"])
def target(request: pytest.FixtureRequest) -> str | None:
    """The URL both APIs connect to (None: the embedded Redis)."""
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        return url
    return None


@pytest.fixture
def sync_mq(target: str | None, prefix: str) -> Iterator[pn.MessageQueue]:
    """The synchronous API on the same deployment as ``connect_async``."""
    mq = pn.connect(target, key_prefix=prefix, settings=pn.Settings())
    yield mq
    mq.close()


@pytest.fixture
def connect_async(target: str | None, prefix: str
                  ) -> Callable[..., Coroutine[Any, Any, pn.aio.AsyncMessageQueue]]:
    """``await connect_async()``: the asyncio API on the test's deployment."""
    async def connect(**options: Any) -> pn.aio.AsyncMessageQueue:
        return await pn.aio.connect(target, key_prefix=prefix, settings=pn.Settings(),
                                    **options)
    return connect
