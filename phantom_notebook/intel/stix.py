"""STIX 2.1 import and export, with TLP 2.0 markings, through the ``stix2`` library.

Import reads ``indicator`` objects whose STIX pattern compares a supported observable path
with ``=``: ``ipv4-addr:value``, ``ipv6-addr:value``, ``domain-name:value``, ``url:value``,
``email-addr:value``, ``email-message:from_ref.value``, ``mac-addr:value``,
``autonomous-system:number`` and ``file:hashes.'MD5' | 'SHA-1' | 'SHA-256' | 'SHA-512'``.
TLP comes from ``object_marking_refs`` (TLP 2.0 ids, or the STIX 2.1 TLP 1.0 ids).

Export writes one ``indicator`` per IOC (``vulnerability`` for a CVE, ``attack-pattern``
for an ATT&CK technique) with deterministic ids, so re-exporting updates rather than
duplicates downstream, plus an ``identity`` and the official TLP 2.0 ``marking-definition``
objects (ids from the OASIS TLP 2.0 extension, ``TLP2_MARKING_IDS``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import stix2
from stix2patterns.v21.pattern import Pattern

from phantom_notebook.intel.ioc import IOC
from phantom_notebook.intel.normalize import IOCType
from phantom_notebook.intel.records import ExportRecord, ImportResult, as_records
from phantom_notebook.intel.tlp import TLP

__all__ = ["TLP2_EXTENSION_ID", "TLP2_MARKING_IDS", "iocs_from_stix", "stix_pattern",
           "tlp_marking", "to_stix_bundle"]

TLP2_EXTENSION_ID = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP2_MARKING_IDS: dict[TLP, str] = {
    TLP.CLEAR: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    TLP.GREEN: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    TLP.AMBER: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    TLP.AMBER_STRICT: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    TLP.RED: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
_MARKING_TLP: dict[str, TLP] = {
    **{v: k for k, v in TLP2_MARKING_IDS.items()},
    stix2.TLP_WHITE.id: TLP.CLEAR, stix2.TLP_GREEN.id: TLP.GREEN,
    stix2.TLP_AMBER.id: TLP.AMBER, stix2.TLP_RED.id: TLP.RED,
}
_NAMESPACE = uuid.UUID("6e1f4f1d-52a4-4d1f-9c55-7068616e746f")  # phantom_notebook's own
_HASHES = {"MD5": IOCType.MD5, "SHA-1": IOCType.SHA1, "SHA1": IOCType.SHA1,
           "SHA-256": IOCType.SHA256, "SHA256": IOCType.SHA256, "SHA-512": IOCType.SHA512,
           "SHA512": IOCType.SHA512}
_PATHS: dict[tuple[str, tuple[str, ...]], IOCType] = {
    ("ipv4-addr", ("value",)): IOCType.IPV4, ("ipv6-addr", ("value",)): IOCType.IPV6,
    ("domain-name", ("value",)): IOCType.DOMAIN, ("url", ("value",)): IOCType.URL,
    ("email-addr", ("value",)): IOCType.EMAIL,
    ("email-message", ("from_ref", "value")): IOCType.EMAIL,
    ("email-message", ("sender_ref", "value")): IOCType.EMAIL,
    ("mac-addr", ("value",)): IOCType.MAC, ("autonomous-system", ("number",)): IOCType.ASN,
}
_OUT_PATHS = {IOCType.IPV4: "ipv4-addr:value", IOCType.IPV6: "ipv6-addr:value",
              IOCType.DOMAIN: "domain-name:value", IOCType.URL: "url:value",
              IOCType.EMAIL: "email-addr:value", IOCType.MAC: "mac-addr:value",
              IOCType.MD5: "file:hashes.'MD5'", IOCType.SHA1: "file:hashes.'SHA-1'",
              IOCType.SHA256: "file:hashes.'SHA-256'", IOCType.SHA512: "file:hashes.'SHA-512'",
              # no STIX 2.1 object for these: custom (x-) objects, as the spec allows
              IOCType.JA3: "x-ja3-fingerprint:value", IOCType.BTC_ADDRESS: "x-crypto-wallet:value",
              IOCType.ETH_ADDRESS: "x-crypto-wallet:value"}


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _file_path_pattern(path: str) -> str:
    """``C:\\dir\\x.exe`` as a file name in a parent directory (STIX ``file`` + ``directory``)."""
    sep = "\\" if "\\" in path else "/"
    parent, _, name = path.rstrip(sep).rpartition(sep)
    if not name or not parent:
        return f"[directory:path = {_quoted(path)}]"
    return (f"[file:name = {_quoted(name)} AND "
            f"file:parent_directory_ref.path = {_quoted(parent)}]")


def tlp_marking(tlp: TLP) -> dict[str, Any]:
    """The official TLP 2.0 ``marking-definition`` object of ``tlp``."""
    return {"type": "marking-definition", "spec_version": "2.1", "id": TLP2_MARKING_IDS[tlp],
            "created": "2022-10-01T00:00:00.000Z", "name": tlp.label,
            "extensions": {TLP2_EXTENSION_ID: {"extension_type": "property-extension",
                                               "tlp_2_0": tlp.value.lower()}}}


def _literal(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("\\'", "'").replace("\\\\", "\\")
    return text


def _pattern_values(pattern: str) -> list[tuple[IOCType, str]]:
    out = []
    for object_type, comparisons in Pattern(pattern).inspect().comparisons.items():
        for path, op, value in comparisons:
            if op != "=":
                continue
            steps = tuple(str(p) for p in path)
            kind = _PATHS.get((object_type, steps))
            if object_type == "file" and len(steps) == 2 and steps[0] == "hashes":
                kind = _HASHES.get(steps[1].upper())
            if kind is None:
                continue
            raw = _literal(str(value))
            if kind in (IOCType.IPV4, IOCType.IPV6) and "/" in raw:
                kind = IOCType.CIDR
            out.append((kind, raw))
    return out


def _tlp_of(obj: Mapping[str, Any], default: TLP) -> TLP:
    marks = [_MARKING_TLP[m] for m in obj.get("object_marking_refs", []) if m in _MARKING_TLP]
    return max(marks) if marks else default


def _when(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


def _objects(bundle: str | Mapping[str, Any] | Any, result: ImportResult) -> list[Any]:
    """Parse each object on its own, so one malformed object does not sink the bundle."""
    if isinstance(bundle, str):
        bundle = json.loads(bundle)
    if not isinstance(bundle, Mapping):
        return list(getattr(bundle, "objects", None) or [bundle])  # already parsed by stix2
    raw = bundle.get("objects", []) if bundle.get("type") == "bundle" else [bundle]
    objects = []
    for item in raw:
        try:
            objects.append(stix2.parse(item, allow_custom=True))
        except Exception as exc:  # noqa: BLE001 - stix2 raises many unrelated types
            result.rejected.append((str(item.get("id", "?")), f"invalid STIX object: {exc}"))
    return objects


def iocs_from_stix(bundle: str | Mapping[str, Any] | Any, *, default_tlp: TLP | str = TLP.AMBER,
                   source: str | None = None) -> ImportResult:
    """Indicators from a STIX 2.1 bundle (JSON text, dict or ``stix2.Bundle``)."""
    result = ImportResult()
    objects = _objects(bundle, result)
    names = {o["id"]: o.get("name") for o in objects if o["type"] == "identity"}
    seen: set[tuple[IOCType, str]] = set()
    for obj in objects:
        if obj["type"] != "indicator" or obj.get("pattern_type") != "stix":
            continue
        try:
            values = _pattern_values(obj["pattern"])
        except Exception as exc:  # noqa: BLE001 - the pattern grammar raises its own types
            result.rejected.append((obj["id"], f"pattern does not parse: {exc}"))
            continue
        for kind, raw in values:
            try:
                ioc = IOC.parse(raw, kind, tlp=_tlp_of(obj, TLP.parse(default_tlp)),
                                confidence=obj.get("confidence", 50),
                                source=source or names.get(obj.get("created_by_ref")) or "stix",
                                first_seen=_when(obj.get("valid_from")),
                                tags=list(obj.get("labels", [])))
            except ValueError as exc:
                result.rejected.append((obj["id"], str(exc)))
                continue
            if ioc.key not in seen:
                seen.add(ioc.key)
                result.iocs.append(ioc)
    return result


def stix_pattern(ioc: IOC) -> str | None:
    """The STIX pattern matching ``ioc`` (None for CVE and ATT&CK ids, which are objects)."""
    if ioc.type is IOCType.CIDR:
        path = "ipv6-addr:value" if ":" in ioc.value else "ipv4-addr:value"
    elif ioc.type is IOCType.ASN:
        return f"[autonomous-system:number = {ioc.value[2:]}]"
    elif ioc.type is IOCType.FILE_PATH:
        return _file_path_pattern(ioc.value)
    else:
        found = _OUT_PATHS.get(ioc.type)
        if found is None:
            return None
        path = found
    value = ioc.value.replace("\\", "\\\\").replace("'", "\\'")
    return f"[{path} = '{value}']"


def _sdo_id(kind: str, key: str) -> str:
    return f"{kind}--{uuid.uuid5(_NAMESPACE, key)}"


def _object(rec: ExportRecord, identity: str, now: datetime) -> Any:
    ioc = rec.ioc
    common: dict[str, Any] = {
        "created_by_ref": identity, "created": now, "modified": now,
        "object_marking_refs": [TLP2_MARKING_IDS[ioc.tlp]], "confidence": ioc.confidence,
        "description": rec.summary or None, "labels": list(ioc.tags) or None,
        "allow_custom": True}
    if rec.risk_score is not None:
        common["x_phantom_risk_score"] = rec.risk_score
    common = {k: v for k, v in common.items() if v is not None}
    if ioc.type is IOCType.CVE:
        return stix2.Vulnerability(id=_sdo_id("vulnerability", ioc.value), name=ioc.value,
                                   external_references=[{"source_name": "cve",
                                                         "external_id": ioc.value}], **common)
    if ioc.type is IOCType.MITRE_TECHNIQUE:
        return stix2.AttackPattern(id=_sdo_id("attack-pattern", ioc.value), name=ioc.value,
                                   external_references=[{"source_name": "mitre-attack",
                                                         "external_id": ioc.value}], **common)
    listed = bool(rec.reputation) or (rec.risk_score or 0) >= 50
    refs = sorted({h.reference for h in rec.reputation if h.reference})
    if refs:
        common["external_references"] = [{"source_name": "feed", "url": u} for u in refs]
    return stix2.Indicator(
        id=_sdo_id("indicator", f"{ioc.type.value}:{ioc.value}"),
        name=f"{ioc.type.value} {ioc.defanged}", pattern=stix_pattern(ioc), pattern_type="stix",
        valid_from=ioc.first_seen or now,
        indicator_types=["malicious-activity" if listed else "unknown"], **common)


def to_stix_bundle(items: Iterable[Any], *, identity_name: str = "phantom_notebook",
                   now: datetime | None = None) -> dict[str, Any]:
    """A STIX 2.1 bundle (as a dict) of IOCs or enrichment / analysis results.

    Includes the TLP 2.0 marking definitions the objects use and the producing identity.
    """
    moment = now or datetime.now(UTC)
    records = as_records(items)
    identity = stix2.Identity(id=_sdo_id("identity", identity_name), name=identity_name,
                              identity_class="system", created=moment, modified=moment)
    objects: list[Any] = [identity]
    used = sorted({rec.ioc.tlp for rec in records})
    objects += [tlp_marking(tlp) for tlp in used]
    objects += [_object(rec, identity.id, moment) for rec in records]
    bundle = stix2.Bundle(objects=objects, allow_custom=True)
    out: dict[str, Any] = json.loads(bundle.serialize())
    return out
