"""The message catalog: every schema accepts what it should, refuses what it must, by path."""

from __future__ import annotations

from typing import Any

import pytest

import phantom_notebook as pn
from phantom_notebook.core.model.envelope import Envelope
from phantom_notebook.intel import catalog
from phantom_notebook.intel.catalog import (
    CATALOG,
    SCHEMA_HEADER,
    Catalog,
    MessageSpec,
    SchemaValidationError,
    UnknownMessageTypeError,
)
from phantom_notebook.intel.consumers import IOCEnrichmentConsumer
from phantom_notebook.intel.schemas import IOCEnrichmentRequest, Payload
from tests.support.collect import eventually

IOC = {"value": "hxxp://evil[.]example[.]com/x", "tlp": "amber"}
VALID: dict[str, dict[str, Any]] = {
    "ioc.enrichment.request": {"ioc": IOC},
    "ioc.enrichment.result": {"ioc": IOC, "enrichments": {"ip": {"version": 4}}},
    "ioc.validation.request": {"value": "1.2.3[.]4"},
    "ioc.validation.result": {"value": "1.2.3.4", "valid": True},
    "threat.analysis.request": {"ioc": {"value": "198.51.100.23"}},
    "threat.analysis.result": {"ioc": {"value": "198.51.100.23"}, "risk_score": 40,
                               "risk_level": "medium",
                               "breakdown": [{"factor": "x", "points": 40, "why": "y"}]},
    "threat.campaign.discovery": {"name": "Op Test", "iocs": [IOC], "techniques": ["T1059"]},
    "threat.attribution.analysis": {"subject": "Op Test",
                                    "candidates": [{"actor": "APT0", "confidence": 30}]},
    "data.ingestion.request": {"source": "feed", "format": "csv", "content": "value\n1.2.3.4"},
    "data.ingestion.result": {"source": "feed", "accepted": 1, "rejected": 0},
    "data.validation.request": {"batch_id": "b1", "records": [{"value": "1.2.3.4"}]},
    "data.validation.result": {"batch_id": "b1"},
    "alert.threat.notification": {"alert_id": "a1", "severity": "critical", "title": "APT"},
    "alert.escalation": {"alert_id": "a1", "level": 1, "reason": "late"},
    "alert.acknowledgment": {"alert_id": "a1", "acknowledged_by": "ana"},
    "system.health.check": {"component": "worker", "status": "healthy"},
    "system.metrics.update": {"component": "worker", "metrics": {"rate": 10.5}},
    "system.config.change": {"component": "worker", "key": "prefetch", "old_value": 10,
                             "new_value": 20, "changed_by": "ops"},
}
QUEUES = {"ioc": "ioc-processing", "threat": "threat-analysis", "data": "data-ingestion",
          "alert": "alerts", "system": "system"}
RESULTS = {"ioc": "ioc-results", "threat": "threat-results", "data": "data-results"}


def test_the_catalog_holds_every_message_type_of_the_spec() -> None:
    assert CATALOG.types() == sorted(VALID)
    assert len(CATALOG) == 18


@pytest.mark.parametrize("spec", list(CATALOG), ids=lambda spec: spec.type)
def test_every_type_has_a_model_a_version_a_queue_and_a_priority(spec: MessageSpec) -> None:
    assert issubclass(spec.model, Payload)
    assert spec.version == "1.0" and spec.major == 1
    family = spec.type.split(".")[0]
    expected = RESULTS[family] if spec.type.endswith(".result") else QUEUES[family]
    assert spec.queue == expected, "requests and results travel on separate queues"
    assert isinstance(spec.priority, pn.MessagePriority)
    assert spec.json_schema()["type"] == "object"


@pytest.mark.parametrize("message_type", sorted(VALID))
def test_a_valid_payload_of_every_type_is_accepted_and_comes_back_json_ready(
        message_type: str) -> None:
    data = catalog.validate_outgoing(message_type, VALID[message_type])
    assert isinstance(data, dict)
    again = catalog.validate_outgoing(message_type, data)
    assert again == data


@pytest.mark.parametrize(("message_type", "payload", "problem"), [
    ("ioc.enrichment.request", {}, "ioc: field required"),
    ("ioc.enrichment.request", {"ioc": {}}, "ioc.value: field required"),
    ("ioc.enrichment.request", {"ioc": {"value": "999.1.1.1"}}, "ioc.value: value error"),
    ("ioc.enrichment.request", {"ioc": {"value": "1.2.3.4", "confidence": 101}},
     "ioc.confidence: input should be less than or equal to 100"),
    ("ioc.enrichment.request", {"ioc": IOC, "bogus": 1}, "bogus: extra inputs are not permitted"),
    ("ioc.enrichment.request", {"ioc": {**IOC, "colour": "red"}},
     "ioc.colour: extra inputs are not permitted"),
    ("alert.threat.notification", {"alert_id": "a", "severity": "apocalyptic", "title": "t"},
     "severity: input should be"),
    ("data.validation.request", {"batch_id": "b", "records": [{"value": "x"}, {}]},
     "records[1].value: field required"),
    ("alert.acknowledgment", {"alert_id": "a", "acknowledged_by": "x",
                              "acknowledged_at": "2024-01-01T00:00:00"},
     "acknowledged_at: input should have timezone info"),
    ("system.health.check", [], "<payload>: input should be a valid dictionary"),
])
def test_an_invalid_payload_is_refused_naming_the_field(
        message_type: str, payload: Any, problem: str) -> None:
    with pytest.raises(SchemaValidationError) as caught:
        catalog.validate_outgoing(message_type, payload)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems
    assert caught.value.reason == "schema_invalid"
    assert isinstance(caught.value, pn.ValidationError)


