"""Tests for defang / refang: style, idempotence and round trips, table-driven and generated."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phantom_notebook.intel.defang import defang, refang, refang_with_offsets
from phantom_notebook.intel.ioc import IOC, InvalidIOCError
from phantom_notebook.intel.normalize import known_tlds

SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

DEFANGED = [
    ("1.2.3.4", "1[.]2[.]3[.]4"),
    ("2001:db8::1", "2001[:]db8[:][:]1"),
    ("::ffff:1.2.3.4", "[:][:]ffff[:]1[.]2[.]3[.]4"),
    ("10.0.0.0/8", "10[.]0[.]0[.]0/8"),
    ("2001:db8::/32", "2001[:]db8[:][:]/32"),
    ("example.com", "example[.]com"),
    ("Sub.Example.COM", "Sub[.]Example[.]COM"),
    ("xn--bcher-kva.de", "xn--bcher-kva[.]de"),
    ("http://example.com/a.php?x=1.2", "hxxp://example[.]com/a.php?x=1.2"),
    ("https://example.com:8443/", "hxxps://example[.]com:8443/"),
    ("HTTP://EXAMPLE.COM/", "HXXP://EXAMPLE[.]COM/"),
    ("ftp://files.example.com/x", "fxp://files[.]example[.]com/x"),
    ("wss://example.com/socket", "wss://example[.]com/socket"),
    ("http://user@1.2.3.4/", "hxxp://user@1[.]2[.]3[.]4/"),
    ("http://[2001:db8::1]/", "hxxp://[2001:db8::1]/"),
    ("john.doe@mail.example.com", "john.doe[@]mail[.]example[.]com"),
    (SHA256, SHA256),
    ("CVE-2021-44228", "CVE-2021-44228"),
    ("AS13335", "AS13335"),
    ("T1059.001", "T1059.001"),
    ("00:1a:2b:3c:4d:5e", "00:1a:2b:3c:4d:5e"),
    ("001a.2b3c.4d5e", "001a.2b3c.4d5e"),
]


@pytest.mark.parametrize(("plain", "defanged"), DEFANGED)
def test_defang_uses_the_house_style(plain: str, defanged: str) -> None:
    assert defang(plain) == defanged


@pytest.mark.parametrize(("plain", "defanged"), DEFANGED)
def test_refang_undoes_defang_for_every_type(plain: str, defanged: str) -> None:
    assert refang(defang(plain)) == plain


@pytest.mark.parametrize(("plain", "defanged"), DEFANGED)
def test_defang_is_idempotent(plain: str, defanged: str) -> None:
    assert defang(defang(plain)) == defang(plain)


@pytest.mark.parametrize(("plain", "defanged"), DEFANGED)
def test_refang_is_idempotent(plain: str, defanged: str) -> None:
    assert refang(refang(defanged)) == refang(defanged) == plain


@pytest.mark.parametrize(
    ("defanged", "plain"),
    [
        ("1.2.3[.]4", "1.2.3.4"),
        ("1 [.] 2 [.] 3 [.] 4", "1.2.3.4"),
        ("example(.)com", "example.com"),
        ("example{.}com", "example.com"),
        ("example[dot]com", "example.com"),
        ("example(DOT)com", "example.com"),
        ("example [dot] com", "example.com"),
        ("user[@]example.com", "user@example.com"),
        ("user(@)example.com", "user@example.com"),
        ("user[at]example[.]com", "user@example.com"),
        ("user [AT] example [DOT] com", "user@example.com"),
        ("hxxp://x.com", "http://x.com"),
        ("hXXps://x.com", "hTTps://x.com"),
        ("hxtp://x.com", "http://x.com"),
        ("http[:]//x.com", "http://x.com"),
        ("hxxps[:]//x.com", "https://x.com"),
        ("http[://]x.com", "http://x.com"),
        ("http://x.com[/]a", "http://x.com/a"),
        ("fxp://x.com", "ftp://x.com"),
    ],
)
def test_refang_understands_the_forms_seen_in_the_wild(defanged: str, plain: str) -> None:
    assert refang(defanged) == plain


@pytest.mark.parametrize(
    "text",
    [
        "plain prose with no indicators.",
        "hxxpd is not a scheme, nor is hxxp without a colon",
        "a list [a, b] and (c) stays",
        "the http://x.com/ link is already live",
    ],
)
def test_refang_leaves_ordinary_text_alone(text: str) -> None:
    assert refang(text) == text


def test_refang_with_offsets_reports_where_text_was_defanged() -> None:
    text, offsets = refang_with_offsets("a example[.]com b hxxp://x")
    assert text == "a example.com b http://x"
    assert offsets == [text.index(".com"), text.index("http")]


def test_defang_refuses_values_that_are_not_indicators() -> None:
    with pytest.raises(InvalidIOCError, match="999"):
        defang("999.1.1.1")


def test_defang_with_an_explicit_type_checks_the_value_against_it() -> None:
    assert defang("1.2.3.4", "ipv4") == "1[.]2[.]3[.]4"
    with pytest.raises(InvalidIOCError, match="is not a valid domain"):
        defang("1.2.3.4", "domain")


def test_the_ioc_defanged_property_matches_defang_of_its_value() -> None:
    for plain, _ in DEFANGED:
        ioc = IOC.parse(plain)
        assert ioc.defanged == defang(ioc.value)


_octet = st.integers(min_value=0, max_value=255).map(str)
ipv4s = st.tuples(_octet, _octet, _octet, _octet).map(".".join)
_label = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
_tld = st.sampled_from(sorted(tld for tld in known_tlds() if tld.isalpha()))
domains = st.builds(
    lambda labels, tld: ".".join([*labels, tld]), st.lists(_label, min_size=1, max_size=4), _tld
)


@given(ipv4s)
def test_generated_ipv4_addresses_survive_a_defang_refang_round_trip(address: str) -> None:
    defanged = defang(address)
    assert "." not in defanged.replace("[.]", "")
    assert refang(defanged) == address
    assert defang(defanged) == defanged


@given(domains)
def test_generated_domains_survive_a_defang_refang_round_trip(domain: str) -> None:
    defanged = defang(domain)
    assert "." not in defanged.replace("[.]", "")
    assert refang(defanged) == domain
    assert defang(defanged) == defanged
    assert IOC.parse(defanged).value == domain


@given(
    domains,
    st.sampled_from(["http", "https"]),
    st.from_regex(r"(/[a-z0-9._-]{0,12}){0,3}", fullmatch=True),
)
def test_generated_urls_survive_a_defang_refang_round_trip(
    domain: str, scheme: str, path: str
) -> None:
    url = f"{scheme}://{domain}{path or '/'}"
    defanged = defang(url)
    assert defanged.startswith(scheme.replace("t", "x") + "://")
    assert refang(defanged) == url
    assert defang(defanged) == defanged
