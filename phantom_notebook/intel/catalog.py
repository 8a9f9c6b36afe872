"""The message-type catalog: each type's payload schema, version, default queue and priority.

Schema versions are ``"MAJOR.MINOR"``.  The compatibility rule:

* a consumer accepts a message of the **same MAJOR** with **any MINOR**, older or newer;
* a newer MINOR may only **add optional fields**; a consumer built for an older minor
  ignores them (payload models are read with ``extra="ignore"``);
* publishing is strict (``extra="forbid"``): an unknown or misspelt field is refused at the
  producer, with the field's path, so it never reaches a queue;
* a message whose MAJOR differs is refused: ``validate_incoming`` raises
  ``SchemaValidationError`` and consumers dead-letter it with reason ``schema_invalid``
  (they raise ``Reject("schema_invalid")``).  Removing or retyping a field, or making an
  optional field required, needs a new MAJOR.

The version travels in the envelope header ``pn-schema`` (``SCHEMA_HEADER``) and, when
``MessageQueue.publish`` accepts a ``schema_version`` argument, in ``Envelope.schema_version``
as well; readers prefer the header and fall back to ``Envelope.schema_version``.
"""

from __future__ import annotations

import builtins
import inspect
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import pydantic

from phantom_notebook.core.errors import ValidationError
from phantom_notebook.core.model.envelope import Envelope, MessagePriority
from phantom_notebook.intel import schemas as s

__all__ = [
    "CATALOG",
    "SCHEMA_HEADER",
    "Catalog",
    "MessageSpec",
    "SchemaValidationError",
    "UnknownMessageTypeError",
    "get",
    "publish_options",
    "validate_incoming",
    "validate_outgoing",
]

SCHEMA_HEADER = "pn-schema"
SCHEMA_INVALID = "schema_invalid"
_VERSION = re.compile(r"(\d+)\.(\d+)")


class SchemaValidationError(ValidationError):
    """Raised when a payload does not match its schema; ``problems`` lists field-level errors.

    ``reason`` is ``"schema_invalid"``: the dead-letter reason consumers use for it.
    """

    reason = SCHEMA_INVALID

    def __init__(self, message_type: str, problems: list[str]) -> None:
        self.message_type = message_type
        self.problems = problems
        super().__init__(f"{message_type}: " + "; ".join(problems))


class UnknownMessageTypeError(SchemaValidationError):
    """Raised when a message type is not in the catalog."""

    def __init__(self, message_type: str, known: list[str]) -> None:
        super().__init__(message_type, [f"unknown message type (known: {', '.join(known)})"])


def parse_version(version: str) -> tuple[int, int]:
    """Split ``"MAJOR.MINOR"`` into integers; ``ValueError`` for anything else."""
    match = _VERSION.fullmatch(version.strip()) if isinstance(version, str) else None
    if match is None:
        raise ValueError(f"schema version {version!r} is not MAJOR.MINOR")
    return int(match[1]), int(match[2])


