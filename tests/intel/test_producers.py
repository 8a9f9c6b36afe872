"""Typed producers set the type, queue, priority, schema version and correlation of messages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import phantom_notebook as pn
from phantom_notebook.intel.catalog import SCHEMA_HEADER, SchemaValidationError
from phantom_notebook.intel.ioc import IOC
from phantom_notebook.intel.producers import (
    AlertProducer,
    DataIngestionProducer,
    IOCMessageProducer,
    SystemProducer,
    ThreatAnalysisProducer,
    follow_up,
)

P = pn.MessagePriority


def stored(mq: pn.MessageQueue, queue: str) -> list[pn.Envelope]:
    """Every message waiting in ``queue``, decoded, highest priority first."""
    out = []
    for stream in mq.queue_keys(queue).streams:
        out += [mq.codec.open(fields[b"m"]) for _, fields in mq.client.xrange(stream)]
    return out


def only(mq: pn.MessageQueue, queue: str) -> pn.Envelope:
    [message] = stored(mq, queue)
    return message


RESULT = {"ioc": {"value": "203.0.113.7"}, "enrichments": {}}
ANALYSIS = {"ioc": {"value": "203.0.113.7"}, "risk_score": 10, "risk_level": "low",
            "breakdown": []}
CASES: list[tuple[str, Callable[[pn.MessageQueue], Any], str, str, P]] = [
    ("enrichment request", lambda mq: IOCMessageProducer(mq).publish_ioc_enrichment_request(
        "203.0.113.7"), "ioc.enrichment.request", "ioc-processing", P.HIGH),
    ("enrichment result", lambda mq: IOCMessageProducer(mq).publish_ioc_enrichment_result(
        RESULT), "ioc.enrichment.result", "ioc-results", P.NORMAL),
    ("validation request", lambda mq: IOCMessageProducer(mq).publish_ioc_validation_request(
        "evil[.]example[.]com"), "ioc.validation.request", "ioc-processing", P.NORMAL),
    ("validation result", lambda mq: IOCMessageProducer(mq).publish_ioc_validation_result(
        {"value": "x", "valid": False, "error": "no"}), "ioc.validation.result",
     "ioc-results", P.NORMAL),
    ("analysis request", lambda mq: ThreatAnalysisProducer(mq).publish_analysis_request(
        IOC.parse("203.0.113.7")), "threat.analysis.request", "threat-analysis", P.NORMAL),
    ("analysis result", lambda mq: ThreatAnalysisProducer(mq).publish_analysis_result(
        ANALYSIS), "threat.analysis.result", "threat-results", P.NORMAL),
    ("campaign", lambda mq: ThreatAnalysisProducer(mq).publish_campaign_discovery(
        "Op Test", ["203.0.113.7"], ["T1059"]), "threat.campaign.discovery", "threat-analysis",
     P.LOW),
    ("attribution", lambda mq: ThreatAnalysisProducer(mq).publish_attribution_analysis(
        "Op Test", [{"actor": "APT0", "confidence": 20}]), "threat.attribution.analysis",
     "threat-analysis", P.LOW),
    ("ingestion request", lambda mq: DataIngestionProducer(mq).publish_ingestion_request(
        "feed", "1.2.3.4"), "data.ingestion.request", "data-ingestion", P.NORMAL),
    ("ingestion result", lambda mq: DataIngestionProducer(mq).publish_ingestion_result(
        {"source": "feed", "accepted": 0, "rejected": 0}), "data.ingestion.result",
     "data-results", P.NORMAL),
    ("data validation request", lambda mq: DataIngestionProducer(mq).publish_validation_request(
        ["1.2.3.4"]), "data.validation.request", "data-ingestion", P.NORMAL),
    ("data validation result", lambda mq: DataIngestionProducer(mq).publish_validation_result(
        {"batch_id": "b"}), "data.validation.result", "data-results", P.NORMAL),
    ("critical alert", lambda mq: AlertProducer(mq).publish_threat_alert(
        "critical", "APT", "d", "apt-activity"), "alert.threat.notification", "alerts",
     P.CRITICAL),
    ("high alert", lambda mq: AlertProducer(mq).publish_threat_alert("high", "t"),
     "alert.threat.notification", "alerts", P.HIGH),
    ("medium alert", lambda mq: AlertProducer(mq).publish_threat_alert("medium", "t"),
     "alert.threat.notification", "alerts", P.NORMAL),
    ("low alert", lambda mq: AlertProducer(mq).publish_threat_alert("low", "t"),
     "alert.threat.notification", "alerts", P.LOW),
    ("escalation", lambda mq: AlertProducer(mq).publish_escalation("a1", 1, "late"),
     "alert.escalation", "alerts", P.CRITICAL),
    ("acknowledgment", lambda mq: AlertProducer(mq).publish_acknowledgment("a1", "ana"),
     "alert.acknowledgment", "alerts", P.HIGH),
    ("health", lambda mq: SystemProducer(mq).publish_health_check("w", "healthy"),
     "system.health.check", "system", P.LOW),
    ("metrics", lambda mq: SystemProducer(mq).publish_metrics("w", {"rate": 1.0}),
     "system.metrics.update", "system", P.LOW),
    ("config", lambda mq: SystemProducer(mq).publish_config_change("w", "k", 1, 2, "ops"),
     "system.config.change", "system", P.NORMAL),
]


@pytest.mark.parametrize(("name", "publish", "message_type", "queue", "priority"), CASES,
                         ids=[case[0] for case in CASES])
def test_each_producer_method_publishes_its_type_to_its_queue_with_its_priority(
        mq: pn.MessageQueue, name: str, publish: Callable[[pn.MessageQueue], Any],
        message_type: str, queue: str, priority: P) -> None:
    message_id = publish(mq)
    message = only(mq, queue)
    assert (message.id, message.type, message.priority) == (message_id, message_type, priority)
    assert message.headers[SCHEMA_HEADER] == "1.0"


def test_a_result_is_correlated_to_its_request_and_shares_its_trace(
        mq: pn.MessageQueue) -> None:
    producer = IOCMessageProducer(mq)
    producer.publish_ioc_enrichment_request("203.0.113.7")
    request = only(mq, "ioc-processing")
    producer.publish_ioc_enrichment_result(RESULT, context=request, queue="ioc-results")
    result = only(mq, "ioc-results")
    assert (result.correlation_id, result.causation_id) == (request.id, request.id)
    assert result.trace_id == request.trace_id and result.traceparent != request.traceparent


def test_a_follow_up_keeps_the_correlation_id_of_a_correlated_cause() -> None:
    cause = pn.Envelope(id="B", type="t", queue="q", payload=None, correlation_id="A",
                        traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    fields = follow_up(cause)
    assert (fields["correlation_id"], fields["causation_id"]) == ("A", "B")
    assert fields["traceparent"].split("-")[1] == "1" * 32
    assert follow_up(None) == {}


def test_the_producer_origin_travels_in_a_header(mq: pn.MessageQueue) -> None:
    SystemProducer(mq, origin="notebook-7").publish_metrics("w", {"x": 1})
    assert only(mq, "system").headers["pn-producer"] == "notebook-7"


def test_an_invalid_payload_is_refused_before_anything_is_written(mq: pn.MessageQueue) -> None:
    with pytest.raises(SchemaValidationError, match=r"ioc\.value: value error"):
        IOCMessageProducer(mq).publish_ioc_enrichment_request("999.1.1.1")
    with pytest.raises(SchemaValidationError, match="severity"):
        AlertProducer(mq).publish_threat_alert("apocalyptic", "t")
    assert stored(mq, "ioc-processing") == [] and stored(mq, "alerts") == []


def test_an_alert_carries_everything_the_spec_lists(mq: pn.MessageQueue) -> None:
    AlertProducer(mq).publish_threat_alert(
        "critical", "APT Group Activity Detected", "indicators in traffic", "apt-activity",
        ["evil[.]example[.]com", IOC.parse("203.0.113.7")],
        [{"action": "isolate-systems", "automated": True}, {"action": "block-indicators"}],
        ["srv-01"], ["apt", "critical"], alert_id="alert-1")
    payload = only(mq, "alerts").payload
    assert payload["alert_id"] == "alert-1" and payload["category"] == "apt-activity"
    assert [i["value"] for i in payload["related_iocs"]] == ["evil.example.com", "203.0.113.7"]
    assert [a["automated"] for a in payload["actions"]] == [True, False]
    assert (payload["affected_systems"], payload["tags"]) == (["srv-01"], ["apt", "critical"])


@pytest.mark.parametrize("progress", [False, True])
def test_batch_enrichment_publishes_every_ioc_in_one_report_with_high_priority(
        mq: pn.MessageQueue, progress: bool) -> None:
    iocs = [f"198.51.100.{n}" for n in range(1, 26)]
    ids = IOCMessageProducer(mq).publish_batch_enrichment(iocs, progress=progress,
                                                          chunk_size=10, report_id="r-9")
    messages = stored(mq, "ioc-processing")
    assert len(ids) == len(messages) == 25 and set(ids) == {m.id for m in messages}
    assert {m.payload["report_id"] for m in messages} == {"r-9"}
    assert {m.priority for m in messages} == {P.HIGH}
    assert {m.headers[SCHEMA_HEADER] for m in messages} == {"1.0"}


def test_a_batch_without_a_report_id_gets_one_of_its_own(mq: pn.MessageQueue) -> None:
    IOCMessageProducer(mq).publish_batch_enrichment(["203.0.113.1", "203.0.113.2"])
    reports = {m.payload["report_id"] for m in stored(mq, "ioc-processing")}
    assert len(reports) == 1 and reports.pop().startswith("batch-")
