"""Pydantic models of the 18 message payloads, one class per message type.

Every model derives from ``Payload``, whose config ignores unknown fields: that is how a
consumer built for schema 1.0 reads a 1.1 message that added an optional field.  Publishing
validates with ``extra="forbid"`` instead (see ``catalog``), so a misspelt field never leaves
the producer.  Field names are the wire names; datetimes must carry a timezone.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from phantom_notebook.intel.ioc import DEFAULT_CONFIDENCE, IOC, detect_type
from phantom_notebook.intel.normalize import IOCType
from phantom_notebook.intel.tlp import TLP

Severity = Literal["critical", "high", "medium", "low", "info"]
RiskLevel = Literal["critical", "high", "medium", "low"]
TLPLabel = Literal["CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"]
IngestFormat = Literal["text", "csv", "stix", "misp"]


def utc_now() -> datetime:
    """The current time as an aware UTC datetime (the default of every timestamp field)."""
    return datetime.now(UTC)


class Payload(BaseModel):
    """Base of every payload and nested part: unknown fields are ignored when reading."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)


# -- shared parts ------------------------------------------------------------------------------


class IOCData(Payload):
    """An indicator on the wire: the normalized value, its type, TLP and provenance."""

    type: IOCType | None = None
    value: str = Field(min_length=1)
    tlp: TLPLabel = "AMBER"
    confidence: int = Field(default=DEFAULT_CONFIDENCE, ge=0, le=100)
    source: str | None = None
    first_seen: AwareDatetime | None = None
    last_seen: AwareDatetime | None = None
    tags: list[str] = Field(default_factory=list)

    @field_validator("tlp", mode="before")
    @classmethod
    def _tlp(cls, value: Any) -> Any:
        return TLP.parse(value).value if isinstance(value, str | TLP) else value

    @field_validator("value")
    @classmethod
    def _value(cls, value: str, info: ValidationInfo) -> str:
        kind = info.data.get("type")
        try:
            return IOC(value, kind or detect_type(value)).value
        except ValueError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _typed(self) -> IOCData:
        if self.type is None:  # frozen model: fill in the detected type once, at validation
            object.__setattr__(self, "type", detect_type(self.value))
        return self

    @property
    def ioc_type(self) -> IOCType:
        """The type, detected from the value when the sender left it out."""
        return self.type or detect_type(self.value)

    def to_ioc(self) -> IOC:
        """The domain ``IOC`` this describes."""
        return IOC(self.value, self.ioc_type, tlp=TLP.parse(self.tlp),
                   confidence=self.confidence, source=self.source, first_seen=self.first_seen,
                   last_seen=self.last_seen, tags=tuple(self.tags))

    @classmethod
    def from_ioc(cls, ioc: IOC) -> IOCData:
        """The wire form of a domain ``IOC``."""
        return cls(type=ioc.type, value=ioc.value, tlp=ioc.tlp.value,
                   confidence=ioc.confidence, source=ioc.source, first_seen=ioc.first_seen,
                   last_seen=ioc.last_seen, tags=list(ioc.tags))

    @property
    def key(self) -> str:
        """``<type>:<value>``: the identity used for relationships and duplicates."""
        return f"{self.ioc_type.value}:{self.value}"


class EnrichmentOptions(Payload):
    """What an enrichment request asks for (mirrors the spec's include* flags)."""

    include_reputation: bool = True
    include_geolocation: bool = True
    include_malware_analysis: bool = True
    include_relationships: bool = True


class ReputationHit(Payload):
    """One listing of an indicator in a reputation feed."""

    feed: str
    threat: str | None = None
    malware: str | None = None
    match: Literal["exact", "url-host"] = "exact"
    confidence: int = Field(default=75, ge=0, le=100)
    first_seen: AwareDatetime | None = None
    tags: list[str] = Field(default_factory=list)
    reference: str | None = None


class RiskFactor(Payload):
    """One line of a risk-score breakdown: what counted, by how many points, and why."""

    factor: str
    points: int
    why: str


class AlertAction(Payload):
    """A response step attached to an alert."""

    action: str = Field(min_length=1)
    automated: bool = False
    description: str | None = None


class RawRecord(Payload):
    """A record as it arrived from a feed, before sanitization."""

    value: str
    type: str | None = None
    tlp: str | None = None
    confidence: int | None = Field(default=None, ge=0, le=100)
    tags: list[str] = Field(default_factory=list)


class InvalidRecord(Payload):
    """A record refused by validation, with the reason."""

    value: str
    error: str


class DuplicateRecord(Payload):
    """A record dropped as a duplicate: seen earlier in the batch or in the recent window."""

    key: str
    where: Literal["batch", "recent"]


class AttributionCandidate(Payload):
    """A threat actor that may be behind an activity, with the evidence for it."""

    actor: str = Field(min_length=1)
    confidence: int = Field(ge=0, le=100)
    evidence: list[str] = Field(default_factory=list)


# -- IOC processing ------------------------------------------------------------------------------


class IOCEnrichmentRequest(Payload):
    """``ioc.enrichment.request``: enrich one indicator; ``report_id`` groups co-occurring ones."""

    ioc: IOCData
    options: EnrichmentOptions = Field(default_factory=EnrichmentOptions)
    report_id: str | None = None
    related: list[str] = Field(default_factory=list)
    requested_by: str | None = None


class IOCEnrichmentResult(Payload):
    """``ioc.enrichment.result``: what each enricher found, reputation hits, related IOCs."""

    ioc: IOCData
    enrichments: dict[str, dict[str, Any]] = Field(default_factory=dict)
    reputation: list[ReputationHit] = Field(default_factory=list)
    related_iocs: list[str] = Field(default_factory=list)
    errors: dict[str, str] = Field(default_factory=dict)
    enriched_at: AwareDatetime = Field(default_factory=utc_now)


