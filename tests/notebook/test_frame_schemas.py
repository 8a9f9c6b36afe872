"""Every public frame has exactly its declared columns, in order, each with its own dtype.

The expected schemas are written out here, column by column, and compared both with the
declarations in ``frames.py`` (``_*_COLUMNS``) and with real frames, empty and filled from
real queues: a column whose dtype drifts (``delivery_count`` Int64 -> float64, a time in
``us`` instead of ``ns``, a categorical losing its order) fails, whichever side changed.
The filled frames also say which columns must hold a value in every row.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
import pandas as pd
import pytest

import phantom_notebook as pn
from phantom_notebook.core.observe.health import HealthReport
from phantom_notebook.notebook import frames
from phantom_notebook.notebook._dtypes import STRING, UTC
from phantom_notebook.notebook.frames import (
    audit_df,
    consumers_df,
    dlq_df,
    health_df,
    messages_df,
    metrics_df,
    stats_df,
    trace_df,
)
from tests.notebook.conftest import Workload
from tests.support.collect import eventually

S, T, N, F, B = "string", "datetime64[ns, UTC]", "Int64", "float64", "bool"  # N: nullable int
PRIORITIES = ("CRITICAL", "HIGH", "NORMAL", "LOW")
TLPS = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
Schema = dict[str, Any]


def cat(*known: str, ordered: bool = False) -> tuple[str, tuple[str, ...], bool]:
    return ("category", known, ordered)


MESSAGES: Schema = {
    "id": S, "queue": S, "state": cat("ready", "pending", "delayed", "dead"), "type": S,
    "priority": cat(*PRIORITIES, ordered=True), "created_at": T, "expires_at": T, "attempt": N,
    "delivery_count": N, "idle_ms": N, "due_at": T, "consumer": S, "reason": S, "origin": S,
    "tlp": cat(*TLPS, ordered=True), "trace_id": S, "stream_id": S, "payload": S, "error": S,
    "indicator": S, "ioc_type": S, "age_s": F, "progress": F, "progress_note": S}
TRACE: Schema = {
    "time": T, "elapsed_ms": N,
    "event": cat("published", "deduplicated", "delivered", "acked", "nacked", "retried",
                 "dead_lettered", "expired", "replayed", "released", "progress",
                 "group_created", "group_succeeded", "group_failed"),
    "queue": S, "actor": S, "message_id": S, "trace_id": S, "parent_id": S, "depth": N,
    "attempt": N, "detail": S, "seq": N}
_COUNTERS = ("published", "delivered", "acked", "retried", "failed", "dead_lettered", "expired",
             "deduplicated", "replayed")
METRICS: Schema = {
    "queue": S, "time": T, "bucket_s": N, **dict.fromkeys(_COUNTERS, N),
    **dict.fromkeys((f"{c}_per_s" for c in _COUNTERS), F), "error_rate": F,
    **dict.fromkeys((f"{k}_p{q}_ms" for k in ("wait", "proc", "e2e") for q in (50, 95, 99)),
                    F)}
HEALTH: Schema = {"checked_at": T, "check": S, "target": S,
                  "status": cat("ok", "warn", "critical", ordered=True), "value": S,
                  "message": S}
DLQ: Schema = {
    "dlq_id": S, "queue": S, "message_id": S, "type": S,
    "priority": cat(*PRIORITIES, ordered=True), "reason": cat(), "error_type": S, "error": S,
    "attempts": N, "consumer": S, "group": S, "first_failure_at": T, "dead_at": T,
    "created_at": T, "origin": S, "tlp": cat(*TLPS, ordered=True), "trace_id": S,
    "decodable": B, "decode_error": S}
AUDIT: Schema = {"time": T, "actor": S, "role": cat(), "action": cat(), "target": S,
                 "message_id": S, "count": N, "outcome": cat(), "detail": S, "entry_id": S}
CONSUMERS: Schema = {"consumer": S, "host": S, "pid": N, "queues": S, "groups": S, "started": T,
                     "last_seen": T, "age_s": F, "stale": B, "handled": N, "in_flight": N}
STATS: Schema = {"time": T, "queue": S, "kind": cat(), "ready": N, "in_flight": N, "delayed": N,
                 "dead": N, "depth": N}
COMPACT = ("id", "indicator", "ioc_type", "type", "state", "priority", "tlp", "age_s", "attempt",
           "delivery_count", "consumer", "idle_ms", "progress", "progress_note", "due_at",
           "reason", "error", "payload")

DECLARED = [("messages", MESSAGES, "_MESSAGE_COLUMNS"), ("trace", TRACE, "_TRACE_COLUMNS"),
            ("metrics", METRICS, "_METRIC_COLUMNS"), ("health", HEALTH, "_HEALTH_COLUMNS"),
            ("dlq", DLQ, "_DLQ_COLUMNS"), ("audit", AUDIT, "_AUDIT_COLUMNS"),
            ("consumers", CONSUMERS, "_CONSUMER_COLUMNS"), ("stats", STATS, "_STATS_COLUMNS")]


def _declared(dtype: Any) -> Any:
    """A ``frames._*_COLUMNS`` entry in this file's notation."""
    if isinstance(dtype, tuple):
        _, known, ordered = dtype
        return cat(*known, ordered=ordered)
    return str(dtype)


