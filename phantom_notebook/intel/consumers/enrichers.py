"""Offline enrichers: IP classification, domain/URL parsing, hash typing, relationships.

An enricher is anything with a ``name``, ``supports(ioc)`` and ``enrich(ioc, request)``
returning a JSON-friendly mapping (the ``Enricher`` protocol), so a real provider (passive
DNS, sandbox, commercial reputation) plugs in beside these.  Two keys are conventions the
enrichment consumer lifts into the result: ``hits`` (a list of ``ReputationHit`` dicts) and
``related`` (a list of ``<type>:<value>`` keys).  ``option``, when set, names the
``EnrichmentOptions`` flag that switches the enricher off.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from functools import cache
from typing import Any, Protocol, runtime_checkable

from phantom_notebook.core.queues import MessageQueue
from phantom_notebook.intel.ioc import IOC
from phantom_notebook.intel.normalize import IOCType, coerce_type
from phantom_notebook.intel.schemas import IOCEnrichmentRequest

__all__ = [
    "SPECIAL_RANGES",
    "DomainEnricher",
    "Enricher",
    "HashEnricher",
    "IPEnricher",
    "RelationshipEnricher",
    "classify_ip",
]


@runtime_checkable
class Enricher(Protocol):
    """What the enrichment consumer needs from an enricher."""

    name: str

    def supports(self, ioc: IOC) -> bool:
        """True when this enricher has something to say about ``ioc``'s type."""
        ...

    def enrich(self, ioc: IOC, request: IOCEnrichmentRequest) -> Mapping[str, Any]:
        """Return what is known about ``ioc``; raise to report an error for this enricher."""
        ...


# (cidr, name, category, reference): the most specific match wins
SPECIAL_RANGES: tuple[tuple[str, str, str, str], ...] = (
    ("0.0.0.0/8", "this network", "reserved", "RFC 1122"),
    ("10.0.0.0/8", "private-use", "private", "RFC 1918"),
    ("100.64.0.0/10", "shared address space (CGNAT)", "shared", "RFC 6598"),
    ("127.0.0.0/8", "loopback", "loopback", "RFC 1122"),
    ("169.254.0.0/16", "link local", "link-local", "RFC 3927"),
    ("172.16.0.0/12", "private-use", "private", "RFC 1918"),
    ("192.0.0.0/24", "IETF protocol assignments", "reserved", "RFC 6890"),
    ("192.0.2.0/24", "TEST-NET-1", "documentation", "RFC 5737"),
    ("192.88.99.0/24", "6to4 relay anycast (deprecated)", "reserved", "RFC 7526"),
    ("192.168.0.0/16", "private-use", "private", "RFC 1918"),
    ("198.18.0.0/15", "benchmarking", "reserved", "RFC 2544"),
    ("198.51.100.0/24", "TEST-NET-2", "documentation", "RFC 5737"),
    ("203.0.113.0/24", "TEST-NET-3", "documentation", "RFC 5737"),
    ("224.0.0.0/4", "multicast", "multicast", "RFC 5771"),
    ("240.0.0.0/4", "reserved for future use", "reserved", "RFC 1112"),
    ("255.255.255.255/32", "limited broadcast", "broadcast", "RFC 919"),
    ("::/128", "unspecified address", "unspecified", "RFC 4291"),
    ("::1/128", "loopback", "loopback", "RFC 4291"),
    ("::ffff:0:0/96", "IPv4-mapped address", "reserved", "RFC 4291"),
    ("64:ff9b::/96", "IPv4-IPv6 translation", "reserved", "RFC 6052"),
    ("100::/64", "discard-only", "reserved", "RFC 6666"),
    ("2001:db8::/32", "documentation", "documentation", "RFC 3849"),
    ("2002::/16", "6to4", "reserved", "RFC 3056"),
    ("fc00::/7", "unique local", "private", "RFC 4193"),
    ("fe80::/10", "link-local unicast", "link-local", "RFC 4291"),
    ("ff00::/8", "multicast", "multicast", "RFC 4291"),
)

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@cache
def _ranges() -> tuple[tuple[_Network, str, str, str], ...]:
    table = [(ipaddress.ip_network(c), n, cat, ref) for c, n, cat, ref in SPECIAL_RANGES]
    return tuple(sorted(table, key=lambda row: -row[0].prefixlen))


