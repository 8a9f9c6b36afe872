"""Durable publishes: WAIT (replicated) in the publish round trip, PublishError when not
confirmed, and a clear ConfigError for WAITAOF (fsync) on Redis < 7.2."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator

import pytest

import phantom_notebook as pn
from phantom_notebook.core.backend.durability import server_version
from tests.support.cluster import FAST_REPLICATION
from tests.support.collect import eventually
from tests.support.redis_server import RedisServer

AUDIT_KEY = base64.b64encode(os.urandom(32)).decode()


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[RedisServer, RedisServer]]:
    master = RedisServer(*FAST_REPLICATION).start()
    replica = RedisServer("--replicaof", "127.0.0.1", str(master.port), *FAST_REPLICATION).start()
    m = master.client()
    # the replica says "up" a moment before the master counts it online (WAIT needs that)
    assert eventually(lambda: m.info("replication").get("slave0", {}).get("state") == "online")
    m.close()
    try:
        yield master, replica
    finally:
        replica.close()
        master.close()


def _mq(server: RedisServer) -> pn.MessageQueue:
    return pn.connect(server.url, key_prefix=f"d{uuid.uuid4().hex[:6]}")


def test_a_replicated_publish_is_acknowledged_by_the_replica_in_the_same_round_trip(
        pair: tuple[RedisServer, RedisServer]) -> None:
    master, replica = pair
    mq = _mq(master)
    mq.declare("intel", kind="fifo", durability="replicated", durability_replicas=1)
    sent = mq.publish_batch("intel", [("t", i) for i in range(20)])
    def waits() -> int:
        return int(mq.client.info("commandstats").get("cmdstat_wait", {"calls": 0})["calls"])

    before = waits()
    mq.publish("intel", "t", 99)
    assert waits() - before == 1
    on_replica = replica.client()
    keys = mq.queue_keys("intel")
    assert on_replica.xlen(keys.stream(2)) == 21  # there the moment publish returned
    on_replica.close()
    assert len(sent) == 20
    mq.client.close()


def test_a_publish_no_replica_acknowledges_raises_publish_error() -> None:
    alone = RedisServer().start()
    try:
        mq = _mq(alone)
        mq.declare("intel", kind="fifo", durability="replicated", durability_timeout_s=0.1)
        with pytest.raises(pn.PublishError, match="acknowledged by 0 of 1 replica"):
            mq.publish("intel", "t", {"x": 1})
        mq.declare("two", kind="fifo", durability="replicated", durability_replicas=2,
                   durability_timeout_s=0.1)
        with pytest.raises(pn.PublishError, match="0 of 2"):
            mq.publish("two", "t", {"x": 1})
        mq.client.close()
    finally:
        alone.close()


def test_fsync_durability_needs_redis_7_2_and_says_so(
        pair: tuple[RedisServer, RedisServer]) -> None:
    master, _ = pair
    mq = _mq(master)
    mq.declare("intel", kind="fifo", durability="fsync")
    if server_version(mq.client) < (7, 2):  # Debian's 7.0: refused before anything is sent
        with pytest.raises(pn.ConfigError, match=r"durability.*WAITAOF.*>= 7\.2"):
            mq.publish("intel", "t", {"x": 1})
        assert mq.stats(["intel"])[0].ready == 0, "nothing was written"
    else:  # WAITAOF exists, but these servers run without AOF: the publish is not confirmed
        with pytest.raises(pn.PublishError, match="WAITAOF"):
            mq.publish("intel", "t", {"x": 1})
    mq.client.close()


def test_durability_settings_are_validated() -> None:
    with pytest.raises(pn.ConfigError, match="durability"):
        pn.QueueSettings(durability="quorum")  # type: ignore[arg-type]
    with pytest.raises(pn.ConfigError, match="durability_replicas"):
        pn.QueueSettings(durability_replicas=0)
    assert pn.Settings.from_dict({"queue_defaults": {"durability": "replicated",
                                                     "durability_replicas": 2}}
                                 ).queue_defaults.durability_replicas == 2


def test_a_replicated_publish_is_audited_and_both_reach_the_replica(
        pair: tuple[RedisServer, RedisServer]) -> None:
    master, replica = pair
    settings = pn.Settings.from_dict({"security": {"audit_key": AUDIT_KEY}})
    mq = pn.connect(master.url, key_prefix=f"d{uuid.uuid4().hex[:6]}", settings=settings)
    mq.declare("intel", kind="fifo", durability="replicated", durability_replicas=1)
    mid = mq.publish("intel", "t", 1)
    assert mq.audit is not None
    [entry] = [e for e in mq.audit.entries() if e.action == "publish"]
    assert entry.covers([mid])
    on_replica = replica.client()  # WAIT covered the audit entry: it is there already
    assert on_replica.xlen(mq.queue_keys("intel").audit(mq.user)) == 1
    on_replica.close()
    mq.client.close()
