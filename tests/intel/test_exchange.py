"""Indicators move in and out as text, CSV, STIX 2.1 (TLP 2.0 markings) and MISP events."""

from __future__ import annotations

import json
from typing import Any

import pytest

import phantom_notebook as pn
from phantom_notebook.intel.exchange import (
    MISP_TYPES,
    TLP2_MARKING_IDS,
    iocs_from_csv,
    iocs_from_misp,
    iocs_from_stix,
    iocs_from_text,
    publish_indicators,
    read_indicators,
    to_csv,
    to_misp_event,
    to_stix_bundle,
)
from phantom_notebook.intel.ioc import IOC
from phantom_notebook.intel.normalize import IOCType
from phantom_notebook.intel.schemas import IOCEnrichmentResult, ThreatAnalysisResult
from phantom_notebook.intel.stix import stix_pattern
from phantom_notebook.intel.tlp import TLP

SHA256 = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"
TLP2 = {  # the OASIS TLP 2.0 marking-definition ids
    "CLEAR": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "GREEN": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "AMBER": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "AMBER+STRICT": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "RED": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
TLP1_GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"


def indicator(n: int, pattern: str, marking: str | None = None, **extra: Any) -> dict[str, Any]:
    obj = {"type": "indicator", "spec_version": "2.1",
           "id": f"indicator--00000000-0000-4000-8000-00000000000{n}",
           "created": "2024-05-01T00:00:00.000Z", "modified": "2024-05-01T00:00:00.000Z",
           "pattern": pattern, "pattern_type": "stix", "valid_from": "2024-05-01T00:00:00Z",
           **extra}
    if marking:
        obj["object_marking_refs"] = [marking]
    return obj


BUNDLE = {"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000000", "objects": [
    {"type": "identity", "spec_version": "2.1",
     "id": "identity--00000000-0000-4000-8000-0000000000aa", "created": "2024-05-01T00:00:00Z",
     "modified": "2024-05-01T00:00:00Z", "name": "Partner CERT", "identity_class": "organization"},
    indicator(1, "[ipv4-addr:value = '198.51.100.23']", TLP2["RED"], confidence=90,
              created_by_ref="identity--00000000-0000-4000-8000-0000000000aa"),
    indicator(2, "[domain-name:value = 'Login-Verify.example.org']", TLP2["GREEN"],
              labels=["phishing"]),
    indicator(3, f"[file:hashes.'SHA-256' = '{SHA256}']", TLP1_GREEN),
    indicator(4, "[url:value = 'http://203.0.113.45/bins/mozi.m'] OR "
                 "[email-addr:value = 'billing@pay.example.net']", TLP2["AMBER+STRICT"]),
    indicator(5, "[ipv4-addr:value = '10.0.0.0/8']"),
    indicator(6, "[process:pid = 4]"),
    {"type": "malware", "spec_version": "2.1",
     "id": "malware--00000000-0000-4000-8000-0000000000bb", "created": "2024-05-01T00:00:00Z",
     "modified": "2024-05-01T00:00:00Z", "name": "Mozi",
     "is_family": True},
]}


def test_a_stix_bundle_yields_typed_iocs_with_their_tlp_and_metadata() -> None:
    read = iocs_from_stix(BUNDLE)
    got = {(i.type, i.value): i for i in read}
    assert set(got) == {
        (IOCType.IPV4, "198.51.100.23"), (IOCType.DOMAIN, "login-verify.example.org"),
        (IOCType.SHA256, SHA256), (IOCType.URL, "http://203.0.113.45/bins/mozi.m"),
        (IOCType.EMAIL, "billing@pay.example.net"), (IOCType.CIDR, "10.0.0.0/8")}
    ip = got[(IOCType.IPV4, "198.51.100.23")]
    assert (ip.tlp, ip.confidence, ip.source) == (TLP.RED, 90, "Partner CERT")
    assert got[(IOCType.DOMAIN, "login-verify.example.org")].tags == ("phishing",)
    assert got[(IOCType.SHA256, SHA256)].tlp is TLP.GREEN  # a TLP 1.0 marking still counts
    assert got[(IOCType.EMAIL, "billing@pay.example.net")].tlp is TLP.AMBER_STRICT
    assert got[(IOCType.CIDR, "10.0.0.0/8")].tlp is TLP.AMBER  # unmarked: the default
    assert read.rejected == []


def test_a_broken_stix_object_is_reported_and_the_rest_still_read() -> None:
    broken = indicator(7, "[ipv4-addr:value = ")
    read = iocs_from_stix({**BUNDLE, "objects": [broken, indicator(1, "[url:value = 'x']"),
                                                 *BUNDLE["objects"]]})
    assert len(read) == 6
    assert [where for where, _ in read.rejected] == [broken["id"], indicator(1, "")["id"]]
    assert "invalid STIX object" in read.rejected[0][1] and "not a valid url" in \
        read.rejected[1][1]


def test_the_stix_round_trip_keeps_iocs_and_marks_them_with_official_tlp2_ids() -> None:
    iocs = list(iocs_from_stix(BUNDLE))
    bundle = to_stix_bundle(iocs)
    markings = {o["id"]: o for o in bundle["objects"] if o["type"] == "marking-definition"}
    assert set(markings) == {TLP2["RED"], TLP2["GREEN"], TLP2["AMBER+STRICT"], TLP2["AMBER"]}
    assert markings[TLP2["RED"]]["name"] == "TLP:RED"
    assert {TLP2_MARKING_IDS[t] for t in TLP} == set(TLP2.values())
    indicators = [o for o in bundle["objects"] if o["type"] == "indicator"]
    assert len(indicators) == len(iocs)
    assert all(o["object_marking_refs"][0] in markings for o in indicators)
    again = iocs_from_stix(bundle)
    assert {(i.key, i.tlp) for i in again} == {(i.key, i.tlp) for i in iocs}


def test_exported_ids_are_stable_so_a_re_export_updates_rather_than_duplicates() -> None:
    ioc = IOC.parse("198.51.100.23")
    first, second = to_stix_bundle([ioc]), to_stix_bundle([ioc])
    assert [o["id"] for o in first["objects"]] == [o["id"] for o in second["objects"]]


@pytest.mark.parametrize(("value", "pattern"), [
    ("198.51.100.23", "[ipv4-addr:value = '198.51.100.23']"),
    ("2001:db8::1", "[ipv6-addr:value = '2001:db8::1']"),
    ("10.0.0.0/8", "[ipv4-addr:value = '10.0.0.0/8']"),
    ("evil.example.com", "[domain-name:value = 'evil.example.com']"),
    ("http://x.example.com/it's", "[url:value = 'http://x.example.com/it\\'s']"),
    ("a@example.com", "[email-addr:value = 'a@example.com']"),
    (SHA256, f"[file:hashes.'SHA-256' = '{SHA256}']"),
    ("d41d8cd98f00b204e9800998ecf8427e",
     "[file:hashes.'MD5' = 'd41d8cd98f00b204e9800998ecf8427e']"),
    ("AS64500", "[autonomous-system:number = 64500]"),
    ("CVE-2024-3400", None),
])
def test_each_indicator_type_has_its_stix_pattern(value: str, pattern: str | None) -> None:
    assert stix_pattern(IOC.parse(value)) == pattern


def enriched() -> list[Any]:
    ioc = {"value": "login-verify.example.org", "tlp": "amber", "confidence": 80}
    return [
        IOCEnrichmentResult.model_validate({"ioc": ioc, "reputation": [
            {"feed": "threatfox", "malware": "Lumma Stealer", "threat": "botnet_cc",
             "reference": "https://example.com/report/lumma"}]}),
        ThreatAnalysisResult.model_validate({"ioc": ioc, "risk_score": 81,
                                             "risk_level": "critical", "breakdown": []}),
        IOC.parse("CVE-2024-3400", tlp="clear"),
        IOC.parse("T1059.001", tlp="green"),
    ]


def test_enriched_results_export_to_stix_with_risk_reputation_and_sdos() -> None:
    bundle = to_stix_bundle(enriched())
    by_type = {o["type"]: o for o in bundle["objects"]}
    ind = by_type["indicator"]
    assert ind["x_phantom_risk_score"] == 81 and ind["indicator_types"] == ["malicious-activity"]
    assert "threatfox: Lumma Stealer" in ind["description"] and "risk 81/100" in ind["description"]
    assert ind["external_references"][0]["url"] == "https://example.com/report/lumma"
    assert by_type["vulnerability"]["name"] == "CVE-2024-3400"
    assert by_type["attack-pattern"]["external_references"][0]["external_id"] == "T1059.001"
    assert by_type["vulnerability"]["object_marking_refs"] == [TLP2["CLEAR"]]


def test_csv_reads_value_type_tlp_confidence_and_tags_columns() -> None:
    text = ("Indicator,Type,TLP,Confidence,Tags\n"
            "evil[.]example[.]com,,green,80,phish;kit\n"
            "203.0.113.7,ipv4,,,\n"
            "999.1.1.1,,,,\n"
            "abc,md5,,,\n")
    read = iocs_from_csv(text, source="partner", tags=["import"])
    assert [(i.value, i.tlp, i.confidence) for i in read] == [
        ("evil.example.com", TLP.GREEN, 80), ("203.0.113.7", TLP.AMBER, 50)]
    assert read.iocs[0].tags == ("import", "phish", "kit") and read.iocs[0].source == "partner"
    assert [where for where, _ in read.rejected] == ["line 4", "line 5"]


def test_csv_without_a_value_column_is_refused_as_a_whole() -> None:
    assert iocs_from_csv("name,colour\nx,y\n").rejected == [
        ("header", "no value, indicator or ioc column")]


def test_csv_export_round_trips_through_csv_import() -> None:
    text = to_csv(enriched())
    header, first = text.splitlines()[:2]
    assert header.startswith("value,type,tlp,confidence")
    assert first.startswith("login-verify.example.org,domain,AMBER,80") and ",81,critical," in first
    assert {i.key for i in iocs_from_csv(text)} == {IOC.parse(v).key for v in (
        "login-verify.example.org", "CVE-2024-3400", "T1059.001")}


def test_the_misp_event_has_typed_attributes_and_tlp_tags() -> None:
    items = [*enriched(), IOC.parse("198.51.100.23", tlp="red"), IOC.parse(SHA256),
             IOC.parse("billing@pay.example.net"), IOC.parse("http://203.0.113.45/x")]
    event = to_misp_event(items, info="Lumma wave")["Event"]
    assert event["info"] == "Lumma wave" and event["Tag"] == [{"name": "tlp:red"}]
    attrs = {a["value"]: a for a in event["Attribute"]}
    assert {v: a["type"] for v, a in attrs.items()} == {
        "login-verify.example.org": "domain", "CVE-2024-3400": "vulnerability",
        "T1059.001": "text", "198.51.100.23": "ip-dst", SHA256: "sha256",
        "billing@pay.example.net": "email-src", "http://203.0.113.45/x": "url"}
    domain = attrs["login-verify.example.org"]
    assert (domain["category"], domain["to_ids"]) == ("Network activity", True)
    assert domain["Tag"][0] == {"name": "tlp:amber"} and "risk 81/100" in domain["comment"]
    assert attrs["CVE-2024-3400"]["to_ids"] is False
    assert attrs[SHA256]["category"] == "Payload delivery"
    assert set(MISP_TYPES) == set(IOCType)


def test_a_misp_event_reads_back_into_the_same_iocs() -> None:
    items = [IOC.parse("198.51.100.23", tlp="red"), IOC.parse("evil.example.com", tags=["x"])]
    event = to_misp_event(items)
    read = iocs_from_misp(json.loads(json.dumps(event)))
    assert [(i.key, i.tlp, i.tags) for i in read] == [(i.key, i.tlp, i.tags) for i in items]


def test_free_text_yields_every_indicator_of_a_report() -> None:
    read = iocs_from_text("C2 at 198.51.100[.]23 and hxxp://evil[.]example[.]com/a",
                          tlp="green")
    assert [i.value for i in read] == ["198.51.100.23", "http://evil.example.com/a"]
    assert {i.tlp for i in read} == {TLP.GREEN}


@pytest.mark.parametrize(("fmt", "content"), [
    ("text", "see 203.0.113.7"),
    ("csv", "ioc\n203.0.113.7\n"),
    ("stix", json.dumps({**BUNDLE,
                         "objects": [indicator(1, "[ipv4-addr:value = '203.0.113.7']")]})),
    ("misp", json.dumps(to_misp_event([IOC.parse("203.0.113.7")]))),
])
def test_read_indicators_dispatches_on_the_format(fmt: str, content: str) -> None:
    assert [i.value for i in read_indicators(content, fmt)] == ["203.0.113.7"]


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        read_indicators("", "xml")


def test_publish_indicators_sends_one_enrichment_request_each_in_one_report(
        mq: pn.MessageQueue) -> None:
    iocs = list(iocs_from_text("203.0.113.7 evil[.]example[.]com " + SHA256))
    ids = publish_indicators(mq, iocs, queue="ioc-processing", progress=True)
    assert len(ids) == 3
    stats = mq.stats(["ioc-processing"])[0]
    assert stats.by_priority["HIGH"] == 3
