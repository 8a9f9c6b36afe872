"""Import and export of indicators: free text, CSV, STIX 2.1 and MISP-shaped JSON.

Import (each returns an ``ImportResult``: the IOCs, and ``(where, why)`` for refusals):

* ``iocs_from_text``: everything ``extract_iocs`` finds in a report, defanged or not;
* ``iocs_from_csv``: a header row with a ``value`` (or ``indicator`` / ``ioc``) column and
  optional ``type``, ``tlp``, ``confidence``, ``tags`` (``;`` or ``,`` separated), ``source``;
* ``iocs_from_stix`` (see ``stix``) and ``iocs_from_misp`` (an Event's Attributes).

Export: ``to_stix_bundle``, ``to_csv`` and ``to_misp_event`` accept IOCs, ``IOCData`` and
enrichment / analysis results (models or payload dicts); results about one IOC are merged.
``publish_indicators`` sends IOCs for enrichment as batches, with a progress bar.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from phantom_notebook.core.queues import MessageQueue
from phantom_notebook.intel.ioc import DEFAULT_CONFIDENCE, IOC
from phantom_notebook.intel.ioc_extract import extract_iocs
from phantom_notebook.intel.normalize import IOCType
from phantom_notebook.intel.records import ExportRecord, ImportResult, as_records
from phantom_notebook.intel.stix import TLP2_MARKING_IDS, iocs_from_stix, to_stix_bundle
from phantom_notebook.intel.tlp import TLP

__all__ = [
    "CSV_COLUMNS",
    "MISP_TYPES",
    "TLP2_MARKING_IDS",
    "ExportRecord",
    "ImportResult",
    "iocs_from_csv",
    "iocs_from_misp",
    "iocs_from_stix",
    "iocs_from_text",
    "publish_indicators",
    "read_indicators",
    "to_csv",
    "to_misp_event",
    "to_stix_bundle",
]

CSV_COLUMNS = ("value", "type", "tlp", "confidence", "source", "first_seen", "last_seen",
               "tags", "risk_score", "risk_level", "reputation")
_VALUE_COLUMNS = ("value", "indicator", "ioc")
# IOC type -> (MISP attribute type, category, to_ids)
MISP_TYPES: dict[IOCType, tuple[str, str, bool]] = {
    IOCType.IPV4: ("ip-dst", "Network activity", True),
    IOCType.IPV6: ("ip-dst", "Network activity", True),
    IOCType.CIDR: ("ip-dst", "Network activity", True),
    IOCType.DOMAIN: ("domain", "Network activity", True),
    IOCType.URL: ("url", "Network activity", True),
    IOCType.EMAIL: ("email-src", "Payload delivery", True),
    IOCType.MD5: ("md5", "Payload delivery", True),
    IOCType.SHA1: ("sha1", "Payload delivery", True),
    IOCType.SHA256: ("sha256", "Payload delivery", True),
    IOCType.SHA512: ("sha512", "Payload delivery", True),
    IOCType.CVE: ("vulnerability", "External analysis", False),
    IOCType.ASN: ("AS", "Network activity", False),
    IOCType.MITRE_TECHNIQUE: ("text", "External analysis", False),
    IOCType.MAC: ("mac-address", "Network activity", False),
    IOCType.JA3: ("ja3-fingerprint-md5", "Network activity", True),
    IOCType.BTC_ADDRESS: ("btc", "Financial fraud", True),
    IOCType.ETH_ADDRESS: ("text", "Financial fraud", False),  # MISP has no ETH type
    IOCType.FILE_PATH: ("filename", "Artifacts dropped", False),
}
_FROM_MISP: dict[str, IOCType | None] = {
    "ip-dst": None, "ip-src": None, "domain": IOCType.DOMAIN, "hostname": IOCType.DOMAIN,
    "url": IOCType.URL, "email-src": IOCType.EMAIL, "email-dst": IOCType.EMAIL,
    "email": IOCType.EMAIL, "md5": IOCType.MD5, "sha1": IOCType.SHA1,
    "sha256": IOCType.SHA256, "sha512": IOCType.SHA512, "vulnerability": IOCType.CVE,
    "AS": IOCType.ASN, "mac-address": IOCType.MAC, "ja3-fingerprint-md5": IOCType.JA3,
    "btc": IOCType.BTC_ADDRESS,
}
_MISP_NAMESPACE = uuid.UUID("0c9b8ad4-3f5e-4c43-9a61-4d4953504e42")


def iocs_from_text(text: str, *, tlp: TLP | str = TLP.AMBER,
                   confidence: int = DEFAULT_CONFIDENCE, source: str | None = None,
                   tags: Iterable[str] = ()) -> ImportResult:
    """Every indicator in free text (see ``extract_iocs``); nothing is ever refused."""
    return ImportResult(extract_iocs(text, tlp=tlp, confidence=confidence, source=source,
                                     tags=tags))


def _split_tags(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").replace(";", ",").split(",") if t.strip()]


def iocs_from_csv(text: str, *, tlp: TLP | str = TLP.AMBER,
                  confidence: int = DEFAULT_CONFIDENCE, source: str | None = None,
                  tags: Iterable[str] = ()) -> ImportResult:
    """Indicators from CSV with a header; other columns fill in per-row metadata."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    columns = {name.strip().lower(): name for name in reader.fieldnames or []}
    value_column = next((columns[c] for c in _VALUE_COLUMNS if c in columns), None)
    if value_column is None:
        return ImportResult(rejected=[("header", "no value, indicator or ioc column")])

    def cell(row: Mapping[str, str | None], name: str) -> str | None:
        raw = row.get(columns[name]) if name in columns else None
        return raw.strip() or None if isinstance(raw, str) else None

    result = ImportResult()
    for line, row in enumerate(reader, start=2):
        value = cell(row, value_column.strip().lower())
        if not value:
            continue
        try:
            level = cell(row, "confidence")
            ioc = IOC.parse(value, cell(row, "type"), tlp=cell(row, "tlp") or tlp,
                            confidence=int(level) if level else confidence,
                            source=cell(row, "source") or source,
                            tags=[*tags, *_split_tags(cell(row, "tags"))])
        except ValueError as exc:
            result.rejected.append((f"line {line}", str(exc)))
            continue
        result.iocs.append(ioc)
    return result


