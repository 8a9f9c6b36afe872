"""A full Redis, a unix socket, a server that is not there: real redis-server processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import phantom_notebook as pn
from phantom_notebook.core.observe.health import check_health
from tests.support.collect import Collector
from tests.support.redis_server import RedisServer, free_port


@pytest.fixture
def full_redis() -> Iterator[RedisServer]:
    """A server with a small ``maxmemory`` and no eviction, as production queues run."""
    srv = RedisServer("--maxmemory", "12mb", "--maxmemory-policy", "noeviction").start()
    yield srv
    srv.close()


def _fill(mq: pn.MessageQueue, queue: str) -> tuple[int, pn.CapacityError]:
    """Publish batches until Redis refuses; (messages stored, the refusal)."""
    stored = 0
    blob = "x" * 2000
    for _ in range(10_000):
        try:
            mq.publish_batch(queue, [("ioc.raw", {"n": stored + i, "blob": blob})
                                     for i in range(100)])
        except pn.CapacityError as refused:
            return stored, refused
        stored += 100
    raise AssertionError("Redis never filled up")


def test_a_full_redis_refuses_publishes_clearly_and_new_workers_still_drain_it(
        full_redis: RedisServer, prefix: str) -> None:
    producer = pn.connect(full_redis.url, key_prefix=prefix)
    producer.declare("feed")
    producer.ensure_group("feed")  # the queue had consumers before (they were restarted)
    stored, refused = _fill(producer, "feed")
    assert stored > 0
    assert isinstance(refused, pn.QueueFullError), "callers that handle a full queue handle this"
    assert "Redis is out of memory" in str(refused)
    assert "MiB of maxmemory" in str(refused), "it says how much of how much"
    report = check_health(producer, ["feed"])
    memory = [c for c in report.checks if c.name == "redis memory"]
    assert memory and memory[0].status == "critical"
    # a worker started now (group creation is deny-OOM even for an existing group) drains it
    consumer = pn.connect(full_redis.url, key_prefix=prefix)
    got = Collector()
    consumer.subscribe("feed", "*", got, prefetch_count=200)
    with consumer.worker():
        assert got.wait_for(stored, timeout_s=60), f"{len(got.envelopes)} of {stored}"
    assert sorted(e.payload["n"] for e in got.envelopes) == list(range(stored))
    assert consumer.stats("feed")[0].depth == 0
    producer.publish("feed", "ioc.raw", {"after": "drained"})  # room again
    producer.close()
    consumer.close()


class UnixRedis(RedisServer):
    """A server listening on a unix socket only (optionally with a password)."""

    def __init__(self, password: str | None = None) -> None:
        super().__init__()
        self.socket = Path(self.dir) / "redis.sock"
        self.password = password

    def launch_args(self) -> list[str]:
        args = [a if a != str(self.port) else "0" for a in super().launch_args()]
        args += ["--unixsocket", str(self.socket), "--unixsocketperm", "700"]
        if self.password:
            args += ["--requirepass", self.password]
        return args

    def client(self, **kwargs: object) -> object:  # type: ignore[override]
        import redis

        return redis.Redis(unix_socket_path=str(self.socket), password=self.password,
                           **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("password", [None, "s3cret-unix"], ids=["open", "password"])
def test_a_unix_socket_url_publishes_and_consumes(password: str | None, prefix: str) -> None:
    srv = UnixRedis(password).start()
    try:
        auth = f":{password}@" if password else ""
        url = f"unix://{auth}{srv.socket}?db=0"
        mq = pn.connect(url, key_prefix=prefix)
        assert "s3cret" not in repr(mq)
        first = mq.publish("feed", "ioc.raw", {"ioc": "203.0.113.9"})
        got = Collector()
        mq.subscribe("feed", "*", got)
        with mq.worker():
            assert got.wait_for(1)
        assert [e.id for e in got.envelopes] == [first]
        mq.close()
    finally:
        srv.close()


def test_connecting_to_nothing_fails_at_connect_naming_the_address() -> None:
    port = free_port()
    with pytest.raises(pn.ConnectionLostError, match=rf"cannot reach redis://127.0.0.1:{port}"):
        pn.connect(f"redis://127.0.0.1:{port}/0")


def test_a_database_the_server_does_not_have_is_a_config_error(prefix: str) -> None:
    srv = RedisServer("--databases", "2").start()
    try:
        with pytest.raises(pn.ConfigError, match="no database 7"):
            pn.connect(f"redis://127.0.0.1:{srv.port}/7", key_prefix=prefix)
    finally:
        srv.close()


def test_a_wrong_password_is_a_clear_error_without_the_password(prefix: str) -> None:
    srv = RedisServer().start()
    srv.client().config_set("requirepass", "right-one")
    try:
        with pytest.raises(pn.PhantomError) as raised:
            pn.connect(f"redis://:wrong-one@127.0.0.1:{srv.port}/0", key_prefix=prefix)
        text = str(raised.value)
        assert "wrong-one" not in text and "right-one" not in text
        assert "password" in text.lower() or "auth" in text.lower()
    finally:
        srv.close()
