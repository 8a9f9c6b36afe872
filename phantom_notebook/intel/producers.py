"""Typed producers: thin wrappers over ``mq.publish`` that validate through the catalog first.

Each method builds the payload of one message type, validates it strictly
(``catalog.validate_outgoing``: a bad field raises ``SchemaValidationError`` naming its path
before anything reaches Redis), and publishes it to the type's default queue with its default
priority, both overridable.  ``context`` is the message a new one answers or follows: a
``MessageContext`` (inside a handler) or an ``Envelope``.  The new message then shares its
trace, takes its correlation id (or its id when it had none) and names it as the cause.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from phantom_notebook.core.consume.context import MessageContext
from phantom_notebook.core.model.envelope import Envelope, MessagePriority, new_id, new_traceparent
from phantom_notebook.core.queues import Message, MessageQueue
from phantom_notebook.intel import schemas as s
from phantom_notebook.intel.catalog import CATALOG, Catalog
from phantom_notebook.intel.ioc import IOC

__all__ = [
    "AlertProducer",
    "DataIngestionProducer",
    "IOCMessageProducer",
    "Producer",
    "SystemProducer",
    "ThreatAnalysisProducer",
    "follow_up",
    "ioc_payload",
]

Cause = MessageContext | Envelope | None
IOCLike = IOC | s.IOCData | str | Mapping[str, Any]
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
                **options: Any) -> str:
        """Validate ``payload`` as ``message_type`` and publish it; returns the message id.

        ``options`` go to ``MessageQueue.publish`` (``delay``, ``dedup_key``, ``ttl_s``...).
        """
        data = self.catalog.validate_outgoing(message_type, payload)
        spec = self.catalog.get(message_type)
        opts = {**self._options(message_type, headers), **options}
        opts["priority"] = spec.priority if priority is None else priority
        target = queue or spec.queue
        if isinstance(context, MessageContext):
            return context.publish(target, message_type, data, **opts)
        for name, value in follow_up(context).items():
            opts.setdefault(name, value)
        return self.mq.publish(target, message_type, data, **opts)

    def message(self, message_type: str, payload: s.Payload | Mapping[str, Any], *,
                priority: MessagePriority | int | str | None = None, context: Cause = None,
                headers: Mapping[str, str] | None = None, dedup_key: str | None = None) -> Message:
        """A validated ``Message`` for ``publish_batch`` (same rules as ``publish``)."""
        data = self.catalog.validate_outgoing(message_type, payload)
        spec = self.catalog.get(message_type)
        opts = self._options(message_type, headers)
        cause = follow_up(context)
        return Message(message_type, data, spec.priority if priority is None else priority,
                       headers=opts["headers"], dedup_key=dedup_key,
                       correlation_id=cause.get("correlation_id"),
                       causation_id=cause.get("causation_id"),
                       traceparent=cause.get("traceparent"))

    def publish_batch(self, queue: str, messages: Sequence[Message], *,
                      progress: bool | None = None, chunk_size: int = BATCH_CHUNK,
                      description: str = "publishing") -> list[str]:
        """Publish in chunks (each all or nothing), with a rich progress bar when asked.

        ``progress=None`` shows the bar only above 1,000 messages.
        """
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
            requested_by: str | None = None) -> str:
        """Ask for ``ioc`` to be enriched; IOCs sharing ``report_id`` become related."""
        payload = self._request(ioc, options, report_id, related, requested_by)
        return self.publish("ioc.enrichment.request", payload, priority=priority, context=context)

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
            priority: MessagePriority | int | str | None = None, queue: str | None = None) -> str:
        """Publish enrichment results, correlated to the request given as ``context``."""
        return self.publish("ioc.enrichment.result", result, priority=priority, queue=queue,
                            context=context)

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
            progress: bool | None = None, chunk_size: int = BATCH_CHUNK) -> list[str]:
        """Enrich many IOCs with ``publish_batch``; they share one ``report_id`` (made if None)."""
        report = report_id or f"batch-{new_id()}"
        messages = [self.message("ioc.enrichment.request",
                                 self._request(ioc, options, report, (), None),
                                 priority=priority, context=context) for ioc in iocs]
        target = queue or self.catalog.get("ioc.enrichment.request").queue
        return self.publish_batch(target, messages, progress=progress, chunk_size=chunk_size,
                                  description="enrichment requests")


class ThreatAnalysisProducer(Producer):
    """Publishes ``threat.*`` messages: analysis, campaign discovery, attribution."""

    def publish_analysis_request(
            self, ioc: IOCLike, enrichments: Mapping[str, Mapping[str, Any]] | None = None,
            reputation: Iterable[s.ReputationHit | Mapping[str, Any]] = (),
            related_iocs: Iterable[str] = (), context: Cause = None,
            priority: MessagePriority | int | str | None = None) -> str:
        """Ask for ``ioc`` to be scored from what enrichment found."""
        payload = {"ioc": ioc_payload(ioc), "enrichments": dict(enrichments or {}),
                   "reputation": [_dump(h) for h in reputation],
                   "related_iocs": list(related_iocs)}
        return self.publish("threat.analysis.request", payload, priority=priority,
                            context=context)

    def publish_analysis_result(
            self, result: s.ThreatAnalysisResult | Mapping[str, Any], context: Cause = None,
            priority: MessagePriority | int | str | None = None) -> str:
        """Publish a risk score, correlated to the request given as ``context``."""
        return self.publish("threat.analysis.result", result, priority=priority, context=context)

    def publish_campaign_discovery(
            self, name: str, iocs: Iterable[IOCLike], techniques: Iterable[str] = (),
            description: str | None = None, confidence: int = 50,
            context: Cause = None) -> str:
        """Report indicators and ATT&CK techniques believed to form one campaign."""
        payload = {"name": name, "iocs": [ioc_payload(i) for i in iocs],
                   "techniques": list(techniques), "description": description,
                   "confidence": confidence}
        return self.publish("threat.campaign.discovery", payload, context=context)

    def publish_attribution_analysis(
            self, subject: str,
            candidates: Iterable[s.AttributionCandidate | Mapping[str, Any]],
            iocs: Iterable[IOCLike] = (), context: Cause = None) -> str:
        """Report candidate threat actors for a campaign or set of indicators."""
        payload = {"subject": subject, "candidates": [_dump(c) for c in candidates],
                   "iocs": [ioc_payload(i) for i in iocs]}
        return self.publish("threat.attribution.analysis", payload, context=context)


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
            priority: MessagePriority | int | str | None = None) -> str:
        """Raise an alert; ``alert_id`` (a new UUIDv7 by default) is what acknowledges it."""
        payload = {"alert_id": alert_id or new_id(), "severity": severity, "title": title,
                   "description": description, "category": category,
                   "related_iocs": [ioc_payload(i) for i in related_iocs],
                   "actions": [_dump(a) for a in actions],
                   "affected_systems": list(affected_systems), "tags": list(tags)}
        if priority is None:
            priority = _SEVERITY_PRIORITY.get(str(severity).lower())
        return self.publish("alert.threat.notification", payload, priority=priority,
                            context=context)

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