class IOCValidationRequest(Payload):
    """``ioc.validation.request``: is this raw (possibly defanged) value a valid indicator?"""

    value: str = Field(min_length=1)
    type: IOCType | None = None
    source: str | None = None


class IOCValidationResult(Payload):
    """``ioc.validation.result``: the verdict, the normalized and defanged forms or the error."""

    value: str
    valid: bool
    type: IOCType | None = None
    normalized: str | None = None
    defanged: str | None = None
    error: str | None = None


# -- threat analysis -------------------------------------------------------------------------------


class ThreatAnalysisRequest(Payload):
    """``threat.analysis.request``: score an indicator from what enrichment found."""

    ioc: IOCData
    enrichments: dict[str, dict[str, Any]] = Field(default_factory=dict)
    reputation: list[ReputationHit] = Field(default_factory=list)
    related_iocs: list[str] = Field(default_factory=list)


class ThreatAnalysisResult(Payload):
    """``threat.analysis.result``: a 0-100 risk score with its explained breakdown."""

    ioc: IOCData
    risk_score: int = Field(ge=0, le=100)
    risk_level: RiskLevel
    breakdown: list[RiskFactor]
    analyzed_at: AwareDatetime = Field(default_factory=utc_now)


class CampaignDiscovery(Payload):
    """``threat.campaign.discovery``: indicators and techniques believed to form a campaign."""

    name: str = Field(min_length=1)
    iocs: list[IOCData] = Field(min_length=1)
    techniques: list[str] = Field(default_factory=list)
    description: str | None = None
    confidence: int = Field(default=DEFAULT_CONFIDENCE, ge=0, le=100)


class AttributionAnalysis(Payload):
    """``threat.attribution.analysis``: candidate actors for a campaign or set of IOCs."""

    subject: str = Field(min_length=1)
    candidates: list[AttributionCandidate] = Field(default_factory=list)
    iocs: list[IOCData] = Field(default_factory=list)


# -- data integration ------------------------------------------------------------------------------


class DataIngestionRequest(Payload):
    """``data.ingestion.request``: read indicators from inline content of a given format."""

    source: str = Field(min_length=1)
    format: IngestFormat
    content: str
    tlp: TLPLabel = "AMBER"
    tags: list[str] = Field(default_factory=list)


class DataIngestionResult(Payload):
    """``data.ingestion.result``: the indicators read, and what was refused."""

    source: str
    accepted: int = Field(ge=0)
    rejected: int = Field(ge=0)
    iocs: list[IOCData] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)


class DataValidationRequest(Payload):
    """``data.validation.request``: sanitize, normalize and deduplicate a batch of records."""

    batch_id: str = Field(min_length=1)
    source: str | None = None
    records: list[RawRecord]
    default_tlp: TLPLabel = "AMBER"


class DataValidationResult(Payload):
    """``data.validation.result``: valid IOCs, refused records and dropped duplicates."""

    batch_id: str
    valid: list[IOCData] = Field(default_factory=list)
    invalid: list[InvalidRecord] = Field(default_factory=list)
    duplicates: list[DuplicateRecord] = Field(default_factory=list)


# -- alerts --------------------------------------------------------------------------------------


class ThreatAlert(Payload):
    """``alert.threat.notification``: an alert for analysts and downstream systems."""

    alert_id: str = Field(min_length=1)
    severity: Severity
    title: str = Field(min_length=1)
    description: str = ""
    category: str = "general"
    related_iocs: list[IOCData] = Field(default_factory=list)
    actions: list[AlertAction] = Field(default_factory=list)
    affected_systems: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    created_at: AwareDatetime = Field(default_factory=utc_now)


class AlertEscalation(Payload):
    """``alert.escalation``: an alert still unacknowledged after its deadline."""

    alert_id: str = Field(min_length=1)
    level: int = Field(ge=1)
    reason: str
    severity: Severity = "critical"
    title: str | None = None
    escalate_to: list[str] = Field(default_factory=list)
    opened_at: AwareDatetime | None = None
    escalated_at: AwareDatetime = Field(default_factory=utc_now)


class AlertAcknowledgment(Payload):
    """``alert.acknowledgment``: someone took ownership of an alert; escalation stops."""

    alert_id: str = Field(min_length=1)
    acknowledged_by: str = Field(min_length=1)
    note: str | None = None
    acknowledged_at: AwareDatetime = Field(default_factory=utc_now)


# -- system --------------------------------------------------------------------------------------


class HealthCheck(Payload):
    """``system.health.check``: the health of one component and of its individual checks."""

    component: str = Field(min_length=1)
    status: Literal["healthy", "degraded", "unhealthy"]
    checks: dict[str, str] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)
    checked_at: AwareDatetime = Field(default_factory=utc_now)


class MetricsUpdate(Payload):
    """``system.metrics.update``: numeric metrics of one component over a time window."""

    component: str = Field(min_length=1)
    metrics: dict[str, float]
    window_s: float = Field(default=60.0, gt=0)
    measured_at: AwareDatetime = Field(default_factory=utc_now)


class ConfigChange(Payload):
    """``system.config.change``: a setting changed, who changed it and why."""

    component: str = Field(min_length=1)
    key: str = Field(min_length=1)
    old_value: Any = None
    new_value: Any = None
    changed_by: str = Field(min_length=1)
    reason: str | None = None
    changed_at: AwareDatetime = Field(default_factory=utc_now)
