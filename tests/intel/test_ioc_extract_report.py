"""Extraction on a realistic report: versions, JA3, wallets, paths, pivots, warninglists."""

from __future__ import annotations

import pytest

from phantom_notebook.intel import IOC, IOCType, extract_iocs
from phantom_notebook.intel.ioc_extract import AMBIGUOUS_HASH_TAG
from phantom_notebook.intel.warninglists import WarningListIndex

T = IOCType
REPORT = r"""
TLP:AMBER - Incident 2026-114: SILKLOADER intrusion at a regional bank

Summary. The initial access vector was a phishing email from billing@invoice-portal[.]top
linking to hxxps://cdn.invoice-portal[.]top/doc/view.php?id=7781. The dropper, updater
version 4.2.19.7 (build 10.0.19041.1), wrote C:\Users\Public\Libraries\svchost32.exe and
persisted through %APPDATA%\Microsoft\Windows\Start Menu\Programs\Startup\upd.lnk. On the
Linux jump host it dropped /tmp/.X11-unix/.kworker and a cron entry in /etc/cron.d/kworker.

C2 traffic went to 185.220.101.45:443 and to update-check[.]xyz; the beacon resolves its
C2 over DoH through dns.google and 8.8.8.8, so neither is an indicator by itself.
The TLS client fingerprint JA3: e7d705a3286e19ea42f587b344ee6865 matched prior SILKLOADER
samples. Payload MD5 5f4dcc3b5aa765d61d8327deb882cf99, SHA256
9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08; the loader's imphash
f34d5f2d4577ed6d9ceec516c1f5a744 is shared with commodity packers.
Ransom notes asked for payment to 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa or
bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq; the ETH wallet
0x742d35Cc6634C0532925a3b844Bc454e4438f44e was listed as an alternative.
Exploited: CVE-2023-4966 (T1190). Admins should patch and/or isolate 1/2 of the hosts.
"""


def by_type(iocs: list[IOC]) -> dict[IOCType, list[str]]:
    out: dict[IOCType, list[str]] = {}
    for ioc in iocs:
        out.setdefault(ioc.type, []).append(ioc.value)
    return out


@pytest.fixture(scope="module")
def found() -> dict[IOCType, list[str]]:
    return by_type(extract_iocs(REPORT))


def test_a_dotted_quad_after_a_version_word_is_not_an_ipv4(found: dict[IOCType, list[str]]
                                                          ) -> None:
    assert found[T.IPV4] == ["185.220.101.45", "8.8.8.8"]  # not 4.2.19.7, not 10.0.19041.1
    assert by_type(extract_iocs("agent v 4.2.19.7 beacons to 4.2.19.8"))[T.IPV4] == ["4.2.19.8"]


def test_a_hash_after_ja3_is_a_ja3_fingerprint_not_an_md5(found: dict[IOCType, list[str]]
                                                          ) -> None:
    assert found[T.JA3] == ["e7d705a3286e19ea42f587b344ee6865"]
    assert "e7d705a3286e19ea42f587b344ee6865" not in found[T.MD5]
    assert found[T.SHA256] == [
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]


def test_a_hash_after_an_ambiguous_word_stays_md5_but_is_tagged_ambiguous() -> None:
    iocs = {i.value: i for i in extract_iocs(REPORT, types=["md5"])}
    assert iocs["5f4dcc3b5aa765d61d8327deb882cf99"].tags == ()
    assert iocs["f34d5f2d4577ed6d9ceec516c1f5a744"].tags == (AMBIGUOUS_HASH_TAG,)


def test_bitcoin_and_ethereum_wallets_are_extracted_and_checksums_verified(
        found: dict[IOCType, list[str]]) -> None:
    assert found[T.BTC_ADDRESS] == ["1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
                                    "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"]
    assert found[T.ETH_ADDRESS] == ["0x742d35cc6634c0532925a3b844bc454e4438f44e"]
    typo = "pay 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb now"  # last character changed
    assert T.BTC_ADDRESS not in by_type(extract_iocs(typo))


def test_windows_and_unix_file_paths_are_extracted_but_and_or_is_no_path(
        found: dict[IOCType, list[str]]) -> None:
    assert found[T.FILE_PATH] == [
        r"C:\Users\Public\Libraries\svchost32.exe",
        r"%APPDATA%\Microsoft\Windows\Start Menu\Programs\Startup\upd.lnk",
        "/tmp/.X11-unix/.kworker", "/etc/cron.d/kworker"]


