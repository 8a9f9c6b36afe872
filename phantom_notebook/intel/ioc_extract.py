"""Pull indicators out of free text such as a threat report, defanged or not.

The text is refanged first, then scanned once with a single compiled pattern whose
alternatives are tried in precedence order at each position, so a longer, more specific
indicator consumes its parts:

* a URL swallows its host, port and path: the domain or IP of a URL is only emitted when it
  also appears on its own.  Hashes, CVE ids and MITRE technique ids *inside* a URL are
  still emitted (``https://www.virustotal.com/gui/file/<sha256>`` yields the hash too);
* an email swallows its domain, and a hostname is never read as an email;
* a CIDR swallows its address, and a MAC address is not mistaken for IPv6;
* dotted numbers that are not exactly four octets (``2.0.1``, ``1.2.3.4.5``) are versions,
  not addresses; octets above 255 or with leading zeros are skipped;
* hashes are whole hex words of exactly 32, 40, 64 or 128 digits;
* a domain needs a real ICANN top-level domain, so ``report.pdf`` is no domain.  A
  two-label name whose TLD is also a common file extension (``setup.py``, ``install.sh``,
  ``README.md``, ``invoice.zip``) is taken for a file name unless it was written defanged
  (``setup[.]py``), which shows the author meant a host; with more labels it is a domain;
* trailing punctuation (``example.com.``, ``(http://x.com/a)``, ``"evil.com",``) is left out.

Results are deduplicated by (type, normalized value), in order of first appearance.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Collection, Iterable

from phantom_notebook.intel.defang import refang_with_offsets
from phantom_notebook.intel.ioc import DEFAULT_CONFIDENCE, DEFAULT_TLP, IOC
from phantom_notebook.intel.normalize import InvalidIOCError, IOCType, normalize_as
from phantom_notebook.intel.tlp import TLP

__all__ = ["FILE_EXTENSION_TLDS", "extract_iocs"]

FILE_EXTENSION_TLDS = frozenset(
    {"app", "cab", "cat", "cc", "md", "ml", "mov", "one", "pl", "pm", "ps", "pub", "py", "rs",
     "sh", "so", "tf", "zip"}
)  # fmt: skip

_LABEL = r"\w(?:[\w-]{0,62}\w)?"
_HOST = rf"(?:{_LABEL}\.)+(?:[^\W\d_]{{2,63}}|[Xx][Nn]--[\w-]{{1,59}})"
_IPV4 = r"(?:\d{1,3}\.){3}\d{1,3}"
_IPV6 = r"(?:[0-9A-Fa-f]{1,4}|(?=:))(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}"
_MAC = (
    r"[0-9A-Fa-f]{2}(?P<macsep>[:-])(?:[0-9A-Fa-f]{2}(?P=macsep)){4}[0-9A-Fa-f]{2}"
    r"|(?:[0-9A-Fa-f]{4}\.){2}[0-9A-Fa-f]{4}"
)
_LOCAL = r"[\w+%-]+(?:\.[\w+%-]+)*"
_URL_CHARS = r"[^\s<>\"'`{}|\\^\u201c\u201d\u2018\u2019\u00ab\u00bb]"
_HASH = r"(?P<hash>(?<![\w-])[0-9A-Fa-f]{32,128}(?![\w-]))"
_CVE = r"(?P<cve>(?<![\w-])[Cc][Vv][Ee]-\d{4}-\d{4,}(?!\w))"
_MITRE = r"(?P<mitre_technique>(?<![\w.])T\d{4}(?:\.\d{3})?(?!\w|\.\d))"

_PATTERN = re.compile(
    rf"(?P<url>(?<!\w)(?i:https?|ftps?|sftp|wss?)://{_URL_CHARS}+)"
    rf"|(?P<email>(?<![\w.+%-]){_LOCAL}@{_HOST}(?![\w-]|\.\w))"
    rf"|(?P<cidr>(?<![\w:.])(?:{_IPV4}|{_IPV6})/\d{{1,3}}(?![\w/]|\.\d))"
    rf"|(?P<mac>(?<![\w:.-])(?:{_MAC})(?![\w:-]|\.\w))"
    rf"|(?P<ipv6>(?<![\w:.])(?:{_IPV6})(?![\w:]|\.\d))"
    rf"|(?P<ipv4>(?<![\w.])(?:{_IPV4})(?!\w|\.\w))"
    rf"|{_HASH}|{_CVE}|{_MITRE}"
    rf"|(?P<asn>(?<!\w)ASN? ?\d{{1,10}}(?!\w))"
    rf"|(?P<domain>(?<![\w.-]){_HOST}(?![\w-]|\.\w))"
)
_INSIDE_URL = re.compile(rf"{_HASH}|{_CVE}|{_MITRE}")
_HASH_BY_LENGTH = {32: IOCType.MD5, 40: IOCType.SHA1, 64: IOCType.SHA256, 128: IOCType.SHA512}
_CLOSERS = {")": "(", "]": "[", "}": "{", ">": "<"}
_TRAILING = frozenset(".,;:!?*")

_Hit = tuple[int, IOCType, str]


def _trim_url(url: str) -> str:
    """Drop sentence punctuation and unbalanced closing brackets from the end of a URL."""
    while url:
        last = url[-1]
        if last in _TRAILING:
            url = url[:-1]
        elif last in _CLOSERS and url.count(last) > url.count(_CLOSERS[last]):
            url = url[:-1]
        else:
            break
    return url


def _kind_of(match: re.Match[str]) -> IOCType:
    group = match.lastgroup
    assert group is not None
    if group == "hash":
        return _HASH_BY_LENGTH.get(len(match[0]), IOCType.MD5)
    return IOCType(group)


def _looks_like_file(value: str, start: int, end: int, offsets: list[int]) -> bool:
    """Tell whether a two-label name such as ``setup.py`` was most likely a file name."""
    name, _, tld = value.rpartition(".")
    if "." in name or tld.lower() not in FILE_EXTENSION_TLDS:
        return False
    index = bisect_left(offsets, start)
    was_defanged = index < len(offsets) and offsets[index] < end
    return not was_defanged


def _inside_url(url: str, start: int) -> Iterable[_Hit]:
    for match in _INSIDE_URL.finditer(url):
        kind = _kind_of(match)
        if match.lastgroup != "hash" or len(match[0]) in _HASH_BY_LENGTH:
            yield start + match.start(), kind, match[0]


def _hits(text: str, offsets: list[int]) -> Iterable[_Hit]:
    for match in _PATTERN.finditer(text):
        kind, raw, start = _kind_of(match), match[0], match.start()
        if kind is IOCType.URL:
            raw = _trim_url(raw)
            yield from _inside_url(raw, start)
        elif match.lastgroup == "hash" and len(raw) not in _HASH_BY_LENGTH:
            continue
        elif kind is IOCType.DOMAIN and _looks_like_file(raw, start, match.end(), offsets):
            continue
        yield start, kind, raw


def extract_iocs(
    text: str,
    *,
    types: Collection[IOCType | str] | None = None,
    tlp: TLP | str = DEFAULT_TLP,
    confidence: int = DEFAULT_CONFIDENCE,
    source: str | None = None,
    tags: Iterable[str] = (),
) -> list[IOC]:
    """Return the indicators found in ``text``, deduplicated, in order of first appearance.

    ``types`` restricts the result to those types; ``tlp``, ``confidence``, ``source`` and
    ``tags`` are applied to every IOC returned.  Candidates that fail validation (an octet
    above 255, an unknown TLD...) are skipped silently.
    """
    wanted = None if types is None else {IOCType(kind) for kind in types}
    marking = TLP.parse(tlp)
    tag_tuple = tuple(tags)
    clean, offsets = refang_with_offsets(text)
    found: dict[tuple[IOCType, str], tuple[int, IOC]] = {}
    for start, kind, raw in _hits(clean, offsets):
        if wanted is not None and kind not in wanted:
            continue
        try:
            value = normalize_as(raw, kind)
        except InvalidIOCError:
            continue
        previous = found.get((kind, value))
        if previous is None or start < previous[0]:
            ioc = IOC(value, kind, marking, confidence, source, tags=tag_tuple)
            found[(kind, value)] = (start, ioc)
    return [ioc for _, ioc in sorted(found.values(), key=lambda item: item[0])]
