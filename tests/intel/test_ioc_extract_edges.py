"""Extraction and defanging at their edges: where scanning must go on after a skipped
candidate, where a related pivot is placed, which hashes a context word tags, and the URL
and email parts defang leaves alone.
"""

from __future__ import annotations

from phantom_notebook.intel.defang import defang, defang_as
from phantom_notebook.intel.ioc_extract import AMBIGUOUS_HASH_TAG, extract_iocs
from phantom_notebook.intel.normalize import IOCType


def _found(text: str, **options: object) -> list[tuple[str, str]]:
    return [(i.type.value, i.value) for i in extract_iocs(text, warninglists="off",
                                                          **options)]  # type: ignore[arg-type]


def test_scanning_goes_on_after_a_skipped_candidate() -> None:
    odd_hash = "deadbeef" * 4 + "d"  # 33 hex digits: no hash length
    assert _found(f"{odd_hash} then 198.51.100.7") == [("ipv4", "198.51.100.7")]
    assert _found("version 4.2.19.7 then 198.51.100.7") == [("ipv4", "198.51.100.7")]
    assert _found("evil.com 198.51.100.7", types=["ipv4"]) == [("ipv4", "198.51.100.7")]
    assert _found("999.1.1.1 then 198.51.100.7") == [("ipv4", "198.51.100.7")]  # invalid octet
    assert _found("setup.py then 198.51.100.7") == [("ipv4", "198.51.100.7")]  # a file name


def test_a_version_word_at_the_very_start_of_the_text_still_counts() -> None:
    assert _found("v 1.2.3.4") == [] and _found("ver 1.2.3.4, build 5.6.7.8") == []
    assert _found("x 1.2.3.4") == [("ipv4", "1.2.3.4")]


def test_a_file_like_name_followed_by_a_defanged_slash_is_still_a_file_name() -> None:
    assert _found("get setup.py[/] now") == []  # written defanged after the name, not in it
    assert _found("get setup[.]py[/] now") == [("domain", "setup.py")]


def test_a_related_pivot_comes_right_after_its_url_even_when_it_appears_later() -> None:
    assert _found("http://evil.com/a then evil.com and 198.51.100.7", related=True) == [
        ("url", "http://evil.com/a"), ("domain", "evil.com"), ("ipv4", "198.51.100.7")]
    assert _found("evil.com first, then http://evil.com/a", related=True) == [
        ("domain", "evil.com"), ("url", "http://evil.com/a")]


def test_related_pivots_respect_the_types_filter() -> None:
    text = "http://evil.com/a and http://198.51.100.7/b"
    assert _found(text, related=True, types=["url", "domain"]) == [
        ("url", "http://evil.com/a"), ("domain", "evil.com"), ("url", "http://198.51.100.7/b")]
    assert _found(text, related=True, types=["url"]) == [
        ("url", "http://evil.com/a"), ("url", "http://198.51.100.7/b")]


def test_a_pivot_carries_its_url_s_source_tags_and_warninglists() -> None:
    [url] = extract_iocs("see https://dns.google/x", source="osint", tags=["t1"])
    [pivot] = url.related
    assert (pivot.value, pivot.type, pivot.source, pivot.tags) == (
        "dns.google", IOCType.DOMAIN, "osint", ("t1",))
    assert pivot.warninglists  # dns.google is on the MISP lists
    [plain] = extract_iocs("see https://dns.google/x", warninglists="off")
    assert plain.related[0].warninglists == ()


def test_only_a_40_hex_word_after_a_commit_word_is_tagged_ambiguous() -> None:
    sha1, sha256 = "a" * 40, "b" * 64
    found = {i.value: i for i in extract_iocs(f"commit {sha1} and git {sha256}",
                                              warninglists="off")}
    assert found[sha1].tags == (AMBIGUOUS_HASH_TAG,) and found[sha1].type is IOCType.SHA1
    assert found[sha256].tags == () and found[sha256].type is IOCType.SHA256
    [plain] = extract_iocs(f"file {sha1}", warninglists="off")
    assert plain.tags == ()


def test_a_context_word_split_by_a_line_break_still_tags_the_hash() -> None:
    md5 = "a" * 32
    [split] = extract_iocs(f"the NT\nhash {md5}", warninglists="off")
    assert split.type is IOCType.MD5 and split.tags == (AMBIGUOUS_HASH_TAG,)
    [apart] = extract_iocs(f"the NT. Then hash {md5}", warninglists="off")  # a new sentence
    assert apart.tags == ()


def test_defanging_an_address_cuts_it_at_its_last_at_sign() -> None:
    assert defang_as('"a@b"@evil.com', IOCType.EMAIL) == '"a@b"[@]evil[.]com'


def test_defang_leaves_a_bracketed_host_and_the_user_part_of_a_url_alone() -> None:
    assert defang("http://[::ffff:1.2.3.4]/a") == "hxxp://[::ffff:1.2.3.4]/a"
    assert defang("http://first.last@evil.com/") == "hxxp://first.last@evil[.]com/"
    assert defang("ftp://evil.com:2121/x.y") == "fxp://evil[.]com:2121/x.y"
