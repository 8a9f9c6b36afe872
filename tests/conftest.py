"""Shared fixtures: one throwaway redis-server per session, and both backends per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from hypothesis import settings

import phantom_notebook as pn
from tests.support.redis_server import RedisServer, external_url
from tests.support.worker_process import WorkerProcess

# mutation runs (tools/mutation/python_mutants.py): the same examples for every mutant, and
# no deadline (mutmut's trampolines make every call slower; a deadline would "kill" mutants)
settings.register_profile("mutation", deadline=None, derandomize=True, database=None)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of a Redis the tests may write to: our own server unless one is given."""
    url = external_url()
    if url:
        yield url
        return
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A redis-server only this test uses, so its command statistics are ours alone."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def prefix() -> str:
    """A key prefix unique to one test, so tests never see each other's keys."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["redis", "embedded"])
def mq(request: pytest.FixtureRequest, prefix: str) -> Iterator[pn.MessageQueue]:
    """A MessageQueue on a real redis-server, then on the embedded default."""
    if request.param == "redis":
        queue = pn.connect(request.getfixturevalue("redis_url"), key_prefix=prefix)
    else:
        queue = pn.connect(None, key_prefix=prefix, settings=pn.Settings())
    yield queue
    queue.client.close()


@pytest.fixture
def real_mq(redis_url: str, prefix: str) -> Iterator[pn.MessageQueue]:
    """A MessageQueue on the real redis-server only."""
    queue = pn.connect(redis_url, key_prefix=prefix)
    yield queue
    queue.client.close()


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    """Worker subprocesses a test starts; each is killed (if still running) at the end."""
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        w.close()
