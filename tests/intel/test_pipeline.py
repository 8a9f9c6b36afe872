"""Fan-out/fan-in scoring: every enricher queue asked, one risk score per indicator."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pytest

import phantom_notebook as pn
from phantom_notebook.core.results.pending import BatchStatus
from phantom_notebook.core.testing import wait_until
from phantom_notebook.intel.catalog import SchemaValidationError
from phantom_notebook.intel.consumers import (
    DomainEnricher,
    FeedReputation,
    HashEnricher,
    IOCEnrichmentConsumer,
    IPEnricher,
)
from phantom_notebook.intel.consumers.analysis import analyze
from phantom_notebook.intel.ioc import IOC
from phantom_notebook.intel.pipeline import (
    ENRICHER_QUEUES,
    ScoringStatus,
    enrich_and_score,
    subscribe_scoring,
)
from phantom_notebook.intel.producers import IOCMessageProducer
from phantom_notebook.intel.schemas import IOCEnrichmentRequest, ThreatAnalysisRequest
from tests.support.collect import Collector

INDICATORS = ["203.0.113.77", "login-verify.example.org", "10.20.30.40",
              "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
              "d41d8cd98f00b204e9800998ecf8427e"]
THREE = {"enrich-network": [IPEnricher(), DomainEnricher()],
         "enrich-reputation": [FeedReputation()], "enrich-malware": [HashEnricher()]}
QUICK_RETRY = pn.RetrySettings(max_retries=1, initial_delay_s=0.05, jitter=0.0)


class Broken:
    name = "broken"

    def supports(self, ioc: IOC) -> bool:
        return True

    def enrich(self, ioc: IOC, request: IOCEnrichmentRequest) -> Mapping[str, Any]:
        raise RuntimeError("provider down")


class Gate:
    """An enricher that holds every lookup until ``open`` is set (a slow provider)."""

    name = "gate"

    def __init__(self) -> None:
        self.open = threading.Event()

    def supports(self, ioc: IOC) -> bool:
        return True

    def enrich(self, ioc: IOC, request: IOCEnrichmentRequest) -> Mapping[str, Any]:
        assert self.open.wait(30), "the test never opened the gate"
        return {"checked": True}


def all_in_one_score(mq: pn.MessageQueue, value: str) -> dict[str, Any]:
    """What one consumer running the same enrichers itself would score ``value``."""
    consumer = IOCEnrichmentConsumer(mq, [e for es in THREE.values() for e in es])
    enriched = consumer.enrich(IOCEnrichmentRequest.model_validate({"ioc": {"value": value}}))
    result = analyze(ThreatAnalysisRequest(ioc=enriched.ioc, enrichments=enriched.enrichments,
                                           reputation=enriched.reputation))
    return {"score": result.risk_score, "factors": [f.factor for f in result.breakdown]}


def test_five_indicators_asked_of_three_enricher_queues_get_five_risk_scores(
        mq: pn.MessageQueue) -> None:
    subscribe_scoring(mq, THREE, alert_threshold=None)
    with mq.worker():
        run = enrich_and_score(mq, INDICATORS, enrichers=list(THREE))
        seen: list[ScoringStatus] = []
        verdicts = run.wait(timeout_s=30, progress=seen.append)
    assert [v.ioc.value for v in verdicts] == INDICATORS
    assert all(v.ok and v.enrichers == dict.fromkeys(THREE, "ok") for v in verdicts)
    for v in verdicts:  # the fan-in scores exactly as one consumer doing it all would
        assert {"score": v.risk_score, "factors": [f.factor for f in v.breakdown]} == \
            all_in_one_score(mq, v.ioc.value), v.ioc.value
    levels = {v.ioc.value: v.risk_level for v in verdicts}
    assert levels["login-verify.example.org"] == "high" and levels["10.20.30.40"] == "low"
    assert seen[-1].describe() == "5/5 done · enrichment 15/15"
    assert len(run.members) == 15 and all(m.done for m in run.members)


def test_an_enricher_queue_that_fails_leaves_a_score_with_min_success_and_says_so(
        mq: pn.MessageQueue) -> None:
    mq.declare("enrich-broken", retry=QUICK_RETRY)
    subscribe_scoring(mq, {**THREE, "enrich-broken": [Broken()]}, alert_threshold=None)
    queues = [*THREE, "enrich-broken"]
    with mq.worker():
        scored = enrich_and_score(mq, INDICATORS, enrichers=queues, min_success=3).wait(30)
        strict = enrich_and_score(mq, INDICATORS[:1], enrichers=queues, min_success=None).wait(30)
    assert [v.ok for v in scored] == [True] * 5
    for v in scored:
        assert v.answered == 3
        assert v.enrichers["enrich-broken"].startswith(
            "failed: EnrichmentFailedError: every enricher failed: broken: RuntimeError")
        [coverage] = [f for f in v.breakdown if f.factor == "coverage"]
        assert coverage.points == 0 and coverage.why.startswith("3 of 4 enrichments answered")
        assert "enrich-broken" in coverage.why
        assert v.as_row()["missing"] == "enrich-broken" and v.as_row()["enrichers"] == "3/4"
    [failed] = strict
    assert not failed.ok and failed.risk_score is None
    assert failed.error.startswith("group_failed: group ") and "3 of 4" in failed.error
    assert failed.as_row()["risk_level"] == "not scored"
    assert mq.dlq("enrich-broken").summary() == {"retries_exhausted": 6}


def test_an_enricher_queue_with_no_worker_times_out_at_the_deadline_and_the_rest_scores(
        mq: pn.MessageQueue) -> None:
    subscribe_scoring(mq, THREE, alert_threshold=None)
    with mq.worker():
        [v] = enrich_and_score(mq, ["198.51.100.23"], enrichers=[*THREE, "enrich-nobody"],
                               deadline_s=1.0).wait(30, progress=False)
    assert v.ok and v.enrichers["enrich-nobody"] == "timeout"
    assert "no outcome before the group's deadline" in v.breakdown[-1].why


def test_progress_is_visible_while_the_enrichers_work(mq: pn.MessageQueue) -> None:
    gate = Gate()
    subscribe_scoring(mq, {"enrich-network": [IPEnricher(), DomainEnricher()],
                           "enrich-slow": [IPEnricher(), gate]}, alert_threshold=None,
                      max_concurrency=5)
    with mq.worker():
        run = enrich_and_score(mq, ["203.0.113.7", "198.51.100.23", "192.0.2.9"],
                               enrichers=["enrich-network", "enrich-slow"])
        slow = [g.members[1] for g in run]
        try:
            assert wait_until(lambda: all(
                (p := m.progress) is not None and p.fraction == 0.5 for m in slow), 20)
            assert {m.progress.note for m in slow if m.progress} == {"gate (2/2)"}
            now = run.status()
            assert (now.scores.done, now.enrichment.done) == (0, 3)
            assert now.enrichment.running == 1.5  # three halfway there
            assert now.describe() == "0/3 done · enrichment 3/6"
        finally:
            gate.open.set()
        seen: list[ScoringStatus] = []
        verdicts = run.wait(timeout_s=30, progress=seen.append)
    assert all(v.ok for v in verdicts)
    assert seen[-1].describe() == "3/3 done · enrichment 6/6"
    assert all(m.progress is not None and m.progress.fraction == 1.0 for m in slow)


def test_members_and_callbacks_carry_the_indicators_tlp_and_the_score_too(
        mq: pn.MessageQueue) -> None:
    subscribe_scoring(mq, THREE, alert_threshold=None)
    red = {"value": "login-verify.example.org", "tlp": "RED", "confidence": 90}
    with mq.worker():
        run = enrich_and_score(mq, [red, "10.0.0.1"], enrichers=list(THREE))
        verdicts = run.wait(30, progress=False)
    assert [v.tlp for v in verdicts] == ["RED", "AMBER"]
    assert [m.peek().tlp for m in run.groups[0].members] == ["RED"] * 3  # type: ignore[union-attr]
    assert verdicts[0].risk_level == "critical"


def test_an_invalid_indicator_is_refused_before_anything_is_published(
        mq: pn.MessageQueue) -> None:
    with pytest.raises(SchemaValidationError, match="ioc.value"):
        enrich_and_score(mq, ["203.0.113.7", {"value": "999.1.1.1", "type": "ipv4"}])
    assert not any(row.depth for row in mq.stats([*ENRICHER_QUEUES, "threat-analysis"]))


def test_a_request_gets_the_enrichment_returned_and_nothing_is_published(
        mq: pn.MessageQueue) -> None:
    published = Collector()
    IOCEnrichmentConsumer(mq, [IPEnricher(), FeedReputation()]).subscribe()
    mq.subscribe("ioc-results", "*", published)
    with mq.worker():
        pending = mq.request("ioc-processing", "ioc.enrichment.request",
                             {"ioc": {"value": "198.51.100.23"}},
                             headers={"pn-schema": "1.0"})
        result = pending.result(timeout=20)
        broadcast = IOCMessageProducer(mq).publish_ioc_enrichment_request("198.51.100.23")
        assert published.wait_for(1)
    assert result["enrichments"]["ip"]["range_name"] == "TEST-NET-2"
    assert [h["feed"] for h in result["reputation"]] == ["feodotracker"]
    assert pending.progress is not None and pending.progress.fraction == 1.0
    assert [e.causation_id for e in published.envelopes] == [broadcast]  # the plain one only


def test_report_indicators_are_related_to_each_other_whatever_the_order(
        mq: pn.MessageQueue) -> None:
    subscribe_scoring(mq, alert_threshold=None, max_concurrency=4)
    with mq.worker():
        verdicts = enrich_and_score(mq, INDICATORS, report_id="incident-7").wait(30)
    for v in verdicts:
        assert v.answered == 4
        [related] = [f for f in v.breakdown if f.factor == "related"]
        assert (related.points, related.why) == (8, "seen together with 4 other indicator(s)")


def test_the_run_fraction_counts_enrichment_and_scores_as_steps() -> None:
    def status(e: tuple[int, int, int, float], s: tuple[int, int, int, float]) -> ScoringStatus:
        return ScoringStatus(BatchStatus(*e), BatchStatus(*s))

    assert status((8, 0, 0, 0.0), (2, 0, 0, 0.0)).fraction == 0.0
    halfway = status((8, 6, 0, 1.0), (2, 0, 0, 0.0))  # 6 done, two halfway
    assert halfway.fraction == 0.7 and halfway.describe() == "0/2 done · enrichment 6/8"
    failed = status((8, 7, 1, 0.0), (2, 1, 1, 0.0))
    assert failed.fraction == 1.0
    assert failed.describe() == "2/2 done, 1 failed · enrichment 8/8, 1 failed"
