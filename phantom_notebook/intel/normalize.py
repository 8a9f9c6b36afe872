"""IOC types and their validation: turn one raw value into its canonical form or say why not.

Every validator returns the *normalized* value:

* ``ipv4`` dotted quad; leading zeros are refused (ambiguous: octal in some tools).
* ``ipv6`` compressed form (``2001:db8::1``); surrounding brackets are dropped.
* ``cidr`` network address with prefix: a host address with a prefix is normalized to
  its network (``10.0.0.1/8`` -> ``10.0.0.0/8``, i.e. ``strict=False``), since feeds often
  write interface notation and the covered range is what analysts block.
* ``domain`` lowercase, trailing root dot removed, unicode labels to punycode (IDNA 2008 /
  UTS 46), and the top-level domain must be a real ICANN TLD.
* ``url`` scheme and host lowercased, host normalized as a domain or IP, default port
  removed, empty path becomes ``/``; userinfo, path, query and fragment are kept verbatim
  (the fragment is kept because phishing kits often carry the victim there).
* ``email`` domain part normalized as a domain, local part kept as written.
* hashes lowercase hex of the exact length; ``cve`` upper case; ``asn`` ``AS<number>``;
  ``mitre_technique`` ``T1059`` / ``T1059.001``; ``mac`` lowercase, colon separated.

* ``ja3`` a TLS client fingerprint: 32 lowercase hex digits, like an md5 (the extractor
  tells them apart by the words around them).
* ``btc_address`` only with a valid checksum (Base58Check, bech32/bech32m), so random
  base58 text is not taken for a wallet; ``eth_address`` ``0x`` + 40 hex, lowercased;
  ``file_path`` Windows (``C:\\...``, ``%APPDATA%\\...``, UNC) or Unix, kept as written
  (see ``observables``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from enum import StrEnum
from functools import cache

import idna

from phantom_notebook.core.errors import ValidationError
from phantom_notebook.intel import observables

__all__ = ["IOCType", "InvalidIOCError", "classify", "coerce_type", "known_tlds", "normalize_as"]


class IOCType(StrEnum):
    """The kinds of indicator phantom_notebook understands; values are stable wire names."""

    IPV4 = "ipv4"
    IPV6 = "ipv6"
    CIDR = "cidr"
    DOMAIN = "domain"
    URL = "url"
    EMAIL = "email"
    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"
    SHA512 = "sha512"
    CVE = "cve"
    ASN = "asn"
    MITRE_TECHNIQUE = "mitre_technique"
    MAC = "mac"
    JA3 = "ja3"
    BTC_ADDRESS = "btc_address"
    ETH_ADDRESS = "eth_address"
    FILE_PATH = "file_path"

    @property
    def description(self) -> str:
        """Human wording used in error messages, e.g. ``ipv4 address``."""
        return _DESCRIPTIONS[self]


_DESCRIPTIONS: dict[IOCType, str] = {
    IOCType.IPV4: "ipv4 address",
    IOCType.IPV6: "ipv6 address",
    IOCType.CIDR: "cidr network",
    IOCType.DOMAIN: "domain",
    IOCType.URL: "url",
    IOCType.EMAIL: "email address",
    IOCType.MD5: "md5 hash",
    IOCType.SHA1: "sha1 hash",
    IOCType.SHA256: "sha256 hash",
    IOCType.SHA512: "sha512 hash",
    IOCType.CVE: "cve id",
    IOCType.ASN: "autonomous system number",
    IOCType.MITRE_TECHNIQUE: "mitre att&ck technique id",
    IOCType.MAC: "mac address",
    IOCType.JA3: "ja3 tls fingerprint",
    IOCType.BTC_ADDRESS: "bitcoin address",
    IOCType.ETH_ADDRESS: "ethereum address",
    IOCType.FILE_PATH: "file path",
}


class InvalidIOCError(ValidationError):
    """Raised when a value is not a valid indicator; the message names the value and the flaw."""

    def __init__(self, value: str, ioc_type: IOCType | None, problem: str) -> None:
        self.value = value
        self.ioc_type = ioc_type
        self.problem = problem
        what = f"a valid {ioc_type.description}" if ioc_type is not None else "an indicator"
        super().__init__(f"{value!r} is not {what}: {problem}")


def coerce_type(value: IOCType | str) -> IOCType:
    """Return ``value`` as an IOCType, accepting its wire name (``"sha256"``) as well."""
    try:
        return IOCType(value)
    except ValueError:
        allowed = ", ".join(IOCType)
        raise ValidationError(f"{value!r} is not an IOC type: expected one of {allowed}") from None


class _Problem(Exception):
    """Internal: what is wrong with a value, before the value and type are attached."""


@cache
def known_tlds() -> frozenset[str]:
    """Return the ICANN top-level domains (ASCII/punycode, lowercase) from tldextract's snapshot.

    The snapshot ships inside the tldextract wheel; ``suffix_list_urls=()`` and
    ``cache_dir=None`` guarantee no network fetch and no cache file.
    """
    import tldextract  # imported lazily: it pulls in requests, which is slow to import

    extractor = tldextract.TLDExtract(
        suffix_list_urls=(), cache_dir=None, include_psl_private_domains=False
    )
    tlds: set[str] = set()
    for suffix in extractor.tlds:
        top = suffix.rsplit(".", 1)[-1].lower()
        tlds.add(top if top.isascii() else idna.encode(top, uts46=True).decode("ascii"))
    return frozenset(tlds)


_OCTET = re.compile(r"[0-9]{1,3}")
_ASCII_LABEL = re.compile(r"[a-z0-9_-]+")
_HEX = re.compile(r"[0-9a-f]+")
_CVE = re.compile(r"CVE-(\d{4})-(\d{4,})", re.I)
_ASN = re.compile(r"(?:ASN?\s?)?(\d{1,20})", re.I)
_MITRE = re.compile(r"T\d{4}(?:\.\d{3})?", re.I)
_MAC = re.compile(
    r"[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}|[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}", re.I
)
_EMAIL_LOCAL = re.compile(r"[^\s@\"(),:;<>\[\]\\.]+(?:\.[^\s@\"(),:;<>\[\]\\.]+)*")
_URL_SHAPE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)", re.S)
_IPV4_SHAPE = re.compile(r"\d+(?:\.\d+){3}")
_DOTTED_NUMBERS = re.compile(r"[\d.]+")
URL_SCHEMES: dict[str, int] = {
    "http": 80, "https": 443, "ftp": 21, "ftps": 990, "sftp": 22, "ws": 80, "wss": 443
}  # fmt: skip
_HASH_TYPES = {32: IOCType.MD5, 40: IOCType.SHA1, 64: IOCType.SHA256, 128: IOCType.SHA512}
_HASH_LENGTHS = {kind: length for length, kind in _HASH_TYPES.items()}


def _ipv4(value: str) -> str:
    octets = value.split(".")
    if len(octets) != 4:
        raise _Problem(f"expected 4 dot-separated octets, got {len(octets)}")
    for octet in octets:
        if not _OCTET.fullmatch(octet):
            raise _Problem(f"octet {octet!r} is not a number from 0 to 255")
        if int(octet) > 255:
            raise _Problem(f"octet {octet} > 255")
        if len(octet) > 1 and octet.startswith("0"):
            raise _Problem(f"octet {octet!r} has a leading zero (ambiguous: octal in some tools)")
    return value


def _ipv6(value: str) -> str:
    bare = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        address = ipaddress.IPv6Address(bare)
    except ValueError as exc:
        raise _Problem(str(exc)) from None
    if address.ipv4_mapped is not None:  # RFC 5952 §5, and stable across Python versions
        return f"::ffff:{address.ipv4_mapped}"
    return address.compressed


def _cidr(value: str) -> str:
    address, slash, prefix = value.rpartition("/")
    if not slash:
        raise _Problem("missing '/prefix-length'")
    width = 128 if ":" in address else 32
    if not prefix.isascii() or not prefix.isdigit():
        raise _Problem(f"prefix length {prefix!r} is not a number")
    if int(prefix) > width:
        raise _Problem(f"prefix length {int(prefix)} > {width}")
    address = _ipv6(address) if width == 128 else _ipv4(address)
    return str(ipaddress.ip_network(f"{address}/{int(prefix)}", strict=False))


def _label(label: str) -> str:
    if not label:
        raise _Problem("empty label (two dots in a row, or a leading dot)")
    if not label.isascii():
        try:
            label = idna.encode(label, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise _Problem(f"label {label!r} is not valid IDNA: {exc}") from None
    if not _ASCII_LABEL.fullmatch(label):
        raise _Problem(f"label {label!r} may only hold letters, digits, '-' and '_'")
    if label.startswith("-") or label.endswith("-"):
        raise _Problem(f"label {label!r} starts or ends with a hyphen")
    if len(label) > 63:
        raise _Problem(f"label {label[:20]!r}... is longer than 63 characters")
    return label


def _domain(value: str) -> str:
    name = value[:-1] if value.endswith(".") else value
    labels = [_label(part) for part in name.lower().split(".")]
    if len(labels) < 2:
        raise _Problem("needs at least a name and a top-level domain")
    if labels[-1] not in known_tlds():
        raise _Problem(f"unknown top-level domain {'.' + labels[-1]!r}")
    result = ".".join(labels)
    if len(result) > 253:
        raise _Problem(f"{len(result)} characters long, the limit is 253")
    return result


def _host(host: str) -> str:
    if host.startswith("["):
        return f"[{_ipv6(host)}]"
    if _IPV4_SHAPE.fullmatch(host):
        return _ipv4(host)
    return _domain(host)


def _split_hostport(hostport: str) -> tuple[str, str]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise _Problem("unclosed '[' in the host")
        host, rest = hostport[: end + 1], hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            raise _Problem(f"unexpected {rest!r} after the host")
        return host, rest[1:]
    if hostport.count(":") > 1:
        raise _Problem("an ipv6 host must be written in brackets, e.g. http://[2001:db8::1]/")
    host, _, port = hostport.partition(":")
    return host, port


def _url(value: str) -> str:
    shape = _URL_SHAPE.fullmatch(value)
    if shape is None:
        raise _Problem("expected scheme://host[/path]")
    scheme, netloc, rest = shape[1].lower(), shape[2], shape[3]
    if scheme not in URL_SCHEMES:
        raise _Problem(f"scheme {scheme!r} is not one of {', '.join(URL_SCHEMES)}")
    if any(char.isspace() for char in value):
        raise _Problem("contains whitespace")
    userinfo, at, hostport = netloc.rpartition("@")
    host, port = _split_hostport(hostport)
    if not host:
        raise _Problem("missing host")
    try:
        host = _host(host)
    except _Problem as exc:
        raise _Problem(f"host {host!r}: {exc}") from None
    if port:
        if not port.isascii() or not port.isdigit() or int(port) > 65535:
            raise _Problem(f"port {port!r} is not a number from 0 to 65535")
        port = "" if int(port) == URL_SCHEMES[scheme] else f":{int(port)}"
    if not rest.startswith("/"):
        rest = "/" + rest
    return f"{scheme}://{userinfo}{at}{host}{port}{rest}"


def _email(value: str) -> str:
    if value[:7].lower() == "mailto:":
        value = value[7:]
    local, at, domain = value.rpartition("@")
    if not at:
        raise _Problem("missing '@'")
    if not _EMAIL_LOCAL.fullmatch(local) or len(local) > 64:
        raise _Problem(f"local part {local!r} is not a valid mailbox name")
    try:
        return f"{local}@{_domain(domain)}"
    except _Problem as exc:
        raise _Problem(f"domain {domain!r}: {exc}") from None


def _hash(value: str, length: int) -> str:
    digest = value.lower()
    if not _HEX.fullmatch(digest):
        raise _Problem("contains characters other than hex digits 0-9, a-f")
    if len(digest) != length:
        raise _Problem(f"expected {length} hex digits, got {len(digest)}")
    return digest


def _cve(value: str) -> str:
    match = _CVE.fullmatch(value)
    if match is None:
        raise _Problem("expected CVE-YYYY-NNNN (four or more digits after the year)")
    if int(match[1]) < 1999:
        raise _Problem(f"year {match[1]} is before the first CVE year, 1999")
    return value.upper()


def _asn(value: str) -> str:
    match = _ASN.fullmatch(value)
    if match is None:
        raise _Problem("expected AS followed by a number, e.g. AS13335")
    number = int(match[1])
    if number > 4_294_967_295:
        raise _Problem(f"AS number {number} > 4294967295")
    return f"AS{number}"


def _mitre(value: str) -> str:
    if not _MITRE.fullmatch(value):
        raise _Problem("expected T and four digits, optionally .NNN (e.g. T1059.001)")
    return value.upper()


def _mac(value: str) -> str:
    if not _MAC.fullmatch(value):
        raise _Problem("expected six hex pairs separated by ':' or '-', or xxxx.xxxx.xxxx")
    digits = re.sub(r"[^0-9a-f]", "", value.lower())
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def _wrapped(check: Callable[[str], str]) -> Callable[[str], str]:
    def validate(value: str) -> str:
        try:
            return check(value)
        except ValueError as exc:
            raise _Problem(str(exc)) from None

    return validate


_VALIDATORS: dict[IOCType, Callable[[str], str]] = {
    IOCType.IPV4: _ipv4,
    IOCType.IPV6: _ipv6,
    IOCType.CIDR: _cidr,
    IOCType.DOMAIN: _domain,
    IOCType.URL: _url,
    IOCType.EMAIL: _email,
    IOCType.CVE: _cve,
    IOCType.ASN: _asn,
    IOCType.MITRE_TECHNIQUE: _mitre,
    IOCType.MAC: _mac,
    IOCType.JA3: lambda text: _hash(text, 32),
    IOCType.BTC_ADDRESS: _wrapped(observables.btc_address),
    IOCType.ETH_ADDRESS: _wrapped(observables.eth_address),
    IOCType.FILE_PATH: _wrapped(observables.file_path),
}


def normalize_as(value: str, ioc_type: IOCType) -> str:
    """Return ``value`` (already refanged) normalized as ``ioc_type``, or raise InvalidIOCError."""
    if not isinstance(value, str):
        raise InvalidIOCError(repr(value), ioc_type, f"expected a string, got {type(value)}")
    text = value.strip()
    if not text:
        raise InvalidIOCError(value, ioc_type, "empty value")
    try:
        if ioc_type in _HASH_LENGTHS:
            return _hash(text, _HASH_LENGTHS[ioc_type])
        return _VALIDATORS[ioc_type](text)
    except _Problem as exc:
        raise InvalidIOCError(value, ioc_type, str(exc)) from None


def _shape_of_hash(text: str) -> IOCType | None:
    if _HEX.fullmatch(text.lower()):
        return _HASH_TYPES.get(len(text))
    return None


_SHAPES: tuple[tuple[Callable[[str], object], IOCType], ...] = (
    (_MITRE.fullmatch, IOCType.MITRE_TECHNIQUE),
    (_CVE.fullmatch, IOCType.CVE),
    (lambda text: text[:2].upper() == "AS" and _ASN.fullmatch(text), IOCType.ASN),
    (_MAC.fullmatch, IOCType.MAC),
    (lambda text: "://" in text, IOCType.URL),
    (lambda text: "/" in text, IOCType.CIDR),
    (lambda text: "@" in text, IOCType.EMAIL),
    (_IPV4_SHAPE.fullmatch, IOCType.IPV4),
    (lambda text: ":" in text, IOCType.IPV6),
)


def classify(value: str) -> IOCType:
    """Return the type that ``value`` (already refanged) has the shape of.

    Only the shape is judged here: ``999.1.1.1`` is classified ``ipv4`` so that
    validation can then say exactly which octet is wrong.
    """
    text = value.strip()
    hash_type = _shape_of_hash(text)
    if hash_type is not None:
        return hash_type
    for matches, kind in _SHAPES:
        if matches(text):
            return kind
    if _DOTTED_NUMBERS.fullmatch(text):
        raise InvalidIOCError(value, None, "dotted numbers but not 4 octets (a version number?)")
    if "." in text.rstrip("."):
        return IOCType.DOMAIN
    raise InvalidIOCError(value, None, "matches no indicator type (" + ", ".join(IOCType) + ")")
