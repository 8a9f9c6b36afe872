"""Built-in consumers do real work offline: enrichers, feeds, validation, risk, the pipeline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

import phantom_notebook as pn
from phantom_notebook.intel.consumers import (
    DataIngestionConsumer,
    DataValidationConsumer,
    DomainEnricher,
    FeedReputation,
    HashEnricher,
    IOCEnrichmentConsumer,
    IPEnricher,
    RelationshipEnricher,
    ThreatAnalysisConsumer,
    classify_ip,
    parse_feodo_json,
    parse_threatfox_csv,
    parse_urlhaus_csv,
    risk_score,
    sample_feeds,
    validate_value,
)
from phantom_notebook.intel.consumers.analysis import analyze
from phantom_notebook.intel.ioc import IOC
from phantom_notebook.intel.producers import DataIngestionProducer, IOCMessageProducer
from phantom_notebook.intel.schemas import (
    DataIngestionRequest,
    DataValidationRequest,
    IOCEnrichmentRequest,
    IOCValidationRequest,
    ThreatAnalysisRequest,
)
from tests.support.collect import Collector


def request(value: str, **fields: Any) -> IOCEnrichmentRequest:
    return IOCEnrichmentRequest.model_validate({"ioc": {"value": value}, **fields})


@pytest.mark.parametrize(("value", "category", "cidr"), [
    ("10.1.2.3", "private", "10.0.0.0/8"),
    ("172.31.255.1", "private", "172.16.0.0/12"),
    ("192.168.1.1", "private", "192.168.0.0/16"),
    ("100.64.0.1", "shared", "100.64.0.0/10"),
    ("127.0.0.1", "loopback", "127.0.0.0/8"),
    ("169.254.10.10", "link-local", "169.254.0.0/16"),
    ("192.0.2.10", "documentation", "192.0.2.0/24"),
    ("198.51.100.23", "documentation", "198.51.100.0/24"),
    ("203.0.113.7", "documentation", "203.0.113.0/24"),
    ("224.0.0.251", "multicast", "224.0.0.0/4"),
    ("255.255.255.255", "broadcast", "255.255.255.255/32"),
    ("240.1.1.1", "reserved", "240.0.0.0/4"),
    ("8.8.8.8", "global", None),
    ("::1", "loopback", "::1/128"),
    ("2001:db8::1", "documentation", "2001:db8::/32"),
    ("fd00::1", "private", "fc00::/7"),
    ("fe80::1", "link-local", "fe80::/10"),
    ("ff02::1", "multicast", "ff00::/8"),
    ("2606:4700::1111", "global", None),
    ("10.20.0.0/16", "private", "10.0.0.0/8"),
])
def test_ip_enrichment_classifies_each_well_known_range(
        value: str, category: str, cidr: str | None) -> None:
    ioc = IOC.parse(value)
    assert IPEnricher().supports(ioc)
    data = IPEnricher().enrich(ioc, request(value))
    assert (data["category"], data["range"]) == (category, cidr)
    assert data["version"] == (6 if ":" in value else 4)
    assert data["is_global"] is (category == "global")


def test_a_network_is_described_with_its_size() -> None:
    data = classify_ip("10.20.0.0/16")
    assert (data["prefix_length"], data["num_addresses"]) == (16, 65536)


@pytest.mark.parametrize(("value", "expected"), [
    ("www.evil.example.co.uk", {"registered_domain": "example.co.uk", "subdomain": "www.evil",
                                "suffix": "co.uk", "tld": "uk"}),
    ("example.com", {"registered_domain": "example.com", "subdomain": None, "suffix": "com"}),
    ("https://a.b.example.org:8443/x?q=1", {"registered_domain": "example.org",
                                            "subdomain": "a.b", "port": 8443, "path": "/x",
                                            "query": "q=1", "is_ip_host": False}),
    ("http://203.0.113.5/bin", {"is_ip_host": True, "host": "203.0.113.5"}),
    ("billing@pay.example.net", {"local_part": "billing", "registered_domain": "example.net"}),
    ("xn--80ak6aa92e.com", {"idn": True, "registered_domain": "xn--80ak6aa92e.com"}),
])
def test_domain_enrichment_splits_hosts_offline(value: str, expected: Mapping[str, Any]) -> None:
    data = DomainEnricher().enrich(IOC.parse(value), request(value))
    assert {k: data[k] for k in expected} == expected


@pytest.mark.parametrize(("value", "algorithm", "bits", "benign"), [
    ("d41d8cd98f00b204e9800998ecf8427e", "md5", 128, "md5 of empty input"),
    ("0cc175b9c0f1b6a831c399e269772661", "md5", 128, None),
    ("a9993e364706816aba3e25717850c26c9cd0d89d", "sha1", 160, None),
    ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "sha256", 256,
     "sha256 of empty input"),
    ("ab" * 64, "sha512", 512, None),
])
def test_hash_enrichment_names_the_algorithm_and_flags_benign_digests(
        value: str, algorithm: str, bits: int, benign: str | None) -> None:
    data = HashEnricher().enrich(IOC.parse(value), request(value))
    assert (data["algorithm"], data["bits"], data["known_benign"]) == (algorithm, bits, benign)
    assert not HashEnricher().supports(IOC.parse("example.com"))


def test_each_sample_feed_format_parses_into_validated_entries() -> None:
    feeds = {feed.name: feed for feed in sample_feeds()}
    assert {name: len(feed) for name, feed in feeds.items()} == \
        {"urlhaus": 4, "feodotracker": 3, "threatfox": 5}
    tf = {e.value: e for e in feeds["threatfox"].entries}
    assert tf["203.0.113.77"].threat == "botnet_cc"  # ip:port listed under its address
    assert tf["203.0.113.77"].malware == "Cobalt Strike"
    assert feeds["feodotracker"].entries[2].value == "2001:db8::bad:c0de"


def test_feed_parsers_skip_rows_that_do_not_hold_an_indicator() -> None:
    assert parse_urlhaus_csv('# comment\n"1","2024-01-01","not a url","online"\n') == []
    assert parse_threatfox_csv('"2024", "1", "x", "unknown_type", "t", "", "", "", "", "1", '
                               '"", "", "0", "r"\n') == []
    assert parse_feodo_json('[{"ip_address": "999.1.1.1"}, {"port": 1}, 3]') == []


@pytest.mark.parametrize(("value", "feeds", "matches"), [
    ("198.51.100.23", {"feodotracker"}, {"exact"}),
    ("login-verify.example.org", {"threatfox"}, {"exact", "url-host"}),
    ("update-check.example.com", {"urlhaus"}, {"url-host"}),
    ("203.0.113.45", {"urlhaus"}, {"url-host"}),
    ("https://login-verify.example.org/gate.php", {"threatfox"}, {"exact"}),
    ("5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8", {"threatfox"},
     {"exact"}),
    ("8.8.8.8", set(), set()),
])
def test_local_feed_reputation_finds_listings_and_listed_urls_hosted_on_an_ioc(
        value: str, feeds: set[str], matches: set[str]) -> None:
    data = FeedReputation().enrich(IOC.parse(value), request(value))
    assert {h["feed"] for h in data["hits"]} == feeds
    assert {h["match"] for h in data["hits"]} == matches
    assert data["listed"] is ("exact" in matches)


def test_iocs_of_one_report_are_related_both_ways_in_redis_with_a_ttl(
        mq: pn.MessageQueue) -> None:
    rel = RelationshipEnricher(mq, ttl_s=600)
    first = rel.enrich(IOC.parse("203.0.113.7"), request("203.0.113.7", report_id="r1"))
    second = rel.enrich(IOC.parse("evil.example.com"),
                        request("evil.example.com", report_id="r1", related=["md5:" + "a" * 32]))
    assert first["related"] == []
    assert second["related"] == ["ipv4:203.0.113.7", "md5:" + "a" * 32]
    assert rel.related(IOC.parse("203.0.113.7")) == ["domain:evil.example.com"]
    assert 0 < mq.client.ttl(rel.rel_key("ipv4:203.0.113.7")) <= 600


class Broken:
    name = "broken"

    def supports(self, ioc: IOC) -> bool:
        return True

    def enrich(self, ioc: IOC, request: IOCEnrichmentRequest) -> Mapping[str, Any]:
        raise RuntimeError("provider down")


def test_one_failing_enricher_is_reported_and_the_others_still_run(mq: pn.MessageQueue) -> None:
    consumer = IOCEnrichmentConsumer(mq, [Broken(), IPEnricher()])
    result = consumer.enrich(request("10.0.0.1"))
    assert result.errors == {"broken": "RuntimeError: provider down"}
    assert result.enrichments["ip"]["category"] == "private"


def test_an_enricher_switched_off_by_the_request_options_is_skipped(mq: pn.MessageQueue) -> None:
    consumer = IOCEnrichmentConsumer(mq)
    on = consumer.enrich(request("198.51.100.23"))
    off = consumer.enrich(request("198.51.100.23", options={"include_reputation": False}))
    assert [h.feed for h in on.reputation] == ["feodotracker"] and off.reputation == []
    assert "reputation" not in off.enrichments and "ip" in off.enrichments


@pytest.mark.parametrize(("value", "valid", "normalized"), [
    ("hxxps://Evil[.]Example[.]com/a", True, "https://evil.example.com/a"),
    ("1.2.3[.]4", True, "1.2.3.4"),
    ("999.1.1.1", False, None),
])
def test_a_single_value_is_validated_refanged_and_normalized(
        value: str, valid: bool, normalized: str | None) -> None:
    result = validate_value(IOCValidationRequest(value=value))
    assert (result.valid, result.normalized) == (valid, normalized)
    assert (result.error is None) is valid


def batch(batch_id: str, *values: str) -> DataValidationRequest:
    return DataValidationRequest.model_validate(
        {"batch_id": batch_id, "records": [{"value": v} for v in values], "source": "feed"})


def test_a_batch_is_sanitized_and_deduplicated_within_itself_and_a_recent_window(
        mq: pn.MessageQueue) -> None:
    consumer = DataValidationConsumer(mq, recent_window_s=60)
    first = consumer.validate_batch(batch("b1", "evil[.]example[.]com", "EVIL.example.com",
                                          "not an ioc", "198.51.100.23"))
    assert [i.value for i in first.valid] == ["evil.example.com", "198.51.100.23"]
    assert [(d.key, d.where) for d in first.duplicates] == [("domain:evil.example.com", "batch")]
    assert [r.value for r in first.invalid] == ["not an ioc"]
    second = consumer.validate_batch(batch("b2", "198.51.100.23", "203.0.113.9"))
    assert [i.value for i in second.valid] == ["203.0.113.9"]
    assert [(d.key, d.where) for d in second.duplicates] == [("ipv4:198.51.100.23", "recent")]
    again = consumer.validate_batch(batch("b1", "198.51.100.23"))  # a redelivery of b1
    assert [i.value for i in again.valid] == ["198.51.100.23"]


@pytest.mark.parametrize(("value", "fields", "level", "factors"), [
    ("login-verify.example.org", {"confidence": 90}, "critical",
     {"reputation", "threat", "feed confidence", "confidence", "tlp"}),
    ("198.51.100.23", {}, "medium", {"reputation", "network", "threat"}),
    ("10.0.0.1", {"tlp": "clear"}, "low", {"confidence", "network"}),
    ("d41d8cd98f00b204e9800998ecf8427e", {"tlp": "red"}, "low", {"benign", "tlp"}),
])
def test_the_risk_score_is_explained_factor_by_factor(
        mq: pn.MessageQueue, value: str, fields: dict[str, Any], level: str,
        factors: set[str]) -> None:
    enriched = IOCEnrichmentConsumer(mq, default_enrichers_without_redis()).enrich(
        IOCEnrichmentRequest.model_validate({"ioc": {"value": value, **fields}}))
    req = ThreatAnalysisRequest(ioc=enriched.ioc, enrichments=enriched.enrichments,
                                reputation=enriched.reputation)
    score, breakdown = risk_score(req)
    assert factors <= {f.factor for f in breakdown}
    assert score == max(0, min(100, sum(f.points for f in breakdown)))
    assert analyze(req).risk_level == level
    assert all(f.why for f in breakdown)


def default_enrichers_without_redis() -> list[Any]:
    return [IPEnricher(), DomainEnricher(), HashEnricher(), FeedReputation()]


def test_ingestion_reads_csv_content_into_iocs(mq: pn.MessageQueue) -> None:
    result = DataIngestionConsumer(mq).ingest(DataIngestionRequest(
        source="partner", format="csv", content="indicator,tlp\nevil[.]example[.]com,green\n"
                                                "999.1.1.1,red\n", tags=["partner"]))
    assert (result.accepted, result.rejected) == (1, 1)
    assert (result.iocs[0].value, result.iocs[0].tlp) == ("evil.example.com", "GREEN")
    assert result.errors[0].startswith("line 3:")


def test_the_pipeline_enriches_a_request_and_answers_on_the_same_trace(
        mq: pn.MessageQueue) -> None:
    results = Collector()
    IOCEnrichmentConsumer(mq).subscribe()
    mq.subscribe("ioc-results", "ioc.enrichment.result", results)
    request_id = IOCMessageProducer(mq, origin="analyst").publish_ioc_enrichment_request(
        "198.51.100.23", report_id="report-1")
    [request_env] = [mq.codec.open(f[b"m"]) for s in mq.queue_keys("ioc-processing").streams
                     for _, f in mq.client.xrange(s)]
    with mq.worker():
        assert results.wait_for(1)
    result = results.envelopes[0]
    assert result.type == "ioc.enrichment.result"
    assert (result.causation_id, result.correlation_id) == (request_id, request_id)
    assert result.trace_id == request_env.trace_id
    payload = result.payload
    assert payload["ioc"]["value"] == "198.51.100.23"
    assert payload["enrichments"]["ip"]["range_name"] == "TEST-NET-2"
    assert [h["feed"] for h in payload["reputation"]] == ["feodotracker"]


def test_validation_analysis_and_alerting_chain_through_workers(mq: pn.MessageQueue) -> None:
    alerts, results = Collector(), Collector()
    DataValidationConsumer(mq, forward_queue="ioc-processing").subscribe()
    mq.subscribe("data-results", "data.validation.result", results)
    IOCEnrichmentConsumer(mq, result_queue="ioc-results",
                          analysis_queue="threat-analysis").subscribe()
    ThreatAnalysisConsumer(mq, result_queue="analysis-results").subscribe()
    mq.subscribe("alerts", "alert.*", alerts)
    mq.subscribe("analysis-results", "threat.analysis.result", Collector())
    mq.subscribe("ioc-results", "ioc.enrichment.result", Collector())
    DataIngestionProducer(mq).publish_validation_request(
        [{"value": "login-verify[.]example[.]org", "confidence": 95}, {"value": "10.0.0.1"}],
        batch_id="b-7")
    with mq.worker():
        assert results.wait_for(1) and alerts.wait_for(1)
    assert [v["value"] for v in results.payloads[0]["valid"]] == ["login-verify.example.org",
                                                                  "10.0.0.1"]
    alert = alerts.envelopes[0]
    assert alert.payload["severity"] == "critical" and alert.priority == pn.MessagePriority.CRITICAL
    assert alert.payload["related_iocs"][0]["value"] == "login-verify.example.org"
    assert alert.trace_id == results.envelopes[0].trace_id