def classify_ip(value: str) -> dict[str, Any]:
    """Classify an address or network: version, category and the well-known range holding it.

    Categories: private, shared, loopback, link-local, multicast, documentation, broadcast,
    unspecified, reserved, or global (no special range contains it).
    """
    net = ipaddress.ip_network(value, strict=False)
    match = next((row for row in _ranges()
                  if row[0].version == net.version and net.subnet_of(row[0])),  # type: ignore[arg-type]
                 None)
    out: dict[str, Any] = {"version": net.version, "category": "global", "range": None,
                           "range_name": None, "reference": None}
    if match is not None:
        out.update(category=match[2], range=str(match[0]), range_name=match[1],
                   reference=match[3])
    address = net.network_address
    out.update(is_global=match is None and address.is_global, is_private=out["category"] in (
        "private", "shared", "loopback", "link-local"), is_multicast=address.is_multicast,
        is_loopback=address.is_loopback, is_reserved=out["category"] not in ("global",))
    if net.num_addresses > 1:
        out["prefix_length"] = net.prefixlen
        out["num_addresses"] = net.num_addresses
    return out


class IPEnricher:
    """Classifies IPv4/IPv6 addresses and CIDR networks against ``SPECIAL_RANGES``."""

    name = "ip"
    option: str | None = None

    def supports(self, ioc: IOC) -> bool:
        """Addresses and networks."""
        return ioc.type in (IOCType.IPV4, IOCType.IPV6, IOCType.CIDR)

    def enrich(self, ioc: IOC, request: IOCEnrichmentRequest) -> Mapping[str, Any]:
        """The classification of the address or network."""
        return classify_ip(ioc.value)


@cache
def _extractor() -> Any:
    import tldextract

    # the bundled public-suffix snapshot only: no network fetch, no cache file
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None,
                                 include_psl_private_domains=False)


def split_domain(host: str) -> dict[str, Any]:
    """Registered domain, subdomain, public suffix and TLD of a host name (offline)."""
    parts = _extractor()(host)
    registered = f"{parts.domain}.{parts.suffix}" if parts.domain and parts.suffix else None
    return {"host": host, "registered_domain": registered, "subdomain": parts.subdomain or None,
            "suffix": parts.suffix or None, "tld": host.rsplit(".", 1)[-1],
            "labels": host.count(".") + 1, "idn": "xn--" in host}


class DomainEnricher:
    """Parses domains, URLs and email domains: registered domain, subdomain, suffix."""

    name = "domain"
    option: str | None = None

    def supports(self, ioc: IOC) -> bool:
        """Domains, URLs and email addresses."""
        return ioc.type in (IOCType.DOMAIN, IOCType.URL, IOCType.EMAIL)

    def enrich(self, ioc: IOC, request: IOCEnrichmentRequest) -> Mapping[str, Any]:
        """The parts of the host (and of the URL or address around it)."""
        if ioc.type is IOCType.EMAIL:
            local, _, domain = ioc.value.rpartition("@")
            return {"local_part": local, **split_domain(domain)}
        if ioc.type is IOCType.DOMAIN:
            return split_domain(ioc.value)
        from urllib.parse import urlsplit

        url = urlsplit(ioc.value)
        host = url.hostname or ""
        out: dict[str, Any] = {"scheme": url.scheme, "port": url.port, "path": url.path,
                               "query": url.query or None, "has_credentials": "@" in url.netloc}
        try:
            out.update(ip=classify_ip(host), host=host, is_ip_host=True)
        except ValueError:
            out.update(split_domain(host), is_ip_host=False)
        return out


