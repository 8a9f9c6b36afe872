"""The error boundary: each lower-level failure reaches the caller as its PhantomError."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

import phantom_notebook as pn
from tests.support.redis_server import RedisServer


@pytest.fixture
def server() -> Iterator[RedisServer]:
    srv = RedisServer().start()
    yield srv
    srv.close()


def _wrong_type(mq: pn.MessageQueue, srv: RedisServer) -> None:
    mq.declare("feed")
    srv.client().delete(mq.queue_keys("feed").delayed)
    srv.client().set(mq.queue_keys("feed").delayed, "not a zset")
    mq.publish("feed", "t", 1, delay=5)


def _no_permission(mq: pn.MessageQueue, srv: RedisServer) -> None:
    mq.declare("feed")
    admin = srv.client()
    admin.acl_setuser("reader", enabled=True, passwords=["+pw-reader-1"], keys=["*"],
                      commands=["+ping", "+hello", "+auth", "+client", "+fcall", "+xlen",
                                "+function|list", "+acl|whoami", "+select", "+info",
                                "+smembers", "+hgetall"])
    reader = pn.connect(f"redis://reader:pw-reader-1@127.0.0.1:{srv.port}/0",
                        key_prefix=mq.keys.prefix, settings=pn.Settings.from_dict(
                            {"redis": {"deploy_functions": "never"}}))
    reader.publish("feed", "t", 1)


def _lost(mq: pn.MessageQueue, srv: RedisServer) -> None:
    mq.declare("feed")
    srv.kill()
    mq.stats("feed")


def _lost_publish(mq: pn.MessageQueue, srv: RedisServer) -> None:
    mq.declare("feed")
    srv.kill()
    mq.publish("feed", "t", 1)


def _not_deployed(mq: pn.MessageQueue, srv: RedisServer) -> None:
    mq.declare("feed")
    never = pn.connect(srv.url, key_prefix=mq.keys.prefix, settings=pn.Settings.from_dict(
        {"redis": {"deploy_functions": "never"}}))
    srv.client().function_flush()  # an operator flushed the functions: nobody may reload
    never.publish("feed", "t", 1)


def _out_of_memory(mq: pn.MessageQueue, srv: RedisServer) -> None:
    mq.declare("feed")
    srv.client().config_set("maxmemory", "1")
    try:
        mq.publish("feed", "t", 1)
    finally:
        srv.client().config_set("maxmemory", "0")


CASES = [
    pytest.param(_wrong_type, pn.ServerError, "WRONGTYPE", id="WRONGTYPE -> ServerError"),
    pytest.param(_no_permission, pn.PermissionDeniedError, "refused the command",
                 id="NOPERM -> PermissionDeniedError"),
    pytest.param(_lost, pn.ConnectionLostError, "cannot reach redis://127.0.0.1",
                 id="connection lost -> ConnectionLostError"),
    pytest.param(_lost_publish, pn.PublishError, "not confirmed.*cannot reach",
                 id="connection lost while publishing -> PublishError"),
    pytest.param(_not_deployed, pn.NotDeployedError, "phantom-notebook deploy",
                 id="no library -> NotDeployedError"),
    pytest.param(_out_of_memory, pn.CapacityError, "out of memory",
                 id="OOM -> CapacityError"),
]


@pytest.mark.parametrize(("provoke", "expected", "says"), CASES)
def test_a_redis_failure_through_the_public_api_is_its_phantom_error(
        provoke, expected: type[pn.PhantomError], says: str, server: RedisServer,  # type: ignore[no-untyped-def]
        prefix: str) -> None:
    mq = pn.connect(server.url, key_prefix=prefix)
    with pytest.raises(expected, match=says) as raised:
        provoke(mq, server)
    assert not isinstance(raised.value.__class__, redis.RedisError)
    assert isinstance(raised.value, pn.PhantomError)
