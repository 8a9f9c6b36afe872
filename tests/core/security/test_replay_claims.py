"""Replay claims on a busy lane: batches fetched ahead are claimed in the helper thread."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

import phantom_notebook as pn
from tests.support.collect import Collector, eventually

KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture
def sealed(redis_url: str, prefix: str) -> Iterator[pn.MessageQueue]:
    mq = pn.connect(redis_url, key_prefix=prefix,
                    settings=pn.Settings.from_dict({"security": {"keys": f"k1:{KEY}"}}))
    yield mq
    mq.close()


def test_copies_inside_a_busy_backlog_are_refused_and_every_original_runs_once(
        sealed: pn.MessageQueue) -> None:
    stream = sealed.queue_keys("feed").stream(2)
    ids = sealed.publish_batch("feed", [("ioc.raw", {"n": i}) for i in range(2000)])
    entries = sealed.client.xrange(stream, count=30)
    for _, fields in entries:  # 30 copies behind the originals, as an attacker adds them
        sealed.client.xadd(stream, fields)
    sealed.publish_batch("feed", [("ioc.raw", {"n": i}) for i in range(2000, 3000)])
    got = Collector()
    sealed.subscribe("feed", "*", got, prefetch_count=100)
    with sealed.worker():
        assert got.wait_for(3000, timeout_s=60)
        assert eventually(lambda: sealed.stats("feed")[0].dead == 30)
    handled = [e.id for e in got.envelopes]
    assert len(handled) == len(set(handled)) == 3000
    assert set(ids) <= set(handled)
    letters = sealed.dlq("feed").list()
    assert {d.reason for d in letters} == {"replayed"}
    assert {d.message_id for d in letters} == set(ids[:30])
