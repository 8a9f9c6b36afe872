"""Reputation from local feed files: URLhaus CSV, Feodo Tracker JSON, ThreatFox CSV.

Each parser turns one file format into ``FeedEntry`` rows of validated indicators (rows that
do not parse are skipped and counted); a ``ReputationFeed`` indexes them, and the
``FeedReputation`` enricher looks indicators up in one or more feeds.  Small synthetic
samples of each format ship in ``phantom_notebook/intel/data`` (``sample_feeds()``), so the
pipeline works offline; point ``load_feed`` at a real download for real reputation.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from phantom_notebook.intel.ioc import IOC
from phantom_notebook.intel.normalize import IOCType
from phantom_notebook.intel.schemas import IOCEnrichmentRequest

__all__ = [
    "FeedEntry",
    "FeedReputation",
    "ReputationFeed",
    "load_feed",
    "parse_feodo_json",
    "parse_threatfox_csv",
    "parse_urlhaus_csv",
    "sample_feeds",
]

_THREATFOX_TYPES = {"ip:port": None, "domain": IOCType.DOMAIN, "url": IOCType.URL,
                    "md5_hash": IOCType.MD5, "sha1_hash": IOCType.SHA1,
                    "sha256_hash": IOCType.SHA256}


@dataclass(frozen=True)
class FeedEntry:
    """One listed indicator: its normalized form and what the feed says about it."""

    ioc_type: IOCType
    value: str
    feed: str
    threat: str | None = None
    malware: str | None = None
    confidence: int = 75
    first_seen: datetime | None = None
    tags: tuple[str, ...] = ()
    reference: str | None = None

    def hit(self, match: str = "exact") -> dict[str, Any]:
        """This entry as a ``ReputationHit`` dict."""
        return {"feed": self.feed, "threat": self.threat, "malware": self.malware,
                "match": match, "confidence": self.confidence,
                "first_seen": self.first_seen.isoformat() if self.first_seen else None,
                "tags": list(self.tags), "reference": self.reference}


def _when(text: str | None) -> datetime | None:
    if not text or not text.strip():
        return None
    try:
        return datetime.fromisoformat(text.strip()).replace(tzinfo=UTC)
    except ValueError:
        return None


def _tags(text: str | None) -> tuple[str, ...]:
    return tuple(t.strip() for t in (text or "").split(",") if t.strip())


def _rows(text: str) -> Iterable[list[str]]:
    lines = (line for line in io.StringIO(text) if line.strip() and not line.startswith("#"))
    return csv.reader(lines, skipinitialspace=True)


def _entry(raw: str, kind: IOCType | None, **fields: Any) -> FeedEntry | None:
    try:
        ioc = IOC.parse(raw, kind)
    except ValueError:
        return None
    return FeedEntry(ioc.type, ioc.value, **fields)


def parse_urlhaus_csv(text: str, feed: str = "urlhaus") -> list[FeedEntry]:
    """URLhaus dump: ``id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,...``."""
    out = []
    for row in _rows(text):
        if len(row) < 8:
            continue
        tags = _tags(row[6])
        entry = _entry(row[2], IOCType.URL, feed=feed, threat=row[5] or None,
                       malware=tags[-1] if tags else None, confidence=80 if row[3] == "online"
                       else 60, first_seen=_when(row[1]), tags=tags, reference=row[7] or None)
        if entry is not None:
            out.append(entry)
    return out


def parse_feodo_json(text: str, feed: str = "feodotracker") -> list[FeedEntry]:
    """Feodo Tracker blocklist JSON: a list of ``{"ip_address", "port", "malware", ...}``."""
    out = []
    for item in json.loads(text):
        if not isinstance(item, dict) or not isinstance(item.get("ip_address"), str):
            continue
        status = item.get("status")
        entry = _entry(item["ip_address"], None, feed=feed, threat="botnet_cc",
                       malware=item.get("malware"), confidence=90 if status == "online" else 70,
                       first_seen=_when(item.get("first_seen")),
                       tags=tuple(t for t in (item.get("malware"), status) if t))
        if entry is not None:
            out.append(entry)
    return out


def parse_threatfox_csv(text: str, feed: str = "threatfox") -> list[FeedEntry]:
    """ThreatFox CSV export: ``first_seen_utc, ioc_id, ioc_value, ioc_type, threat_type, ...``.

    ``ip:port`` values are listed under their address.
    """
    out = []
    for row in _rows(text):
        if len(row) < 12 or row[3] not in _THREATFOX_TYPES:
            continue
        value = row[2].rsplit(":", 1)[0] if row[3] == "ip:port" else row[2]
        confidence = int(row[9]) if row[9].isdigit() else 50
        entry = _entry(value, _THREATFOX_TYPES[row[3]], feed=feed, threat=row[4] or None,
                       malware=row[7] or None, confidence=min(confidence, 100),
                       first_seen=_when(row[0]), tags=_tags(row[11]),
                       reference=row[10] or None)
        if entry is not None:
            out.append(entry)
    return out


PARSERS: dict[str, Callable[[str, str], list[FeedEntry]]] = {
    "urlhaus": parse_urlhaus_csv, "feodo": parse_feodo_json, "threatfox": parse_threatfox_csv,
}


@dataclass
class ReputationFeed:
    """An in-memory index of one feed's entries by ``(type, value)`` and by URL host."""

    name: str
    entries: list[FeedEntry] = field(default_factory=list)
    _exact: dict[tuple[IOCType, str], list[FeedEntry]] = field(default_factory=dict)
    _hosts: dict[str, list[FeedEntry]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for entry in self.entries:
            self._exact.setdefault((entry.ioc_type, entry.value), []).append(entry)
            if entry.ioc_type is IOCType.URL:
                host = (urlsplit(entry.value).hostname or "").strip("[]")
                self._hosts.setdefault(host, []).append(entry)

    def __len__(self) -> int:
        return len(self.entries)

    def lookup(self, ioc: IOC) -> list[dict[str, Any]]:
        """Hits for ``ioc``: exact listings, and listed URLs hosted on it (domain or IP)."""
        hits = [e.hit() for e in self._exact.get((ioc.type, ioc.value), [])]
        if ioc.type in (IOCType.DOMAIN, IOCType.IPV4, IOCType.IPV6):
            hits += [e.hit("url-host") for e in self._hosts.get(ioc.value, [])]
        return hits


def load_feed(path: str | Path, kind: str, name: str | None = None) -> ReputationFeed:
    """Read a feed file of ``kind`` (urlhaus, feodo, threatfox) into a ``ReputationFeed``."""
    if kind not in PARSERS:
        raise ValueError(f"unknown feed kind {kind!r}: use one of {', '.join(PARSERS)}")
    text = Path(path).read_text(encoding="utf-8")
    feed = name or FEED_NAMES[kind]
    return ReputationFeed(feed, PARSERS[kind](text, feed))


FEED_NAMES = {"urlhaus": "urlhaus", "feodo": "feodotracker", "threatfox": "threatfox"}
_SAMPLES = {"urlhaus": "urlhaus_sample.csv", "feodo": "feodo_sample.json",
            "threatfox": "threatfox_sample.csv"}


def sample_feeds() -> list[ReputationFeed]:
    """The synthetic sample feeds shipped in ``phantom_notebook/intel/data``."""
    data = resources.files("phantom_notebook.intel").joinpath("data")
    return [ReputationFeed(FEED_NAMES[kind], PARSERS[kind](
        data.joinpath(file).read_text(encoding="utf-8"), FEED_NAMES[kind]))
        for kind, file in _SAMPLES.items()]


class FeedReputation:
    """The reputation enricher: looks an IOC up in local feeds (the samples by default)."""

    name = "reputation"
    option: str | None = "include_reputation"

    def __init__(self, feeds: Iterable[ReputationFeed] | None = None) -> None:
        self.feeds = list(sample_feeds() if feeds is None else feeds)

    def supports(self, ioc: IOC) -> bool:
        """Every type (feeds decide what they list)."""
        return True

    def enrich(self, ioc: IOC, request: IOCEnrichmentRequest) -> Mapping[str, Any]:
        """``hits`` from every feed, and whether any feed lists the IOC itself."""
        hits = [hit for feed in self.feeds for hit in feed.lookup(ioc)]
        return {"hits": hits, "listed": any(h["match"] == "exact" for h in hits),
                "feeds_checked": [feed.name for feed in self.feeds]}
