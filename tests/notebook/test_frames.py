"""The DataFrames reproduce what really happened, with typed columns, even when empty."""

from __future__ import annotations

import threading
import time

import orjson
import pandas as pd
import pytest

import phantom_notebook as pn
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
from tests.notebook.conftest import CHAIN_QUEUES, MEMBER_QUEUES, Workload, flow_trace, run_flows
from tests.support.collect import eventually

UTC = "datetime64[ns, UTC]"


def _kinds(df: pd.DataFrame) -> dict[str, str]:
    return {name: str(dtype) for name, dtype in df.dtypes.items()}


def test_metrics_frame_counts_equal_the_real_counts_of_a_known_workload(
        mq: pn.MessageQueue, workload: Workload) -> None:
    m = metrics_df(mq, [workload.queue], window="10min")
    totals = m[["published", "delivered", "acked", "retried", "dead_lettered"]].sum()
    assert totals.to_dict() == {
        "published": workload.published, "delivered": workload.delivered,
        "acked": workload.acked, "retried": workload.retried,
        "dead_lettered": workload.dead}
    assert str(m["published"].dtype) == "Int64" and str(m["time"].dtype) == UTC
    assert m["time"].diff().dropna().eq(pd.Timedelta(seconds=10)).all()
    busy = m[m["delivered"] > 0]
    assert busy["e2e_p99_ms"].notna().all() and (busy["e2e_p50_ms"] <= busy["e2e_p99_ms"]).all()
    per_minute = metrics_df(mq, [workload.queue], window="10min", resample="1min")
    assert per_minute["published"].sum() == workload.published
    assert (per_minute["bucket_s"] == 60).all()
    assert (per_minute["published_per_s"] <= per_minute["published"]).all()


def test_dead_letters_and_stats_agree_with_the_queue(mq: pn.MessageQueue,
                                                     workload: Workload) -> None:
    dlq = dlq_df(mq, workload.queue)
    assert len(dlq) == workload.dead
    assert dlq["reason"].value_counts().to_dict() == mq.dlq(workload.queue).summary()
    assert "payload" not in dlq.columns and dlq["decodable"].all()
    assert str(dlq["dead_at"].dtype) == UTC and str(dlq["attempts"].dtype) == "Int64"
    assert dlq.loc[dlq["message_id"] == workload.doomed_id, "attempts"].tolist() == [3]
    dead = messages_df(mq, workload.queue, state="dead", columns="all")
    assert len(dead) == workload.dead and set(dead["state"]) == {"dead"}
    stats = stats_df(mq, [workload.queue])
    assert stats[["ready", "in_flight", "delayed", "dead"]].iloc[0].tolist() == [
        0, 0, 0, workload.dead]


def test_a_message_retried_twice_then_dead_lettered_has_exactly_those_rows_in_order(
        mq: pn.MessageQueue, workload: Workload) -> None:
    trace = trace_df(mq, message_id=workload.doomed_id)
    assert list(zip(trace["event"], trace["attempt"], strict=True)) == [
        ("published", 1), ("delivered", 1), ("retried", 1), ("delivered", 2), ("retried", 2),
        ("delivered", 3), ("dead_lettered", 3)]
    assert trace["elapsed_ms"].iloc[0] == 0 and trace["elapsed_ms"].is_monotonic_increasing
    assert trace["time"].is_monotonic_increasing and trace["trace_id"].nunique() == 1
    assert "ValueError: feed unreadable" in trace["detail"].iloc[-1]
    assert _kinds(trace) | {"event": "category"} == {
        "time": UTC, "elapsed_ms": "Int64", "event": "category", "queue": "string",
        "actor": "string", "message_id": "string", "trace_id": "string", "parent_id": "string",
        "depth": "Int64", "attempt": "Int64", "detail": "string", "seq": "Int64"}
    assert trace["parent_id"].isna().all() and trace["depth"].tolist() == [0] * 7
    by_trace = trace_df(mq, trace_id=trace["trace_id"].iloc[0])
    assert by_trace["message_id"].tolist() == trace["message_id"].tolist()


