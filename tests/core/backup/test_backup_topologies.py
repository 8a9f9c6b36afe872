"""Archives move between topologies: a Sentinel-managed master's backup restores into a
single node with partitions, and back into the Sentinel deployment under another prefix."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import phantom_notebook as pn
from phantom_notebook.core.config.settings import SecuritySettings
from phantom_notebook.core.model.codec import peek_header
from tests.support.sentinel import SentinelDeployment

KEY = "bk-top:" + base64.b64encode(bytes(range(11, 43))).decode()


@pytest.fixture
def sentinel() -> Iterator[SentinelDeployment]:
    deployment = SentinelDeployment(replicas=1).start()
    try:
        yield deployment
    finally:
        deployment.close()


def test_a_sentinel_backup_restores_into_a_single_node_and_back(
        sentinel: SentinelDeployment, redis_url: str, tmp_path: Path) -> None:
    conf = pn.Settings(security=SecuritySettings(backup_key=KEY))
    tag = uuid.uuid4().hex[:6]
    behind = pn.connect(sentinel.url, key_prefix=f"s{tag}", settings=conf)
    behind.declare("ioc-feed", kind="priority")
    ids = set(behind.publish_batch("ioc-feed", [
        pn.Message("ioc.raw", {"ioc": {"value": f"203.0.113.{i}"}}, priority=i % 4)
        for i in range(200)]))
    behind.backup(tmp_path / "s.pnbk")

    single = pn.connect(redis_url, key_prefix=f"n{tag}", settings=conf)
    single.restore(tmp_path / "s.pnbk", partitions=2)
    single.backup(tmp_path / "n.pnbk")
    back = pn.connect(sentinel.url, key_prefix=f"b{tag}", settings=conf)
    back.restore(tmp_path / "n.pnbk")

    for mq, parts in ((single, 2), (back, 2)):
        assert mq.layout("ioc-feed").count == parts
        assert sum(s.ready for s in mq.stats_of_partitions(mq.layout("ioc-feed").active)) == 200
    stored = {str(peek_header(f[b"m"])["id"])
              for part in back.layout("ioc-feed").active
              for stream in back.queue_keys(part).streams
              for _, f in back.client.xrange(stream)}
    assert stored == ids
    for mq in (behind, single, back):
        mq.close()