_EMPTY = {
    "d41d8cd98f00b204e9800998ecf8427e": "md5 of empty input",
    "da39a3ee5e6b4b0d3255bfef95601890afd80709": "sha1 of empty input",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855": "sha256 of empty input",
}
_HASH_BITS = {IOCType.MD5: 128, IOCType.SHA1: 160, IOCType.SHA256: 256, IOCType.SHA512: 512}


class HashEnricher:
    """Names the algorithm and size of a file hash and flags well-known benign digests."""

    name = "hash"
    option: str | None = None

    def supports(self, ioc: IOC) -> bool:
        """md5, sha1, sha256, sha512."""
        return ioc.type in _HASH_BITS

    def enrich(self, ioc: IOC, request: IOCEnrichmentRequest) -> Mapping[str, Any]:
        """Algorithm, bit length, and the known-benign note when there is one."""
        return {"algorithm": ioc.type.value, "bits": _HASH_BITS[ioc.type],
                "hex_length": len(ioc.value), "known_benign": _EMPTY.get(ioc.value)}


def ioc_key(ioc: IOC) -> str:
    """``<type>:<value>``: the identity of an indicator in relationship records."""
    return f"{ioc.type.value}:{ioc.value}"


def _as_key(text: str) -> str:
    kind, sep, value = text.partition(":")
    if sep and value:
        try:
            return f"{coerce_type(kind).value}:{IOC(value, coerce_type(kind)).value}"
        except ValueError:
            pass
    return ioc_key(IOC.parse(text))


class RelationshipEnricher:
    """Relates IOCs seen together in one report or request, in Redis sets with a TTL.

    Each IOC has a set of related IOC keys (``<prefix>:intel:rel:<type>:<value>``); each
    report id a set of its members (``<prefix>:intel:report:<id>``).  A report larger than
    ``max_report_size`` is only recorded, not linked pairwise (its links would be noise).
    """

    name = "relationships"
    option: str | None = "include_relationships"

    def __init__(self, mq: MessageQueue, *, ttl_s: int = 30 * 24 * 3600,
                 max_report_size: int = 500) -> None:
        self.client: Any = mq.client
        self.prefix = f"{mq.keys.prefix}:intel"
        self.ttl_s = ttl_s
        self.max_report_size = max_report_size

    def rel_key(self, key: str) -> str:
        """The Redis set holding the IOCs related to the IOC with ``key``."""
        return f"{self.prefix}:rel:{key}"

    def supports(self, ioc: IOC) -> bool:
        """Every type."""
        return True

    def enrich(self, ioc: IOC, request: IOCEnrichmentRequest) -> Mapping[str, Any]:
        """Record this IOC with its report and explicit relations; return all it relates to."""
        me = ioc_key(ioc)
        peers = {_as_key(text) for text in request.related} - {me}
        if request.report_id:
            report = f"{self.prefix}:report:{request.report_id}"
            pipe = self.client.pipeline(transaction=False)
            pipe.sadd(report, me)
            pipe.expire(report, self.ttl_s)
            pipe.smembers(report)
            members = {m.decode() for m in pipe.execute()[2]}
            if len(members) <= self.max_report_size:
                peers |= members - {me}
        pipe = self.client.pipeline(transaction=False)
        if peers:
            pipe.sadd(self.rel_key(me), *sorted(peers))
            for peer in sorted(peers):
                pipe.sadd(self.rel_key(peer), me)
                pipe.expire(self.rel_key(peer), self.ttl_s)
        pipe.expire(self.rel_key(me), self.ttl_s)
        pipe.smembers(self.rel_key(me))
        related = sorted(m.decode() for m in pipe.execute()[-1])
        return {"related": related, "report_id": request.report_id}

    def related(self, ioc: IOC) -> list[str]:
        """The keys of every IOC currently related to ``ioc``."""
        return sorted(m.decode() for m in self.client.smembers(self.rel_key(ioc_key(ioc))))