def test_an_indicator_is_refanged_typed_and_normalized_by_its_schema() -> None:
    data = catalog.validate_outgoing("ioc.enrichment.request",
                                     {"ioc": {"value": "hXXps://Evil[.]Example[.]COM:443/a"}})
    assert data["ioc"]["type"] == "url"
    assert data["ioc"]["value"] == "https://evil.example.com/a"


def test_a_model_of_another_type_is_refused() -> None:
    with pytest.raises(SchemaValidationError, match="expected ThreatAlert"):
        catalog.validate_outgoing("alert.threat.notification",
                                  IOCEnrichmentRequest.model_validate({"ioc": IOC}))


def test_an_unknown_type_is_refused_listing_the_known_ones() -> None:
    with pytest.raises(UnknownMessageTypeError, match="ioc.enrichment.request"):
        catalog.get("ioc.teleport.request")


def envelope(payload: Any, version: str, type: str = "ioc.enrichment.request") -> Envelope:
    return Envelope(id="01TEST", type=type, queue="ioc-processing", payload=payload,
                    headers={SCHEMA_HEADER: version})


def test_an_older_consumer_reads_a_newer_minor_and_ignores_its_new_fields() -> None:
    payload = {"ioc": {**IOC, "kill_chain_phase": "c2"}, "priority_hint": "urgent"}
    model = catalog.validate_incoming(envelope(payload, "1.7"))
    assert isinstance(model, IOCEnrichmentRequest)
    assert model.ioc.value == "http://evil.example.com/x"
    assert "priority_hint" not in model.model_dump()


def test_a_message_of_another_major_is_refused_as_schema_invalid() -> None:
    with pytest.raises(SchemaValidationError, match="version 2.0 is not compatible") as caught:
        catalog.validate_incoming(envelope({"ioc": IOC}, "2.0"))
    assert caught.value.reason == "schema_invalid"


def test_the_version_falls_back_to_the_envelope_field_without_the_header() -> None:
    env = Envelope(id="1", type="alert.acknowledgment", queue="alerts", schema_version="1.2",
                   payload={"alert_id": "a", "acknowledged_by": "b"})
    assert catalog.schema_version_of(env) == "1.2"
    assert catalog.validate_incoming(env).alert_id == "a"  # type: ignore[attr-defined]


def test_publish_options_carry_the_schema_version_in_a_header() -> None:
    options = catalog.CATALOG.publish_options("alert.escalation", {"x": "y"})
    assert options["headers"] == {"x": "y", SCHEMA_HEADER: "1.0"}


def test_a_team_can_register_its_own_type_but_not_twice() -> None:
    mine = Catalog(list(CATALOG))
    spec = MessageSpec("team.note", IOCEnrichmentRequest, "3.1", "notes", pn.MessagePriority.LOW)
    mine.register(spec)
    assert mine.get("team.note").accepts("3.0") and not mine.get("team.note").accepts("1.0")
    with pytest.raises(pn.ValidationError, match="already registered"):
        mine.register(spec)
    with pytest.raises(ValueError, match="MAJOR.MINOR"):
        MessageSpec("bad", IOCEnrichmentRequest, "v1", "q", pn.MessagePriority.LOW)


def dead_reasons(mq: pn.MessageQueue, queue: str) -> list[tuple[str, str]]:
    return [(f[b"reason"].decode(), f[b"error"].decode())
            for _, f in mq.client.xrange(mq.queue_keys(queue).dlq)]


def test_another_major_and_a_broken_payload_are_dead_lettered_schema_invalid_by_a_worker(
        mq: pn.MessageQueue) -> None:
    mq.publish("ioc-processing", "ioc.enrichment.request", {"ioc": IOC},
               headers={SCHEMA_HEADER: "2.0"})
    mq.publish("ioc-processing", "ioc.enrichment.request", {"ioc": {"value": "nonsense"}})
    IOCEnrichmentConsumer(mq, enrichers=[]).subscribe()
    with mq.worker():
        assert eventually(lambda: len(dead_reasons(mq, "ioc-processing")) == 2)
    reasons = dead_reasons(mq, "ioc-processing")
    assert {reason for reason, _ in reasons} == {"schema_invalid"}
    errors = " | ".join(error for _, error in reasons)
    assert "version 2.0 is not compatible" in errors and "ioc.value" in errors
    assert mq.stats(["ioc-processing"])[0].depth == 0
