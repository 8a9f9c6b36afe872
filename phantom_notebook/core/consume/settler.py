"""The settle half of a lane: outcomes queued per message or per batch, written in one call.

``Lane`` mixes this in; every outcome of a delivery (ack, retry, dead letter, release) is
queued into the lane's ``Settlement`` under its lock and written by ``flush`` in one
``settle.lua`` call, together with the batch's latency histograms and trace events.
"""

from __future__ import annotations

import heapq
import threading
import traceback
from collections import Counter
from typing import TYPE_CHECKING, Any

from ..audit.inline import SECURITY_REASONS, AuditedClient, AuditItem
from ..backend.functions import Delivery, Settlement
from ..backend.keyspace import QueueKeys
from ..config.settings import QueueSettings
from ..model.codec import peek_header
from ..model.envelope import Envelope, now_ms
from ..observe.metrics import (
    FIELD_TABLE_MS,
    LATENCY_FIELDS,
    RETENTION_S,
    fields_by_ms,
    latency_field,
    metrics_key,
)
from ..observe.tracing import TRACE_MAX_ENTRIES, clean
from ..observe.worker_stats import WorkerStats
from .breaker import BreakerMiddleware
from .context import MessageContext, Outcome

if TYPE_CHECKING:
    from ..ports import Deployment


