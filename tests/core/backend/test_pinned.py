"""The publish hot path's pinned connection (core/wire.py): no pool checkout per publish,
and every failure ends in the ordinary client path or a clear error, never a lost or
out-of-step reply."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis

import phantom_notebook as pn
from phantom_notebook.core.backend.pinned import FALLBACK, PinnedConnection


@pytest.fixture
def checkouts(real_mq: pn.MessageQueue, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts connection checkouts from ``real_mq``'s pool (one entry per checkout)."""
    pool = real_mq.client.connection_pool
    taken: list[int] = []
    original = pool.get_connection

    def counting(*args: Any, **kwargs: Any) -> Any:
        taken.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(pool, "get_connection", counting)
    yield taken


def _ready(mq: pn.MessageQueue, queue: str) -> int:
    return mq.stats([queue])[0].ready


def test_single_publishes_reuse_one_connection_without_a_pool_checkout_each(
        real_mq: pn.MessageQueue, checkouts: list[int]) -> None:
    real_mq.declare("wire")
    real_mq.publish("wire", "ioc.x", {"n": 0})
    before = len(checkouts)
    for i in range(1, 50):
        real_mq.publish("wire", "ioc.x", {"n": i})
    assert len(checkouts) == before
    assert _ready(real_mq, "wire") == 50


def test_a_killed_connection_falls_back_to_the_ordinary_path_and_the_publish_lands(
        real_mq: pn.MessageQueue) -> None:
    real_mq.publish("wire", "ioc.x", {"n": 0})
    pinned = real_mq.functions.pinned
    assert pinned._conn is not None
    admin = redis.Redis.from_url(real_mq.settings.redis.url)
    try:
        admin.client_kill_filter(_id=_client_id(pinned))
    finally:
        admin.close()
    real_mq.publish("wire", "ioc.x", {"n": 1})  # pinned send fails -> pooled call, retried
    real_mq.publish("wire", "ioc.x", {"n": 2})  # and the next one pins a fresh connection
    assert _ready(real_mq, "wire") == 3
    assert pinned._conn is not None and pinned._conn._sock is not None


def test_a_second_thread_publishing_meanwhile_takes_the_pool_instead_of_waiting(
        real_mq: pn.MessageQueue, checkouts: list[int]) -> None:
    real_mq.publish("wire", "ioc.x", {"n": 0})
    pinned = real_mq.functions.pinned
    before = len(checkouts)
    with pinned._lock:  # as if another thread were in the middle of a publish
        done = threading.Event()
        threading.Thread(target=lambda: (real_mq.publish("wire", "ioc.x", {"n": 1}),
                                         done.set())).start()
        assert done.wait(10)
    assert len(checkouts) == before + 1
    assert _ready(real_mq, "wire") == 2


def test_a_full_queue_raises_and_leaves_the_connection_in_step(
        real_mq: pn.MessageQueue) -> None:
    real_mq.declare("tiny", max_queue_size=1)
    first = real_mq.publish("tiny", "ioc.x", {"n": 0})
    conn = real_mq.functions.pinned._conn
    with pytest.raises(pn.QueueFullError, match="'tiny' is full"):
        real_mq.publish("tiny", "ioc.x", {"n": 1})
    assert real_mq.functions.pinned._conn is conn
    real_mq.client.delete(*real_mq.queue_keys("tiny").streams)  # room again
    second = real_mq.publish("tiny", "ioc.x", {"n": 2})
    assert second != first and _ready(real_mq, "tiny") == 1


def test_functions_lost_by_the_server_are_reloaded_on_the_pinned_connection(
        own_server: Any) -> None:
    mq = pn.connect(own_server.url, key_prefix="wire")
    try:
        mq.publish("wire", "ioc.x", {"n": 0})
        mq.client.function_flush()  # what a restart without persistence leaves
        mq.client.config_resetstat()
        mq.publish("wire", "ioc.x", {"n": 1})
        assert _ready(mq, "wire") == 2
        stats = mq.client.info("commandstats")
        # "Function not found" once, answered by one FUNCTION LOAD and the call again
        assert stats["cmdstat_fcall"]["failed_calls"] == 1
        assert stats["cmdstat_function|load"]["calls"] == 1
    finally:
        mq.close()


def test_after_fork_the_parents_connection_is_never_reused(
        real_mq: pn.MessageQueue) -> None:
    real_mq.publish("wire", "ioc.x", {"n": 0})
    pinned = real_mq.functions.pinned
    parents = pinned._conn
    pinned._pid = -1  # what a forked child sees: another process's connection object
    real_mq.publish("wire", "ioc.x", {"n": 1})
    assert pinned._conn is not parents
    assert _ready(real_mq, "wire") == 2


def test_close_gives_the_connection_back_to_the_pool(real_mq: pn.MessageQueue) -> None:
    real_mq.publish("wire", "ioc.x", {"n": 0})
    pinned = real_mq.functions.pinned
    conn = pinned._conn
    real_mq.close()
    assert pinned._conn is None
    assert conn in list(real_mq.client.connection_pool.pool.queue)


def test_the_embedded_redis_never_takes_the_pinned_path() -> None:
    mq = pn.connect(None, key_prefix="wire-embedded", settings=pn.Settings())
    try:
        assert not mq.functions.pinned.usable
        assert mq.functions.pinned.call(["pn1_version", 0]) is FALLBACK
        mq.publish("wire", "ioc.x", {"n": 0})
        assert _ready(mq, "wire") == 1
    finally:
        mq.close()


def test_a_cluster_or_custom_pool_client_is_not_pinned(redis_url: str) -> None:
    custom = redis.Redis(connection_pool=type("Pool", (redis.ConnectionPool,), {})
                         .from_url(redis_url))
    try:
        assert not PinnedConnection(custom).usable
        assert PinnedConnection(redis.Redis.from_url(redis_url)).usable
    finally:
        custom.close()


def _client_id(pinned: PinnedConnection) -> str:
    conn = pinned._conn
    local = conn._sock.getsockname()
    admin = redis.Redis(host=conn.host, port=conn.port)
    try:
        for client in admin.client_list():
            if client["addr"] == f"{local[0]}:{local[1]}":
                return str(client["id"])
    finally:
        admin.close()
    raise AssertionError("the pinned connection is not in CLIENT LIST")
