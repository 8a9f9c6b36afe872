"""``phantom-notebook demo``: the real IOC pipeline on every queue kind, and its table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import phantom_notebook as pn
from phantom_notebook.demo import (
    BROADCAST_GROUPS,
    SAMPLE_REPORT,
    DemoRun,
    QueueResult,
    run_demo,
    score_report,
)
from phantom_notebook.intel import extract_iocs
from phantom_notebook.intel.pipeline import ENRICHER_QUEUES, ScoringStatus

KINDS = {"priority", "fifo", "delayed", "pubsub", "broadcast"}


def _fresh() -> pn.MessageQueue:
    return pn.connect(None, key_prefix=f"demo{uuid.uuid4().hex[:10]}", settings=pn.Settings())


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[pn.MessageQueue, DemoRun]]:
    mq = _fresh()
    results, elapsed = run_demo(mq, total=800, alerts_dir=tmp_path_factory.mktemp("alerts"))
    assert elapsed < 30
    yield mq, results
    mq.client.close()


def _rows(results: DemoRun) -> dict[str, QueueResult]:
    return {r.queue: r for r in results}


def test_every_queue_kind_is_used(demo: tuple[pn.MessageQueue, DemoRun]) -> None:
    _, results = demo
    assert {r.kind for r in results} >= KINDS
    rows = _rows(results)
    assert (rows["ioc-processing"].kind, rows["threat-analysis"].kind,
            rows["scheduled-enrichment"].kind, rows["alerts"].kind,
            rows["alerts-live"].kind) == ("priority", "fifo", "delayed", "broadcast", "pubsub")
    assert all(r.published > 0 for r in results)


def test_every_durable_message_is_consumed_or_dead_lettered(
        demo: tuple[pn.MessageQueue, DemoRun]) -> None:
    _, results = demo
    for r in results:
        if r.kind == "pubsub":
            assert r.consumed == r.published  # the subscriber was live for every alert
            continue
        fan_out = len(BROADCAST_GROUPS) if r.kind == "broadcast" else 1
        assert r.published * fan_out == r.consumed + r.dead_lettered, r.queue
    assert results.summary.mismatches == []  # the metrics in Redis agree with the handlers


def test_the_pipeline_flows_from_requests_to_alerts(
        demo: tuple[pn.MessageQueue, DemoRun]) -> None:
    _, results = demo
    rows, summary = _rows(results), results.summary
    enriched = rows["ioc-processing"].consumed + rows["scheduled-enrichment"].consumed
    assert rows["ioc-results"].published == enriched == summary.enriched
    assert rows["threat-analysis"].published == enriched == rows["threat-results"].published
    alerts = rows["alerts"].published
    assert alerts == summary.risk_levels["critical"] > 0  # critical alerts for the worst only
    assert summary.alerts == {"soc": alerts, "incident-response": alerts,
                              "live subscriber": alerts}
    assert rows["alerts-live"].published == alerts
    assert summary.alerts_file is not None
    lines = summary.alerts_file.read_text().splitlines()
    assert len(lines) == alerts
    assert {json.loads(line)["severity"] for line in lines} == {"critical"}


def test_malformed_requests_are_dead_lettered_as_schema_invalid(
        demo: tuple[pn.MessageQueue, DemoRun]) -> None:
    mq, results = demo
    rows = _rows(results)
    for queue in ("ioc-processing", "scheduled-enrichment"):
        dead = rows[queue].dead_lettered
        assert dead > 0
        assert mq.dlq(queue).summary() == {"schema_invalid": dead}
    assert sum(r.dead_lettered for r in results) == results.summary.dead_reasons[
        "schema_invalid"]
    assert rows["ioc-processing"].dead_lettered <= rows["ioc-processing"].published // 50


def test_provider_timeouts_are_retried_and_latencies_are_measured(
        demo: tuple[pn.MessageQueue, DemoRun]) -> None:
    _, results = demo
    rows = _rows(results)
    assert rows["ioc-processing"].retried + rows["scheduled-enrichment"].retried > 0
    for r in results:
        p50, p99 = r.percentile(50), r.percentile(99)
        assert p50 is not None and p99 is not None and 0 <= p50 <= p99, r.queue
        fan_out = len(BROADCAST_GROUPS) if r.kind == "broadcast" else 1
        assert len(r.latencies_ms) == r.consumed, r.queue  # one per handled message
        assert r.consumed <= r.published * fan_out
    delayed_p50 = rows["scheduled-enrichment"].percentile(50)
    assert delayed_p50 is not None and delayed_p50 >= 50  # delays of 50-1000 ms included


def test_the_shape_is_the_same_for_a_seed(demo: tuple[pn.MessageQueue, DemoRun],
                                          tmp_path: Path) -> None:
    _, first = demo
    mq = _fresh()
    try:
        again, _ = run_demo(mq, total=800, alerts_dir=tmp_path)
    finally:
        mq.client.close()

    def shape(run: DemoRun) -> list[tuple[str, str, int, int, int, int]]:
        return [(r.queue, r.kind, r.published, r.consumed, r.dead_lettered, r.retried)
                for r in run]

    assert shape(again) == shape(first)
    assert again.summary.risk_levels == first.summary.risk_levels


def test_the_sample_report_fans_out_to_every_enricher_and_in_to_one_score_each() -> None:
    mq = _fresh()
    seen: list[ScoringStatus] = []
    try:
        verdicts = score_report(mq, progress=seen.append)
    finally:
        mq.client.close()
    values = [i.value for i in extract_iocs(SAMPLE_REPORT)]
    assert [v.ioc.value for v in verdicts] == values
    assert all(v.ok and v.enrichers == dict.fromkeys(ENRICHER_QUEUES, "ok") for v in verdicts)
    levels = {v.ioc.value: v.risk_level for v in verdicts}
    assert (levels["login-verify.example.org"], levels["10.20.30.40"]) == ("critical", "low")
    n = len(values)
    assert seen[-1].describe() == f"{n}/{n} done · enrichment {4 * n}/{4 * n}"


def test_the_command_prints_its_table_within_30_seconds(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PHANTOM_REDIS_URL", "PHANTOM_SETTINGS")}  # the embedded default
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "phantom_notebook.cli", "demo"],
                          capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "phantom-notebook demo on MessageQueue(embedded" in out
    for header in ("queue", "kind", "published", "consumed", "dead-lettered", "retried",
                   "p50 ms", "p99 ms"):
        assert header in out
    for queue in ("ioc-processing", "scheduled-enrichment", "threat-analysis", "alerts",
                  "alerts-live"):
        assert f"│ {queue}" in out
    assert "schema_invalid" in out and "alerts file" in out
    assert "rejecting" not in done.stderr  # the deliberate rejections are not log noise
    n = len(extract_iocs(SAMPLE_REPORT))
    assert f"fan-out/fan-in: {n} indicators of the sample report" in out
    assert f"{n}/{n} done · enrichment {4 * n}/{4 * n}" in out  # the bar's final state
    assert "risk per indicator" in out and "│ login-verify[.]example[.]org" in out
    assert "critical" in out and "4/4" in out
    assert took < 30, f"the demo took {took:.1f} s"
