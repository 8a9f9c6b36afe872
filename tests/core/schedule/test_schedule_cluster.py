"""Schedules on a Redis Cluster: every pn1_fire call stays in one slot (the partition the
schedule routes to), listing and removal span the masters, and racing schedulers still
fire each tick once."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

import phantom_notebook as pn
from phantom_notebook.core.schedule.runner import Scheduler
from tests.core.schedule.conftest import Clock, ticks
from tests.support.cluster import RedisClusterFixture


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterFixture]:
    built = RedisClusterFixture(replicas=0).start()
    try:
        yield built
    finally:
        built.close()


def test_racing_schedulers_on_a_cluster_fire_each_tick_once(
        cluster: RedisClusterFixture, prefix: str, clock: Clock) -> None:
    connections = [pn.connect(cluster.url, key_prefix=prefix) for _ in range(4)]
    mq = connections[0]
    mq.declare("ioc-parts", partitions=3)
    mq.schedule("parted", "ioc-parts", "feed.poll", {}, every="1s", catch_up="all")
    mq.schedule("plain", "alerts", "feed.poll", {}, every="1s", catch_up="all")
    start = threading.Barrier(len(connections))

    def race(c: pn.MessageQueue) -> None:
        scheduler = Scheduler(c)
        for second in range(1, 6):
            start.wait()
            scheduler.run_once(clock.at(second + 0.1))

    threads = [threading.Thread(target=race, args=(c,)) for c in connections]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    expected = [clock.tick(s) for s in range(1, 6)]
    assert ticks(mq, "ioc-parts") == expected == ticks(mq, "alerts")
    listed = {s.name: s for s in mq.schedules()}
    assert {n: s.last_fired is not None for n, s in listed.items()} == \
        {"parted": True, "plain": True}
    assert mq.unschedule("parted") and [s.name for s in mq.schedules()] == ["plain"]
    for c in connections:
        c.close()
