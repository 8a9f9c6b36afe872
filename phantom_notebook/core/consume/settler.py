"""The settle half of a lane: outcomes queued per message or per batch, written in one call.

Every outcome of a delivery (ack, retry, dead letter, release) is queued into the
``Settlement`` under the settler's lock and written by ``flush`` in one ``settle``
function call, together with the batch's latency histograms, trace events and audit
entries. The settler also owns the lane's in-flight table (deliveries handed to handlers
and not yet settled) and a broadcast lane's local retries; the lane reads them, never
writes around it.
"""

from __future__ import annotations

import heapq
import threading
import traceback
from collections import Counter
from typing import TYPE_CHECKING, NamedTuple

from ..audit.inline import SECURITY_REASONS, AuditItem
from ..backend.functions import AuditSection, seen_keys
from ..backend.keyspace import QueueKeys
from ..backend.records import (
    AckRecord,
    DeadRecord,
    Delivery,
    JoinRecord,
    ResultRecord,
    RetryRecord,
    Settlement,
)
from ..config.settings import QueueSettings
from ..errors import DecodeError, PhantomError
from ..model.codec import PlainCodec, peek_header
from ..model.envelope import Envelope, now_ms
from ..model.flow_headers import member_of, reply_ttl_ms, wants_result
from ..observe.metrics import (
    FIELD_TABLE_MS,
    LATENCY_FIELDS,
    RETENTION_S,
    fields_by_ms,
    latency_field,
    metrics_key,
)
from ..observe.tracing import TRACE_MAX_ENTRIES, clean, item
from ..observe.worker_stats import WorkerStats
from ..results.codec import seal_result
from ..results.join import record_members
from .breaker import CircuitBreaker
from .context import Action, MessageContext, Outcome

if TYPE_CHECKING:
    from ..ports import Deployment


class LocalRetry(NamedTuple):
    """A broadcast retry: the shared entry stays pending for this group and is re-claimed
    here when due (the shared stream is never written twice)."""

    due_ms: int
    level: int
    stream_id: str
    delivery_count: int


