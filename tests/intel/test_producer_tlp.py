"""TLP follows the indicator: producers mark each message at least as strictly as its IOCs.

And the catalog guards ``publish_batch``: a payload its schema refuses never reaches Redis.
"""

from __future__ import annotations

import pytest

import phantom_notebook as pn
from phantom_notebook.intel import extract_iocs
from phantom_notebook.intel.catalog import SchemaValidationError
from phantom_notebook.intel.ioc import IOC
from phantom_notebook.intel.producers import (
    AlertProducer,
    DataIngestionProducer,
    IOCMessageProducer,
    ThreatAnalysisProducer,
)
from phantom_notebook.intel.tlp import TLPDowngradeError
from tests.support.collect import Collector, eventually

from .test_producers import only, stored

REPORT = "The loader beacons to 203.0.113.7 every 60 s (see the partner's note)."


def test_a_green_subscriber_never_receives_an_amber_indicator(mq: pn.MessageQueue) -> None:
    [amber] = extract_iocs(REPORT)  # extracted indicators are TLP:AMBER by default
    green = IOC.parse("198.51.100.9", tlp="GREEN")
    producer = IOCMessageProducer(mq)
    producer.publish_ioc_enrichment_request(amber)
    producer.publish_ioc_enrichment_request(green)
    got = Collector()
    mq.subscribe("ioc-processing", "ioc.*", got, max_tlp="GREEN")
    with mq.worker():
        assert got.wait_for(1)
        assert eventually(lambda: mq.stats(["ioc-processing"])[0].dead == 1)
    assert [p["ioc"]["value"] for p in got.payloads] == ["198.51.100.9"]
    [letter] = mq.dlq("ioc-processing").list()
    assert letter.reason == "tlp_denied" and letter.envelope is not None
    assert letter.envelope.payload["ioc"]["value"] == "203.0.113.7"


def test_an_enrichment_request_is_marked_with_its_indicators_tlp(mq: pn.MessageQueue) -> None:
    IOCMessageProducer(mq).publish_ioc_enrichment_request(IOC.parse("203.0.113.7", tlp="RED"))
    assert only(mq, "ioc-processing").tlp == "RED"


def test_a_raw_string_indicator_takes_the_conservative_default_amber(
        mq: pn.MessageQueue) -> None:
    IOCMessageProducer(mq).publish_ioc_enrichment_request("203.0.113.7")
    assert only(mq, "ioc-processing").tlp == "AMBER"


def test_an_explicit_stricter_tlp_wins(mq: pn.MessageQueue) -> None:
    IOCMessageProducer(mq).publish_ioc_enrichment_request(
        IOC.parse("203.0.113.7", tlp="GREEN"), tlp="AMBER+STRICT")
    assert only(mq, "ioc-processing").tlp == "AMBER+STRICT"


def test_an_explicit_looser_tlp_than_the_indicator_is_refused_before_anything_is_written(
        mq: pn.MessageQueue) -> None:
    amber = IOC.parse("203.0.113.7")
    with pytest.raises(TLPDowngradeError, match=r"tlp='CLEAR' is looser than TLP:AMBER of "
                                                r"ipv4 203\[\.\]0\[\.\]113\[\.\]7"):
        IOCMessageProducer(mq).publish_ioc_enrichment_request(amber, tlp="CLEAR")
    with pytest.raises(pn.ValidationError):  # a PhantomError subclass like every refusal
        ThreatAnalysisProducer(mq).publish_analysis_request(amber, tlp="GREEN")
    assert stored(mq, "ioc-processing") == [] and stored(mq, "threat-analysis") == []


def test_a_message_carrying_several_indicators_takes_the_strictest(
        mq: pn.MessageQueue) -> None:
    iocs = [IOC.parse("evil.example.com", tlp="GREEN"), IOC.parse("203.0.113.7", tlp="RED")]
    ThreatAnalysisProducer(mq).publish_campaign_discovery("Op Test", iocs)
    AlertProducer(mq).publish_threat_alert("high", "beaconing", related_iocs=iocs)
    ThreatAnalysisProducer(mq).publish_attribution_analysis(
        "Op Test", [{"actor": "APT0", "confidence": 20}], iocs[:1])
    assert [m.tlp for m in stored(mq, "threat-analysis")] == ["RED", "GREEN"]
    assert only(mq, "alerts").tlp == "RED"


def test_batch_enrichment_marks_each_message_with_its_own_indicator(
        mq: pn.MessageQueue) -> None:
    iocs = [IOC.parse("198.51.100.1", tlp="CLEAR"), IOC.parse("198.51.100.2", tlp="RED")]
    IOCMessageProducer(mq).publish_batch_enrichment(iocs)
    marks = {m.payload["ioc"]["value"]: m.tlp for m in stored(mq, "ioc-processing")}
    assert marks == {"198.51.100.1": "CLEAR", "198.51.100.2": "RED"}


def test_batch_enrichment_refuses_a_tlp_looser_than_its_strictest_indicator(
        mq: pn.MessageQueue) -> None:
    iocs = [IOC.parse("198.51.100.1", tlp="GREEN"), IOC.parse("198.51.100.2", tlp="AMBER")]
    with pytest.raises(TLPDowngradeError, match="strictest indicator of the batch"):
        IOCMessageProducer(mq).publish_batch_enrichment(iocs, tlp="GREEN")
    IOCMessageProducer(mq).publish_batch_enrichment(iocs, tlp="RED")
    assert {m.tlp for m in stored(mq, "ioc-processing")} == {"RED"}


def test_a_follow_up_is_never_looser_than_the_message_it_answers(mq: pn.MessageQueue) -> None:
    producer = IOCMessageProducer(mq)
    producer.publish_ioc_enrichment_request(IOC.parse("203.0.113.7", tlp="AMBER+STRICT"))
    request = only(mq, "ioc-processing")
    result = {"ioc": {"value": "203.0.113.7", "tlp": "GREEN"}, "enrichments": {}}
    producer.publish_ioc_enrichment_result(result, context=request)
    assert only(mq, "ioc-results").tlp == "AMBER+STRICT"


def test_an_ingestion_request_travels_with_the_reports_tlp(mq: pn.MessageQueue) -> None:
    DataIngestionProducer(mq).publish_ingestion_request("partner", REPORT, tlp="RED")
    assert only(mq, "data-ingestion").tlp == "RED"


def test_publish_batch_refuses_a_catalog_payload_its_schema_refuses(
        mq: pn.MessageQueue) -> None:
    good = pn.Message("ioc.enrichment.request", {"ioc": {"type": "ipv4", "value": "1.2.3.4"}})
    bad = pn.Message("ioc.enrichment.request", {"ioc": {"type": "ipv4", "value": "999.1.1.1"}})
    with pytest.raises(SchemaValidationError, match="octet 999 > 255") as caught:
        IOCMessageProducer(mq).publish_batch("ioc-processing", [good, bad])
    assert isinstance(caught.value, pn.PhantomError)
    assert caught.value.reason == "schema_invalid"
    assert stored(mq, "ioc-processing") == []


def test_publish_batch_raises_a_hand_built_message_to_its_indicators_tlp(
        mq: pn.MessageQueue) -> None:
    built = pn.Message("ioc.enrichment.request", {"ioc": {"value": "203.0.113.7"}})  # CLEAR
    untyped = pn.Message("team.custom", {"anything": True})  # not in the catalog: as given
    IOCMessageProducer(mq).publish_batch("ioc-processing", [built, untyped])
    assert sorted(m.tlp for m in stored(mq, "ioc-processing")) == ["AMBER", "CLEAR"]
