"""Tests for extract_iocs: defanged forms, precedence between types and false positives."""

from __future__ import annotations

import time

import pytest

from phantom_notebook.intel.ioc import IOCType
from phantom_notebook.intel.ioc_extract import extract_iocs
from phantom_notebook.intel.tlp import TLP

SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def found(text: str) -> list[tuple[str, str]]:
    """Return (type, value) pairs extracted from ``text``."""
    return [(ioc.type.value, ioc.value) for ioc in extract_iocs(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("beacon to 1.2.3[.]4 daily", [("ipv4", "1.2.3.4")]),
        ("beacon to 1[.]2[.]3[.]4 daily", [("ipv4", "1.2.3.4")]),
        ("beacon to 1(.)2(.)3(.)4", [("ipv4", "1.2.3.4")]),
        ("get hxxp://evil[.]com/a", [("url", "http://evil.com/a")]),
        ("get hxxps://evil[.]com/a", [("url", "https://evil.com/a")]),
        ("get hXXp://evil.com/a", [("url", "http://evil.com/a")]),
        ("get HXXPS://evil.com/a", [("url", "https://evil.com/a")]),
        ("get http[:]//evil.com/a", [("url", "http://evil.com/a")]),
        ("get hxxp[:]//evil[.]com/a", [("url", "http://evil.com/a")]),
        ("get http[://]evil.com/a", [("url", "http://evil.com/a")]),
        ("get fxp://files[.]evil.com/x", [("url", "ftp://files.evil.com/x")]),
        ("see example[.]com", [("domain", "example.com")]),
        ("see example(.)com", [("domain", "example.com")]),
        ("see example{.}com", [("domain", "example.com")]),
        ("see example[dot]com", [("domain", "example.com")]),
        ("see example [dot] com", [("domain", "example.com")]),
        ("see example[DOT]com", [("domain", "example.com")]),
        ("mail user[@]example.com", [("email", "user@example.com")]),
        ("mail user[at]example[.]com", [("email", "user@example.com")]),
        ("mail user(at)example(dot)com", [("email", "user@example.com")]),
        ("v6 2001[:]db8[:][:]1 seen", [("ipv6", "2001:db8::1")]),
    ],
)
def test_every_defanged_form_is_refanged_before_extraction(
    text: str, expected: list[tuple[str, str]]
) -> None:
    assert found(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Visit example.com.", [("domain", "example.com")]),
        ("(http://x.com/a)", [("url", "http://x.com/a")]),
        ('"evil.com",', [("domain", "evil.com")]),
        ("'evil.com';", [("domain", "evil.com")]),
        ("see http://x.com/a.", [("url", "http://x.com/a")]),
        ("see http://x.com/a, then", [("url", "http://x.com/a")]),
        ("[link](https://x.com/p)", [("url", "https://x.com/p")]),
        ("<https://x.com/p>", [("url", "https://x.com/p")]),
        ("“https://x.com/p”", [("url", "https://x.com/p")]),
        ("wiki https://en.wikipedia.org/wiki/Foo_(bar)", [
            ("url", "https://en.wikipedia.org/wiki/Foo_(bar)")
        ]),
        ("ip 1.2.3.4.", [("ipv4", "1.2.3.4")]),
        ("ip 1.2.3.4:8080 open", [("ipv4", "1.2.3.4")]),
        ("CVE-2021-44228.", [("cve", "CVE-2021-44228")]),
    ],
)  # fmt: skip
def test_trailing_punctuation_is_stripped(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


def test_a_url_swallows_its_host() -> None:
    assert found("fetch hxxp://evil[.]com/payload.bin now") == [
        ("url", "http://evil.com/payload.bin")
    ]


def test_a_url_host_is_emitted_when_it_also_appears_on_its_own() -> None:
    assert found("hxxp://evil[.]com/a then evil[.]com again") == [
        ("url", "http://evil.com/a"),
        ("domain", "evil.com"),
    ]


def test_a_url_with_an_ip_host_does_not_also_yield_the_ip() -> None:
    assert found("http://1.2.3.4:8080/gate.php") == [("url", "http://1.2.3.4:8080/gate.php")]


def test_hashes_and_cves_inside_urls_are_still_extracted() -> None:
    text = (
        f"https://www.virustotal.com/gui/file/{SHA256}/detection and "
        "https://nvd.nist.gov/vuln/detail/CVE-2021-44228"
    )
    assert found(text) == [
        ("url", f"https://www.virustotal.com/gui/file/{SHA256}/detection"),
        ("sha256", SHA256),
        ("url", "https://nvd.nist.gov/vuln/detail/CVE-2021-44228"),
        ("cve", "CVE-2021-44228"),
    ]


def test_an_emails_domain_is_not_emitted_as_a_separate_domain() -> None:
    assert found("phish from billing@evil-corp.com today") == [("email", "billing@evil-corp.com")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail.example.com", [("domain", "mail.example.com")]),
        ("smtp.mail.example.co.uk", [("domain", "smtp.mail.example.co.uk")]),
        ("ssh root@10.0.0.5", [("ipv4", "10.0.0.5")]),
        ("ssh admin@localhost", []),
    ],
)
def test_hostnames_are_not_misread_as_emails(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "report.pdf",
        "invoice.exe",
        "setup.py",
        "install.sh",
        "README.md",
        "archive.zip",
        "archive.tar.gz",
        "evil.com.exe",
        "Node.js",
        "document.docx",
    ],
)
def test_file_names_are_not_domains(text: str) -> None:
    assert found(f"dropped {text} on disk") == []


def test_a_defanged_name_with_a_file_like_tld_is_a_domain() -> None:
    assert found("c2 at setup[.]py and install[.]sh") == [
        ("domain", "setup.py"),
        ("domain", "install.sh"),
    ]


