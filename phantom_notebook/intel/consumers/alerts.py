"""Alert distribution: deliver alerts to sinks, escalate critical ones nobody acknowledged.

Every ``alert.threat.notification``, ``alert.escalation`` and ``alert.acknowledgment`` goes
to every sink.  Sinks that succeeded are remembered per message
(``<prefix>:intel:alerts:sent:<message id>``), so a retry after a partial failure only
repeats the sinks that failed.  A failure that may pass raises, and the queue retries; a
refusal (e.g. HTTP 400) raises ``Reject("alert_sink_refused")``.

Alerts of an escalating severity (critical by default) are kept open in a sorted set
(``<prefix>:intel:alerts:open``, score = deadline in ms) with their details in a hash.
``escalate_unacknowledged(now)`` — run it from a scheduler, a worker loop or a notebook —
publishes ``alert.escalation`` for each overdue alert and re-arms it one level up, until
``max_level``.  An ``alert.acknowledgment`` closes the alert, even one still in transit.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar

import orjson

from phantom_notebook.core.consume.context import MessageContext
from phantom_notebook.core.errors import Reject
from phantom_notebook.core.model.envelope import Envelope
from phantom_notebook.core.queues import MessageQueue
from phantom_notebook.intel.catalog import CATALOG, Catalog
from phantom_notebook.intel.consumers.base import Consumer, log
from phantom_notebook.intel.consumers.sinks import AlertDeliveryError, AlertSink
from phantom_notebook.intel.schemas import AlertAcknowledgment, ThreatAlert

__all__ = ["AlertDistributionConsumer"]


def _ms(now: datetime | float | None) -> int:
    if now is None:
        return int(time.time() * 1000)
    if isinstance(now, datetime):
        return int(now.timestamp() * 1000)
    return int(now * 1000)


class AlertDistributionConsumer(Consumer):
    """Handles ``alert.*``: fans alerts out to sinks and tracks open critical alerts."""

    types: ClassVar[tuple[str, ...]] = ("alert.threat.notification", "alert.escalation",
                                        "alert.acknowledgment")

    def __init__(self, mq: MessageQueue, sinks: Iterable[AlertSink], *,
                 ack_deadline_s: float = 900.0, escalation_interval_s: float = 900.0,
                 max_level: int = 3, escalate_to: Iterable[str] = (),
                 escalate_severities: Iterable[str] = ("critical",),
                 memory_ttl_s: int = 7 * 24 * 3600, catalog: Catalog = CATALOG,
                 origin: str | None = None) -> None:
        super().__init__(mq, catalog=catalog, origin=origin)
        self.sinks = list(sinks)
        names = [sink.name for sink in self.sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"sink names must be unique, got {names}")
        self.ack_deadline_s = ack_deadline_s
        self.escalation_interval_s = escalation_interval_s
        self.max_level = max_level
        self.escalate_to = list(escalate_to)
        self.escalate_severities = set(escalate_severities)
        self.memory_ttl_s = memory_ttl_s
        self.open_key = self.key("alerts", "open")
        self.data_key = self.key("alerts", "data")

    # -- handling ------------------------------------------------------------------------------

    def process(self, payload: Any, message: Envelope, context: MessageContext) -> None:
        """Track or close the alert, then deliver the message to every sink."""
        if isinstance(payload, AlertAcknowledgment):
            self.acknowledge(payload.alert_id)
        elif isinstance(payload, ThreatAlert) and payload.severity in self.escalate_severities:
            self._track(payload, message)
        self.distribute(message, payload.model_dump(mode="json"))

    def distribute(self, message: Envelope, body: dict[str, Any]) -> None:
        """Send to each sink not yet reached for this message; raise if any failed."""
        doc = {"type": message.type, "message_id": message.id, "trace_id": message.trace_id,
               "correlation_id": message.correlation_id or message.id, **body}
        sent_key = self.key("alerts", "sent", message.id)
        done = {name.decode() for name in self.mq.client.hkeys(sent_key)}
        failed: list[AlertDeliveryError] = []
        for sink in self.sinks:
            if sink.name in done:
                continue
            try:
                sink.send(doc)
            except AlertDeliveryError as exc:
                log.warning("alert %s not delivered: %s", message.id, exc)
                failed.append(exc)
                continue
            pipe = self.mq.client.pipeline(transaction=False)
            pipe.hset(sent_key, sink.name, int(time.time() * 1000))
            pipe.expire(sent_key, self.memory_ttl_s)
            pipe.execute()
        retryable = [exc for exc in failed if exc.retryable]
        if retryable:
            raise retryable[0]
        if failed:
            raise Reject("alert_sink_refused") from failed[0]

    def _track(self, alert: ThreatAlert, message: Envelope) -> None:
        if self.mq.client.exists(self.key("alerts", "acked", alert.alert_id)):
            return
        info = {"alert_id": alert.alert_id, "severity": alert.severity, "title": alert.title,
                "opened_at": alert.created_at.isoformat(), "level": 0,
                "message_id": message.id, "correlation_id": message.correlation_id or message.id,
                "traceparent": message.traceparent}
        deadline = _ms(None) + int(self.ack_deadline_s * 1000)
        pipe = self.mq.client.pipeline(transaction=False)
        pipe.zadd(self.open_key, {alert.alert_id: deadline}, nx=True)
        pipe.hsetnx(self.data_key, alert.alert_id, orjson.dumps(info))
        pipe.execute()

    def acknowledge(self, alert_id: str) -> bool:
        """Close an alert (stops escalation); True when it was open."""
        pipe = self.mq.client.pipeline(transaction=False)
        pipe.set(self.key("alerts", "acked", alert_id), 1, ex=self.memory_ttl_s)
        pipe.zrem(self.open_key, alert_id)
        pipe.hdel(self.data_key, alert_id)
        return bool(pipe.execute()[1])

    # -- escalation ---------------------------------------------------------------------------

    def open_alerts(self) -> dict[str, int]:
        """Open alerts and their next escalation deadline (epoch ms)."""
        return {member.decode(): int(score) for member, score in
                self.mq.client.zrange(self.open_key, 0, -1, withscores=True)}

    def escalate_unacknowledged(self, now: datetime | float | None = None) -> list[str]:
        """Publish ``alert.escalation`` for every open alert past its deadline.

        ``now`` is a datetime or epoch seconds (default: the current time).  Each overdue
        alert is claimed with ZREM, so two schedulers never escalate it twice; it is re-armed
        ``escalation_interval_s`` later one level up, and closed after ``max_level``.
        Returns the ids of the escalation messages.
        """
        at = _ms(now)
        ids = []
        for member in self.mq.client.zrangebyscore(self.open_key, "-inf", at):
            alert_id = member.decode()
            if not self.mq.client.zrem(self.open_key, alert_id):
                continue  # another process escalated it first, or it was acknowledged
            raw = self.mq.client.hget(self.data_key, alert_id)
            if raw is None:
                continue
            info = orjson.loads(raw)
            level = int(info["level"]) + 1
            ids.append(self._publish_escalation(info, level, at))
            if level < self.max_level:
                info["level"] = level
                pipe = self.mq.client.pipeline(transaction=False)
                pipe.hset(self.data_key, alert_id, orjson.dumps(info))
                pipe.zadd(self.open_key, {alert_id: at + int(self.escalation_interval_s * 1000)})
                pipe.execute()
                if self.mq.client.exists(self.key("alerts", "acked", alert_id)):
                    self.acknowledge(alert_id)  # acknowledged while we were escalating
            else:
                self.mq.client.hdel(self.data_key, alert_id)
        return ids

    def _publish_escalation(self, info: dict[str, Any], level: int, at: int) -> str:
        opened = datetime.fromisoformat(info["opened_at"])
        waited = max(0, at // 1000 - int(opened.timestamp()))
        payload = {"alert_id": info["alert_id"], "level": level,
                   "reason": f"not acknowledged {waited}s after it was raised",
                   "severity": info["severity"], "title": info["title"],
                   "escalate_to": self.escalate_to, "opened_at": info["opened_at"]}
        options = {"correlation_id": info["correlation_id"], "causation_id": info["message_id"]}
        trace = info.get("traceparent", "").split("-")
        if len(trace) == 4:
            from phantom_notebook.core.model.envelope import new_traceparent

            options["traceparent"] = new_traceparent(trace[1])
        return self.producer.publish("alert.escalation", payload, **options)
