"""The fetch script's probe: find the first level with new entries, let the lane read it."""

from __future__ import annotations

import phantom_notebook as pn
from phantom_notebook.core.backend.functions import FetchResult
from phantom_notebook.core.model.envelope import now_ms
from phantom_notebook.core.observe.metrics import MetricsStore, metrics_key
from tests.support.collect import Collector


def _fetch(mq: pn.MessageQueue, queue: str, count: int, probe: bool) -> FetchResult:
    keys = mq.queue_keys(queue)
    return mq.functions.fetch(keys, metrics_key(keys, now_ms()), group="g", consumer="c",
                            count=count, now_ms=now_ms(), reclaim_idle_ms=0, max_deliveries=5,
                            levels="0123", metrics_ttl_s=0, delete=True, probe=probe)


def test_probing_counts_new_entries_per_level_in_priority_order_and_reads_nothing(
        mq: pn.MessageQueue) -> None:
    mq.publish_batch("probe", [("t", i, "LOW") for i in range(3)] + [("t", 9, "HIGH")])
    mq.ensure_group("probe", "g")
    probed = _fetch(mq, "probe", 10, probe=True)
    assert (probed.deliveries, probed.probed) == ([], [(1, 1), (3, 3)])
    read = _fetch(mq, "probe", 10, probe=False)
    assert [d.level for d in read.deliveries] == [1, 3, 3, 3]


def test_probing_stops_at_the_level_that_covers_the_count(mq: pn.MessageQueue) -> None:
    mq.publish_batch("probe", [("t", i, "HIGH") for i in range(5)] + [("t", 9, "LOW")])
    mq.ensure_group("probe", "g")
    assert _fetch(mq, "probe", 4, probe=True).probed == [(1, 5)]


def test_a_level_whose_entries_are_all_pending_is_not_probed_again(mq: pn.MessageQueue) -> None:
    mq.publish_batch("probe", [("t", i, "NORMAL") for i in range(2)])
    mq.ensure_group("probe", "g")
    assert len(_fetch(mq, "probe", 10, probe=False).deliveries) == 2
    assert _fetch(mq, "probe", 10, probe=True).probed == []


def test_a_worker_reading_probed_levels_directly_counts_every_delivery_in_metrics(
        mq: pn.MessageQueue) -> None:
    mq.declare("probe", enable_metrics=True)
    mq.publish_batch("probe", [("t", i) for i in range(1200)])
    got = Collector()
    mq.subscribe("probe", "*", got, prefetch_count=500)
    with mq.worker():
        assert got.wait_for(1200)
    window = MetricsStore(mq).window("probe", 600)
    assert sorted(got.payloads) == list(range(1200))
    assert (window.count("delivered"), window.count("acked")) == (1200, 1200)
    assert mq.stats(["probe"])[0].ready == 0


def test_lanes_with_and_without_a_thread_pool_drain_full_batches(mq: pn.MessageQueue) -> None:
    inline, pooled = Collector(), Collector()
    mq.publish_batch("inline", [("t", i) for i in range(60)])
    mq.publish_batch("pooled", [("t", i) for i in range(60)])
    mq.subscribe("inline", "*", inline, prefetch_count=8)
    mq.subscribe("pooled", "*", pooled, prefetch_count=8, max_concurrency=3)
    with mq.worker():
        assert inline.wait_for(60) and pooled.wait_for(60)
    assert sorted(inline.payloads) == sorted(pooled.payloads) == list(range(60))
