"""Requests, groups and chains on a 3-master Redis Cluster: members in other slots than
their callback, a partitioned callback queue, results read back from each partition."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from redis.crc import key_slot

import phantom_notebook as pn
from tests.support.cluster import RedisClusterFixture


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterFixture]:
    c = RedisClusterFixture(masters=3, replicas=0).start()
    try:
        yield c
    finally:
        c.close()


@pytest.mark.slow
def test_groups_fan_in_across_slots_and_partitions_of_a_cluster(
        cluster: RedisClusterFixture, prefix: str) -> None:
    mq = pn.connect(cluster.url, key_prefix=prefix)
    members = ("ioc-vt", "ioc-otx", "ioc-whois")
    mq.declare("threat-score", partitions=3)
    mq.declare("ioc-vt", partitions=2)
    stored = [*mq.layout("ioc-vt").all, "ioc-otx", "ioc-whois", *mq.layout("threat-score").all]
    slots = {key_slot(mq.queue_keys(q).base.encode()) for q in stored}
    assert len(slots) == len(stored)  # every partition in its own slot: joins cross slots

    def enrich(message: Any, context: pn.MessageContext) -> int:
        context.progress(0.5, "half")
        return int(message.payload["score"])

    for q in members:
        mq.subscribe(q, "*", enrich)
    mq.subscribe("threat-score", "*", lambda m, c: sum(c.join.values))
    mq.subscribe("ioc-report", "*", lambda m, c: [*(c.previous or []), m.payload["n"]])
    with mq.worker():
        groups = [mq.group([pn.Task(q, "ioc.enrichment.request", {"score": i + j})
                            for j, q in enumerate(members)],
                           then=pn.Task("threat-score", "threat.analysis.request", {}))
                  for i in range(12)]
        assert [g.result(timeout=20) for g in groups] == [3 * i + 3 for i in range(12)]
        assert len({g.callback.stored for g in groups}) > 1  # callbacks on several partitions
        pending = mq.request_batch("ioc-vt", [("t", {"score": n}) for n in range(6)])
        assert [p.result(timeout=20) for p in pending] == list(range(6))
        assert len({p.stored for p in pending}) == 2  # each read from its own partition
        chained = mq.chain([pn.Task("ioc-report", "t", {"n": n}) for n in range(3)])
        assert chained.result(timeout=20) == [0, 1, 2]
    by_id = mq.results([p.id for p in pending], "ioc-vt")
    assert [by_id[p.id].value for p in pending] == list(range(6))  # type: ignore[union-attr]
    mq.close()
