"""Redis faults: restarts, killed connections, poison messages that kill their worker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

import phantom_notebook as pn
from tests.support.collect import Collector, eventually
from tests.support.redis_server import RedisServer
from tests.support.worker_process import WorkerProcess, recorded


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A redis-server (AOF on) this test may restart and kill."""
    server = RedisServer(appendonly=True).start()
    yield server
    server.close()


def test_a_worker_resumes_on_its_own_after_the_server_restarts(own_server: RedisServer) -> None:
    mq = pn.connect(own_server.url, key_prefix="restart", command_timeout_s=2.0)
    got = Collector()
    mq.subscribe("resilient", "*", got)
    with mq.worker():
        mq.publish_batch("resilient", [("t", i) for i in range(100)])
        assert got.wait_for(100)
        own_server.restart()
        assert eventually(lambda: _publishes(mq, "resilient", range(100, 200)), timeout_s=20)
        assert got.wait_for(200, timeout_s=20)
    assert sorted(set(got.payloads)) == list(range(200))


def test_a_worker_whose_connection_is_killed_reconnects_and_continues(
        own_server: RedisServer) -> None:
    mq = pn.connect(own_server.url, key_prefix="killconn")
    got = Collector()
    mq.subscribe("kc", "*", got)
    admin = own_server.client()
    with mq.worker() as worker:
        mq.publish_batch("kc", [("t", i) for i in range(50)])
        assert got.wait_for(50)
        killed = admin.client_kill_filter(_type="normal", skipme=True)
        assert killed >= 1
        mq.publish_batch("kc", [("t", i) for i in range(50, 100)])
        assert got.wait_for(100, timeout_s=20)
        assert worker.running
    assert sorted(set(got.payloads)) == list(range(100))
    admin.close()


def test_a_publish_that_cannot_be_confirmed_raises(own_server: RedisServer) -> None:
    mq = pn.connect(own_server.url, key_prefix="down", command_timeout_s=0.5,
                    connect_timeout_s=0.5)
    mq.declare("q")
    own_server.stop()
    with pytest.raises(pn.PublishError, match="was not confirmed"):
        mq.publish("q", "t", {"x": 1})
    own_server.start()
    assert mq.publish("q", "t", {"x": 2})


def test_a_poison_message_that_kills_its_worker_ends_in_the_dlq_and_others_flow(
        real_mq: pn.MessageQueue, redis_url: str, prefix: str) -> None:
    queue = "poisoned"
    real_mq.declare(queue, kind="fifo", max_deliveries=3)
    poison_id = real_mq.publish(queue, "t", {"poison": True})
    good = real_mq.publish_batch(queue, [("t", {"n": i}) for i in range(30)])
    restarts = 0
    worker: WorkerProcess | None = None

    def supervise() -> bool:
        """Restart the worker whenever it died; done when all good ones are handled."""
        nonlocal worker, restarts
        if worker is None or worker.proc.poll() is not None:
            if worker is not None:
                worker.close()
                restarts += 1
            worker = WorkerProcess(redis_url, prefix, queue, concurrency=1, prefetch=1,
                                   visibility_timeout_s=0.3, handler="poison",
                                   extra_env={"PHANTOM_QUEUE_MAX_DELIVERIES": "3"})
        done = {t.split(":")[0] for t in recorded(real_mq, prefix, "done")}
        return done >= set(good) and real_mq.stats([queue])[0].dead == 1

    try:
        assert eventually(supervise, timeout_s=60, interval_s=0.05)
    finally:
        if worker is not None:
            worker.close()
    entry = real_mq.client.xrange(real_mq.queue_keys(queue).dlq)[0][1]
    assert (entry[b"reason"], entry[b"attempts"]) == (b"max_deliveries", b"4")
    assert real_mq.codec.open(entry[b"m"]).id == poison_id
    # deliveries 1..3 (max_deliveries) each crashed a worker; the 4th reclaim dead-lettered it
    assert restarts == 3, "one crash per delivery, then it stopped coming back"


def _publishes(mq: pn.MessageQueue, queue: str, values: range) -> bool:
    try:
        mq.publish_batch(queue, [("t", i) for i in values])
        return True
    except (pn.PublishError, redis.RedisError):
        return False