def _links(trace: pd.DataFrame) -> dict[str, tuple[object, int]]:
    """message id -> (parent id, depth), checking every row of a message agrees."""
    per = trace.groupby("message_id", sort=False)[["parent_id", "depth"]].nunique(dropna=False)
    assert (per == 1).all().all(), per
    first = trace.drop_duplicates("message_id")
    return {str(m): (None if pd.isna(p) else str(p), int(d)) for m, p, d in
            zip(first["message_id"], first["parent_id"], first["depth"], strict=True)}


def test_a_group_and_a_chain_name_each_message_s_parent_and_depth(
        mq: pn.MessageQueue) -> None:
    flows = run_flows(mq)
    group = flow_trace(mq, flows.callback_id, "threat-score")
    assert str(group["parent_id"].dtype) == "string" and str(group["depth"].dtype) == "Int64"
    # members and callback all hang off the group id: a virtual root, not a message
    assert _links(group) == {m: (flows.group_id, 0) for m in
                             (*flows.member_ids, flows.callback_id)}
    assert set(group.loc[group["message_id"] == flows.callback_id, "event"].astype(str)) == {
        "group_created", "group_succeeded", "delivered", "acked"}
    assert set(group.loc[group["message_id"].isin(flows.member_ids), "queue"]) == set(
        MEMBER_QUEUES)

    chain = flow_trace(mq, flows.chain_last_id, "threat-report")
    links = _links(chain)
    assert len(links) == 3 and chain["trace_id"].nunique() == 1
    by_depth = {depth: mid for mid, (_, depth) in links.items()}
    assert sorted(by_depth) == [0, 1, 2] and by_depth[2] == flows.chain_last_id
    root = links[by_depth[0]][0]
    assert root is not None and root not in links  # the chain id: not a message
    assert links[by_depth[1]][0] == by_depth[0] and links[by_depth[2]][0] == by_depth[1]
    queue_of = dict(zip(chain["message_id"], chain["queue"], strict=True))
    assert tuple(queue_of[by_depth[d]] for d in range(3)) == CHAIN_QUEUES


def test_messages_in_each_state_are_listed_with_their_own_columns(mq: pn.MessageQueue) -> None:
    for prio in ("LOW", "CRITICAL", "NORMAL"):
        mq.publish("states", "t", {"p": prio, "blob": "x" * 500}, priority=prio)
    mq.publish("states", "t", {"later": True}, delay=60)
    ready = messages_df(mq, "states", columns="all")
    assert ready["priority"].tolist() == ["CRITICAL", "NORMAL", "LOW"]
    assert ready["priority"].cat.ordered and ready["payload"].str.len().max() <= 120
    assert str(ready["created_at"].dtype) == UTC and ready["error"].isna().all()
    delayed = messages_df(mq, "states", state="delayed", columns="all")
    assert len(delayed) == 1
    wait = delayed["due_at"].iloc[0] - delayed["created_at"].iloc[0]
    assert pd.Timedelta(seconds=59) < wait <= pd.Timedelta(seconds=61)

    release = threading.Event()
    mq.subscribe("states", "*", lambda m, c: release.wait(10), prefetch_count=10,
                 max_concurrency=1)
    with mq.worker():
        assert eventually(lambda: len(messages_df(mq, "states", state="pending")) == 3)
        pending = messages_df(mq, "states", state="pending", columns="all")
        assert pending["delivery_count"].tolist() == [1, 1, 1]
        assert pending["consumer"].notna().all() and str(pending["idle_ms"].dtype) == "Int64"
        assert messages_df(mq, "states").empty
        release.set()


def test_undecodable_messages_are_rows_with_an_error_never_an_exception(
        mq: pn.MessageQueue) -> None:
    mq.publish("broken", "t", {"fine": True})
    mq.client.xadd(mq.queue_keys("broken").streams[2], {"m": b"\x01\x00\x00\x00\x05garbage"})
    frame = messages_df(mq, "broken", columns="all")
    assert len(frame) == 2
    assert frame["error"].isna().tolist() == [True, False]
    assert "decode_failed" in frame["error"].iloc[1]


