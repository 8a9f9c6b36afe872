"""Typed producers: thin wrappers over ``mq.publish`` that validate through the catalog first.

Each method builds the payload of one message type, validates it strictly
(``catalog.validate_outgoing``: a bad field raises ``SchemaValidationError`` naming its path
before anything reaches Redis), and publishes it to the type's default queue with its default
priority, both overridable.  ``context`` is the message a new one answers or follows: a
``MessageContext`` (inside a handler) or an ``Envelope``.  The new message then shares its
trace, takes its correlation id (or its id when it had none) and names it as the cause.

TLP follows the indicator: a message is marked with the strictest TLP of everything it
carries (each IOC, a report's ``tlp``, a record batch's markings) and of the message it
follows.  An explicit ``tlp=`` may only be stricter; a looser one raises
``TLPDowngradeError`` before anything reaches Redis.  ``publish_batch`` validates every
message of a catalog type and raises the marking of any that is looser than its content.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import pydantic

from phantom_notebook.core.consume.context import MessageContext
from phantom_notebook.core.model.envelope import Envelope, MessagePriority, new_id, new_traceparent
from phantom_notebook.core.queues import Message, MessageQueue
from phantom_notebook.intel import schemas as s
from phantom_notebook.intel.catalog import CATALOG, Catalog
from phantom_notebook.intel.ioc import IOC
from phantom_notebook.intel.tlp import TLP, TLPDowngradeError

__all__ = [
    "AlertProducer",
    "DataIngestionProducer",
    "IOCMessageProducer",
    "Producer",
    "SystemProducer",
    "ThreatAnalysisProducer",
    "follow_up",
    "ioc_payload",
    "message_tlp",
]

Cause = MessageContext | Envelope | None
IOCLike = IOC | s.IOCData | str | Mapping[str, Any]
TLPLike = TLP | str | None
PROGRESS_THRESHOLD = 1000
BATCH_CHUNK = 500
_SEVERITY_PRIORITY = {
    "critical": MessagePriority.CRITICAL, "high": MessagePriority.HIGH,
    "medium": MessagePriority.NORMAL, "low": MessagePriority.LOW, "info": MessagePriority.LOW,
}


def follow_up(cause: Cause) -> dict[str, str]:
    """Correlation, causation and trace fields of a message that follows ``cause``."""
    if cause is None:
        return {}
    env = cause.envelope if isinstance(cause, MessageContext) else cause
    fields = {"correlation_id": env.correlation_id or env.id, "causation_id": env.id}
    if env.trace_id:
        fields["traceparent"] = new_traceparent(env.trace_id)
    return fields


def ioc_payload(ioc: IOCLike) -> Any:
    """The wire form of an indicator given as an ``IOC``, ``IOCData``, raw string or dict."""
    if isinstance(ioc, IOC):
        return s.IOCData.from_ioc(ioc).model_dump(mode="json")
    if isinstance(ioc, s.IOCData):
        return ioc.model_dump(mode="json")
    if isinstance(ioc, str):
        return {"value": ioc}  # refanged, typed and normalized by the schema
    return dict(ioc)


def _markings(obj: Any) -> Iterator[tuple[TLP, str]]:
    """Every TLP marking inside a validated payload, with what carries it."""
    if isinstance(obj, s.IOCData):
        yield TLP.parse(obj.tlp), f"{obj.ioc_type.value} {obj.to_ioc().defanged}"
        return
    if isinstance(obj, s.DataIngestionRequest):
        yield TLP.parse(obj.tlp), f"report from {obj.source}"
    elif isinstance(obj, s.DataValidationRequest):
        yield TLP.parse(obj.default_tlp), "the batch's default_tlp"
    elif isinstance(obj, s.RawRecord) and obj.tlp:
        yield TLP.parse(obj.tlp), f"record {obj.value!r}"
    if isinstance(obj, pydantic.BaseModel):
        for name in type(obj).model_fields:
            yield from _markings(getattr(obj, name))
    elif isinstance(obj, list | tuple):
        for item in obj:
            yield from _markings(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _markings(item)


def _cause_tlp(cause: Cause) -> TLP | None:
    if cause is None:
        return None
    env = cause.envelope if isinstance(cause, MessageContext) else cause
    try:
        return TLP.parse(env.tlp or "CLEAR")
    except ValueError:
        return TLP.RED  # an unreadable marking on the cause: assume the worst


def message_tlp(message_type: str, model: s.Payload, explicit: TLPLike = None,
                cause: Cause = None) -> TLP:
    """The TLP a message must travel with: the strictest of its content and its cause.

    ``explicit`` may raise it; a looser ``explicit`` raises ``TLPDowngradeError`` naming
    the indicator that forbids it.
    """
    found = list(_markings(model))
    from_cause = _cause_tlp(cause)
    if from_cause is not None:
        found.append((from_cause, "the message it follows"))
    required = max((m for m, _ in found), default=TLP.CLEAR)
    if explicit is None:
        return required
    asked = TLP.parse(explicit)
    if asked < required:
        what = ", ".join(sorted({w for m, w in found if m == required})[:3])
        raise TLPDowngradeError(
            f"{message_type}: tlp={asked.value!r} is looser than {required.label} of {what}; "
            f"publish with tlp={required.value!r} or stricter, or re-mark the indicator")
    return asked


def _dump(payload: s.Payload | Mapping[str, Any]) -> Any:
    return payload.model_dump(mode="json") if isinstance(payload, s.Payload) else dict(payload)


class Producer:
    """Validates and publishes catalog message types; the typed producers build on it."""

    def __init__(self, mq: MessageQueue, origin: str | None = None,
                 catalog: Catalog = CATALOG) -> None:
        self.mq = mq
        self.origin = origin
        self.catalog = catalog

    def __repr__(self) -> str:
        return f"{type(self).__name__}(origin={self.origin!r})"

    def _options(self, message_type: str, headers: Mapping[str, str] | None) -> dict[str, Any]:
        extra = {"pn-producer": self.origin} if self.origin else {}
        return self.catalog.publish_options(message_type, {**extra, **(headers or {})})

    def publish(self, message_type: str, payload: s.Payload | Mapping[str, Any], *,
                priority: MessagePriority | int | str | None = None, queue: str | None = None,
                context: Cause = None, headers: Mapping[str, str] | None = None,
                tlp: TLPLike = None, **options: Any) -> str:
        """Validate ``payload`` as ``message_type`` and publish it; returns the message id.

        The message is marked with the strictest TLP of what it carries (``message_tlp``);
        ``tlp`` may only make it stricter.  ``options`` go to ``MessageQueue.publish``
        (``delay``, ``dedup_key``, ``ttl_s``...).
        """
        model = self.catalog.outgoing_model(message_type, payload)
        marking = message_tlp(message_type, model, tlp, context)
        data = model.model_dump(mode="json")
        spec = self.catalog.get(message_type)
        opts = {**self._options(message_type, headers), **options}
        opts["priority"] = spec.priority if priority is None else priority
        opts["tlp"] = marking.value
        target = queue or spec.queue
        if isinstance(context, MessageContext):
            return context.publish(target, message_type, data, **opts)
        for name, value in follow_up(context).items():
            opts.setdefault(name, value)
        return self.mq.publish(target, message_type, data, **opts)

    def message(self, message_type: str, payload: s.Payload | Mapping[str, Any], *,
                priority: MessagePriority | int | str | None = None, context: Cause = None,
                headers: Mapping[str, str] | None = None, dedup_key: str | None = None,
                tlp: TLPLike = None) -> Message:
        """A validated ``Message`` for ``publish_batch`` (same rules as ``publish``)."""
        model = self.catalog.outgoing_model(message_type, payload)
        marking = message_tlp(message_type, model, tlp, context)
        spec = self.catalog.get(message_type)
        opts = self._options(message_type, headers)
        cause = follow_up(context)
        return Message(message_type, model.model_dump(mode="json"),
                       spec.priority if priority is None else priority,
                       headers=opts["headers"], dedup_key=dedup_key,
                       correlation_id=cause.get("correlation_id"),
                       causation_id=cause.get("causation_id"),
                       traceparent=cause.get("traceparent"), tlp=marking.value)

    def checked(self, message: Message | tuple[str, Any]) -> Message:
        """``message`` validated when its type is in the catalog, marked at least as strictly
        as its content (a message built without ``tlp`` is raised to it).

        Raises ``SchemaValidationError`` for a payload its schema refuses.
        """
        if not isinstance(message, Message):
            message = Message(*message)
        if message.type not in self.catalog:
            return message
        model = self.catalog.outgoing_model(message.type, message.payload)
        required = message_tlp(message.type, model)
        marking = max(required, TLP.parse(message.tlp or "CLEAR"))
        return dataclasses.replace(message, payload=model.model_dump(mode="json"),
                                   tlp=marking.value)

    def publish_batch(self, queue: str, messages: Sequence[Message | tuple[str, Any]], *,
                      progress: bool | None = None, chunk_size: int = BATCH_CHUNK,
                      description: str = "publishing") -> list[str]:
        """Publish in chunks (each all or nothing), with a rich progress bar when asked.

        Every message of a catalog type is validated first (``checked``): one bad payload
        raises ``SchemaValidationError`` before any chunk is written.  ``progress=None``
        shows the bar only above 1,000 messages.
        """
        messages = [self.checked(m) for m in messages]
        show = len(messages) > PROGRESS_THRESHOLD if progress is None else progress
        chunks = [messages[i:i + chunk_size] for i in range(0, len(messages), chunk_size)]
        ids: list[str] = []
        if not show:
            for chunk in chunks:
                ids.extend(self.mq.publish_batch(queue, chunk))
            return ids
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(description, total=len(messages))
            for chunk in chunks:
                ids.extend(self.mq.publish_batch(queue, chunk))
                bar.advance(task, len(chunk))
        return ids


class IOCMessageProducer(Producer):
    """Publishes ``ioc.*`` messages: enrichment and validation requests and results."""

    def publish_ioc_enrichment_request(
            self, ioc: IOCLike, options: s.EnrichmentOptions | Mapping[str, Any] | None = None,
            context: Cause = None, priority: MessagePriority | int | str = MessagePriority.HIGH,
            *, report_id: str | None = None, related: Iterable[str] = (),
            requested_by: str | None = None, tlp: TLPLike = None) -> str:
        """Ask for ``ioc`` to be enriched; IOCs sharing ``report_id`` become related.

        The message carries the IOC's TLP (``tlp`` may only be stricter).
        """
        payload = self._request(ioc, options, report_id, related, requested_by)
        return self.publish("ioc.enrichment.request", payload, priority=priority, context=context,
                            tlp=tlp)

    def _request(self, ioc: IOCLike, options: s.EnrichmentOptions | Mapping[str, Any] | None,
                 report_id: str | None, related: Iterable[str],
                 requested_by: str | None) -> dict[str, Any]:
        payload: dict[str, Any] = {"ioc": ioc_payload(ioc), "related": list(related),
                                   "report_id": report_id, "requested_by": requested_by}
        if options is not None:
            payload["options"] = _dump(options)
        return payload

    def publish_ioc_enrichment_result(
            self, result: s.IOCEnrichmentResult | Mapping[str, Any], context: Cause = None,
            priority: MessagePriority | int | str | None = None, queue: str | None = None,
            *, tlp: TLPLike = None) -> str:
        """Publish enrichment results, correlated to the request given as ``context``."""
        return self.publish("ioc.enrichment.result", result, priority=priority, queue=queue,
                            context=context, tlp=tlp)

    def publish_ioc_validation_request(
            self, value: str, ioc_type: str | None = None, context: Cause = None,
            priority: MessagePriority | int | str | None = None,
            source: str | None = None) -> str:
        """Ask whether a raw (possibly defanged) ``value`` is a valid indicator."""
        return self.publish("ioc.validation.request",
                            {"value": value, "type": ioc_type, "source": source},
                            priority=priority, context=context)

    def publish_ioc_validation_result(
            self, result: s.IOCValidationResult | Mapping[str, Any], context: Cause = None,
            priority: MessagePriority | int | str | None = None, queue: str | None = None) -> str:
        """Publish a validation verdict, correlated to the request given as ``context``."""
        return self.publish("ioc.validation.result", result, priority=priority, queue=queue,
                            context=context)

    def publish_batch_enrichment(
            self, iocs: Iterable[IOCLike],
            options: s.EnrichmentOptions | Mapping[str, Any] | None = None, *,
            report_id: str | None = None, queue: str | None = None,
            priority: MessagePriority | int | str = MessagePriority.HIGH, context: Cause = None,
            progress: bool | None = None, chunk_size: int = BATCH_CHUNK,
            tlp: TLPLike = None) -> list[str]:
        """Enrich many IOCs with ``publish_batch``; they share one ``report_id`` (made if None).

        Each message carries its own IOC's TLP; ``tlp`` may only be stricter than the
        strictest of the batch (a looser one raises before anything is published).
        """
        report = report_id or f"batch-{new_id()}"
        messages = [self.message("ioc.enrichment.request",
                                 self._request(ioc, options, report, (), None),
                                 priority=priority, context=context) for ioc in iocs]
        if tlp is not None:
            strictest = max((TLP.parse(m.tlp) for m in messages), default=TLP.CLEAR)
            asked = TLP.parse(tlp)
            if asked < strictest:
                raise TLPDowngradeError(
                    f"ioc.enrichment.request: tlp={asked.value!r} is looser than "
                    f"{strictest.label}, the strictest indicator of the batch")
            messages = [dataclasses.replace(m, tlp=asked.value) for m in messages]
        target = queue or self.catalog.get("ioc.enrichment.request").queue
        return self.publish_batch(target, messages, progress=progress, chunk_size=chunk_size,
                                  description="enrichment requests")


class ThreatAnalysisProducer(Producer):
    """Publishes ``threat.*`` messages: analysis, campaign discovery, attribution."""

    def publish_analysis_request(
            self, ioc: IOCLike, enrichments: Mapping[str, Mapping[str, Any]] | None = None,
            reputation: Iterable[s.ReputationHit | Mapping[str, Any]] = (),
            related_iocs: Iterable[str] = (), context: Cause = None,
            priority: MessagePriority | int | str | None = None, *,
            tlp: TLPLike = None) -> str:
        """Ask for ``ioc`` to be scored from what enrichment found (marked with its TLP)."""
        payload = {"ioc": ioc_payload(ioc), "enrichments": dict(enrichments or {}),
                   "reputation": [_dump(h) for h in reputation],
                   "related_iocs": list(related_iocs)}
        return self.publish("threat.analysis.request", payload, priority=priority,
                            context=context, tlp=tlp)

    def publish_analysis_result(
            self, result: s.ThreatAnalysisResult | Mapping[str, Any], context: Cause = None,
            priority: MessagePriority | int | str | None = None, *,
            tlp: TLPLike = None) -> str:
        """Publish a risk score, correlated to the request given as ``context``."""
        return self.publish("threat.analysis.result", result, priority=priority, context=context,
                            tlp=tlp)

    def publish_campaign_discovery(
            self, name: str, iocs: Iterable[IOCLike], techniques: Iterable[str] = (),
            description: str | None = None, confidence: int = 50,
            context: Cause = None, *, tlp: TLPLike = None) -> str:
        """Report indicators and ATT&CK techniques believed to form one campaign.

        Marked with the strictest TLP of ``iocs``.
        """
        payload = {"name": name, "iocs": [ioc_payload(i) for i in iocs],
                   "techniques": list(techniques), "description": description,
                   "confidence": confidence}
        return self.publish("threat.campaign.discovery", payload, context=context, tlp=tlp)

    def publish_attribution_analysis(
            self, subject: str,
            candidates: Iterable[s.AttributionCandidate | Mapping[str, Any]],
            iocs: Iterable[IOCLike] = (), context: Cause = None, *,
            tlp: TLPLike = None) -> str:
        """Report candidate threat actors for a campaign or set of indicators."""
        payload = {"subject": subject, "candidates": [_dump(c) for c in candidates],
                   "iocs": [ioc_payload(i) for i in iocs]}
        return self.publish("threat.attribution.analysis", payload, context=context, tlp=tlp)


class DataIngestionProducer(Producer):
    """Publishes ``data.*`` messages: ingestion and validation requests and results."""

    def publish_ingestion_request(
            self, source: str, content: str, format: str = "text", *, tlp: str = "AMBER",
            tags: Iterable[str] = (), context: Cause = None,
            priority: MessagePriority | int | str | None = None) -> str:
        """Ask for indicators to be read from ``content`` (text, csv, stix or misp)."""
        payload = {"source": source, "format": format, "content": content, "tlp": tlp,
                   "tags": list(tags)}
        return self.publish("data.ingestion.request", payload, priority=priority,
                            context=context)

    def publish_ingestion_result(self, result: s.DataIngestionResult | Mapping[str, Any],
                                 context: Cause = None) -> str:
        """Publish what an ingestion read, correlated to its request."""
        return self.publish("data.ingestion.result", result, context=context)

    def publish_validation_request(
            self, records: Iterable[s.RawRecord | Mapping[str, Any] | str], *,
            batch_id: str | None = None, source: str | None = None, default_tlp: str = "AMBER",
            context: Cause = None, priority: MessagePriority | int | str | None = None) -> str:
        """Ask for a batch of raw records to be sanitized, normalized and deduplicated."""
        rows = [{"value": r} if isinstance(r, str) else _dump(r) for r in records]
        payload = {"batch_id": batch_id or new_id(), "source": source, "records": rows,
                   "default_tlp": default_tlp}
        return self.publish("data.validation.request", payload, priority=priority,
                            context=context)

    def publish_validation_result(self, result: s.DataValidationResult | Mapping[str, Any],
                                  context: Cause = None) -> str:
        """Publish a validated batch, correlated to its request."""
        return self.publish("data.validation.result", result, context=context)


class AlertProducer(Producer):
    """Publishes ``alert.*`` messages; a critical alert goes out with CRITICAL priority."""

    def publish_threat_alert(
            self, severity: str, title: str, description: str = "", category: str = "general",
            related_iocs: Iterable[IOCLike] = (),
            actions: Iterable[s.AlertAction | Mapping[str, Any]] = (),
            affected_systems: Iterable[str] = (), tags: Iterable[str] = (), *,
            alert_id: str | None = None, context: Cause = None,
            priority: MessagePriority | int | str | None = None, tlp: TLPLike = None) -> str:
        """Raise an alert; ``alert_id`` (a new UUIDv7 by default) is what acknowledges it.

        Marked with the strictest TLP of ``related_iocs``.
        """
        payload = {"alert_id": alert_id or new_id(), "severity": severity, "title": title,
                   "description": description, "category": category,
                   "related_iocs": [ioc_payload(i) for i in related_iocs],
                   "actions": [_dump(a) for a in actions],
                   "affected_systems": list(affected_systems), "tags": list(tags)}
        if priority is None:
            priority = _SEVERITY_PRIORITY.get(str(severity).lower())
        return self.publish("alert.threat.notification", payload, priority=priority,
                            context=context, tlp=tlp)

    def publish_escalation(self, alert_id: str, level: int, reason: str, *,
                           severity: str = "critical", title: str | None = None,
                           escalate_to: Iterable[str] = (), opened_at: Any = None,
                           context: Cause = None) -> str:
        """Escalate an alert that nobody acknowledged in time."""
        payload = {"alert_id": alert_id, "level": level, "reason": reason,
                   "severity": severity, "title": title, "escalate_to": list(escalate_to),
                   "opened_at": opened_at}
        return self.publish("alert.escalation", payload, context=context)

    def publish_acknowledgment(self, alert_id: str, acknowledged_by: str,
                               note: str | None = None, context: Cause = None) -> str:
        """Acknowledge an alert: it stops escalating."""
        payload = {"alert_id": alert_id, "acknowledged_by": acknowledged_by, "note": note}
        return self.publish("alert.acknowledgment", payload, context=context)


class SystemProducer(Producer):
    """Publishes ``system.*`` messages: health checks, metrics, configuration changes."""

    def publish_health_check(self, component: str, status: str,
                             checks: Mapping[str, str] | None = None,
                             details: Mapping[str, Any] | None = None) -> str:
        """Report the health of ``component`` (healthy, degraded or unhealthy)."""
        return self.publish("system.health.check", {
            "component": component, "status": status, "checks": dict(checks or {}),
            "details": dict(details or {})})

    def publish_metrics(self, component: str, metrics: Mapping[str, float],
                        window_s: float = 60.0) -> str:
        """Report numeric metrics of ``component`` over the last ``window_s`` seconds."""
        return self.publish("system.metrics.update", {
            "component": component, "metrics": dict(metrics), "window_s": window_s})

    def publish_config_change(self, component: str, key: str, old_value: Any, new_value: Any,
                              changed_by: str, reason: str | None = None) -> str:
        """Record that a setting of ``component`` changed."""
        return self.publish("system.config.change", {
            "component": component, "key": key, "old_value": old_value,
            "new_value": new_value, "changed_by": changed_by, "reason": reason})