class Settler:
    """Queues the outcomes of one lane's deliveries and writes them in batches."""

    def __init__(self, mq: Deployment, keys: QueueKeys, queue: str, group: str,
                 consumer: str, settings: QueueSettings, stats: WorkerStats,
                 breaker: CircuitBreaker, *, broadcast: bool) -> None:
        self.mq = mq
        self.keys = keys
        self.queue = queue
        self.group = group
        self.consumer = consumer
        self.settings = settings
        self.stats = stats
        self.breaker = breaker
        self.broadcast = broadcast
        #: the lane's group counts running entries (global concurrency): settles free them
        self.track_running = False
        self.tracing = settings.enable_tracing
        self.replay_window_ms = replay_window_ms(settings, mq.codec)
        #: stream id -> (delivery, monotonic time its handler started)
        self.inflight: dict[str, tuple[Delivery, float]] = {}
        self.local_retries: list[LocalRetry] = []
        #: stream id -> what a timed-out handler that is still running was handling; its
        #: late outcome is ignored (the delivery was settled at the timeout)
        self.stuck: dict[str, dict[str, object]] = {}
        #: stream id -> (envelope, fraction, note): progress not yet written
        self.progress: dict[str, tuple[Envelope, float, str]] = {}
        self.cond = threading.Condition()
        self._settlement = Settlement.empty()

    def pending(self) -> bool:
        """True when outcomes wait to be written."""
        with self.cond:
            return bool(self._settlement)

    def count(self, name: str, amount: int = 1) -> None:
        """Add to a metric counter of the next settle call (errors, timeouts)."""
        with self.cond:
            self._settlement.count(name, amount)

    def count_delivered(self, n: int) -> None:
        """Count ``n`` deliveries read outside the fetch function (written by the next settle)."""
        if n and self.settings.enable_metrics:
            with self.cond:
                self._settlement.count("delivered", n)

    def add_delivered_items(self, items: list[str]) -> None:
        """The "delivered" trace items of a dispatched batch (written by the next settle)."""
        if items:
            with self.cond:
                self._settlement.trace.setdefault("delivered", []).extend(items)

    # -- queueing outcomes -----------------------------------------------------------------------

    def acks(self, acks: list[tuple[Envelope, MessageContext, int, int]]) -> None:
        """Queue the plain acks of an inline batch: one lock, one breaker update.

        ``acks``: (envelope, context, handler started ms, done ms) per message.
        """
        self.breaker.record(success=True, count=len(acks))
        metrics, tracing = self.settings.enable_metrics, self.tracing
        wait_names, proc_names, e2e_names = _WAIT, _PROC, _E2E
        wait_ms, proc_ms, e2e_ms = (fields_by_ms(k) for k in ("wait", "proc", "e2e"))
        hist: list[str] = []
        items: list[str] = []
        e2e_list: list[int] = []
        proc_list: list[int] = []
        with self.cond:
            batch = self._settlement
            pop = self.inflight.pop
            ack_rows = batch.acks
            stuck, progress = self.stuck, self.progress
            for env, ctx, started, done in acks:
                d = ctx.delivery
                if stuck and stuck.pop(d.stream_id, None) is not None:
                    continue  # timed out and settled already: its late ack is ignored
                pop(d.stream_id, None)
                if progress:  # an unwritten progress report goes too, as in settle()
                    progress.pop(d.stream_id, None)
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
                    items.append(item(env.id, env.trace_id, env.attempt, f"at={done}"))
                ack_rows.append(AckRecord(d.level, d.stream_id))
            self.stats.record_many(e2e_list, proc_list)
            if hist:
                counters = batch.counters
                for name, amount in Counter(hist).items():
                    counters[name] = counters.get(name, 0) + amount
            if items:
                batch.trace.setdefault("acked", []).extend(items)
            self.cond.notify_all()

    def settle(self, d: Delivery, outcome: Outcome, env: Envelope | None,
               timing: tuple[int, int] | None = None) -> None:
        """Queue the outcome of delivery ``d`` for the next batched settle call.

        ``timing`` = (received ms, handler started ms) adds the message's latencies to the
        batch's histograms, all under the one lock acquisition of this call. A request's
        result (and a group member's outcome for its join) is sealed here, outside the lock.
        """
        now = now_ms()
        stored: ResultRecord | None = None
        joined: JoinRecord | None = None
        if env is not None and env.headers and outcome.action in (Action.ACK, Action.DEAD) \
                and wants_result(env.headers):
            outcome, stored, joined = self._result_of(d, outcome, env, now)
        action = outcome.action
        with self.cond:
            if self.stuck and self.stuck.pop(d.stream_id, None) is not None:
                return  # timed out and settled already: the late outcome is ignored
            self.inflight.pop(d.stream_id, None)
            self.progress.pop(d.stream_id, None)
            batch = self._settlement
            if timing is not None and env is not None:
                self._observe(batch, env, timing[0], timing[1], now)
            if (stored is not None or joined is not None) and env is not None \
                    and self._queue_result(batch, env, stored, joined, action, now):
                self.cond.notify_all()
                return
            if action == Action.ACK and self.tracing and env is not None:
                batch.trace.setdefault("acked", []).append(
                    item(env.id, env.trace_id, env.attempt, f"at={now}"))
                batch.acks.append(AckRecord(d.level, d.stream_id))
                self.cond.notify_all()
                return
            self._queue_outcome(batch, d, outcome, env, now)
            self.cond.notify_all()

    def _queue_outcome(self, batch: Settlement, d: Delivery, outcome: Outcome,
                       env: Envelope | None, now: int) -> None:
        """Queue any outcome but a traced plain ack or a stored result (caller holds the
        lock)."""
        action = outcome.action
        self._trace_outcome(batch, d, outcome, env)
        if outcome.reason == "expired":
            batch.count("expired")
        if action in (Action.ACK, Action.DROP):
            batch.acks.append(AckRecord(d.level, d.stream_id))
        elif action in (Action.RETRY, Action.RELEASE, Action.DEFER) and self.broadcast:
            self._retry_locally(batch, d, outcome, now)
        elif action in (Action.RELEASE, Action.DEFER):
            self._hand_back(batch, d, outcome, env, now)
        elif action == Action.RETRY and env is not None:
            batch.retries.append(self._retry(d, outcome, env, now))
        elif action == Action.DEAD:
            batch.dead.append(self._dead(d, outcome, env, now))
            if outcome.reason not in ("expired", "rejected"):
                batch.count("failed")
        # Action.LEAVE: stays pending until reclaimed after the visibility timeout

    def _queue_result(self, batch: Settlement, env: Envelope, stored: ResultRecord | None,
                      joined: JoinRecord | None, action: Action, now: int) -> bool:
        """Queue a result and a join record; True when the result record acks the entry
        (nothing more to queue for it)."""
        if joined is not None:
            batch.joins.append(joined)
        if stored is None:
            return False
        batch.results.append(stored)
        if action != Action.ACK:
            return False
        if self.tracing:
            batch.trace.setdefault("acked", []).append(
                item(env.id, env.trace_id, env.attempt, f"at={now}"))
        return True

    def _result_of(self, d: Delivery, outcome: Outcome, env: Envelope, now: int
                   ) -> tuple[Outcome, ResultRecord | None, JoinRecord | None]:
        """The stored result of a request and the join record of a group member (a return
        value that cannot be stored turns the outcome into a ``result_invalid`` dead
        letter)."""
        headers = env.headers
        ttl = reply_ttl_ms(headers)
        member = member_of(headers)
        if not ttl and member is None:
            return outcome, None, None
        codec, max_bytes = self.mq.codec, self.settings.max_payload_bytes
        sealed = b""
        if outcome.action == Action.ACK:
            try:
                sealed = seal_result(codec, env, now, max_bytes, ok=True, value=outcome.value,
                                     tlp=outcome.tlp)
            except PhantomError as exc:
                outcome = Outcome(Action.DEAD, reason="result_invalid", error=exc)
        if outcome.action == Action.DEAD:
            err = outcome.error
            sealed = seal_result(codec, env, now, max_bytes, ok=False,
                                 error_type=type(err).__name__ if err else "",
                                 error=str(err) if err else outcome.reason,
                                 reason=outcome.reason)
        ok = outcome.action == Action.ACK
        stored = ResultRecord("a" if ok else "d", d.level, d.stream_id, env.id, sealed, ttl,
                              "done" if ok else "failed") if ttl else None
        joined = JoinRecord(member[0], member[1], member[2], env.id,
                            "ok" if ok else "failed", sealed) if member else None
        return outcome, stored, joined

    def answer_dead(self, envelopes: tuple[bytes, ...]) -> None:
        """Store the failure of requests and group members the fetch dead-lettered (over
        ``max_deliveries``: their workers kept dying), so their waiters and joins learn of
        it now, not at a timeout. Written by the next settle call (``mode`` "x": the entry
        is gone already); an envelope that does not open is left to the DLQ."""
        error = RuntimeError("delivered too many times without an ack (its worker keeps "
                             "dying?)")
        for raw in envelopes:
            try:
                env = self.mq.codec.open(raw)
            except DecodeError:
                continue
            gone = Delivery(0, "", raw, 0)
            _, stored, joined = self._result_of(
                gone, Outcome(Action.DEAD, reason="max_deliveries", error=error), env, now_ms())
            with self.cond:
                if stored is not None:
                    self._settlement.results.append(stored._replace(mode="x"))
                if joined is not None:
                    self._settlement.joins.append(joined)

    def note_progress(self, d: Delivery, env: Envelope, fraction: float, note: str) -> None:
        """Remember the latest progress of a running delivery (written by ``write_progress``)."""
        with self.cond:
            if d.stream_id in self.inflight:
                self.progress[d.stream_id] = (env, fraction, note)

    def write_progress(self) -> int:
        """Write every progress reported since the last call, in one round trip: the
        request's result hash (fields p, note, pt) and a "progress" trace event. Called by
        the worker's keeper twice a second, which is the throttle."""
        with self.cond:
            reported, self.progress = self.progress, {}
        if not reported:
            return 0
        now = now_ms()
        pipe = self.mq.client.pipeline(transaction=False)
        items: list[str] = []
        for env, fraction, note in reported.values():
            ttl = reply_ttl_ms(env.headers) if env.headers else 0
            if ttl:
                key = self.keys.result(env.id)
                pipe.hset(key, mapping={"p": f"{fraction:.4f}", "note": note, "pt": now})
                pipe.pexpire(key, ttl)
            items.append(item(env.id, env.trace_id, env.attempt,
                              clean(f"{fraction:.0%} {note}".strip())))
        if self.tracing and items:
            pipe.xadd(self.keys.trace, {"ev": "progress", "c": self.consumer,
                                        "m": ";".join(items)},
                      maxlen=TRACE_MAX_ENTRIES, approximate=True)
        pipe.execute()
        return len(reported)

    def _hand_back(self, batch: Settlement, d: Delivery, outcome: Outcome,
                   env: Envelope | None, now: int) -> None:
        """Untouched back into the queue: now (breaker open), or at its rate-limit slot."""
        deferred = outcome.action == Action.DEFER
        due = now + int((outcome.delay_s or 0) * 1000) if deferred else 0
        batch.retries.append(RetryRecord(d.level, d.stream_id, due, d.raw))
        if deferred:  # the settle function counts it as a retry
            batch.count("retried", -1)
            batch.count("rate_limited")
        if env is not None:  # added again under a new stream id: not a replay then
            batch.unclaims.append(f"{env.id}:{env.attempt}")

    def time_out(self, d: Delivery, outcome: Outcome, env: Envelope,
                 info: dict[str, object]) -> None:
        """Settle a delivery whose handler runs past its timeout, and remember it as stuck."""
        self.settle(d, outcome, env)
        with self.cond:
            self.stuck[d.stream_id] = info
        self.count("handler_timeouts")

    def _retry(self, d: Delivery, outcome: Outcome, env: Envelope, now: int) -> RetryRecord:
        first = first_failure_ms(env, now)
        retry_env = env.replace(attempt=env.attempt + 1, headers={
            **env.headers, FIRST_FAILURE: str(first), LAST_ERROR: _short(outcome.error)})
        due = now + int((outcome.delay_s or 0) * 1000)
        raw = self.mq.codec.seal(retry_env, self.settings.max_payload_bytes)
        return RetryRecord(d.level, d.stream_id, due, raw)

    def _dead(self, d: Delivery, outcome: Outcome, env: Envelope | None,
              now: int) -> DeadRecord:
        err = outcome.error
        return DeadRecord(
            d.level, d.stream_id, d.raw or _fields_text(d), outcome.reason,
            type(err).__name__ if err else "", str(err) if err else outcome.reason,
            _traceback(err), env.attempt if env else d.delivery_count, self.consumer,
            first_failure_ms(env, now) if env else now)

    def _retry_locally(self, batch: Settlement, d: Delivery, outcome: Outcome,
                       now: int) -> None:
        delay_s = outcome.delay_s if outcome.action in (Action.RETRY, Action.DEFER) else \
            self.breaker.settings.recovery_timeout_s
        due = now + int((delay_s or 0) * 1000)
        heapq.heappush(self.local_retries,
                       LocalRetry(due, d.level, d.stream_id, d.delivery_count))
        if outcome.action == Action.RETRY:
            # counted here, as the settle function counts a stored queue's retries
            batch.count("retried")
            self.stats.settled(0, 1, 0)

    def _trace_outcome(self, batch: Settlement, d: Delivery, outcome: Outcome,
                       env: Envelope | None) -> None:
        if not self.tracing:
            return
        mid, tid, attempt = (env.id, env.trace_id, env.attempt) if env else \
            (str(peek_header(d.raw).get("id", d.stream_id)), "", d.delivery_count)
        detail = outcome.reason
        if outcome.action == Action.RETRY:
            detail = f"in {outcome.delay_s or 0:.3f}s: {_short(outcome.error) or outcome.reason}"
        elif outcome.action == Action.DEAD and outcome.error is not None:
            detail = f"{outcome.reason}: {_short(outcome.error)}"
        name = _EVENT.get(outcome.action, "")
        if outcome.action == Action.RETRY and outcome.reason == "nacked":
            name = "nacked"
        if outcome.reason == "expired":
            batch.event("expired", item(mid, tid, attempt, str(outcome.action)))
        if name:
            batch.event(name, item(mid, tid, attempt, clean(detail)))

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

    # -- writing ---------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write all queued outcomes in one settle call (kept for retry if Redis fails)."""
        with self.cond:
            batch, self._settlement = self._settlement, Settlement.empty()
        if not batch:
            return
        qs = self.settings
        now = now_ms()
        audit = self.mq.audit
        stream = audit.stream_of(self.keys) if audit is not None else ""
        try:
            if batch.joins:  # members' outcomes first: a crash before the ack redelivers,
                # and the join counts each member once (join.lua)
                record_members(self.mq, batch.joins, now, self.consumer)
                batch.joins = []
            acked, retried, dead = self.mq.functions.settle(
                self.keys, metrics_key(self.keys, now), batch, group=self.group,
                delete=not self.broadcast, now_ms=now,
                metrics_ttl_s=RETENTION_S if qs.enable_metrics else 0,
                trace_cap=TRACE_MAX_ENTRIES if qs.enable_tracing else 0,
                consumer=self.consumer, audit=self._audit(stream, batch),
                seen=seen_keys(self.keys, self.group, now, self.replay_window_ms),
                track_running=self.track_running)
        except Exception:
            if audit is not None:
                audit.failed(stream)
            with self.cond:  # put it back; settle is idempotent per stream id
                self._settlement.absorb(batch)
            raise
        self.stats.settled(int(acked), int(retried), int(dead))

    def _audit(self, stream: str, batch: Settlement) -> AuditSection | None:
        """The audit section recording this settle batch (None without an audit key)."""
        audit = self.mq.audit
        if audit is None:
            return None
        target = self.queue
        ids = [i.split("|", 1)[0] for i in batch.trace.get("acked", ())] or \
            [a.stream_id for a in batch.acks]
        items = []
        if batch.acks:
            items.append(AuditItem("ack", target, message_ids=ids,
                                   detail={"group": self.group, "consumer": self.consumer}))
        if batch.retries:
            items.append(AuditItem("retry", target,
                                   message_ids=[r.stream_id for r in batch.retries]))
        reasons: dict[str, list[str]] = {}
        for dead in batch.dead:
            reasons.setdefault(dead.reason, []).append(dead.stream_id)
        for reason, sids in reasons.items():
            items.append(AuditItem("dead_letter", target, "failed", message_ids=sids,
                                   detail={"reason": reason}))
            if reason in SECURITY_REASONS:
                outcome = "denied" if reason in ("origin_rejected", "tlp_denied") else "failed"
                items.append(AuditItem(SECURITY_REASONS[reason], target, outcome,
                                       message_ids=sids, detail={"reason": reason}))
        return audit.section(stream, items) if items else None