def test_empty_inputs_give_empty_frames_with_the_right_columns_and_dtypes(
        mq: pn.MessageQueue) -> None:
    mq.declare("nothing")
    frames = {"messages": messages_df(mq, "nothing", state="pending", columns="all"),
              "delayed": messages_df(mq, "nothing", state="delayed", columns="all"),
              "trace": trace_df(mq, queue="nothing"), "metrics": metrics_df(mq),
              "dlq": dlq_df(mq, "nothing"), "audit": audit_df(mq), "consumers": consumers_df(mq),
              "stats": stats_df(mq, [])}
    for name, frame in frames.items():
        assert frame.empty, name
        assert len(frame.columns) > 3, name
    assert _kinds(frames["metrics"])["e2e_p99_ms"] == "float64"
    assert _kinds(frames["messages"])["created_at"] == UTC
    assert _kinds(frames["dlq"])["priority"] == "category"
    assert _kinds(frames["consumers"])["stale"] == "bool"
    assert _kinds(frames["audit"])["time"] == UTC


def test_health_frame_lists_every_check_worst_first(mq: pn.MessageQueue,
                                                    workload: Workload) -> None:
    report = mq.health([workload.queue])
    health = health_df(mq, report=report)
    assert len(health) == len(report.checks)
    assert health["status"].cat.ordered and health["status"].iloc[0] == report.status
    assert health["status"].is_monotonic_decreasing


def test_consumers_frame_flags_a_heartbeat_that_stopped(mq: pn.MessageQueue) -> None:
    now = time.time()
    old = {"consumer": "gone", "pid": 1, "host": "h", "queues": ["beats"], "groups": ["workers"],
           "started": now - 600, "last_seen": now - 120, "handled": 5, "in_flight": 0}
    mq.client.sadd(mq.keys.heartbeat_index, mq.user)
    mq.client.hset(mq.keys.heartbeats(mq.user), "gone", orjson.dumps(old))
    mq.client.hset(mq.keys.heartbeats(mq.user), "live", orjson.dumps({**old, "last_seen": now}))
    frame = consumers_df(mq, stale_after_s=30, now=now)
    assert frame.set_index("consumer")["stale"].to_dict() == {"gone": True, "live": False}
    assert frame["age_s"].max() == pytest.approx(120)
    assert str(frame["last_seen"].dtype) == UTC and str(frame["handled"].dtype) == "Int64"


def test_audit_frame_reads_the_audit_stream_and_its_time_formats(mq: pn.MessageQueue) -> None:
    now_ms = int(time.time() * 1000)
    base = {"actor": "ana", "role": "analyst", "action": "dlq.replay", "target": "q",
            "message_id": "01ABC", "outcome": "allowed"}
    audit = mq.keys.audit(mq.user)
    mq.client.xadd(audit, {**base, "time": str(now_ms)})
    mq.client.xadd(audit, {**base, "time": "2024-05-01T12:00:00Z", "outcome": "denied"})
    mq.client.xadd(audit, {**base, "time": str(now_ms / 1000)})
    mq.client.xadd(audit, {"v": "1", "kind": "event", "t": str(now_ms), "actor": "w",
                                   "role": "worker", "action": "dlq.purge", "target": "q",
                                   "outcome": "allowed", "ids": "01A,01B", "count": "7",
                                   "detail": "", "mac": "x"})
    mq.client.xadd(audit, {"v": "1", "kind": "checkpoint", "t": str(now_ms)})
    frame = audit_df(mq, window="1h")
    assert len(frame) == 4
    assert frame["count"].tolist() == [1, 1, 1, 7] and str(frame["count"].dtype) == "Int64"
    assert frame["message_id"].iloc[3] == "01A,01B" and frame["action"].iloc[3] == "dlq.purge"
    assert frame["time"].iloc[1] == pd.Timestamp("2024-05-01T12:00:00Z")
    assert abs(frame["time"].iloc[0] - frame["time"].iloc[2]) < pd.Timedelta(milliseconds=2)
    assert set(frame["outcome"].cat.categories) == {"allowed", "denied"}
    assert pd.isna(frame["detail"].iloc[3])