def test_the_host_of_every_url_and_the_domain_of_every_email_are_related_pivots() -> None:
    iocs = {i.value: i for i in extract_iocs(REPORT, types=["url", "email"])}
    url = iocs["https://cdn.invoice-portal.top/doc/view.php?id=7781"]
    email = iocs["billing@invoice-portal.top"]
    assert [(r.type, r.value) for r in url.related] == [(T.DOMAIN, "cdn.invoice-portal.top")]
    assert [(r.type, r.value) for r in email.related] == [(T.DOMAIN, "invoice-portal.top")]
    assert url.related[0].tlp == url.tlp


def test_related_pivots_are_listed_only_when_asked(found: dict[IOCType, list[str]]) -> None:
    assert found[T.DOMAIN] == ["update-check.xyz", "dns.google"]  # the default
    pivots = by_type(extract_iocs(REPORT, related=True))[T.DOMAIN]
    assert pivots == ["invoice-portal.top", "cdn.invoice-portal.top", "update-check.xyz",
                      "dns.google"]


def test_known_benign_values_are_marked_from_misp_warninglists() -> None:
    iocs = {i.value: i for i in extract_iocs(REPORT)}
    assert iocs["dns.google"].on_warninglist
    assert "List of known IPv4 public DNS resolvers" in iocs["8.8.8.8"].warninglists
    assert not iocs["update-check.xyz"].warninglists
    assert not iocs[r"C:\Users\Public\Libraries\svchost32.exe"].warninglists


def test_known_benign_values_can_be_dropped_or_left_unchecked() -> None:
    kept = {i.value for i in extract_iocs(REPORT, warninglists="drop")}
    assert "dns.google" not in kept and "8.8.8.8" not in kept and "update-check.xyz" in kept
    assert all(not i.warninglists for i in extract_iocs(REPORT, warninglists="off"))
    with pytest.raises(ValueError, match="use 'mark', 'drop' or 'off'"):
        extract_iocs(REPORT, warninglists="hide")  # type: ignore[arg-type]


def test_a_subdomain_is_not_benign_because_its_parent_is_on_a_list() -> None:
    index = WarningListIndex([
        {"name": "dynamic DNS", "type": "hostname", "list": ["duckdns.org"],
         "matching_attributes": ["domain", "hostname"]},
        {"name": "resolvers", "type": "cidr", "list": ["9.9.9.0/24"],
         "matching_attributes": ["ip-dst"]}])
    assert index.matches("duckdns.org", T.DOMAIN) == ("dynamic DNS",)
    assert index.matches("evil.duckdns.org", T.DOMAIN) == ()
    assert index.matches("9.9.9.9", T.IPV4) == ("resolvers",)
    assert index.matches("9.9.10.1", T.IPV4) == ()
    assert index.matches("duckdns.org", T.MD5) == ()  # lists apply to the types they name


def test_related_and_warninglists_round_trip_but_do_not_change_identity() -> None:
    [url] = extract_iocs("see hxxp://dns[.]google/resolve", types=["url"])
    again = IOC.from_dict(url.to_dict())
    assert again == url and again.related == url.related
    assert IOC.parse("8.8.8.8") == IOC("8.8.8.8", T.IPV4, warninglists=("resolvers",))


def test_wallets_paths_and_ja3_export_to_stix_csv_and_misp() -> None:
    from phantom_notebook.intel import iocs_from_csv, to_csv, to_misp_event, to_stix_bundle

    kinds = {T.BTC_ADDRESS, T.ETH_ADDRESS, T.FILE_PATH, T.JA3}
    iocs = [i for i in extract_iocs(REPORT, warninglists="off") if i.type in kinds]
    patterns = {o["pattern"] for o in to_stix_bundle(iocs)["objects"] if "pattern" in o}
    assert r"[file:name = 'svchost32.exe' AND file:parent_directory_ref.path = " \
           r"'C:\\Users\\Public\\Libraries']" in patterns
    assert "[x-ja3-fingerprint:value = 'e7d705a3286e19ea42f587b344ee6865']" in patterns
    assert len(patterns) == len(iocs) == 8  # 4 paths, 1 ja3, 2 btc, 1 eth
    assert list(iocs_from_csv(to_csv(iocs))) == iocs
    types = {a["type"] for a in to_misp_event(iocs)["Event"]["Attribute"]}
    assert {"btc", "ja3-fingerprint-md5", "filename"} <= types