#: the replay window where a queue leaves it to the deployment (``replay_window_s=None``)
AUTHENTICATED_REPLAY_WINDOW_S = 300.0


def replay_window_ms(settings: QueueSettings, codec: object) -> int:
    """The replay window of a queue in ms: its setting, else 300 s when ``codec``
    authenticates envelopes (anything but the plain codec) and 0 when it does not."""
    window = settings.replay_window_s
    if window is None:
        window = 0.0 if isinstance(codec, PlainCodec) else AUTHENTICATED_REPLAY_WINDOW_S
    return int(window * 1000)


#: the retry bookkeeping headers a worker adds (reserved: user code may not set pn-*)
FIRST_FAILURE = "pn-first-failure-ms"
LAST_ERROR = "pn-last-error"


def first_failure_ms(env: Envelope | None, now: int) -> int:
    """When ``env`` first failed (its ``pn-first-failure-ms`` header), else ``now``.

    Parsed defensively: a header that is not a non-negative integer is ignored, never
    allowed to stop the lane.
    """
    value = env.headers.get(FIRST_FAILURE) if env is not None else None
    if isinstance(value, str) and value.isdigit() and len(value) <= 16:
        return int(value)
    return now


def _fields_text(d: Delivery) -> bytes:
    """The raw fields of an entry that carried no envelope, kept for the DLQ."""
    return b"\n".join(d.fields)


_WAIT, _PROC, _E2E = (LATENCY_FIELDS[k] for k in ("wait", "proc", "e2e"))
_EVENT = {Action.ACK: "acked", Action.RETRY: "retried", Action.DEAD: "dead_lettered",
          Action.DEFER: "rate_limited",
          Action.RELEASE: "released", Action.DROP: ""}


def _short(err: BaseException | None) -> str:
    return "" if err is None else f"{type(err).__name__}: {err}"[:200]


def _traceback(err: BaseException | None) -> str:
    if err is None or err.__traceback__ is None:
        return ""
    return "".join(traceback.format_exception(err, limit=-5))[-2000:]


__all__ = ["FIRST_FAILURE", "LAST_ERROR", "LocalRetry", "Settler", "first_failure_ms"]