def test_the_accessor_defangs_indicators_and_redacts_sensitive_columns() -> None:
    iocs = pd.DataFrame({"value": ["evil.example.com", "10.1.2.3", "not an ioc", None],
                         "tlp": ["CLEAR", "AMBER", "RED", "GREEN"],
                         "payload": ["{}", "{\"k\": 1}", "secret", None]})
    defanged = iocs.phantom.defang()
    assert defanged["value"].tolist()[:3] == ["evil[.]example[.]com", "10[.]1[.]2[.]3",
                                              "not an ioc"]
    assert iocs["value"].iloc[0] == "evil.example.com"  # the original is untouched
    assert iocs["value"].phantom.defang().iloc[1] == "10[.]1[.]2[.]3"
    redacted = iocs.phantom.redact()
    assert redacted["payload"].tolist()[:3] == ["[redacted]"] * 3
    assert pd.isna(redacted["payload"].iloc[3])
    amber = iocs.phantom.redact(min_tlp="AMBER")
    assert amber["payload"].tolist()[:3] == ["{}", "[redacted]", "[redacted]"]


def test_a_retry_that_waits_shows_up_as_delayed(mq: pn.MessageQueue) -> None:
    def fails(message: pn.Envelope, context: pn.MessageContext) -> None:
        raise RuntimeError("try later")

    mq.subscribe("backoff", "*", fails,
                 retry=pn.RetrySettings(max_retries=2, initial_delay_s=60, jitter=0.0))
    mid = mq.publish("backoff", "t", {})
    with mq.worker():
        assert eventually(lambda: mq.stats(["backoff"])[0].delayed == 1)
    delayed = messages_df(mq, "backoff", state="delayed", columns="all")
    assert delayed["id"].tolist() == [mid] and delayed["attempt"].tolist() == [2]


def test_messages_frame_is_compact_by_default_with_the_indicator_defanged(
        mq: pn.MessageQueue) -> None:
    mid = mq.publish("compact", "ioc.enrichment.request",
                     {"ioc": {"type": "domain", "value": "evil.example.com"}, "note": "x" * 300},
                     priority="HIGH")
    df = messages_df(mq, "compact")
    assert len(df.columns) <= 12, list(df.columns)
    assert {"id", "indicator", "type", "state", "priority", "age_s", "attempt"} <= set(df.columns)
    assert df["indicator"].iloc[0] == "evil[.]example[.]com"
    assert df["id"].iloc[0] == mid[-12:] and mid.endswith("-" + df["id"].iloc[0])
    assert not [c for c in df.columns if df[c].isna().all()], "all-NA columns are dropped"
    assert "trace_id" not in df.columns and "stream_id" not in df.columns
    assert df["payload"].str.len().max() <= 40
    assert str(df["attempt"].dtype) == "Int64" and str(df["age_s"].dtype) == "float64"
    assert df["priority"].cat.ordered


def test_messages_frame_with_all_columns_keeps_full_ids_and_every_column(
        mq: pn.MessageQueue) -> None:
    mid = mq.publish("compact", "t", {"value": "198.51.100.23"})
    full = messages_df(mq, "compact", columns="all")
    assert full["id"].tolist() == [mid]
    assert {"trace_id", "stream_id", "expires_at", "error"} <= set(full.columns)
    assert full["indicator"].tolist() == ["198[.]51[.]100[.]23"]
    assert messages_df(mq, "compact", columns=["id", "type"]).columns.tolist() == ["id", "type"]
    with pytest.raises(pn.ValidationError, match="columns must be"):
        messages_df(mq, "compact", columns="everything")


def test_messages_frame_of_an_unknown_queue_names_the_known_ones(mq: pn.MessageQueue) -> None:
    mq.declare("ioc-processing")
    with pytest.raises(pn.UnknownQueueError) as raised:
        messages_df(mq, "ioc-procesing")
    assert "'ioc-procesing'" in str(raised.value)
    assert "did you mean 'ioc-processing'" in str(raised.value)
    assert "Known queues: ioc-processing" in str(raised.value)
