"""The exporter serves the fleet's numbers from Redis in Prometheus' text format."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator

import orjson
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

import phantom_notebook as pn
from phantom_notebook.core.observe.metrics import BOUNDS_MS
from phantom_notebook.notebook.prometheus import PhantomCollector, serve
from tests.notebook.conftest import Workload
from tests.support.collect import eventually


@pytest.fixture
def exporter(mq: pn.MessageQueue) -> Iterator[str]:
    """The /metrics URL of an exporter on a free loopback port."""
    server = serve(mq, port=0, addr="127.0.0.1")
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()


def scrape(url: str) -> dict[str, list[Sample]]:
    """Every sample of one scrape, by family name."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value(samples: list[Sample], name: str | None = None, **labels: str) -> float:
    """The one sample matching ``labels`` (and the sample ``name``, when given)."""
    (found,) = [s for s in samples if (name is None or s.name == name)
                and all(s.labels.get(k) == v for k, v in labels.items())]
    return float(found.value)


def test_a_scrape_reports_the_real_counts_depths_and_latencies_of_a_workload(
        mq: pn.MessageQueue, workload: Workload, exporter: str) -> None:
    families = scrape(exporter)
    q = workload.queue
    messages = families["phantom_messages"]
    assert value(messages, queue=q, event="published") == workload.published
    assert value(messages, queue=q, event="delivered") == workload.delivered
    assert value(messages, queue=q, event="acked") == workload.acked
    assert value(messages, queue=q, event="retried") == workload.retried
    assert value(messages, queue=q, event="dead_lettered") == workload.dead
    depth = families["phantom_queue_depth"]
    assert value(depth, queue=q, state="dead") == workload.dead
    assert value(depth, queue=q, state="ready") == 0
    assert families["phantom_up"][0].value == 1


def test_the_latency_histogram_is_cumulative_in_seconds(
        mq: pn.MessageQueue, workload: Workload, exporter: str) -> None:
    samples = scrape(exporter)["phantom_latency_seconds"]
    buckets = [s for s in samples if s.name == "phantom_latency_seconds_bucket"
               and s.labels["queue"] == workload.queue and s.labels["kind"] == "e2e"]
    counts = [s.value for s in buckets]
    assert counts == sorted(counts)
    assert buckets[-1].labels["le"] == "+Inf"
    settled = workload.acked + workload.retried + workload.dead
    assert counts[-1] == settled
    assert value(samples, "phantom_latency_seconds_count", queue=workload.queue,
                 kind="e2e") == settled
    first = float(buckets[0].labels["le"])
    assert first == pytest.approx(BOUNDS_MS[3] / 1000, rel=1e-5)  # every 4th bound, in s
    assert 0 < value(samples, "phantom_latency_seconds_sum", queue=workload.queue,
                     kind="e2e") < 60


def test_heartbeats_breakers_and_health_are_exported(mq: pn.MessageQueue, exporter: str) -> None:
    seen = time.time() - 5
    mq.client.sadd(mq.keys.heartbeat_index, mq.user)
    mq.client.hset(mq.keys.heartbeats(mq.user), "w-1", orjson.dumps({"last_seen": seen}))
    mq.declare("guarded")
    mq.client.hset(mq.queue_keys("guarded").breakers, "workers:w-1",
                   orjson.dumps({"state": "open"}))
    mq.client.hset(mq.queue_keys("guarded").breakers, "workers:w-2",
                   orjson.dumps({"state": "closed"}))
    families = scrape(exporter)
    assert value(families["phantom_consumer_last_seen_seconds"], consumer="w-1") == \
        pytest.approx(seen)
    breakers = families["phantom_circuit_breaker_open"]
    assert value(breakers, queue="guarded", lane="workers:w-1") == 1
    assert value(breakers, queue="guarded", lane="workers:w-2") == 0
    assert families["phantom_health_status"][0].value == 2  # an open breaker is critical
    assert value(families["phantom_health_check_status"], check="circuit breaker",
                 target="guarded") == 2


def test_counters_never_go_down_as_buckets_age_and_each_counts_once(
        mq: pn.MessageQueue) -> None:
    mq.declare("aging")
    keys = mq.queue_keys("aging")
    start = int(time.time()) // 10 * 10 - 600
    for i in range(6):  # one bucket a minute, 10 published each
        mq.client.hincrby(keys.metrics(start + 60 * i), "published", 10)
    collector = PhantomCollector(mq, ["aging"], backfill_s=3600, settle_s=60)
    seen = []
    for now in range(start + 5, start + 900, 25):
        seen.append(collector.totals("aging", now_s=now).count("published"))
    assert seen == sorted(seen) and seen[-1] == 60
    mq.client.hincrby(keys.metrics(start + 60), "published", 5)  # too late: already folded
    assert collector.totals("aging", now_s=start + 900).count("published") == 60


def test_a_scrape_answers_with_up_0_when_redis_cannot_be_read(
        mq: pn.MessageQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    collector = PhantomCollector(mq)

    def down() -> list[str]:
        raise redis.ConnectionError("connection refused")

    monkeypatch.setattr(mq, "queues", down)
    names = {m.name: m for m in collector.collect()}
    assert set(names) == {"phantom_up", "phantom_scrape_duration_seconds"}
    assert names["phantom_up"].samples[0].value == 0


def test_paused_queues_limited_fetches_and_cancels_are_exported(
        mq: pn.MessageQueue, exporter: str) -> None:
    mq.declare("ioc-gated", kind="fifo", rate_limit="1/min")
    ids = [mq.publish("ioc-gated", "ioc.raw", {"i": i}) for i in range(3)]
    mq.subscribe("ioc-gated", "*", lambda m, c: None)
    with mq.worker() as worker:
        [lane] = [x for x in worker.lanes if getattr(x, "throttled", None) is not None]
        assert eventually(lambda: lane.throttled == 2)  # one delivered, the rest wait
    assert mq.cancel("ioc-gated", ids[2]) == "cancelled"
    mq.pause("ioc-gated", group="workers")

    families = scrape(exporter)

    messages = families["phantom_messages"]
    assert value(messages, queue="ioc-gated", event="throttled") >= 1
    assert value(messages, queue="ioc-gated", event="cancelled") == 1
    paused = families["phantom_queue_paused"]
    assert value(paused, queue="ioc-gated", group="workers") == 1
    assert value(paused, queue="ioc-gated", group="") == 0