def assert_schema(df: pd.DataFrame, schema: Schema, filled: tuple[str, ...] = ()) -> None:
    """``df`` has exactly ``schema``'s columns in order, each with its dtype; the columns
    ``filled`` hold a value in every row."""
    assert list(df.columns) == list(schema)
    for name, want in schema.items():
        got = df[name].dtype
        if isinstance(want, tuple):
            _, known, ordered = want
            assert isinstance(got, pd.CategoricalDtype), f"{name}: {got} is not a category"
            assert got.ordered is ordered, f"{name}: ordered={got.ordered}"
            assert tuple(got.categories[:len(known)]) == known, f"{name}: {got.categories}"
            assert got.categories.dtype == pd.Index([], dtype=str).dtype, name  # text
        else:
            assert str(got) == want, f"{name}: {got}, declared {want}"
            if want == S:
                assert got == STRING, f"{name}: {got!r} (pd.NA for missing text)"
            if want == T:
                assert got == UTC, name
    for name in filled:
        assert df[name].notna().all(), f"{name} has missing values:\n{df[name]}"


@pytest.mark.parametrize(("name", "schema", "attribute"), DECLARED, ids=[d[0] for d in DECLARED])
def test_the_declared_schemas_are_the_ones_written_out_here(name: str, schema: Schema,
                                                            attribute: str) -> None:
    declared = getattr(frames, attribute)
    assert {k: _declared(v) for k, v in declared.items()} == schema
    assert list(declared) == list(schema)


def test_every_frame_of_an_empty_deployment_has_every_column_with_its_dtype(
        mq: pn.MessageQueue) -> None:
    mq.declare("nothing")
    for state in ("ready", "pending", "delayed", "dead"):
        assert_schema(messages_df(mq, "nothing", state=state, columns="all"), MESSAGES)
        compact = messages_df(mq, "nothing", state=state)
        assert compact.empty and list(compact.columns) == list(COMPACT)
    assert_schema(trace_df(mq, queue="nothing"), TRACE)
    assert_schema(trace_df(mq, message_id="no-such-id"), TRACE)
    assert_schema(metrics_df(mq), METRICS)
    assert_schema(dlq_df(mq, "nothing"), DLQ)
    assert_schema(audit_df(mq), AUDIT)
    assert_schema(consumers_df(mq), CONSUMERS)
    assert_schema(stats_df(mq, []), STATS)
    assert_schema(health_df(mq, report=HealthReport([])), HEALTH)
    for frame in (trace_df(mq, queue="nothing"), metrics_df(mq), stats_df(mq, [])):
        assert frame.empty


def test_ready_and_delayed_messages_fill_their_columns_with_their_dtypes(
        mq: pn.MessageQueue) -> None:
    mq.publish("states", "ioc.enrichment.request", {"ioc": {"type": "domain",
                                                            "value": "evil.com"}},
               priority="HIGH", tlp="AMBER", ttl_s=3600)
    mq.publish("states", "ioc.enrichment.request", {"ioc": "198.51.100.7", "ioc_type": "ipv4"},
               priority="LOW")
    mq.publish("states", "t", {"later": True}, delay=60)
    ready = messages_df(mq, "states", columns="all")
    assert_schema(ready, MESSAGES, filled=(
        "id", "queue", "state", "type", "priority", "created_at", "attempt", "tlp",
        "trace_id", "stream_id", "payload", "indicator", "ioc_type", "age_s"))
    assert ready["priority"].tolist() == ["HIGH", "LOW"]
    assert ready["tlp"].tolist() == ["AMBER", "CLEAR"]
    assert ready["indicator"].tolist() == ["evil[.]com", "198[.]51[.]100[.]7"]
    assert ready["ioc_type"].tolist() == ["domain", "ipv4"]
    assert ready["attempt"].tolist() == [1, 1] and ready["state"].tolist() == ["ready"] * 2
    assert ready["expires_at"].notna().tolist() == [True, False]
    delayed = messages_df(mq, "states", state="delayed", columns="all")
    assert_schema(delayed, MESSAGES, filled=("id", "due_at", "created_at", "payload"))
    assert delayed["state"].tolist() == ["delayed"]


