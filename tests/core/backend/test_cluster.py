"""Redis Cluster: the queue behaviour suite on 3 masters + 3 replicas, partition spread, and
a master SIGKILLed while messages flow (the replica is promoted, the flow resumes)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import phantom_notebook as pn
from phantom_notebook.core.backend import library
from phantom_notebook.core.backend.cluster import primary_of
from phantom_notebook.core.backend.deploy import deploy, deployed_builds
from tests.core.test_queue_kinds import (  # noqa: F401 - re-run the suite against the cluster
    test_broadcast_gives_every_group_every_message_even_while_a_group_is_down,
    test_critical_message_behind_100k_low_messages_is_delivered_next,
    test_delayed_message_is_never_early_and_arrives_within_100ms,
    test_fifo_queue_delivers_in_publish_order,
    test_priority_queue_delivers_critical_before_high_before_normal_before_low,
    test_pubsub_reaches_current_subscribers_by_topic_pattern,
    test_redeclaring_a_queue_with_another_kind_is_refused,
    test_two_promoters_never_deliver_a_delayed_message_twice,
    test_unknown_queue_kind_is_refused,
)
from tests.support.cluster import RedisClusterFixture
from tests.support.collect import eventually
from tests.support.failover import run_failover_flow


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterFixture]:
    """One 6-node cluster (3 masters, 3 replicas) shared by the suite."""
    built = RedisClusterFixture().start()
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def mq(cluster: RedisClusterFixture, prefix: str) -> Iterator[pn.MessageQueue]:
    """The suite's ``mq``, on the cluster."""
    queue = pn.connect(cluster.url, key_prefix=prefix)
    yield queue
    queue.client.close()


@pytest.fixture
def real_mq(mq: pn.MessageQueue) -> pn.MessageQueue:
    """The suite's ``real_mq``, on the cluster."""
    return mq


def test_the_client_is_a_cluster_client(mq: pn.MessageQueue) -> None:
    from redis.cluster import RedisCluster

    assert isinstance(mq.client, RedisCluster)
    assert len(mq.client.get_primaries()) == 3


def test_a_six_partition_queue_spreads_over_all_three_masters(mq: pn.MessageQueue) -> None:
    mq.declare("ioc-processing", kind="priority", partitions=6)
    layout = mq.layout("ioc-processing")
    masters = [primary_of(mq.client, mq.queue_keys(p).meta) for p in layout.active]
    print(f"\npartition -> master: {dict(zip(layout.active, masters, strict=True))}")
    assert len(set(masters)) == 3
    assert all(masters.count(m) == 2 for m in set(masters))
    ids = mq.publish_batch("ioc-processing", [
        pn.Message("ioc", {"ioc": {"value": f"10.0.0.{i}"}}) for i in range(60)])
    assert len(set(ids)) == 60
    per_master: dict[str, int] = {}
    for part, master in zip(layout.active, masters, strict=True):
        n = sum(int(mq.client.xlen(s)) for s in mq.queue_keys(part).streams)
        per_master[master] = per_master.get(master, 0) + n
    assert sum(per_master.values()) == 60 and all(per_master.values())
    assert mq.stats(["ioc-processing"])[0].ready == 60


@pytest.mark.slow
@pytest.mark.parametrize("durability", ["replicated", "none"])
def test_killing_a_master_mid_flow_promotes_its_replica_and_the_flow_resumes(
        durability: str) -> None:
    # two replicas per master: after the failover the promoted master still has one, so
    # "replicated" publishes to it can be confirmed again without operator action
    built = RedisClusterFixture(replicas=2, node_timeout_ms=1000).start()
    try:
        mq = pn.connect(built.url, key_prefix=f"f{uuid.uuid4().hex[:6]}")
        mq.declare("flow", kind="fifo", partitions=3, durability=durability,
                   visibility_timeout_s=2.0, max_queue_size=None)
        layout = mq.layout("flow")
        victim_key = mq.queue_keys(layout.active[0]).meta
        victim = built.master_on(int(primary_of(mq.client, victim_key).rsplit(":", 1)[1]))
        replicas = built.replicas_of(victim)

        def promoted() -> bool:
            return any(built.role(r) == "master" for r in replicas)

        report = run_failover_flow(mq, "flow", kill=victim.kill, promoted=promoted,
                                   affected=set(layout.active[:1]))
        print(f"\ncluster failover, durability={durability}: {report}")
        assert promoted()
        assert report.resumed, report
        assert report.resume_s < 20
        if durability == "replicated":
            assert report.lost == 0, report
        mq.client.close()
    finally:
        built.close()


def test_the_functions_are_on_every_master_and_replica(cluster: RedisClusterFixture,
                                                      mq: pn.MessageQueue) -> None:
    assert mq.publish("fn-check", "t", 1)
    for node in cluster.live():
        c = node.client()
        try:
            assert eventually(lambda c=c: deployed_builds(c) == [library.build()])
        finally:
            c.close()


@pytest.mark.slow
def test_after_a_failover_the_promoted_replica_serves_fcall_without_a_reload() -> None:
    built = RedisClusterFixture(replicas=1, node_timeout_ms=1000).start()
    try:
        deploy(pn.connect(built.url, key_prefix="fo").client)
        mq = pn.connect(built.url, key_prefix="fo", deploy_functions="never")
        meta = mq.queue_keys("q").meta
        victim = built.master_on(int(primary_of(mq.client, meta).rsplit(":", 1)[1]))
        replica = built.replica_of(victim)
        assert eventually(lambda: _build_on(replica) == library.build())
        victim.kill()
        assert eventually(lambda: built.role(replica) == "master", timeout_s=30)
        node = replica.client()
        loads = node.info("commandstats").get("cmdstat_function|load", {"calls": 0})["calls"]
        assert node.fcall("pn1_version", 0).decode() == library.build()
        assert eventually(lambda: _publishes(mq), timeout_s=30)  # FCALL pn1_publish there
        assert node.info("commandstats").get("cmdstat_function|load",
                                             {"calls": 0})["calls"] == loads  # no reload
        node.close()
        mq.client.close()
    finally:
        built.close()


def _build_on(node: Any) -> str | None:
    c = node.client()
    try:
        return deployed_builds(c)[0]
    finally:
        c.close()


def _publishes(mq: pn.MessageQueue) -> bool:
    try:
        return bool(mq.publish("q", "t", 1))
    except pn.PhantomError:
        return False