@dataclass(frozen=True)
class MessageSpec:
    """One catalog entry: the type name, payload model, schema version and defaults."""

    type: str
    model: builtins.type[s.Payload]
    version: str
    queue: str
    priority: MessagePriority

    def __post_init__(self) -> None:
        parse_version(self.version)

    @property
    def major(self) -> int:
        """The MAJOR part of the schema version."""
        return parse_version(self.version)[0]

    def accepts(self, version: str) -> bool:
        """True when a consumer of this spec can read a message of schema ``version``."""
        try:
            return parse_version(version)[0] == self.major
        except ValueError:
            return False

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of the payload (for documentation and other languages)."""
        schema: dict[str, Any] = self.model.model_json_schema()
        return schema


def _problems(exc: pydantic.ValidationError) -> list[str]:
    out = []
    for error in exc.errors():
        path = ""
        for part in error["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        message = str(error["msg"])
        message = message[:1].lower() + message[1:]
        out.append(f"{path or '<payload>'}: {message}")
    return out


class Catalog:
    """A registry of message types; ``CATALOG`` holds the 18 built-in ones."""

    def __init__(self, specs: list[MessageSpec] | None = None) -> None:
        self._specs: dict[str, MessageSpec] = {}
        for spec in specs or []:
            self.register(spec)

    def register(self, spec: MessageSpec, *, replace: bool = False) -> MessageSpec:
        """Add a message type (e.g. a team's own); re-registering needs ``replace=True``."""
        if spec.type in self._specs and not replace:
            raise ValidationError(f"message type {spec.type!r} is already registered")
        self._specs[spec.type] = spec
        return spec

    def get(self, message_type: str) -> MessageSpec:
        """The spec of ``message_type``; ``UnknownMessageTypeError`` if there is none."""
        try:
            return self._specs[message_type]
        except KeyError:
            raise UnknownMessageTypeError(message_type, self.types()) from None

    def types(self) -> list[str]:
        """Every registered type name, sorted."""
        return sorted(self._specs)

    def __contains__(self, message_type: object) -> bool:
        return message_type in self._specs

    def __iter__(self) -> Iterator[MessageSpec]:
        return iter(self._specs[name] for name in self.types())

    def __len__(self) -> int:
        return len(self._specs)

    def validate_outgoing(self, message_type: str, payload: Any) -> dict[str, Any]:
        """Validate a payload (dict or model) strictly and return its JSON-ready dict."""
        data: dict[str, Any] = self.outgoing_model(message_type, payload).model_dump(mode="json")
        return data

    def outgoing_model(self, message_type: str, payload: Any) -> s.Payload:
        """Validate a payload (dict or model) strictly and return it as its model.

        Raises ``SchemaValidationError`` naming each bad field's path.
        """
        spec = self.get(message_type)
        if isinstance(payload, s.Payload):
            if not isinstance(payload, spec.model):
                raise SchemaValidationError(message_type, [
                    f"<payload>: expected {spec.model.__name__}, got {type(payload).__name__}"])
            payload = payload.model_dump(mode="json")
        try:
            return spec.model.model_validate(payload, extra="forbid")
        except pydantic.ValidationError as exc:
            raise SchemaValidationError(message_type, _problems(exc)) from None

    def validate_incoming(self, envelope: Envelope) -> s.Payload:
        """Read an envelope's payload as its model, applying the compatibility rule."""
        spec = self.get(envelope.type)
        version = schema_version_of(envelope)
        if not spec.accepts(version):
            raise SchemaValidationError(envelope.type, [
                f"<schema>: version {version} is not compatible with {spec.version} "
                f"(this consumer reads {spec.major}.x)"])
        try:
            return spec.model.model_validate(envelope.payload, extra="ignore")
        except pydantic.ValidationError as exc:
            raise SchemaValidationError(envelope.type, _problems(exc)) from None

    def publish_options(self, message_type: str,
                        headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The keyword arguments that put the schema version of ``message_type`` on a message."""
        return publish_options(self.get(message_type).version, headers)


def schema_version_of(envelope: Envelope) -> str:
    """The schema version a message was published with (header first, then the envelope)."""
    return envelope.headers.get(SCHEMA_HEADER) or envelope.schema_version


@cache
def _publish_takes_schema_version() -> bool:
    from phantom_notebook.core.queues import MessageQueue

    return "schema_version" in inspect.signature(MessageQueue.publish).parameters


def publish_options(version: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``headers`` (plus ``schema_version`` when ``publish`` accepts it) carrying ``version``."""
    options: dict[str, Any] = {"headers": {**(headers or {}), SCHEMA_HEADER: version}}
    if _publish_takes_schema_version():
        options["schema_version"] = version
    return options


_P = MessagePriority
_SPECS = [
    MessageSpec("ioc.enrichment.request", s.IOCEnrichmentRequest, "1.0", "ioc-processing", _P.HIGH),
    MessageSpec("ioc.enrichment.result", s.IOCEnrichmentResult, "1.0", "ioc-results",
                _P.NORMAL),
    MessageSpec("ioc.validation.request", s.IOCValidationRequest, "1.0", "ioc-processing",
                _P.NORMAL),
    MessageSpec("ioc.validation.result", s.IOCValidationResult, "1.0", "ioc-results",
                _P.NORMAL),
    MessageSpec("threat.analysis.request", s.ThreatAnalysisRequest, "1.0", "threat-analysis",
                _P.NORMAL),
    MessageSpec("threat.analysis.result", s.ThreatAnalysisResult, "1.0", "threat-results",
                _P.NORMAL),
    MessageSpec("threat.campaign.discovery", s.CampaignDiscovery, "1.0", "threat-analysis",
                _P.LOW),
    MessageSpec("threat.attribution.analysis", s.AttributionAnalysis, "1.0", "threat-analysis",
                _P.LOW),
    MessageSpec("data.ingestion.request", s.DataIngestionRequest, "1.0", "data-ingestion",
                _P.NORMAL),
    MessageSpec("data.ingestion.result", s.DataIngestionResult, "1.0", "data-results",
                _P.NORMAL),
    MessageSpec("data.validation.request", s.DataValidationRequest, "1.0", "data-ingestion",
                _P.NORMAL),
    MessageSpec("data.validation.result", s.DataValidationResult, "1.0", "data-results",
                _P.NORMAL),
    MessageSpec("alert.threat.notification", s.ThreatAlert, "1.0", "alerts", _P.HIGH),
    MessageSpec("alert.escalation", s.AlertEscalation, "1.0", "alerts", _P.CRITICAL),
    MessageSpec("alert.acknowledgment", s.AlertAcknowledgment, "1.0", "alerts", _P.HIGH),
    MessageSpec("system.health.check", s.HealthCheck, "1.0", "system", _P.LOW),
    MessageSpec("system.metrics.update", s.MetricsUpdate, "1.0", "system", _P.LOW),
    MessageSpec("system.config.change", s.ConfigChange, "1.0", "system", _P.NORMAL),
]

CATALOG = Catalog(_SPECS)
"""The built-in catalog: the 18 message types of the spec."""

get = CATALOG.get
validate_outgoing = CATALOG.validate_outgoing
validate_incoming = CATALOG.validate_incoming