def iocs_from_misp(event: Mapping[str, Any], *, tlp: TLP | str = TLP.AMBER,
                   source: str | None = None) -> ImportResult:
    """Indicators from a MISP Event (``{"Event": {...}}`` or the inner dict)."""
    inner = event.get("Event", event)
    event_tlp = _misp_tlp(inner.get("Tag", []), TLP.parse(tlp))
    result = ImportResult()
    for attr in inner.get("Attribute", []):
        kind_name = attr.get("type", "")
        if kind_name not in _FROM_MISP:
            result.rejected.append((str(attr.get("uuid", kind_name)),
                                    f"unsupported MISP type {kind_name!r}"))
            continue
        try:
            ioc = IOC.parse(str(attr.get("value", "")), _FROM_MISP[kind_name],
                            tlp=_misp_tlp(attr.get("Tag", []), event_tlp),
                            source=source or inner.get("info"),
                            tags=[t["name"] for t in attr.get("Tag", [])
                                  if not t["name"].lower().startswith("tlp:")])
        except ValueError as exc:
            result.rejected.append((str(attr.get("uuid", "?")), str(exc)))
            continue
        result.iocs.append(ioc)
    return result


def _misp_tlp(tags: Iterable[Mapping[str, Any]], default: TLP) -> TLP:
    found = []
    for tag in tags:
        name = str(tag.get("name", ""))
        if name.lower().startswith("tlp:"):
            try:
                found.append(TLP.parse(name))
            except ValueError:
                continue
    return max(found) if found else default


