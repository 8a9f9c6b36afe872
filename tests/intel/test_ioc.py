"""Tests for type detection, validation, normalization and the IOC dataclass."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from phantom_notebook.core.errors import PhantomError, ValidationError
from phantom_notebook.intel.ioc import IOC, InvalidIOCError, IOCType, detect_type, validate
from phantom_notebook.intel.tlp import TLP

SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
SHA512 = "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce" * 2


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1.2.3.4", IOCType.IPV4),
        ("1[.]2[.]3[.]4", IOCType.IPV4),
        ("1.2.3[.]4", IOCType.IPV4),
        ("255.255.255.255", IOCType.IPV4),
        ("2001:db8::1", IOCType.IPV6),
        ("[2001:db8::1]", IOCType.IPV6),
        ("2001[:]db8[:][:]1", IOCType.IPV6),
        ("::ffff:1.2.3.4", IOCType.IPV6),
        ("10.0.0.0/8", IOCType.CIDR),
        ("2001:db8::/32", IOCType.CIDR),
        ("example.com", IOCType.DOMAIN),
        ("example[.]com", IOCType.DOMAIN),
        ("example(.)com", IOCType.DOMAIN),
        ("example[dot]com", IOCType.DOMAIN),
        ("Example.COM.", IOCType.DOMAIN),
        ("bücher.de", IOCType.DOMAIN),
        ("xn--bcher-kva.de", IOCType.DOMAIN),
        ("_dmarc.example.com", IOCType.DOMAIN),
        ("http://example.com", IOCType.URL),
        ("hxxp://example[.]com/a", IOCType.URL),
        ("hXXps[:]//example[.]com", IOCType.URL),
        ("http[://]example.com", IOCType.URL),
        ("https://[2001:db8::1]:8443/x", IOCType.URL),
        ("user@example.com", IOCType.EMAIL),
        ("user[@]example.com", IOCType.EMAIL),
        ("user[at]example[.]com", IOCType.EMAIL),
        ("mailto:user@example.com", IOCType.EMAIL),
        ("d41d8cd98f00b204e9800998ecf8427e", IOCType.MD5),
        ("da39a3ee5e6b4b0d3255bfef95601890afd80709", IOCType.SHA1),
        (SHA256, IOCType.SHA256),
        (SHA256.upper(), IOCType.SHA256),
        (SHA512, IOCType.SHA512),
        ("CVE-2021-44228", IOCType.CVE),
        ("cve-2014-0160", IOCType.CVE),
        ("AS13335", IOCType.ASN),
        ("ASN 13335", IOCType.ASN),
        ("T1059", IOCType.MITRE_TECHNIQUE),
        ("T1059.001", IOCType.MITRE_TECHNIQUE),
        ("00:1a:2b:3c:4d:5e", IOCType.MAC),
        ("00-1A-2B-3C-4D-5E", IOCType.MAC),
        ("001a.2b3c.4d5e", IOCType.MAC),
    ],
)
def test_detect_type_recognises_every_type_in_plain_and_defanged_forms(
    raw: str, expected: IOCType
) -> None:
    assert detect_type(raw) is expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("999.1.1.1", "'999.1.1.1' is not a valid ipv4 address: octet 999 > 255"),
        ("010.1.1.1", "leading zero"),
        ("1.2.3", "version number"),
        ("1.2.3.4.5", "version number"),
        ("10.0.0.0/33", "prefix length 33 > 32"),
        ("2001:db8::/129", "prefix length 129 > 128"),
        ("fe80::zz", "is not a valid ipv6 address"),
        ("example.notatld", "unknown top-level domain '.notatld'"),
        ("report.pdf", "unknown top-level domain '.pdf'"),
        ("a..example.com", "empty label"),
        ("-bad.example.com", "starts or ends with a hyphen"),
        ("http://localhost/", "host 'localhost'"),
        ("http://example.com:99999/", "port '99999'"),
        ("gopher://example.com/", "scheme 'gopher'"),
        ("user@@example.com", "local part"),
        ("user@example.invalidtld", "unknown top-level domain"),
        ("CVE-1990-1234", "before the first CVE year"),
        ("AS99999999999", "> 4294967295"),
        ("hello", "matches no indicator type"),
        ("", "matches no indicator type"),
    ],
)
def test_invalid_values_raise_errors_naming_the_value_and_the_flaw(raw: str, fragment: str) -> None:
    with pytest.raises(InvalidIOCError) as caught:
        detect_type(raw)
    assert fragment in str(caught.value)


def test_invalid_ioc_error_is_a_phantom_validation_error() -> None:
    with pytest.raises(ValidationError) as caught:
        detect_type("999.1.1.1")
    assert isinstance(caught.value, PhantomError)
    assert isinstance(caught.value, ValueError)
    assert caught.value.ioc_type is IOCType.IPV4  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("raw", "ioc_type", "normalized"),
    [
        ("1[.]2[.]3[.]4", "ipv4", "1.2.3.4"),
        ("2001:0DB8:0000:0000:0000:0000:0000:0001", "ipv6", "2001:db8::1"),
        ("[2001:db8::1]", "ipv6", "2001:db8::1"),
        ("::FFFF:1.2.3.4", "ipv6", "::ffff:1.2.3.4"),
        ("10.0.0.1/8", "cidr", "10.0.0.0/8"),
        ("2001:db8::1/32", "cidr", "2001:db8::/32"),
        ("Example.COM.", "domain", "example.com"),
        ("bücher.de", "domain", "xn--bcher-kva.de"),
        ("BÜCHER.de", "domain", "xn--bcher-kva.de"),
        ("пример.рф", "domain", "xn--e1afmkfd.xn--p1ai"),
        ("HTTP://Example.COM:80", "url", "http://example.com/"),
        ("https://Example.com:443/Path?Q=1#Frag", "url", "https://example.com/Path?Q=1#Frag"),
        ("https://example.com:8443/a", "url", "https://example.com:8443/a"),
        ("hxxp://bücher[.]de/x", "url", "http://xn--bcher-kva.de/x"),
        ("http://[2001:DB8::1]:80/", "url", "http://[2001:db8::1]/"),
        ("http://user:pw@1.2.3.4:8080/a", "url", "http://user:pw@1.2.3.4:8080/a"),
        ("John.Doe@Example.COM", "email", "John.Doe@example.com"),
        ("john[at]example[dot]com", "email", "john@example.com"),
        ("mailto:john@example.com", "email", "john@example.com"),
        ("D41D8CD98F00B204E9800998ECF8427E", "md5", "d41d8cd98f00b204e9800998ecf8427e"),
        ("cve-2021-44228", "cve", "CVE-2021-44228"),
        ("as13335", "asn", "AS13335"),
        ("ASN 13335", "asn", "AS13335"),
        ("13335", "asn", "AS13335"),
        ("t1059.001", "mitre_technique", "T1059.001"),
        ("00-1A-2B-3C-4D-5E", "mac", "00:1a:2b:3c:4d:5e"),
        ("001a.2b3c.4d5e", "mac", "00:1a:2b:3c:4d:5e"),
    ],
)
def test_validate_returns_the_normalized_value(raw: str, ioc_type: str, normalized: str) -> None:
    assert validate(raw, ioc_type) == normalized


@pytest.mark.parametrize(
    ("raw", "ioc_type", "fragment"),
    [
        ("1.2.3.4", "domain", "unknown top-level domain '.4'"),
        ("example.com", "ipv4", "expected 4 dot-separated octets"),
        (SHA256, "md5", "expected 32 hex digits, got 64"),
        ("z" * 32, "md5", "hex digits"),
        ("T10591", "mitre_technique", "T1059.001"),
        ("00:1a:2b:3c:4d", "mac", "six hex pairs"),
        ("00:1a-2b:3c:4d:5e", "mac", "six hex pairs"),
        ("10.0.0.0", "cidr", "missing '/prefix-length'"),
        ("http://a.com:1:2/", "url", "ipv6 host must be written in brackets"),
    ],
)
def test_validate_rejects_values_of_the_wrong_type_with_a_reason(
    raw: str, ioc_type: str, fragment: str
) -> None:
    with pytest.raises(InvalidIOCError, match="is not a valid") as caught:
        validate(raw, ioc_type)
    assert fragment in str(caught.value)


def test_validate_refuses_an_unknown_type_name() -> None:
    with pytest.raises(ValidationError, match="'hash' is not an IOC type"):
        validate("abc", "hash")


def test_ioc_parse_detects_the_type_and_normalizes() -> None:
    ioc = IOC.parse("hxxps://Evil[.]COM:443/login.php")
    assert ioc.type is IOCType.URL
    assert ioc.value == "https://evil.com/login.php"
    assert ioc.defanged == "hxxps://evil[.]com/login.php"


def test_ioc_defaults_are_conservative() -> None:
    ioc = IOC.parse("example.com")
    assert ioc.tlp is TLP.AMBER
    assert ioc.confidence == 50
    assert ioc.source is None
    assert ioc.tags == ()


def test_direct_construction_normalizes_too() -> None:
    ioc = IOC("EXAMPLE[.]com", "domain")  # type: ignore[arg-type]
    assert ioc.value == "example.com"
    assert ioc.type is IOCType.DOMAIN
    assert ioc == IOC.parse("example.com")


def test_ioc_is_frozen_and_slotted() -> None:
    ioc = IOC.parse("1.2.3.4")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ioc.value = "5.6.7.8"  # type: ignore[misc]
    assert not hasattr(ioc, "__dict__")


def test_repr_and_str_show_the_value_defanged() -> None:
    ioc = IOC.parse("http://evil.com/a", source="report-1")
    assert "evil.com" not in repr(ioc)
    assert "hxxp://evil[.]com/a" in repr(ioc)
    assert "source='report-1'" in repr(ioc)
    assert str(ioc) == "hxxp://evil[.]com/a"


@pytest.mark.parametrize("confidence", [-1, 101, True, 50.0, "50"])
def test_confidence_must_be_an_integer_from_0_to_100(confidence: object) -> None:
    with pytest.raises(ValidationError, match="confidence"):
        IOC.parse("example.com", confidence=confidence)  # type: ignore[arg-type]


@pytest.mark.parametrize("confidence", [0, 100])
def test_confidence_bounds_are_inclusive(confidence: int) -> None:
    assert IOC.parse("example.com", confidence=confidence).confidence == confidence


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValidationError, match="naive"):
        IOC.parse("example.com", first_seen=datetime(2024, 1, 1))


def test_aware_datetimes_are_converted_to_utc() -> None:
    paris = timezone(timedelta(hours=2))
    ioc = IOC.parse("example.com", first_seen=datetime(2024, 6, 1, 12, tzinfo=paris))
    assert ioc.first_seen == datetime(2024, 6, 1, 10, tzinfo=UTC)
    assert ioc.first_seen is not None and ioc.first_seen.tzinfo is UTC


def test_first_seen_after_last_seen_is_refused() -> None:
    with pytest.raises(ValidationError, match="is after"):
        IOC.parse(
            "example.com",
            first_seen=datetime(2024, 2, 1, tzinfo=UTC),
            last_seen=datetime(2024, 1, 1, tzinfo=UTC),
        )


def test_tags_are_stripped_deduplicated_and_kept_in_order() -> None:
    ioc = IOC.parse("example.com", tags=["apt29 ", "phishing", "apt29", " "])
    assert ioc.tags == ("apt29", "phishing")


def test_a_bare_string_is_not_accepted_as_tags() -> None:
    with pytest.raises(ValidationError, match="tags"):
        IOC.parse("example.com", tags="apt29")


def test_tlp_may_be_given_as_a_label() -> None:
    assert IOC.parse("example.com", tlp="TLP:AMBER+STRICT").tlp is TLP.AMBER_STRICT


def _full_ioc() -> IOC:
    return IOC.parse(
        "hxxp://evil[.]com/a",
        tlp=TLP.RED,
        confidence=90,
        source="vendor report",
        first_seen=datetime(2024, 1, 1, tzinfo=UTC),
        last_seen=datetime(2024, 3, 1, 8, 30, tzinfo=UTC),
        tags=("c2", "apt29"),
    )


def test_to_dict_is_json_friendly_with_iso_datetimes_and_the_plain_value() -> None:
    data = _full_ioc().to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data == {
        "value": "http://evil.com/a",
        "type": "url",
        "tlp": "RED",
        "confidence": 90,
        "source": "vendor report",
        "first_seen": "2024-01-01T00:00:00+00:00",
        "last_seen": "2024-03-01T08:30:00+00:00",
        "tags": ["c2", "apt29"],
    }


def test_from_dict_round_trips_to_dict() -> None:
    ioc = _full_ioc()
    assert IOC.from_dict(json.loads(json.dumps(ioc.to_dict()))) == ioc


def test_from_dict_accepts_z_suffixed_datetimes_and_detects_a_missing_type() -> None:
    ioc = IOC.from_dict({"value": "1[.]2[.]3[.]4", "first_seen": "2024-01-01T00:00:00Z"})
    assert ioc.type is IOCType.IPV4
    assert ioc.first_seen == datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"value": "example.com", "colour": "red"}, "unknown IOC field(s): colour"),
        ({"type": "domain"}, "needs a 'value'"),
        ({"value": "example.com", "first_seen": "yesterday"}, "not an ISO 8601 datetime"),
        ({"value": "example.com", "first_seen": "2024-01-01T00:00:00"}, "naive"),
        ({"value": "example.com", "tlp": "purple"}, "not a TLP label"),
    ],
)
def test_from_dict_refuses_malformed_input(data: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        IOC.from_dict(data)
    assert fragment in str(caught.value)


def test_key_ignores_metadata() -> None:
    assert IOC.parse("example.com", tlp="red").key == IOC.parse("EXAMPLE.com").key
