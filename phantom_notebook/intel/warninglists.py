"""MISP warninglists, offline: which known-benign or false-positive lists a value is on.

The lists ship inside the maintained ``pymispwarninglists`` package (no download).  They
load on first use (~2.5 s, then cached for the process); the CIDR lists (public DNS
resolvers, cloud ranges...) are indexed as sorted intervals the first time an IP is
checked.

Matching is **exact** (case-insensitive for hosts): a list only applies to the IOC types
its ``matching_attributes`` name, a domain is never matched through a parent domain
(``evil.duckdns.org`` is not benign because ``duckdns.org`` is on a list — that list is
"known dynamic DNS domains"), and a URL is matched as a whole, never through its host.
An IP is matched exactly or by falling inside a listed network.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from phantom_notebook.core.errors import ValidationError
from phantom_notebook.intel.normalize import IOCType

__all__ = ["WarningListIndex", "default_index"]

_ATTRIBUTES: dict[IOCType, frozenset[str]] = {
    IOCType.IPV4: frozenset({"ip-src", "ip-dst", "ip-src|port", "ip-dst|port", "domain|ip"}),
    IOCType.IPV6: frozenset({"ip-src", "ip-dst", "ip-src|port", "ip-dst|port", "domain|ip"}),
    IOCType.CIDR: frozenset({"ip-src", "ip-dst"}),
    IOCType.DOMAIN: frozenset({"domain", "hostname", "domain|ip"}),
    IOCType.URL: frozenset({"url", "uri", "link"}),
    IOCType.EMAIL: frozenset({"email", "email-src", "email-dst"}),
    IOCType.MD5: frozenset({"md5", "filename|md5"}),
    IOCType.SHA1: frozenset({"sha1", "filename|sha1"}),
    IOCType.SHA256: frozenset({"sha256", "filename|sha256"}),
    IOCType.SHA512: frozenset({"sha512", "filename|sha512"}),
}
_Intervals = tuple[list[int], list[int]]


class WarningListIndex:
    """Exact-match lookups over a set of warninglists (``pymispwarninglists`` format dicts)."""

    def __init__(self, lists: Iterable[dict[str, Any]]) -> None:
        self._exact: list[tuple[str, frozenset[str] | None, frozenset[str]]] = []
        self._networks: list[tuple[str, list[str]]] = []
        self._intervals: list[tuple[str, _Intervals, _Intervals]] | None = None
        for entry in lists:
            name, kind = str(entry["name"]), entry.get("type")
            applies = entry.get("matching_attributes")
            values: list[str] = entry.get("list", [])
            if kind == "cidr":
                self._networks.append((name, values))
            if kind in ("string", "hostname", "cidr"):
                # the big popularity lists are lowercase already: spare a million lower()s
                keys = frozenset(values) if len(values) > 50_000 else frozenset(
                    v.lower().rstrip(".") for v in values)
                self._exact.append((name, frozenset(applies) if applies else None, keys))

    def __len__(self) -> int:
        return len(self._exact)

    def matches(self, value: str, kind: IOCType) -> tuple[str, ...]:
        """Names of the lists ``value`` (normalized, of type ``kind``) is on, in list order."""
        attributes = _ATTRIBUTES.get(kind)
        if attributes is None:
            return ()
        key = value.lower()
        found = [name for name, applies, values in self._exact
                 if (applies is None or applies & attributes) and key in values]
        if kind in (IOCType.IPV4, IOCType.IPV6):
            found += [name for name in self._containing(value) if name not in found]
        return tuple(found)

    def _containing(self, value: str) -> list[str]:
        address = ipaddress.ip_address(value)
        number, v4 = int(address), address.version == 4
        out = []
        for name, ipv4, ipv6 in self._network_index():
            starts, ends = ipv4 if v4 else ipv6
            at = bisect_right(starts, number) - 1
            if at >= 0 and number <= ends[at]:
                out.append(name)
        return out

    def _network_index(self) -> list[tuple[str, _Intervals, _Intervals]]:
        if self._intervals is None:
            self._intervals = [(name, *_intervals(values)) for name, values in self._networks]
        return self._intervals


def _merged(ranges: list[tuple[int, int]]) -> _Intervals:
    starts: list[int] = []
    ends: list[int] = []
    for start, end in sorted(ranges):
        if ends and start <= ends[-1] + 1:
            ends[-1] = max(ends[-1], end)
        else:
            starts.append(start)
            ends.append(end)
    return starts, ends


def _intervals(values: list[str]) -> tuple[_Intervals, _Intervals]:
    v4: list[tuple[int, int]] = []
    v6: list[tuple[int, int]] = []
    for text in values:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue
        (v4 if net.version == 4 else v6).append(
            (int(net.network_address), int(net.broadcast_address)))
    return _merged(v4), _merged(v6)


@cache
def default_index() -> WarningListIndex:
    """Every warninglist shipped with ``pymispwarninglists`` (loaded once per process)."""
    import importlib.util

    import orjson

    # the package's data only: importing pymispwarninglists itself pulls in a grammar
    # parser and cost seconds of every analyst's first extraction
    spec = importlib.util.find_spec("pymispwarninglists")
    if spec is None or not spec.submodule_search_locations:
        raise ValidationError("MISP warninglists need the pymispwarninglists package: "
                              "pip install pymispwarninglists")
    root = Path(list(spec.submodule_search_locations)[0]) / "data" / "misp-warninglists" / \
        "lists"
    files = sorted(root.glob("*/list.json"))
    if not files:
        raise ValidationError(f"no MISP warninglists under {root}: reinstall pymispwarninglists")
    return WarningListIndex(orjson.loads(f.read_bytes()) for f in files)