def read_indicators(content: str, format: str, *, tlp: TLP | str = TLP.AMBER,
                    source: str | None = None, tags: Iterable[str] = ()) -> ImportResult:
    """Dispatch on ``format``: text, csv, stix (bundle JSON) or misp (event JSON)."""
    if format == "text":
        return iocs_from_text(content, tlp=tlp, source=source, tags=tags)
    if format == "csv":
        return iocs_from_csv(content, tlp=tlp, source=source, tags=tags)
    if format == "stix":
        return iocs_from_stix(content, default_tlp=tlp, source=source)
    if format == "misp":
        import json

        return iocs_from_misp(json.loads(content), tlp=tlp, source=source)
    raise ValueError(f"unknown format {format!r}: use text, csv, stix or misp")


def to_csv(items: Iterable[Any]) -> str:
    """CSV (``CSV_COLUMNS``) of IOCs or results; re-readable with ``iocs_from_csv``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for rec in as_records(items):
        row = rec.ioc.to_dict()
        feeds = sorted({h.feed for h in rec.reputation})
        writer.writerow([row["value"], row["type"], row["tlp"], row["confidence"],
                         row["source"] or "", row["first_seen"] or "", row["last_seen"] or "",
                         ";".join(row["tags"]), "" if rec.risk_score is None else rec.risk_score,
                         rec.risk_level or "", ";".join(feeds)])
    return out.getvalue()


def _misp_attribute(rec: ExportRecord) -> dict[str, Any]:
    ioc = rec.ioc
    kind, category, to_ids = MISP_TYPES[ioc.type]
    return {
        "uuid": str(uuid.uuid5(_MISP_NAMESPACE, f"{ioc.type.value}:{ioc.value}")),
        "type": kind, "category": category, "value": ioc.value, "to_ids": to_ids,
        "comment": rec.summary or (f"ATT&CK technique {ioc.value}"
                                   if ioc.type is IOCType.MITRE_TECHNIQUE else ""),
        "first_seen": ioc.first_seen.isoformat() if ioc.first_seen else None,
        "last_seen": ioc.last_seen.isoformat() if ioc.last_seen else None,
        "Tag": [{"name": f"tlp:{ioc.tlp.value.lower()}"}, *({"name": t} for t in ioc.tags)],
    }


def to_misp_event(items: Iterable[Any], *, info: str = "phantom_notebook export",
                  threat_level_id: int = 2, analysis: int = 1, distribution: int = 0,
                  now: datetime | None = None) -> dict[str, Any]:
    """A MISP-shaped ``{"Event": {..., "Attribute": [...], "Tag": [...]}}`` dict.

    Each attribute carries its own ``tlp:`` tag; the event is tagged with the strictest.
    ``distribution`` 0 is "your organisation only", the safe default.
    """
    records = as_records(items)
    moment = now or datetime.now(UTC)
    strictest = max((rec.ioc.tlp for rec in records), default=TLP.AMBER)
    return {"Event": {
        "uuid": str(uuid.uuid4()), "info": info, "date": moment.date().isoformat(),
        "timestamp": str(int(moment.timestamp())), "threat_level_id": str(threat_level_id),
        "analysis": str(analysis), "distribution": str(distribution), "published": False,
        "Tag": [{"name": f"tlp:{strictest.value.lower()}"}],
        "Attribute": [_misp_attribute(rec) for rec in records],
    }}


def publish_indicators(mq: MessageQueue, iocs: Iterable[IOC | str], *,
                       queue: str = "ioc-processing", progress: bool | None = True,
                       report_id: str | None = None, origin: str | None = None) -> list[str]:
    """Publish ``ioc.enrichment.request`` for each IOC as batches; returns message ids.

    The IOCs share ``report_id`` (a new one by default), so enrichment relates them.
    """
    from phantom_notebook.intel.producers import IOCMessageProducer

    producer = IOCMessageProducer(mq, origin=origin)
    return producer.publish_batch_enrichment(list(iocs), queue=queue, report_id=report_id,
                                             progress=progress)