def test_a_file_like_tld_with_more_labels_is_a_domain() -> None:
    assert found("c2 at cdn.evil.zip") == [("domain", "cdn.evil.zip")]


@pytest.mark.parametrize(
    "text",
    [
        "version 1.2.3.4.5 released",
        "version 2.0.1 released",
        "v1.2.3.4 released",
        "build 10.0.19041.1 of windows",
        "octets 999.1.1.1 are too big",
        "leading zeros 010.1.1.1 are ambiguous",
        "at 12:30:45 UTC",
    ],
)
def test_version_numbers_and_bad_octets_are_not_ips(text: str) -> None:
    assert found(text) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("md5 d41d8cd98f00b204e9800998ecf8427e", [("md5", "d41d8cd98f00b204e9800998ecf8427e")]),
        ("sha1 DA39A3EE5E6B4B0D3255BFEF95601890AFD80709", [
            ("sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        ]),
        (f"sha256 {SHA256}", [("sha256", SHA256)]),
        (f"sha512 {SHA256 * 2}", [("sha512", SHA256 * 2)]),
        (f"sample {SHA256}.exe", [("sha256", SHA256)]),
        ("33 hex d41d8cd98f00b204e9800998ecf8427ea", []),
        ("31 hex d41d8cd98f00b204e9800998ecf8427", []),
        (f"embedded x{SHA256}", []),
        (f"embedded {SHA256}g", []),
        (f"50 hex {SHA256[:50]}", []),
    ],
)  # fmt: skip
def test_hashes_must_be_whole_hex_words_of_exact_lengths(
    text: str, expected: list[tuple[str, str]]
) -> None:
    assert found(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("net 10.0.0.0/8 blocked", [("cidr", "10.0.0.0/8")]),
        ("net 10.0.0.1/8 blocked", [("cidr", "10.0.0.0/8")]),
        ("net 10[.]0[.]0[.]0/8 blocked", [("cidr", "10.0.0.0/8")]),
        ("net 2001:db8::/32 blocked", [("cidr", "2001:db8::/32")]),
        ("range 1.2.3.4-1.2.3.10", [("ipv4", "1.2.3.4"), ("ipv4", "1.2.3.10")]),
        ("mac 00:1a:2b:3c:4d:5e seen", [("mac", "00:1a:2b:3c:4d:5e")]),
        ("mac 00-1A-2B-3C-4D-5E seen", [("mac", "00:1a:2b:3c:4d:5e")]),
        ("mac 001a.2b3c.4d5e seen", [("mac", "00:1a:2b:3c:4d:5e")]),
        ("v6 fe80::1 and ::ffff:1.2.3.4", [("ipv6", "fe80::1"), ("ipv6", "::ffff:1.2.3.4")]),
        ("v6 2001:0db8:0000:0000:0000:ff00:0042:8329.", [("ipv6", "2001:db8::ff00:42:8329")]),
        ("url http://[2001:db8::1]:8080/x", [("url", "http://[2001:db8::1]:8080/x")]),
        ("bug CVE-2021-44228 and cve-2014-0160", [
            ("cve", "CVE-2021-44228"), ("cve", "CVE-2014-0160")
        ]),
        ("uses T1059.001 and T1566", [
            ("mitre_technique", "T1059.001"), ("mitre_technique", "T1566")
        ]),
        ("hosted in AS13335 and ASN 15169", [("asn", "AS13335"), ("asn", "AS15169")]),
        ("unicode bücher.de", [("domain", "xn--bcher-kva.de")]),
        ("punycode xn--bcher-kva.de", [("domain", "xn--bcher-kva.de")]),
        ("upper EVIL.COM", [("domain", "evil.com")]),
        ("unknown example.notatld", []),
    ],
)  # fmt: skip
def test_each_type_is_extracted_and_normalized(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


def test_results_are_deduplicated_in_first_seen_order() -> None:
    text = "b.com a.com 1.2.3.4 B.COM b[.]com 1[.]2[.]3[.]4 a.com"
    assert found(text) == [("domain", "b.com"), ("domain", "a.com"), ("ipv4", "1.2.3.4")]


def test_types_filter_limits_the_result() -> None:
    text = "evil.com 1.2.3.4 CVE-2021-44228"
    assert found_types(text, ["ipv4", IOCType.CVE]) == ["1.2.3.4", "CVE-2021-44228"]


def found_types(text: str, types: list[IOCType | str]) -> list[str]:
    """Return the values extracted from ``text`` restricted to ``types``."""
    return [ioc.value for ioc in extract_iocs(text, types=types)]


def test_metadata_is_applied_to_every_extracted_ioc() -> None:
    iocs = extract_iocs("evil.com 1.2.3.4", tlp="red", source="r1", confidence=80, tags=["x"])
    assert {(i.tlp, i.source, i.confidence, i.tags) for i in iocs} == {(TLP.RED, "r1", 80, ("x",))}


def test_text_without_indicators_yields_nothing() -> None:
    assert extract_iocs("Nothing to see here. Just prose, e.g. this; i.e. that.") == []


def test_a_one_megabyte_report_is_processed_quickly() -> None:
    chunk = (
        "The actor used hxxps://evil[.]com/gate.php and 185.220.101[.]4 with "
        f"{SHA256} (CVE-2021-44228, T1059.001). Version 1.2.3.4.5 of setup.py was fine. "
    )
    text = chunk * (1_000_000 // len(chunk))
    started = time.perf_counter()
    iocs = extract_iocs(text)
    elapsed = time.perf_counter() - started
    assert len(iocs) == 5
    assert elapsed < 10  # generous bound for slow CI; typically well under a second