class Settling:
    """Queues outcomes into the lane's settlement and flushes it (mixed into ``Lane``)."""

    mq: Deployment
    queue: str
    group: str
    consumer: str
    keys: QueueKeys
    settings: QueueSettings
    stats: WorkerStats
    broadcast: bool
    breaker: BreakerMiddleware
    inflight: dict[str, tuple[Delivery, float]]
    _settlement: Settlement
    _cond: threading.Condition
    _tracing: bool
    _local_retries: list[tuple[int, int, str, int]]

    def _count_delivered(self, n: int) -> None:
        """Count ``n`` deliveries read outside the fetch script (written by the next settle)."""
        if n and self.settings.enable_metrics:
            with self._cond:
                self._settlement.count("delivered", n)

    # -- dispatch --------------------------------------------------------------------------------

    def _settle_acks(self, acks: list[tuple[Envelope, MessageContext, int, int]]) -> None:
        """Queue the plain acks of an inline batch: one lock, one breaker update."""
        self.breaker.breaker.record(success=True, count=len(acks))
        metrics, tracing = self.settings.enable_metrics, self._tracing
        wait_names, proc_names, e2e_names = _WAIT, _PROC, _E2E
        wait_ms, proc_ms, e2e_ms = (fields_by_ms(k) for k in ("wait", "proc", "e2e"))
        hist: list[str] = []
        items: list[str] = []
        e2e_list: list[int] = []
        proc_list: list[int] = []
        with self._cond:
            batch = self._settlement
            pop = self.inflight.pop
            ack_rows = batch.acks
            for env, ctx, started, done in acks:
                d = ctx.delivery
                pop(d.stream_id, None)
                created, received = env.created_at_ms, ctx.received_ms
                e2e = done - created
                e2e_list.append(e2e)
                proc_list.append(done - started)
                if metrics:
                    wait, proc = received - created, done - received
                    hist.append(wait_ms[wait] if 0 <= wait < FIELD_TABLE_MS
                                else latency_field(wait_names, wait_ms, wait))
                    hist.append(proc_ms[proc] if 0 <= proc < FIELD_TABLE_MS
                                else latency_field(proc_names, proc_ms, proc))
                    hist.append(e2e_ms[e2e] if 0 <= e2e < FIELD_TABLE_MS
                                else latency_field(e2e_names, e2e_ms, e2e))
                if tracing:
                    items.append(f"{env.id}|{env.trace_id}|{env.attempt}|at={done}")
                ack_rows.append((d.level, d.stream_id))
            self.stats.record_many(e2e_list, proc_list)
            if hist:
                counters = batch.counters
                for name, amount in Counter(hist).items():
                    counters[name] = counters.get(name, 0) + amount
            if items:
                batch.trace.setdefault("acked", []).extend(items)
            self._cond.notify_all()

    def _settle_raw(self, d: Delivery, outcome: Outcome, env: Envelope | None,
                    timing: tuple[int, int] | None = None) -> None:
        """Queue the outcome of delivery ``d`` for the next batched settle call.

        ``timing`` = (received ms, handler started ms) adds the message's latencies to the
        batch's histograms, all under the one lock acquisition of this call.
        """
        now = now_ms()
        with self._cond:
            self.inflight.pop(d.stream_id, None)
            batch = self._settlement
            if timing is not None and env is not None:
                self._observe(batch, env, timing[0], timing[1], now)
            if outcome.action == "ack" and self._tracing:
                batch.trace.setdefault("acked", []).append(
                    f"{env.id}|{env.trace_id}|{env.attempt}|at={now}" if env else "")
                batch.acks.append((d.level, d.stream_id))
                self._cond.notify_all()
                return
            self._trace_outcome(batch, d, outcome, env)
            if outcome.reason == "expired":
                batch.count("expired")
            if outcome.action in ("ack", "drop"):
                batch.acks.append((d.level, d.stream_id))
            elif outcome.action == "release" and not self.broadcast:
                batch.retries.append((d.level, d.stream_id, 0, d.raw))
            elif outcome.action == "retry" and env is not None and not self.broadcast:
                first = int(env.headers.get("pn-first-failure-ms", now))
                retry_env = env.replace(attempt=env.attempt + 1, headers={
                    **env.headers, "pn-first-failure-ms": str(first),
                    "pn-last-error": _short(outcome.error)})
                due = now + int((outcome.delay_s or 0) * 1000)
                raw = self.mq.codec.seal(retry_env, self.settings.max_payload_bytes)
                batch.retries.append((d.level, d.stream_id, due, raw))
            elif outcome.action == "dead":
                first = int(env.headers.get("pn-first-failure-ms", now)) if env else now
                attempts = env.attempt if env else d.delivery_count
                err = outcome.error
                batch.dead.append((
                    d.level, d.stream_id, d.raw, outcome.reason,
                    type(err).__name__ if err else "", str(err) if err else outcome.reason,
                    _traceback(err), attempts, self.consumer, first))
                if outcome.reason not in ("expired", "rejected"):
                    batch.count("failed")
            elif outcome.action in ("retry", "release") and self.broadcast:
                delay_s = outcome.delay_s if outcome.action == "retry" else \
                    self.breaker.breaker.settings.recovery_timeout_s
                due = now + int((delay_s or 0) * 1000)
                heapq.heappush(self._local_retries,
                               (due, d.level, d.stream_id, d.delivery_count))
                if outcome.action == "retry":
                    # counted here, as the settle script counts a stored queue's retries
                    batch.count("retried")
                    self.stats.settled(0, 1, 0)
            # "leave": stays pending until reclaimed after the visibility timeout
            self._cond.notify_all()

    def _trace_outcome(self, batch: Settlement, d: Delivery, outcome: Outcome,
                       env: Envelope | None) -> None:
        if not self.settings.enable_tracing:
            return
        mid, tid, attempt = (env.id, env.trace_id, env.attempt) if env else \
            (str(peek_header(d.raw).get("id", d.stream_id)), "", d.delivery_count)
        detail = outcome.reason
        if outcome.action == "retry":
            detail = f"in {outcome.delay_s or 0:.3f}s: {_short(outcome.error) or outcome.reason}"
        elif outcome.action == "dead" and outcome.error is not None:
            detail = f"{outcome.reason}: {_short(outcome.error)}"
        name = _EVENT.get(outcome.action, "")
        if outcome.action == "retry" and outcome.reason == "nacked":
            name = "nacked"
        if outcome.reason == "expired":
            batch.event("expired", f"{mid}|{tid}|{attempt}|{outcome.action}")
        if name:
            batch.event(name, f"{mid}|{tid}|{attempt}|{clean(detail)}")

    def _observe(self, batch: Settlement, env: Envelope, received_ms: int, started_ms: int,
                 done: int) -> None:
        """Add one message's latencies to the batch's histograms (caller holds the lock)."""
        self.stats.record_unlocked(done - env.created_at_ms, done - started_ms)
        if not self.settings.enable_metrics:
            return
        counters = batch.counters
        for kind, names, value in (("wait", _WAIT, received_ms - env.created_at_ms),
                                   ("proc", _PROC, done - received_ms),
                                   ("e2e", _E2E, done - env.created_at_ms)):
            name = latency_field(names, fields_by_ms(kind), value)
            counters[name] = counters.get(name, 0) + 1

    def flush(self) -> None:
        """Write all queued outcomes in one settle call (kept for retry if Redis fails)."""
        with self._cond:
            batch, self._settlement = self._settlement, Settlement.empty()
        if not batch:
            return
        qs = self.settings
        now = now_ms()
        try:
            acked, retried, dead = self.mq.functions.settle(
                self.keys, metrics_key(self.keys, now), batch, group=self.group,
                delete=not self.broadcast, now_ms=now,
                metrics_ttl_s=RETENTION_S if qs.enable_metrics else 0,
                dlq_retention_ms=int(qs.dead_letter_ttl_s * 1000),
                trace_cap=TRACE_MAX_ENTRIES if qs.enable_tracing else 0,
                consumer=self.consumer, client=self._audited(batch))
        except Exception:
            with self._cond:  # put it back; settle is idempotent per stream id
                self._settlement.absorb(batch)
            raise
        self.stats.settled(int(acked), int(retried), int(dead))

    def _audited(self, batch: Settlement) -> Any:
        """An ``AuditedClient`` recording this settle batch, or None without an audit key."""
        audit = self.mq.audit
        if audit is None:
            return None
        target = self.queue
        ids = [i.split("|", 1)[0] for i in batch.trace.get("acked", ())] or \
            [sid for _, sid in batch.acks]
        items = []
        if batch.acks:
            items.append(AuditItem("ack", target, message_ids=ids,
                                   detail={"group": self.group, "consumer": self.consumer}))
        if batch.retries:
            items.append(AuditItem("retry", target, message_ids=[r[1] for r in batch.retries]))
        reasons: dict[str, list[str]] = {}
        for dead in batch.dead:
            reasons.setdefault(dead[3], []).append(dead[1])
        for reason, sids in reasons.items():
            items.append(AuditItem("dead_letter", target, "failed", message_ids=sids,
                                   detail={"reason": reason}))
            if reason in SECURITY_REASONS:
                outcome = "denied" if reason in ("origin_rejected", "tlp_denied") else "failed"
                items.append(AuditItem(SECURITY_REASONS[reason], target, outcome,
                                       message_ids=sids, detail={"reason": reason}))
        return AuditedClient(self.mq.client, audit, items) if items else None


_WAIT, _PROC, _E2E = (LATENCY_FIELDS[k] for k in ("wait", "proc", "e2e"))
_EVENT = {"ack": "acked", "retry": "retried", "dead": "dead_lettered", "release": "released",
          "drop": ""}


def _short(err: BaseException | None) -> str:
    return "" if err is None else f"{type(err).__name__}: {err}"[:200]


def _traceback(err: BaseException | None) -> str:
    if err is None or err.__traceback__ is None:
        return ""
    return "".join(traceback.format_exception(err, limit=-5))[-2000:]
