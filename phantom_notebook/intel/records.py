"""The common shapes of import and export: what was read, and what is written per indicator."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from phantom_notebook.intel import schemas as s
from phantom_notebook.intel.ioc import IOC

__all__ = ["ExportRecord", "ImportResult", "as_records"]


@dataclass
class ImportResult:
    """Indicators read from a source, and what was refused (``(where, why)`` pairs).

    Iterating it (and ``len``) goes over the indicators.
    """

    iocs: list[IOC] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def __iter__(self) -> Iterator[IOC]:
        return iter(self.iocs)

    def __len__(self) -> int:
        return len(self.iocs)


@dataclass(frozen=True)
class ExportRecord:
    """One indicator to export with what is known about it."""

    ioc: IOC
    reputation: tuple[s.ReputationHit, ...] = ()
    risk_score: int | None = None
    risk_level: str | None = None
    related: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        """A one-line human description: risk and feed listings."""
        parts = []
        if self.risk_score is not None:
            parts.append(f"risk {self.risk_score}/100 ({self.risk_level})")
        feeds = sorted({f"{h.feed}: {h.malware or h.threat or 'listed'}"
                        for h in self.reputation})
        if feeds:
            parts.append("listed by " + ", ".join(feeds))
        return "; ".join(parts)


def _record(item: Any) -> ExportRecord:
    if isinstance(item, ExportRecord):
        return item
    if isinstance(item, IOC):
        return ExportRecord(item)
    if isinstance(item, s.IOCData):
        return ExportRecord(item.to_ioc())
    if isinstance(item, s.IOCEnrichmentResult):
        return ExportRecord(item.ioc.to_ioc(), tuple(item.reputation),
                            related=tuple(item.related_iocs))
    if isinstance(item, s.ThreatAnalysisResult):
        return ExportRecord(item.ioc.to_ioc(), risk_score=item.risk_score,
                            risk_level=item.risk_level)
    if isinstance(item, Mapping):
        if "risk_score" in item:
            return _record(s.ThreatAnalysisResult.model_validate(item))
        if "ioc" in item:
            return _record(s.IOCEnrichmentResult.model_validate(item))
        return _record(s.IOCData.model_validate(item))
    raise TypeError(f"cannot export {type(item).__name__}: give IOCs, results or their dicts")


def as_records(items: Iterable[Any]) -> list[ExportRecord]:
    """Normalize IOCs, ``IOCData``, enrichment / analysis results (models or dicts).

    Several items about the same indicator are merged: reputation and relations are
    combined, and a risk score is kept.
    """
    merged: dict[tuple[Any, str], ExportRecord] = {}
    for item in items:
        rec = _record(item)
        old = merged.get(rec.ioc.key)
        if old is not None:
            rec = ExportRecord(
                old.ioc, old.reputation + tuple(h for h in rec.reputation
                                                if h not in old.reputation),
                rec.risk_score if rec.risk_score is not None else old.risk_score,
                rec.risk_level if rec.risk_level is not None else old.risk_level,
                tuple(dict.fromkeys(old.related + rec.related)))
        merged[rec.ioc.key] = rec
    return list(merged.values())
