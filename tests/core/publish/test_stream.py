"""publish_stream: atomic batches, two in flight; a failure says exactly what was written."""

from __future__ import annotations

from typing import Any

import pytest

import phantom_notebook as pn
from tests.support.collect import Collector


def _messages(n: int, bad_at: int | None = None) -> list[tuple[str, Any]]:
    return [("ioc.x", {"n": i} if i != bad_at else {"n": object()}) for i in range(n)]


def test_a_stream_publishes_every_message_in_order_and_returns_their_ids(
        mq: pn.MessageQueue) -> None:
    mq.declare("bulk", kind="fifo")
    ids = mq.publish_stream("bulk", _messages(2345), batch_size=500)
    assert len(ids) == len(set(ids)) == 2345
    assert mq.stats(["bulk"])[0].ready == 2345
    got = Collector()
    mq.subscribe("bulk", "*", got, prefetch_count=200)
    with mq.worker():
        assert got.wait_for(2345)
    assert got.payloads == [{"n": i} for i in range(2345)]
    assert [e.id for e in got.envelopes] == ids


def test_a_bad_message_stops_the_stream_after_the_batches_before_its_own(
        mq: pn.MessageQueue) -> None:
    with pytest.raises(pn.PublishStreamError) as caught:
        mq.publish_stream("bulk", _messages(2000, bad_at=1200), batch_size=500)
    assert len(caught.value.published) == 1000
    assert isinstance(caught.value.__cause__, pn.PayloadError)
    assert mq.stats(["bulk"])[0].ready == 1000


def test_a_full_queue_fails_whole_batches_and_reports_what_was_written(
        mq: pn.MessageQueue) -> None:
    mq.declare("bulk", max_queue_size=1200)
    with pytest.raises(pn.PublishStreamError) as caught:
        mq.publish_stream("bulk", _messages(2000), batch_size=500)
    assert isinstance(caught.value.__cause__, pn.QueueFullError)
    assert len(caught.value.published) == 1000 == mq.stats(["bulk"])[0].ready


def test_duplicates_across_batches_of_one_stream_return_the_first_id(
        mq: pn.MessageQueue) -> None:
    messages = [pn.Message("ioc.x", {"n": i % 300}, dedup_key=f"k{i % 300}") for i in range(900)]
    ids = mq.publish_stream("bulk", messages, batch_size=200)
    assert ids[300:] == ids[:300] * 2
    assert mq.stats(["bulk"])[0].ready == 300


def test_a_partitioned_queue_streams_batch_by_batch(mq: pn.MessageQueue) -> None:
    mq.declare("parts", partitions=3)
    ids = mq.publish_stream("parts", _messages(700), batch_size=250)
    assert len(set(ids)) == 700
    assert sum(s.ready for s in mq.stats_of_partitions(mq.layout("parts").all)) == 700


def test_batch_size_must_be_a_positive_integer(mq: pn.MessageQueue) -> None:
    with pytest.raises(pn.ValidationError, match="batch_size"):
        mq.publish_stream("bulk", _messages(3), batch_size=0)
