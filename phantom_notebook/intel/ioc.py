"""The IOC domain model: one validated, normalized indicator plus its handling metadata.

An ``IOC`` always holds the refanged, normalized value (see ``normalize`` for the rules
per type) and shows it defanged wherever it is displayed (``repr``, ``str``).  Defaults
are conservative: ``tlp=TLP.AMBER`` (sharing must be widened on purpose, never by
accident) and ``confidence=50`` (unknown).  Datetimes must be timezone-aware and are
stored in UTC.

Two annotations ride along without changing an indicator's identity (they are left out of
``==`` and ``hash``): ``related``, the observables found inside it (the host of a URL, the
domain of an email) as IOCs of their own, and ``warninglists``, the names of the MISP
warninglists the value is on (``8.8.8.8``: "List of known IPv4 public DNS resolvers").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from phantom_notebook.core.errors import ValidationError
from phantom_notebook.intel.defang import defang_as, refang
from phantom_notebook.intel.normalize import (
    InvalidIOCError,
    IOCType,
    classify,
    coerce_type,
    normalize_as,
)
from phantom_notebook.intel.tlp import TLP

__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_TLP",
    "IOC",
    "IOCType",
    "InvalidIOCError",
    "detect_type",
    "validate",
]

DEFAULT_TLP = TLP.AMBER
DEFAULT_CONFIDENCE = 50
_FIELDS = frozenset(
    {"value", "type", "tlp", "confidence", "source", "first_seen", "last_seen", "tags",
     "related", "warninglists"}
)


def detect_type(value: str) -> IOCType:
    """Return the type of a raw, possibly defanged value; raise InvalidIOCError if none fits.

    The value must be valid for the type its shape suggests: ``999.1.1.1`` raises an
    error naming the bad octet rather than being called something else.
    """
    if not isinstance(value, str):
        raise InvalidIOCError(repr(value), None, f"expected a string, got {type(value)}")
    text = refang(value.strip())
    kind = classify(text)
    normalize_as(text, kind)
    return kind


def validate(value: str, ioc_type: IOCType | str) -> str:
    """Return ``value`` (possibly defanged) normalized as ``ioc_type``; raise InvalidIOCError."""
    kind = coerce_type(ioc_type)
    if not isinstance(value, str):
        raise InvalidIOCError(repr(value), kind, f"expected a string, got {type(value)}")
    return normalize_as(refang(value.strip()), kind)


def _aware_utc(name: str, value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(f"{name} {value!r} is not an ISO 8601 datetime") from None
    if not isinstance(value, datetime):
        raise ValidationError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{name} {value.isoformat()} is naive: give it a timezone (UTC)")
    return value.astimezone(UTC)


def _clean_tags(tags: object) -> tuple[str, ...]:
    if isinstance(tags, str) or not isinstance(tags, Iterable):
        raise ValidationError(f"tags must be a sequence of strings, got {tags!r}")
    cleaned: dict[str, None] = {}
    for tag in tags:
        if not isinstance(tag, str):
            raise ValidationError(f"tag {tag!r} is not a string")
        if tag.strip():
            cleaned[tag.strip()] = None
    return tuple(cleaned)


def _check_confidence(confidence: object) -> int:
    if isinstance(confidence, bool) or not isinstance(confidence, int):
        raise ValidationError(f"confidence {confidence!r} must be an integer from 0 to 100")
    if not 0 <= confidence <= 100:
        raise ValidationError(f"confidence {confidence} is outside 0..100")
    return confidence


@dataclass(frozen=True, slots=True, repr=False)
class IOC:
    """One indicator of compromise: normalized value, type, TLP and provenance metadata."""

    value: str
    type: IOCType
    tlp: TLP = DEFAULT_TLP
    confidence: int = DEFAULT_CONFIDENCE
    source: str | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    tags: tuple[str, ...] = field(default=())
    related: tuple[IOC, ...] = field(default=(), compare=False)
    warninglists: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        """Validate every field and store the normalized forms."""
        kind = coerce_type(self.type)
        setter = object.__setattr__
        setter(self, "type", kind)
        setter(self, "value", validate(self.value, kind))
        setter(self, "tlp", TLP.parse(self.tlp))
        setter(self, "confidence", _check_confidence(self.confidence))
        if self.source is not None and not isinstance(self.source, str):
            raise ValidationError(f"source {self.source!r} must be a string or None")
        setter(self, "source", self.source or None)
        setter(self, "first_seen", _aware_utc("first_seen", self.first_seen))
        setter(self, "last_seen", _aware_utc("last_seen", self.last_seen))
        if self.first_seen and self.last_seen and self.first_seen > self.last_seen:
            raise ValidationError(
                f"first_seen {self.first_seen.isoformat()} is after "
                f"last_seen {self.last_seen.isoformat()}"
            )
        setter(self, "tags", _clean_tags(self.tags))
        setter(self, "related", tuple(self.related))
        if not all(isinstance(r, IOC) for r in self.related):
            raise ValidationError("related must be a sequence of IOC objects")
        setter(self, "warninglists", _clean_tags(self.warninglists))

    @classmethod
    def parse(
        cls,
        raw: str,
        ioc_type: IOCType | str | None = None,
        *,
        tlp: TLP | str = DEFAULT_TLP,
        confidence: int = DEFAULT_CONFIDENCE,
        source: str | None = None,
        first_seen: datetime | None = None,
        last_seen: datetime | None = None,
        tags: Iterable[str] = (),
    ) -> IOC:
        """Build an IOC from a raw, possibly defanged value, detecting its type if not given."""
        kind = detect_type(raw) if ioc_type is None else coerce_type(ioc_type)
        return cls(
            raw,
            kind,
            tlp=TLP.parse(tlp),
            confidence=confidence,
            source=source,
            first_seen=first_seen,
            last_seen=last_seen,
            tags=_clean_tags(tags),
        )

    @property
    def defanged(self) -> str:
        """The value made safe to display: ``hxxp://evil[.]com/``, ``1[.]2[.]3[.]4``."""
        return defang_as(self.value, self.type)

    @property
    def on_warninglist(self) -> bool:
        """True when the value is on a MISP warninglist (likely benign or a false positive)."""
        return bool(self.warninglists)

    @property
    def key(self) -> tuple[IOCType, str]:
        """Identity of the indicator regardless of metadata: ``(type, value)``."""
        return (self.type, self.value)

    def __str__(self) -> str:
        return self.defanged

    def __repr__(self) -> str:
        return (
            f"IOC({self.defanged!r}, type={self.type.value!r}, tlp={self.tlp.label!r}, "
            f"confidence={self.confidence}, source={self.source!r}, "
            f"first_seen={_iso(self.first_seen)!r}, last_seen={_iso(self.last_seen)!r}, "
            f"tags={self.tags!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict: plain (not defanged) value, ISO 8601 UTC datetimes."""
        return {
            "value": self.value,
            "type": self.type.value,
            "tlp": self.tlp.value,
            "confidence": self.confidence,
            "source": self.source,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "tags": list(self.tags),
            **({"related": [r.to_dict() for r in self.related]} if self.related else {}),
            **({"warninglists": list(self.warninglists)} if self.warninglists else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IOC:
        """Rebuild an IOC from ``to_dict`` output; ``type`` may be omitted and is then detected.

        Unknown keys are refused so that a misspelt field is not silently dropped.
        """
        unknown = set(data) - _FIELDS
        if unknown:
            raise ValidationError(f"unknown IOC field(s): {', '.join(sorted(unknown))}")
        if "value" not in data:
            raise ValidationError("an IOC dict needs a 'value'")
        value = data["value"]
        kind = data.get("type") or detect_type(value)
        return cls(
            value,
            coerce_type(kind),
            tlp=TLP.parse(data.get("tlp") or DEFAULT_TLP),
            confidence=data.get("confidence", DEFAULT_CONFIDENCE),
            source=data.get("source"),
            first_seen=data.get("first_seen"),
            last_seen=data.get("last_seen"),
            tags=data.get("tags") or (),
            related=tuple(cls.from_dict(r) for r in data.get("related") or ()),
            warninglists=data.get("warninglists") or (),
        )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