def test_pending_and_dead_messages_fill_their_own_columns_with_their_dtypes(
        mq: pn.MessageQueue) -> None:
    release = threading.Event()

    def reject(message: pn.Envelope, context: pn.MessageContext) -> None:
        raise pn.Reject("schema_invalid")

    mq.subscribe("rejects", "*", reject)
    mq.subscribe("held", "*", lambda m, c: release.wait(10), prefetch_count=10,
                 max_concurrency=1)
    mq.publish("rejects", "t", "reject")
    mq.publish("held", "t", "hold")
    with mq.worker():
        assert eventually(lambda: len(messages_df(mq, "held", state="pending")) == 1)
        assert eventually(lambda: mq.stats(["rejects"])[0].dead == 1)
        pending = messages_df(mq, "held", state="pending", columns="all")
        release.set()
    assert_schema(pending, MESSAGES, filled=(
        "id", "stream_id", "consumer", "delivery_count", "idle_ms", "payload", "attempt"))
    assert pending["delivery_count"].tolist() == [1]
    dead = messages_df(mq, "rejects", state="dead", columns="all")
    assert_schema(dead, MESSAGES, filled=("id", "stream_id", "reason", "payload", "state"))
    assert dead["reason"].tolist() == ["schema_invalid"]


def test_an_undecodable_message_keeps_the_dtypes_of_its_row(mq: pn.MessageQueue) -> None:
    mq.publish("broken", "t", {"fine": True})
    mq.client.xadd(mq.queue_keys("broken").streams[2], {"m": b"\x01\x00\x00\x00\x05garbage"})
    assert_schema(messages_df(mq, "broken", columns="all"), MESSAGES,
                  filled=("stream_id", "state", "queue"))


def test_trace_metrics_stats_health_and_dead_letter_frames_of_a_workload(
        mq: pn.MessageQueue, workload: Workload) -> None:
    trace = trace_df(mq, workload.doomed_id, queues=[workload.queue])
    assert_schema(trace, TRACE, filled=(
        "time", "elapsed_ms", "event", "queue", "message_id", "trace_id", "depth", "attempt",
        "seq"))
    assert trace["depth"].tolist() == [0] * len(trace) and trace["parent_id"].isna().all()
    assert trace["elapsed_ms"].iloc[0] == 0 and trace["elapsed_ms"].is_monotonic_increasing
    metrics = metrics_df(mq, [workload.queue], window="10min")
    assert_schema(metrics, METRICS, filled=(
        "queue", "time", "bucket_s", *_COUNTERS, *(f"{c}_per_s" for c in _COUNTERS)))
    assert metrics["published"].sum() == workload.published
    stats = stats_df(mq, [workload.queue])
    assert_schema(stats, STATS, filled=tuple(STATS))
    assert stats["dead"].tolist() == [workload.dead]
    health = health_df(mq, [workload.queue])
    assert_schema(health, HEALTH, filled=tuple(HEALTH))
    dlq = dlq_df(mq, workload.queue)
    assert_schema(dlq, DLQ, filled=(
        "dlq_id", "queue", "message_id", "type", "priority", "reason", "attempts", "dead_at",
        "created_at", "tlp", "trace_id", "decodable"))
    assert len(dlq) == workload.dead and dlq["decodable"].all()


def test_audit_and_consumer_frames_fill_their_columns_with_their_dtypes(
        mq: pn.MessageQueue) -> None:
    now = float(int(time.time()))  # whole seconds: the timestamps compare exactly
    mq.client.xadd(mq.keys.audit(mq.user), {
        "v": "1", "kind": "event", "t": str(int(now * 1000)), "actor": "ana", "role": "analyst",
        "action": "replay", "target": "q", "outcome": "ok", "ids": "01A,01B", "count": "2",
        "detail": "by hand", "mac": "x"})
    assert_schema(audit_df(mq, window="1h"), AUDIT, filled=tuple(AUDIT))
    beat = {"consumer": "w1", "pid": 41, "host": "h1", "queues": ["a", "b"], "groups": ["g"],
            "started": now - 60, "last_seen": now - 5, "handled": 12, "in_flight": 1}
    mq.client.sadd(mq.keys.heartbeat_index, mq.user)
    mq.client.hset(mq.keys.heartbeats(mq.user), "w1", orjson.dumps(beat))
    consumers = consumers_df(mq, now=now)
    assert_schema(consumers, CONSUMERS, filled=tuple(CONSUMERS))
    assert consumers.iloc[0].to_dict() == {
        "consumer": "w1", "host": "h1", "pid": 41, "queues": "a, b", "groups": "g",
        "started": pd.Timestamp(now - 60, unit="s", tz="UTC"),
        "last_seen": pd.Timestamp(now - 5, unit="s", tz="UTC"), "age_s": pytest.approx(5),
        "stale": False, "handled": 12, "in_flight": 1}
