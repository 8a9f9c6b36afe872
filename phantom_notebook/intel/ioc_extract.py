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
* trailing punctuation (``example.com.``, ``(http://x.com/a)``, ``"evil.com",``) is left out;
* a dotted quad right after a version word (``version 4.2.19.7``, ``build``, ``v``,
  ``release``, ``firmware``, ``rev``, ``patch``) is a version, not an ipv4;
* a 32-hex word is an md5 unless the words just before it say ``JA3``/``JA3S`` (then it is a
  ``ja3`` fingerprint); after ``imphash``, ``NTLM``, ``GUID``... it stays md5 but is tagged
  ``ambiguous-hash``, as is a 40-hex word after ``commit`` (a git id, not only a sha1);
* Bitcoin wallets (legacy ``1...``/``3...`` and bech32 ``bc1...``, checksum verified),
  Ethereum wallets (``0x`` + 40 hex) and file paths — Windows ``C:\\...``, ``%APPDATA%\\...``
  and UNC ``\\\\host\\share``; Unix only under a well-known root (``/etc/``, ``/tmp/``,
  ``/var/``, ``/usr/``, ``/home/``...), so ``and/or`` or ``1/2`` are never paths.

Related observables: every URL and email IOC carries ``related`` — the URL's host (domain
or IP) and the email's domain as IOCs of their own, so they are available as pivots.  By
default (``related=False``) they are *not* added to the list (a URL still swallows its
host, as above); ``related=True`` adds each one right after the first indicator it came
from, unless it is already in the list.

Warninglists: by default (``warninglists="mark"``) each IOC's ``warninglists`` names the
MISP warninglists its value is on (``dns.google``, ``8.8.8.8``, the md5 of an empty file);
``"drop"`` leaves those out, ``"off"`` skips the lookup (see ``warninglists`` module).

Results are deduplicated by (type, normalized value), in order of first appearance.
"""

from __future__ import annotations

import dataclasses
import re
from bisect import bisect_left
from collections.abc import Collection, Iterable
from typing import Literal
from urllib.parse import urlsplit

from phantom_notebook.intel.defang import refang_with_offsets
from phantom_notebook.intel.ioc import DEFAULT_CONFIDENCE, DEFAULT_TLP, IOC
from phantom_notebook.intel.normalize import InvalidIOCError, IOCType, classify, normalize_as
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
_WIN_PART = (  # names with a space that Windows itself uses; any other space ends the path
    r"(?:Program Files(?: \(x86\))?|Documents and Settings|Start Menu|Application Data"
    r"|Local Settings|All Users|Common Files|[^\s\\/:*?\"<>|]+)"
)
_PATH = (
    rf"(?P<file_path>(?<![\w\\])(?:[A-Za-z]:|%[A-Za-z_][A-Za-z0-9_]*%|\\\\[\w.$-]+)"
    rf"(?:\\{_WIN_PART})+\\?"
    r"|(?<![\w/.:~\\-])/(?:etc|tmp|var|usr|opt|home|root|dev|bin|sbin|lib|lib64|proc|srv|mnt"
    r"|Library|Users|Applications|System)(?:/[\w.@+-]+)+/?)"
)
_ETH = r"(?P<eth_address>(?<!\w)0x[0-9a-fA-F]{40}(?!\w))"
_BTC = (
    r"(?P<btc_address>(?<![\w-])(?:[13][1-9A-HJ-NP-Za-km-z]{25,34}"
    r"|bc1[02-9ac-hj-np-z]{6,87}|BC1[02-9AC-HJ-NP-Z]{6,87})(?![\w-]))"
)

_PATTERN = re.compile(
    rf"(?P<url>(?<!\w)(?i:https?|ftps?|sftp|wss?)://{_URL_CHARS}+)"
    rf"|(?P<email>(?<![\w.+%-]){_LOCAL}@{_HOST}(?![\w-]|\.\w))"
    rf"|(?P<cidr>(?<![\w:.])(?:{_IPV4}|{_IPV6})/\d{{1,3}}(?![\w/]|\.\d))"
    rf"|(?P<mac>(?<![\w:.-])(?:{_MAC})(?![\w:-]|\.\w))"
    rf"|(?P<ipv6>(?<![\w:.])(?:{_IPV6})(?![\w:]|\.\d))"
    rf"|(?P<ipv4>(?<![\w.])(?:{_IPV4})(?!\w|\.\w))"
    rf"|{_PATH}|{_ETH}|{_HASH}|{_BTC}|{_CVE}|{_MITRE}"
    rf"|(?P<asn>(?<!\w)ASN? ?\d{{1,10}}(?!\w))"
    rf"|(?P<domain>(?<![\w.-]){_HOST}(?![\w-]|\.\w))"
)
_INSIDE_URL = re.compile(rf"{_HASH}|{_CVE}|{_MITRE}")
_HASH_BY_LENGTH = {32: IOCType.MD5, 40: IOCType.SHA1, 64: IOCType.SHA256, 128: IOCType.SHA512}
_CLOSERS = {")": "(", "]": "[", "}": "{", ">": "<"}
_TRAILING = frozenset(".,;:!?*")

_VERSION_WORDS = re.compile(
    r"(?i)(?<!\w)(?:version|ver|v|build|release|rel|firmware|fw|rev|revision|patch)"
    r"\.?\s*[:#]?\s*$")
_JA3_WORDS = re.compile(r"(?i)(?<![a-z])ja3s?(?![a-z])")
_AMBIGUOUS_32 = re.compile(r"(?i)imphash|ntlm|nt hash|lm hash|guid|uuid|tlsh|ssdeep|md4")
_AMBIGUOUS_40 = re.compile(r"(?i)commit|git|revision")
AMBIGUOUS_HASH_TAG = "ambiguous-hash"
_CONTEXT_CHARS = 48
_SENTENCE_END = re.compile(r"[.;!?]\s|\s\s+(?=[A-Z])")

_Hit = tuple[int, IOCType, str, tuple[str, ...]]


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


def _before(text: str, start: int) -> str:
    """The words just before ``start`` in the same sentence (line breaks do not end one)."""
    window = text[max(0, start - _CONTEXT_CHARS):start].replace("\n", " ")
    return _SENTENCE_END.split(window)[-1]


def _typed_hash(kind: IOCType, raw: str, context: str) -> tuple[IOCType, tuple[str, ...]]:
    """A hash's type and tags, told from the words before it (``JA3 <32 hex>`` is ja3)."""
    if len(raw) == 32:
        if _JA3_WORDS.search(context):
            return IOCType.JA3, ()
        if _AMBIGUOUS_32.search(context):
            return kind, (AMBIGUOUS_HASH_TAG,)
    if len(raw) == 40 and _AMBIGUOUS_40.search(context):
        return kind, (AMBIGUOUS_HASH_TAG,)
    return kind, ()


def _inside_url(url: str, start: int) -> Iterable[_Hit]:
    for match in _INSIDE_URL.finditer(url):
        kind = _kind_of(match)
        if match.lastgroup != "hash" or len(match[0]) in _HASH_BY_LENGTH:
            yield start + match.start(), kind, match[0], ()


def _hits(text: str, offsets: list[int]) -> Iterable[_Hit]:
    for match in _PATTERN.finditer(text):
        kind, raw, start = _kind_of(match), match[0], match.start()
        tags: tuple[str, ...] = ()
        if kind is IOCType.URL:
            raw = _trim_url(raw)
            yield from _inside_url(raw, start)
        elif kind is IOCType.FILE_PATH:
            raw = _trim_url(raw)
        elif match.lastgroup == "hash":
            if len(raw) not in _HASH_BY_LENGTH:
                continue
            kind, tags = _typed_hash(kind, raw, _before(text, start))
        elif kind is IOCType.IPV4 and _VERSION_WORDS.search(_before(text, start)):
            continue  # "version 4.2.19.7" is a version string
        elif kind is IOCType.DOMAIN and _looks_like_file(raw, start, match.end(), offsets):
            continue
        yield start, kind, raw, tags


def _host_of(ioc: IOC) -> str | None:
    if ioc.type is IOCType.URL:
        return urlsplit(ioc.value).hostname
    if ioc.type is IOCType.EMAIL:
        return ioc.value.rpartition("@")[2]
    return None


def _related(ioc: IOC) -> IOC:
    """``ioc`` with its URL host / email domain as ``related`` IOCs (same handling marks)."""
    host = _host_of(ioc)
    if not host:
        return ioc
    try:
        kind = classify(host)
        value = normalize_as(host, kind)
    except InvalidIOCError:
        return ioc
    if kind not in (IOCType.DOMAIN, IOCType.IPV4, IOCType.IPV6):
        return ioc
    pivot = IOC(value, kind, ioc.tlp, ioc.confidence, ioc.source, tags=ioc.tags)
    return dataclasses.replace(ioc, related=(pivot,))


def _marked(ioc: IOC) -> IOC:
    from phantom_notebook.intel.warninglists import default_index

    index = default_index()
    related = tuple(dataclasses.replace(r, warninglists=index.matches(r.value, r.type))
                    for r in ioc.related)
    return dataclasses.replace(ioc, related=related,
                               warninglists=index.matches(ioc.value, ioc.type))


def extract_iocs(
    text: str,
    *,
    types: Collection[IOCType | str] | None = None,
    tlp: TLP | str = DEFAULT_TLP,
    confidence: int = DEFAULT_CONFIDENCE,
    source: str | None = None,
    tags: Iterable[str] = (),
    related: bool = False,
    warninglists: Literal["mark", "drop", "off"] = "mark",
) -> list[IOC]:
    """Return the indicators found in ``text``, deduplicated, in order of first appearance.

    ``types`` restricts the result to those types; ``tlp``, ``confidence``, ``source`` and
    ``tags`` are applied to every IOC returned.  Candidates that fail validation (an octet
    above 255, an unknown TLD...) are skipped silently.  URL and email IOCs always carry
    their host / domain in ``IOC.related``; ``related=True`` also lists those as IOCs of
    their own.  ``warninglists="mark"`` (default) fills ``IOC.warninglists``, ``"drop"``
    leaves out values on a MISP warninglist, ``"off"`` skips the lookup.
    """
    if warninglists not in ("mark", "drop", "off"):
        raise ValueError(f"warninglists={warninglists!r}: use 'mark', 'drop' or 'off'")
    wanted = None if types is None else {IOCType(kind) for kind in types}
    marking = TLP.parse(tlp)
    tag_tuple = tuple(tags)
    clean, offsets = refang_with_offsets(text)
    found: dict[tuple[IOCType, str], tuple[float, IOC]] = {}
    for start, kind, raw, extra in _hits(clean, offsets):
        if wanted is not None and kind not in wanted:
            continue
        try:
            value = normalize_as(raw, kind)
        except InvalidIOCError:
            continue
        previous = found.get((kind, value))
        if previous is None or start < previous[0]:
            ioc = _related(IOC(value, kind, marking, confidence, source,
                               tags=(*tag_tuple, *extra)))
            found[(kind, value)] = (start, ioc)
    if related:
        _add_related(found, wanted)
    iocs = [ioc for _, ioc in sorted(found.values(), key=lambda item: item[0])]
    if warninglists == "off":
        return iocs
    iocs = [_marked(ioc) for ioc in iocs]
    return [i for i in iocs if not i.warninglists] if warninglists == "drop" else iocs


def _add_related(found: dict[tuple[IOCType, str], tuple[float, IOC]],
                 wanted: set[IOCType] | None) -> None:
    for start, ioc in list(found.values()):
        for pivot in ioc.related:
            if wanted is not None and pivot.type not in wanted:
                continue
            if pivot.key not in found or found[pivot.key][0] > start:
                found[pivot.key] = (start + 0.5, pivot)
