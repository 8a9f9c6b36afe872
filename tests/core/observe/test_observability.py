"""Metrics and traces in Redis match what really happened."""

from __future__ import annotations

import random

import pytest

import phantom_notebook as pn
from phantom_notebook.core.observe.metrics import BOUNDS_MS, MetricsStore, bucket_index, percentile
from phantom_notebook.core.observe.tracing import TraceLog
from tests.support.collect import Collector, eventually

NO_WAIT = pn.RetrySettings(max_retries=2, initial_delay_s=0.0, jitter=0.0)


def test_metric_counts_equal_the_real_counts_of_a_known_workload(mq: pn.MessageQueue) -> None:
    def handler(message: pn.Envelope, context: pn.MessageContext) -> None:
        kind = message.payload["kind"]
        if kind == "reject":
            raise pn.Reject("rejected")
        if kind == "flaky" and context.attempt == 1:
            raise RuntimeError("transient")

    plan = ["ok"] * 40 + ["flaky"] * 7 + ["reject"] * 3
    mq.subscribe("counted", "*", handler, retry=NO_WAIT,
                 breaker=pn.BreakerSettings(enabled=False))
    mq.publish_batch("counted", [("t", {"kind": k}) for k in plan])
    mq.publish("counted", "t", {"kind": "ok"}, dedup_key="x")
    mq.publish("counted", "t", {"kind": "ok"}, dedup_key="x")
    with mq.worker():
        assert eventually(lambda: _window(mq, "counted").count("acked") == 48)
        assert eventually(lambda: _window(mq, "counted").count("dead_lettered") == 3)
    m = _window(mq, "counted")
    assert m.count("published") == 51
    assert m.count("deduplicated") == 1
    assert m.count("delivered") == 51 + 7
    assert m.count("retried") == 7
    assert m.count("acked") == 48
    assert m.count("dead_lettered") == 3
    assert sum(m.histograms["e2e"].values()) == 48 + 7 + 3


def test_every_latency_falls_in_a_bucket_no_wider_than_twenty_percent() -> None:
    for value in (0.01, 0.3, 1.0, 7.5, 250.0, 12_345.0):
        index = bucket_index(value)
        low = BOUNDS_MS[index - 1] if index else 0.0
        assert low < value <= BOUNDS_MS[index] or (index == 0 and value <= BOUNDS_MS[0])
        if index:
            assert BOUNDS_MS[index] / low == pytest.approx(1.2)


def test_histogram_percentiles_are_within_a_bucket_of_the_true_ones() -> None:
    rng = random.Random(3)
    values = sorted(rng.lognormvariate(1.0, 1.0) for _ in range(20_000))
    hist: dict[int, int] = {}
    for v in values:
        hist[bucket_index(v)] = hist.get(bucket_index(v), 0) + 1
    for q in (50, 95, 99):
        true = values[int(q / 100 * len(values)) - 1]
        estimate = percentile(hist, q)
        assert estimate is not None
        assert true / 1.2 <= estimate <= true * 1.2, (q, true, estimate)


def test_a_message_retried_twice_then_dead_lettered_has_exactly_that_trace(
        mq: pn.MessageQueue) -> None:
    def always_fails(message: pn.Envelope, context: pn.MessageContext) -> None:
        raise ValueError("feed unreadable")

    mq.subscribe("traced", "*", always_fails, retry=NO_WAIT)
    mid = mq.publish("traced", "data.ingestion.request", {"feed": "x"})
    with mq.worker():
        assert eventually(lambda: mq.stats(["traced"])[0].dead == 1)
    events = TraceLog(mq).events(message_id=mid)
    assert [(e.event, e.attempt) for e in events] == [
        ("published", 1), ("delivered", 1), ("retried", 1), ("delivered", 2), ("retried", 2),
        ("delivered", 3), ("dead_lettered", 3)]
    assert "ValueError: feed unreadable" in events[-1].detail
    assert len({e.trace_id for e in events}) == 1 and events[0].trace_id


def test_a_follow_up_published_by_a_handler_shares_the_trace(mq: pn.MessageQueue) -> None:
    def enrich(message: pn.Envelope, context: pn.MessageContext) -> None:
        context.publish("results", "ioc.enrichment.result", {"ok": True})

    results = Collector()
    mq.subscribe("requests", "*", enrich)
    mq.subscribe("results", "*", results)
    request_id = mq.publish("requests", "ioc.enrichment.request", {"ioc": "x"})
    with mq.worker():
        assert results.wait_for(1)
    result = results.envelopes[0]
    request_events = TraceLog(mq).events(message_id=request_id)
    assert result.causation_id == request_id and result.correlation_id == request_id
    whole = TraceLog(mq).events(trace_id=request_events[0].trace_id)
    assert {e.queue for e in whole} == {"requests", "results"}
    assert {e.message_id for e in whole} == {request_id, result.id}


def test_tracing_and_metrics_can_be_turned_off(mq: pn.MessageQueue) -> None:
    mq.declare("quiet", enable_tracing=False, enable_metrics=False)
    got = Collector()
    mq.subscribe("quiet", "*", got)
    mq.publish("quiet", "t", 1)
    with mq.worker():
        assert got.wait_for(1)
    assert mq.client.xlen(mq.queue_keys("quiet").trace) == 0
    assert _window(mq, "quiet").counters == {}


def _window(mq: pn.MessageQueue, queue: str) -> object:
    return MetricsStore(mq).window(queue, 600)
