"""Redis Sentinel: the master is SIGKILLed mid-flow; producers and consumers follow the
promoted replica on their own, and nothing confirmed with ``durability="replicated"`` is lost."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

import phantom_notebook as pn
from tests.support.failover import run_failover_flow
from tests.support.sentinel import SentinelDeployment


@pytest.fixture
def sentinel() -> Iterator[SentinelDeployment]:
    deployment = SentinelDeployment().start()
    try:
        yield deployment
    finally:
        deployment.close()


def test_a_sentinel_url_reaches_the_master(sentinel: SentinelDeployment) -> None:
    mq = pn.connect(sentinel.url, key_prefix=f"s{uuid.uuid4().hex[:6]}")
    mq.declare("q", kind="fifo")
    mq.publish_batch("q", [("t", i) for i in range(10)])
    assert mq.stats(["q"])[0].ready == 10
    assert mq.client.connection_pool.get_master_address()[1] == sentinel.master.port
    mq.client.close()


def test_a_sentinel_url_without_a_service_is_a_config_error() -> None:
    with pytest.raises(pn.ConfigError, match="service"):
        pn.connect("redis+sentinel://127.0.0.1:26379/0")


@pytest.mark.slow
@pytest.mark.parametrize("durability", ["replicated", "none"])
def test_killing_the_master_mid_flow_fails_over_and_the_flow_resumes_within_10s(
        sentinel: SentinelDeployment, durability: str) -> None:
    mq = pn.connect(sentinel.url, key_prefix=f"s{uuid.uuid4().hex[:6]}",
                    command_timeout_s=2.0, connect_timeout_s=0.5)
    mq.declare("flow", kind="fifo", durability=durability, visibility_timeout_s=2.0,
               max_queue_size=None)
    old = sentinel.master.port
    report = run_failover_flow(mq, "flow", kill=sentinel.master.kill,
                               promoted=lambda: sentinel.master_port() != old,
                               affected={"flow"})
    print(f"\nsentinel failover, durability={durability}: {report}")
    assert sentinel.master_port() != old
    assert report.resumed, report
    assert report.resume_s < 10, report
    if durability == "replicated":
        assert report.lost == 0, report
    mq.client.close()
