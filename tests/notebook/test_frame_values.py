"""What each frame builder puts in its cells, value by value, from state written on Redis.

test_frames.py reproduces a real workload; this file sets up exact states (a consumer
group read by hand, a metric bucket, audit entries in every time format, heartbeats) and
checks each argument, each fallback and each computed value of the builders.
"""

from __future__ import annotations

import dataclasses
import time
from types import SimpleNamespace
from typing import Any

import orjson
import pandas as pd
import pytest

import phantom_notebook as pn
from phantom_notebook.core.observe.depth import QueueStats
from phantom_notebook.core.observe.health import HealthCheck, HealthReport, HealthThresholds
from phantom_notebook.core.observe.metrics import BUCKET_S
from phantom_notebook.core.queues import DEFAULT_GROUP
from phantom_notebook.notebook.frames import (
    COMPACT_MESSAGE_COLUMNS,
    audit_df,
    consumers_df,
    dlq_df,
    health_df,
    messages_df,
    metrics_df,
    stats_df,
    trace_df,
)
from tests.support.collect import eventually


def _ts(ms: float) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")


def _read_by_hand(mq: pn.MessageQueue, queue: str, n: int, consumer: str = "c1") -> str:
    """Create the default group and deliver ``n`` messages of priority NORMAL to
    ``consumer``, as a worker would; the stream's key."""
    stream = mq.queue_keys(queue).stream(2)
    mq.client.xgroup_create(stream, DEFAULT_GROUP, id="0")
    mq.client.xreadgroup(DEFAULT_GROUP, consumer, {stream: ">"}, count=n)
    return stream


# -- messages --------------------------------------------------------------------------------

def test_arguments_of_the_messages_frame_are_checked(mq: pn.MessageQueue) -> None:
    mq.declare("q")
    with pytest.raises(pn.ValidationError) as caught:
        messages_df(mq, "q", state="stuck")
    assert str(caught.value) == "unknown state 'stuck': use one of ready, pending, delayed, dead"
    with pytest.raises(pn.ValidationError) as caught:
        messages_df(mq, "q", limit=-1)
    assert str(caught.value) == "limit must be >= 0, got -1"
    with pytest.raises(pn.ValidationError) as caught:
        messages_df(mq, "q", columns=["id", "nope", "gone"])
    assert str(caught.value).startswith("unknown column(s) ['nope', 'gone']: choose from ['id', ")
    with pytest.raises(pn.ValidationError, match="columns must be 'compact', 'all' or a list"):
        messages_df(mq, "q", columns="everything")


def test_ready_messages_come_highest_priority_first_up_to_the_limit(
        mq: pn.MessageQueue) -> None:
    ids = {p: mq.publish("q", "t", p, priority=p) for p in ("LOW", "HIGH", "CRITICAL", "NORMAL")}
    mq.publish("q", "t", "LOW-2", priority="LOW")
    full = messages_df(mq, "q", columns="all")
    assert full["payload"].tolist() == ['"CRITICAL"', '"HIGH"', '"NORMAL"', '"LOW"', '"LOW-2"']
    assert messages_df(mq, "q", limit=3, columns="all")["id"].tolist() == [
        ids["CRITICAL"], ids["HIGH"], ids["NORMAL"]]
    assert messages_df(mq, "q", limit=4, columns="all")["id"].tolist()[-1] == ids["LOW"]
    nothing = messages_df(mq, "q", limit=0, columns="all")
    assert nothing.empty and list(nothing.columns) == list(full.columns)
    assert full["stream_id"].str.match(r"^\d+-\d+$").all()
    assert full["queue"].tolist() == ["q"] * 5 and full["state"].tolist() == ["ready"] * 5


def test_ready_means_not_yet_delivered_to_the_group_and_pending_means_delivered(
        mq: pn.MessageQueue) -> None:
    ids = [mq.publish("held", "t", {"n": n}) for n in range(3)]
    _read_by_hand(mq, "held", 2)
    assert messages_df(mq, "held", columns="all")["id"].tolist() == [ids[2]]
    other = messages_df(mq, "held", group="auditors", columns="all")
    assert other["id"].tolist() == ids  # a group that read nothing sees everything
    pending = messages_df(mq, "held", state="pending", columns="all")
    assert pending["id"].tolist() == ids[:2]
    assert pending["consumer"].tolist() == ["c1", "c1"]
    assert pending["delivery_count"].tolist() == [1, 1]
    assert (pending["idle_ms"] >= 0).all() and pending["error"].isna().all()
    assert messages_df(mq, "held", state="pending", limit=1, columns="all")["id"].tolist() == \
        ids[:1]
    assert messages_df(mq, "held", state="pending", group="auditors", columns="all").empty


def test_a_pending_entry_gone_from_the_stream_is_a_row_that_says_so(
        mq: pn.MessageQueue) -> None:
    mq.publish("held", "t", 1)
    stream = _read_by_hand(mq, "held", 1)
    [(sid, _)] = mq.client.xrange(stream)
    mq.client.xdel(stream, sid)
    [row] = messages_df(mq, "held", state="pending", columns="all").to_dict("records")
    assert row["stream_id"] == sid.decode() and row["consumer"] == "c1"
    assert row["error"] == "entry no longer in the stream (settled meanwhile)"
    assert pd.isna(row["id"]) and pd.isna(row["payload"])


def test_pending_rows_span_the_priority_streams_up_to_the_limit(mq: pn.MessageQueue) -> None:
    high = [mq.publish("held", "t", f"h{n}", priority="HIGH") for n in range(2)]
    normal = [mq.publish("held", "t", f"n{n}") for n in range(3)]
    for level in (1, 2):
        stream = mq.queue_keys("held").stream(level)
        mq.client.xgroup_create(stream, DEFAULT_GROUP, id="0")
        mq.client.xreadgroup(DEFAULT_GROUP, "c1", {stream: ">"})
    assert messages_df(mq, "held", state="pending", columns="all")["id"].tolist() == [
        *high, *normal]
    assert messages_df(mq, "held", state="pending", limit=3, columns="all")["id"].tolist() == [
        *high, normal[0]]


def test_a_pending_entry_that_was_deleted_does_not_borrow_the_next_one(
        mq: pn.MessageQueue) -> None:
    ids = [mq.publish("held", "t", n) for n in range(2)]
    stream = _read_by_hand(mq, "held", 2)
    first_sid = mq.client.xrange(stream)[0][0]
    mq.client.xdel(stream, first_sid)
    rows = messages_df(mq, "held", state="pending", columns="all")
    assert pd.isna(rows["id"].iloc[0]) and rows["id"].iloc[1] == ids[1]
    assert rows["error"].iloc[0] == "entry no longer in the stream (settled meanwhile)"


def test_a_pending_entry_without_a_message_field_is_an_empty_undecodable_one(
        mq: pn.MessageQueue) -> None:
    mq.declare("held")
    stream = mq.queue_keys("held").stream(2)
    mq.client.xadd(stream, {"x": "1"})
    mq.client.xgroup_create(stream, DEFAULT_GROUP, id="0")
    mq.client.xreadgroup(DEFAULT_GROUP, "c1", {stream: ">"})
    [row] = messages_df(mq, "held", state="pending", columns="all").to_dict("records")
    assert row["error"] == "decode_failed: envelope truncated (0 bytes)"


def test_pending_rows_of_a_stream_that_is_not_one_raise(mq: pn.MessageQueue) -> None:
    mq.declare("held")
    mq.client.set(mq.queue_keys("held").stream(1), "not a stream")
    with pytest.raises(Exception, match="WRONGTYPE"):
        messages_df(mq, "held", state="pending")


def test_delayed_and_dead_rows_stop_at_the_limit(mq: pn.MessageQueue) -> None:
    for n in range(3):
        mq.publish("later", "t", n, delay=60 + n)
    assert len(messages_df(mq, "later", state="delayed", limit=2, columns="all")) == 2
    assert len(messages_df(mq, "later", state="delayed", limit=1, columns="all")) == 1
    dlq = mq.queue_keys("later").dlq
    for n in range(3):
        mq.client.xadd(dlq, {"reason": "r", "message_id": f"m{n}", "raw": b""})
    assert len(messages_df(mq, "later", state="dead", limit=2, columns="all")) == 2


def test_pending_requests_show_the_progress_their_handlers_reported(
        mq: pn.MessageQueue) -> None:
    ids = [mq.publish("held", "t", n) for n in range(3)]
    _read_by_hand(mq, "held", 3)
    keys = mq.queue_keys("held")
    mq.client.hset(keys.result(ids[0]), mapping={"p": "0.25", "note": "fetching whois"})
    mq.client.hset(keys.result(ids[1]), mapping={"p": "1", "note": ""})
    rows = messages_df(mq, "held", state="pending", columns="all")
    assert rows["progress"].tolist()[:2] == [0.25, 1.0] and pd.isna(rows["progress"].iloc[2])
    assert rows["progress_note"].iloc[0] == "fetching whois"
    assert rows["progress_note"].iloc[1:].isna().all()
    compact = messages_df(mq, "held", state="pending")
    assert {"progress", "progress_note", "consumer", "delivery_count"} <= set(compact.columns)


def test_delayed_and_dead_messages_say_when_and_why(mq: pn.MessageQueue) -> None:
    before = time.time() * 1000
    mid = mq.publish("later", "t", {"x": 1}, delay=120)
    [row] = messages_df(mq, "later", state="delayed", columns="all").to_dict("records")
    assert row["id"] == mid and row["payload"] == '{"x":1}'
    assert _ts(before + 119_000) <= row["due_at"] <= _ts(time.time() * 1000 + 121_000)

    def reject(message: pn.Envelope, context: pn.MessageContext) -> None:
        raise pn.Reject("schema_invalid")

    mq.subscribe("bad", "*", reject)
    dead_id = mq.publish("bad", "t", 1)
    with mq.worker():
        assert eventually(lambda: mq.stats(["bad"])[0].dead == 1)
    [row] = messages_df(mq, "bad", state="dead", columns="all").to_dict("records")
    [letter] = mq.dlq("bad").list()
    assert (row["id"], row["reason"], row["stream_id"]) == (dead_id, "schema_invalid",
                                                           letter.dlq_id)
    assert row["consumer"] == letter.consumer and row["state"] == "dead"


def test_the_payload_preview_is_cut_with_an_ellipsis(mq: pn.MessageQueue) -> None:
    mq.publish("q", "t", {"note": "x" * 300})
    body = orjson.dumps({"note": "x" * 300}).decode()
    assert messages_df(mq, "q", columns="all")["payload"].iloc[0] == body[:119] + "…"
    assert messages_df(mq, "q")["payload"].iloc[0] == body[:39] + "…"
    assert messages_df(mq, "q", preview_chars=10)["payload"].iloc[0] == body[:9] + "…"
    assert messages_df(mq, "q", preview_chars=1)["payload"].iloc[0] == "…"
    assert messages_df(mq, "q", preview_chars=0)["payload"].iloc[0] == "…"
    assert messages_df(mq, "q", preview_chars=len(body))["payload"].iloc[0] == body
    mq.publish("short", "t", {"a": 1})
    assert messages_df(mq, "short")["payload"].iloc[0] == '{"a":1}'


def test_the_compact_frame_shows_short_ids_and_only_columns_with_a_value(
        mq: pn.MessageQueue) -> None:
    mid = mq.publish("q", "t", {"ioc": "198.51.100.7"}, tlp="AMBER")
    compact = messages_df(mq, "q")
    assert compact["id"].tolist() == [mid.rsplit("-", 1)[1]] and str(compact["id"].dtype) == \
        "string"
    assert list(compact.columns) == [c for c in COMPACT_MESSAGE_COLUMNS if c in (
        "id", "indicator", "type", "state", "priority", "tlp", "age_s", "attempt", "payload")]
    assert compact["indicator"].iloc[0] == "198[.]51[.]100[.]7"
    assert compact["tlp"].iloc[0] == "AMBER" and 0 <= compact["age_s"].iloc[0] < 60
    mq.client.xadd(mq.queue_keys("q").stream(2), {"m": b"\x01\x00\x00\x00\x02{}"})
    ids = messages_df(mq, "q")["id"].tolist()
    assert ids[0] == mid.rsplit("-", 1)[1] and pd.isna(ids[1])
    picked = messages_df(mq, "q", columns=["type", "id"])
    assert list(picked.columns) == ["type", "id"] and picked["id"].iloc[0] == mid


def test_short_ids_keep_what_is_already_short(mq: pn.MessageQueue) -> None:
    from phantom_notebook.notebook.frames import _short_id

    assert _short_id("0190a1b2-c3d4-7001-8203-040506070809") == "040506070809"
    assert _short_id("abc-defghijkl") == "abc-defghijkl"  # 13 characters: kept
    assert _short_id("abcd-efghijklm") == "efghijklm"


@pytest.mark.parametrize(("payload", "indicator", "kind"), [
    ({"ioc": {"type": "domain", "value": "evil.com"}}, "evil[.]com", "domain"),
    ({"ioc": {"value": "evil.com", "type": 3}}, "evil[.]com", None),
    ({"ioc": "198.51.100.7", "ioc_type": "ipv4", "type": "x"}, "198[.]51[.]100[.]7", "ipv4"),
    ({"value": "evil.com", "type": "domain", "ioc_type": "x"}, "evil[.]com", "domain"),
    ({"indicator": "evil.com"}, "evil[.]com", None),
    ({"observable": "evil.com", "ioc_value": "other.com"}, "other[.]com", None),
    ({"ioc": "", "value": "evil.com"}, "evil[.]com", None),
    ({"ioc": {"value": 7}, "value": "evil.com"}, "evil[.]com", None),
    ({"value": "evil.com", "type": 5}, "evil[.]com", None),
    ({"ioc": {"type": "domain", "value": "198.51.100.7"}}, "198.51.100.7", "domain"),  # no domain
    ({"other": 1}, None, None), (["evil.com"], None, None), ("evil.com", None, None)])
def test_the_indicator_column_finds_the_payload_s_indicator(
        mq: pn.MessageQueue, payload: Any, indicator: str | None, kind: str | None) -> None:
    mq.publish("q", "t", payload)
    [row] = messages_df(mq, "q", columns="all").to_dict("records")
    assert (None if pd.isna(row["indicator"]) else row["indicator"]) == indicator
    assert (None if pd.isna(row["ioc_type"]) else row["ioc_type"]) == kind


def test_an_envelope_row_carries_every_header_field(mq: pn.MessageQueue) -> None:
    origin = pn.connect(None if mq.embedded else mq.settings.redis.url,
                        key_prefix=mq.keys.prefix, settings=mq.settings)
    origin.origin = "feed-1"
    mid = origin.publish("q", "ioc", {"a": 1}, priority="HIGH", ttl_s=60, tlp="GREEN",
                         traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    [row] = messages_df(mq, "q", columns="all").to_dict("records")
    assert (row["id"], row["type"], row["queue"], row["priority"], row["attempt"]) == (
        mid, "ioc", "q", "HIGH", 1)
    assert (row["origin"], row["tlp"], row["trace_id"]) == (
        "feed-1", "GREEN", "0af7651916cd43dd8448eb211c80319c")
    assert row["expires_at"] - row["created_at"] == pd.Timedelta(seconds=60)
    assert abs(row["created_at"] - pd.Timestamp.now(tz="UTC")) < pd.Timedelta(seconds=30)
    assert pd.isna(row["error"]) and pd.isna(row["indicator"])


def test_an_undecodable_message_keeps_what_its_clear_header_tells(mq: pn.MessageQueue) -> None:
    mq.declare("q")
    stream = mq.queue_keys("q").stream(2)
    header = orjson.dumps({"id": "m-bad", "t": "ioc", "q": "other", "c": 1_700_000_000_000,
                           "p": 1, "k": "k9"}, option=orjson.OPT_SORT_KEYS)
    mq.client.xadd(stream, {"m": b"\x01" + len(header).to_bytes(4, "big") + header + b"x"})
    bad = orjson.dumps({"id": 7, "p": 9})
    mq.client.xadd(stream, {"m": b"\x01" + len(bad).to_bytes(4, "big") + bad})
    rows = messages_df(mq, "q", columns="all").to_dict("records")
    first, second = rows
    assert (first["id"], first["type"], first["queue"], first["priority"]) == (
        "m-bad", "ioc", "other", "HIGH")
    assert first["created_at"] == _ts(1_700_000_000_000)
    assert first["error"].startswith("decrypt_failed: ")
    assert pd.isna(second["id"]) and pd.isna(second["priority"]) and second["queue"] == "q"
    assert second["error"].startswith("decode_failed: ") and pd.isna(second["age_s"])


def _raw(header: dict[str, Any], body: bytes = b"{}") -> bytes:
    head = orjson.dumps(header, option=orjson.OPT_SORT_KEYS)
    return b"\x01" + len(head).to_bytes(4, "big") + head + body


@pytest.mark.parametrize(("level", "priority"), [(0, "CRITICAL"), (3, "LOW"), (4, None),
                                                  (-1, None), ("0", None)])
def test_an_undecodable_message_s_priority_is_read_only_when_in_range(
        mq: pn.MessageQueue, level: Any, priority: str | None) -> None:
    mq.declare("q")
    mq.client.xadd(mq.queue_keys("q").stream(2), {"m": _raw({"id": "m1", "p": level, "k": "x"})})
    [row] = messages_df(mq, "q", columns="all").to_dict("records")
    assert (None if pd.isna(row["priority"]) else row["priority"]) == priority


@pytest.mark.parametrize(("tlp", "shown"), [(" tlp:white ", "CLEAR"), ("TLP:AMBER", "AMBER"),
                                            ("white", "CLEAR"), ("red", "RED")])
def test_a_stored_tlp_label_is_shown_in_its_canonical_form(mq: pn.MessageQueue, tlp: str,
                                                            shown: str) -> None:
    mq.declare("q")
    header = {"id": "m1", "t": "t", "q": "q", "p": 2, "tlp": tlp}
    mq.client.xadd(mq.queue_keys("q").stream(2), {"m": _raw(header)})
    assert messages_df(mq, "q", columns="all")["tlp"].tolist() == [shown]


def test_a_row_names_the_queue_its_envelope_names(mq: pn.MessageQueue) -> None:
    mq.declare("q")
    header = {"id": "m1", "t": "t", "q": "elsewhere", "p": 2}
    mq.client.xadd(mq.queue_keys("q").stream(2), {"m": _raw(header)})
    assert messages_df(mq, "q", columns="all")["queue"].tolist() == ["elsewhere"]


def test_a_codec_bug_becomes_the_row_s_error_not_an_exception(
        mq: pn.MessageQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    mq.publish("q", "t", 1)

    class Broken:
        def open(self, raw: bytes) -> None:
            raise RuntimeError("codec bug")

    monkeypatch.setattr(mq, "codec", Broken())
    [row] = messages_df(mq, "q", columns="all").to_dict("records")
    assert row["error"] == "RuntimeError: codec bug" and row["priority"] == "NORMAL"


# -- traces, metrics, stats, health ----------------------------------------------------------

def test_a_queue_s_newest_trace_entries_oldest_first(mq: pn.MessageQueue) -> None:
    ids = [mq.publish("q", "t", n) for n in range(4)]
    assert trace_df(mq, ids[0])["actor"].isna().all()  # no origin: nobody to name
    mq.origin = "feed-1"
    signed = mq.publish("q", "t", "from the feed")
    assert trace_df(mq, signed)["actor"].tolist() == ["feed-1"]
    ids = [mq.publish("q", "t", n) for n in range(4)]
    recent = trace_df(mq, queue="q", count=2)
    assert recent["message_id"].tolist() == ids[2:] and recent["event"].tolist() == [
        "published"] * 2
    assert recent["elapsed_ms"].iloc[0] == 0 and recent["depth"].tolist() == [0, 0]
    assert recent["queue"].tolist() == ["q", "q"] and recent["seq"].notna().all()
    one = trace_df(mq, ids[1])
    assert one["message_id"].tolist() == [ids[1]] and one["attempt"].tolist() == [1]


def _stage(mq: pn.MessageQueue, queue: str, start_s: int, **fields: int) -> None:
    mq.client.hset(mq.queue_keys(queue).metrics(start_s), mapping=fields)


def test_metric_rows_cover_the_window_with_rates_per_second_of_each_bucket(
        mq: pn.MessageQueue) -> None:
    now = float(int(time.time()) // BUCKET_S * BUCKET_S + 4)  # 4 s into the current bucket
    current = int(now) // BUCKET_S * BUCKET_S
    _stage(mq, "busy", current - 20, published=30, delivered=20, retried=2, dead_lettered=3,
           acked=15, **{"h:proc:40": 10})
    _stage(mq, "busy", current, published=8)
    frame = metrics_df(mq, ["idle", "busy"], window=30, now=now)
    assert frame["queue"].unique().tolist() == ["busy"]  # no traffic: no rows
    starts = [int(t.timestamp()) for t in frame["time"]]
    assert starts == [current - 30, current - 20, current - 10, current]
    assert frame["bucket_s"].tolist() == [10] * 4
    assert frame["published"].tolist() == [0, 30, 0, 8]
    assert frame["published_per_s"].tolist() == [0.0, 3.0, 0.0, 2.0]  # 8 in its first 4 s
    full = frame.iloc[1]
    assert (full["delivered"], full["retried"], full["dead_lettered"]) == (20, 2, 3)
    assert full["error_rate"] == 0.25 and pd.isna(frame["error_rate"].iloc[0])
    assert full["proc_p50_ms"] <= full["proc_p99_ms"] and pd.isna(full["wait_p99_ms"])
    assert pd.isna(frame["proc_p99_ms"].iloc[0])
    assert frame["failed"].tolist() == [0, 0, 0, 0]


def test_metric_rows_resampled_merge_their_buckets(mq: pn.MessageQueue) -> None:
    now = float(int(time.time()) // 60 * 60 + 30)
    minute = int(now) // 60 * 60
    _stage(mq, "busy", minute - 60, published=6)
    _stage(mq, "busy", minute - 50, published=6, delivered=4, retried=1)
    _stage(mq, "busy", minute + 10, published=3)
    frame = metrics_df(mq, ["busy"], window="2min", resample="1min", now=now)
    assert [int(t.timestamp()) for t in frame["time"]] == [minute - 120, minute - 60, minute]
    assert frame["published"].tolist() == [0, 12, 3] and frame["bucket_s"].tolist() == [60] * 3
    assert frame["published_per_s"].tolist() == [0.0, 0.2, 0.1]  # 3 in the first 30 s
    assert frame["error_rate"].iloc[1] == 0.25
    _stage(mq, "edge", minute, published=3)
    assert metrics_df(mq, ["edge"], window=60, now=minute + 0.5)["published_per_s"].iloc[-1] \
        == 3.0  # the current bucket's elapsed part counts as at least 1 s


@pytest.mark.parametrize("resample", ["15s", "0s", 5])
def test_a_resample_that_is_not_a_multiple_of_the_bucket_is_refused(
        mq: pn.MessageQueue, resample: Any) -> None:
    with pytest.raises(pn.ValidationError) as caught:
        metrics_df(mq, resample=resample)
    assert str(caught.value) == f"resample must be a multiple of 10 s, got {resample!r}"


def test_stats_rows_are_one_per_queue_stamped_now(mq: pn.MessageQueue) -> None:
    given = [QueueStats("a", "priority", 1, 2, 3, 4, {}), QueueStats("b", "broadcast", 0, 0,
                                                                    0, 0, {})]
    frame = stats_df(mq, stats=given)
    assert frame[["queue", "kind", "ready", "in_flight", "delayed", "dead", "depth"]].to_dict(
        "records") == [
        {"queue": "a", "kind": "priority", "ready": 1, "in_flight": 2, "delayed": 3, "dead": 4,
         "depth": given[0].depth},
        {"queue": "b", "kind": "broadcast", "ready": 0, "in_flight": 0, "delayed": 0, "dead": 0,
         "depth": 0}]
    assert abs(frame["time"].iloc[0] - pd.Timestamp.now(tz="UTC")) < pd.Timedelta(seconds=30)
    mq.publish("live", "t", 1)
    assert stats_df(mq, ["live"])[["queue", "ready"]].to_dict("records") == [
        {"queue": "live", "ready": 1}]


def test_health_rows_come_worst_first_with_the_report_s_time() -> None:
    report = HealthReport([HealthCheck("a", "ok", "t1", "1", "m1"),
                           HealthCheck("b", "critical", "t2", "2", "m2"),
                           HealthCheck("c", "warn", "t3", "3", "m3"),
                           HealthCheck("d", "odd", "t4", "4", "m4")], checked_at=1_800_000_000.5)
    frame = health_df(None, report=report)  # type: ignore[arg-type]
    assert frame["check"].tolist() == ["b", "c", "a", "d"]
    assert frame["status"].tolist() == ["critical", "warn", "ok", "odd"]
    assert frame.iloc[0][["target", "value", "message"]].tolist() == ["t2", "2", "m2"]
    assert (frame["checked_at"] == _ts(1_800_000_000_500)).all()


def test_health_rows_of_a_live_check(mq: pn.MessageQueue) -> None:
    mq.declare("q")
    mq.declare("other")
    frame = health_df(mq, ["q"], thresholds=HealthThresholds(depth_warn=-1))
    assert frame["status"].iloc[0] == "warn" and "queue depth" in frame["check"].tolist()
    assert "other" not in set(frame["target"]) and "q" in set(frame["target"])
    mq.pause("q")
    paused = health_df(mq, ["q"])
    [message] = paused.loc[paused["check"] == "paused", "message"].tolist()
    assert message.endswith("in the last 300 s")


# -- dead letters, audit, consumers ----------------------------------------------------------

def test_dead_letter_rows_without_payloads_and_for_undecodable_entries(
        mq: pn.MessageQueue) -> None:
    def reject(message: pn.Envelope, context: pn.MessageContext) -> None:
        raise pn.Reject("schema_invalid" if message.payload == 1 else "other")

    mq.subscribe("bad", "*", reject)
    producer = pn.connect(None if mq.embedded else mq.settings.redis.url,
                          key_prefix=mq.keys.prefix, settings=mq.settings)
    producer.origin = "feed-1"
    first = producer.publish("bad", "ioc", 1, priority="LOW", tlp="AMBER")
    mq.publish("bad", "ioc", 2)
    mq.client.xadd(mq.queue_keys("bad").stream(2), {"m": b"\x01garbage"})
    with mq.worker():
        assert eventually(lambda: mq.stats(["bad"])[0].dead == 3)
    frame = dlq_df(mq, "bad")
    assert len(frame) == 3 and frame["decodable"].tolist().count(False) == 1
    row = frame.set_index("message_id").loc[first]
    assert (row["type"], row["priority"], row["reason"], row["tlp"]) == ("ioc", "LOW",
                                                                        "schema_invalid", "AMBER")
    assert row["attempts"] == 1 and pd.notna(row["trace_id"]) and pd.notna(row["created_at"])
    [letter] = mq.dlq("bad").list(message_id=first)
    assert (row["origin"], row["error_type"], row["error"], row["consumer"], row["group"]) == (
        "feed-1", letter.error_type, letter.error, letter.consumer, letter.group)
    assert row["consumer"] and row["group"] and row["error_type"]
    assert row["first_failure_at"] == _ts(letter.first_failure_ms)
    assert row["dead_at"] == _ts(letter.last_failure_ms)
    broken = frame[~frame["decodable"]].iloc[0]
    assert pd.isna(broken["created_at"]) and pd.isna(broken["tlp"]) and pd.isna(
        broken["origin"])
    assert broken["decode_error"] and broken["reason"] == "decode_failed"
    assert dlq_df(mq, "bad", reason="other")["reason"].tolist() == ["other"]
    assert len(dlq_df(mq, "bad", limit=2)) == 2


def test_the_dead_letter_and_audit_frames_read_their_default_number_of_rows(
        real_mq: pn.MessageQueue) -> None:
    real_mq.declare("many")
    dlq, audit = real_mq.queue_keys("many").dlq, real_mq.keys.audit(real_mq.user)
    now_ms = int(time.time() * 1000)
    pipe = real_mq.client.pipeline(transaction=False)
    for i in range(1001):
        pipe.xadd(dlq, {"reason": "r", "message_id": f"m{i}", "raw": b""})
    for i in range(10_001):
        pipe.xadd(audit, {"actor": "a", "t": str(now_ms)}, id=f"{now_ms - 20_000 + i}-0")
    pipe.execute()
    assert len(dlq_df(real_mq, "many")) == 1000
    assert len(audit_df(real_mq)) == 10_000


def test_audit_rows_read_every_time_format_in_entry_order(mq: pn.MessageQueue) -> None:
    now_ms = int(time.time() * 1000)
    own, other = mq.keys.audit(mq.user), mq.keys.audit("someone-else")
    base = {"actor": "ana", "role": "analyst", "action": "replay", "target": "q",
            "outcome": "ok"}
    mq.client.xadd(own, {**base, "time": "soon"}, id=f"{now_ms - 5}-0")
    mq.client.xadd(own, {**base, "t": str(now_ms), "ids": "a,b,c"}, id=f"{now_ms}-1")
    mq.client.xadd(other, {**base, "time": str(now_ms / 1000), "count": "9"}, id=f"{now_ms}-0")
    mq.client.xadd(own, {**base, "time": "2024-05-01T12:00:00"}, id=f"{now_ms}-2")
    mq.client.xadd(own, {**base, "message_id": "m1", "kind": "checkpoint"}, id=f"{now_ms}-3")
    mq.client.xadd(own, {**base, "message_id": "m1", "detail": "x"}, id=f"{now_ms}-4")
    frame = audit_df(mq, window="1h")
    assert frame["entry_id"].tolist() == [f"{now_ms - 5}-0", f"{now_ms}-0", f"{now_ms}-1",
                                          f"{now_ms}-2", f"{now_ms}-4"]
    assert frame["time"].tolist()[:2] == [_ts(now_ms - 5), _ts(now_ms)]
    assert frame["time"].iloc[2] == _ts(now_ms)
    assert frame["time"].iloc[3] == pd.Timestamp("2024-05-01T12:00:00Z")  # naive: UTC
    assert frame["count"].tolist() == [0, 9, 3, 0, 1]
    assert frame["message_id"].iloc[2] == "a,b,c" and frame["message_id"].iloc[4] == "m1"
    assert pd.isna(frame["message_id"].iloc[3])
    assert frame["detail"].iloc[4] == "x" and pd.isna(frame["detail"].iloc[0])
    assert frame["actor"].tolist() == ["ana"] * 5
    assert len(audit_df(mq, window=None, limit=2)) == 2
    assert audit_df(mq, window=None)["entry_id"].tolist() == frame["entry_id"].tolist()


@pytest.mark.parametrize(("t", "ms"), [
    ("100000000000.5", 100000000000.5),  # just above 1e11: milliseconds (March 1973)
    ("1700000000", 1.7e12), ("1700000000123", 1.7e12 + 123)])
def test_an_audit_time_above_1e11_is_milliseconds_and_below_is_seconds(
        mq: pn.MessageQueue, t: str, ms: float) -> None:
    mq.client.xadd(mq.keys.audit(mq.user), {"actor": "a", "t": t})
    assert audit_df(mq, window=None)["time"].tolist() == [_ts(ms)]


def test_audit_rows_sort_by_entry_id_numerically_across_streams(mq: pn.MessageQueue) -> None:
    mq.client.xadd(mq.keys.audit(mq.user), {"actor": "later", "t": "1"}, id="1000-0")
    mq.client.xadd(mq.keys.audit("other"), {"actor": "earlier", "t": "1"}, id="999-0")
    mq.client.xadd(mq.keys.audit("other"), {"actor": "last", "t": "1"}, id="1000-1")
    assert audit_df(mq, window=None)["actor"].tolist() == ["earlier", "later", "last"]


def test_audit_rows_outside_the_window_are_left_out(mq: pn.MessageQueue) -> None:
    now_ms = int(time.time() * 1000)
    mq.client.xadd(mq.keys.audit(mq.user), {"actor": "old", "t": "1"}, id=f"{now_ms - 7_200_000}-0")
    mq.client.xadd(mq.keys.audit(mq.user), {"actor": "new", "t": str(now_ms)})
    assert audit_df(mq, window="1h")["actor"].tolist() == ["new"]
    assert audit_df(mq, window=None)["actor"].tolist() == ["old", "new"]
    assert audit_df(mq, window=None)["time"].iloc[0] == _ts(1000)  # "t": 1 is seconds


def test_consumer_rows_are_sorted_and_stale_when_old_or_never_seen(mq: pn.MessageQueue) -> None:
    now = float(int(time.time()))
    beats: dict[str, dict[str, Any]] = {
        "w-b": {"last_seen": now - 31, "started": now - 100, "handled": 3},
        "w-a": {"last_seen": now - 30, "queues": ["q1", "q2"], "groups": ["g"]},
        "w-c": {"pid": 9}}
    mq.client.sadd(mq.keys.heartbeat_index, mq.user)
    for name, beat in beats.items():
        mq.client.hset(mq.keys.heartbeats(mq.user), name, orjson.dumps({"consumer": name,
                                                                        **beat}))
    mq.client.hset(mq.keys.heartbeats(mq.user), "w-d", orjson.dumps(
        {"consumer": "w-d", "last_seen": now - 30.5, "groups": ["g1", "g2"]}))
    by_default = consumers_df(mq, now=now).set_index("consumer")
    assert by_default.loc["w-d", "stale"] and not by_default.loc["w-a", "stale"]  # 30 s
    assert by_default.loc["w-d", "groups"] == "g1, g2"
    mq.client.hdel(mq.keys.heartbeats(mq.user), "w-d")
    frame = consumers_df(mq, stale_after_s=30, now=now)
    assert frame["consumer"].tolist() == ["w-a", "w-b", "w-c"]
    assert frame["stale"].tolist() == [False, True, True]
    assert frame["age_s"].tolist()[:2] == [30.0, 31.0] and pd.isna(frame["age_s"].iloc[2])
    assert frame["queues"].tolist() == ["q1, q2", "", ""]
    assert frame["groups"].iloc[0] == "g" and frame["pid"].iloc[2] == 9
    assert frame["started"].iloc[1] == _ts((now - 100) * 1000)
    assert pd.isna(frame["started"].iloc[0]) and pd.isna(frame["last_seen"].iloc[2])
    assert frame["handled"].iloc[1] == 3


# -- edges of the message rows ---------------------------------------------------------------

def test_a_ready_entry_without_a_message_field_is_an_empty_undecodable_one(
        mq: pn.MessageQueue) -> None:
    mq.declare("q")
    mq.client.xadd(mq.queue_keys("q").stream(2), {"x": "1"})
    [row] = messages_df(mq, "q", columns="all").to_dict("records")
    assert row["error"] == "decode_failed: envelope truncated (0 bytes)"
    assert pd.notna(row["stream_id"]) and pd.isna(row["id"])


def test_the_compact_frame_keeps_the_id_and_state_columns_when_no_row_has_an_id(
        mq: pn.MessageQueue) -> None:
    mq.declare("q")
    mq.client.xadd(mq.queue_keys("q").stream(2), {"m": b"\x01garbage"})
    compact = messages_df(mq, "q")
    assert list(compact.columns)[:2] == ["id", "state"] and "indicator" not in compact.columns
    assert pd.isna(compact["id"].iloc[0]) and compact["state"].tolist() == ["ready"]


def test_a_long_id_without_a_dash_is_shown_whole_in_the_compact_frame(
        mq: pn.MessageQueue) -> None:
    mq.declare("q")
    mq.client.xadd(mq.queue_keys("q").stream(2),
                   {"m": _raw({"id": "feedfacecafebeef", "t": "t", "p": 2})})
    assert messages_df(mq, "q")["id"].tolist() == ["feedfacecafebeef"]  # 16 characters


def test_the_age_of_a_message_is_in_seconds_rounded_to_a_tenth(
        mq: pn.MessageQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    import phantom_notebook.notebook.frames as frames

    now_s = 1_800_000_000.0
    monkeypatch.setattr(frames, "time", SimpleNamespace(time=lambda: now_s))
    mq.declare("q")
    stream = mq.queue_keys("q").stream(2)
    for made_ms in (now_s * 1000 - 100_449, now_s * 1000 + 5_000):  # 100.449 s ago, in 5 s
        mq.client.xadd(stream, {"m": _raw({"id": "m", "t": "t", "p": 2, "c": made_ms})})
    assert messages_df(mq, "q", columns="all")["age_s"].tolist() == [100.4, 0.0]


def test_the_messages_frame_reads_a_thousand_rows_by_default(mq: pn.MessageQueue) -> None:
    mq.declare("later")
    mq.client.zadd(mq.queue_keys("later").delayed, {f"x{n}": n for n in range(1001)})
    assert len(messages_df(mq, "later", state="delayed", columns="all")) == 1000


def test_an_empty_indicator_value_is_no_indicator(mq: pn.MessageQueue) -> None:
    mq.publish("q", "t", {"ioc": {"type": "domain", "value": ""}})
    [row] = messages_df(mq, "q", columns="all").to_dict("records")
    assert pd.isna(row["indicator"]) and row["ioc_type"] == "domain"


def test_a_payload_with_keys_that_are_not_text_is_previewed_with_text_keys(
        mq: pn.MessageQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    mq.publish("q", "t", {"a": 1})
    plain = mq.codec

    class IntKeys:  # a custom codec (MessageQueue(codec=...)) may decode other formats
        def open(self, raw: bytes) -> pn.Envelope:
            return dataclasses.replace(plain.open(raw), payload={1: "one", "b": {2: 3}})

    monkeypatch.setattr(mq, "codec", IntKeys())
    [row] = messages_df(mq, "q", columns="all").to_dict("records")
    assert row["payload"] == '{"1":"one","b":{"2":3}}' and pd.isna(row["error"])


def test_an_undecodable_message_made_past_the_time_range_still_gets_its_row(
        mq: pn.MessageQueue) -> None:
    mq.declare("q")
    mq.client.xadd(mq.queue_keys("q").stream(2),
                   {"m": _raw({"id": "m1", "t": "t", "p": 2, "c": 1e17}, b"x")})
    [row] = messages_df(mq, "q", columns="all").to_dict("records")
    assert row["id"] == "m1" and pd.isna(row["created_at"]) and pd.notna(row["error"])


# -- edges of the trace and audit rows -------------------------------------------------------

def test_a_queue_s_trace_shows_its_newest_200_entries_by_default(mq: pn.MessageQueue) -> None:
    mid = mq.publish("q", "t", 1)
    trace = mq.queue_keys("q").trace
    [(_, fields)] = mq.client.xrange(trace)
    pipe = mq.client.pipeline(transaction=False)
    for _ in range(200):
        pipe.xadd(trace, fields)
    pipe.execute()
    assert len(trace_df(mq, queue="q")) == 200
    assert len(trace_df(mq, queue="q", count=201)) == 201
    assert set(trace_df(mq, queue="q")["message_id"]) == {mid}


def test_a_message_s_trace_is_its_own_even_when_a_queue_is_named(mq: pn.MessageQueue) -> None:
    first, second = mq.publish("q", "t", 1), mq.publish("q", "t", 2)
    assert trace_df(mq, first, queue="q")["message_id"].tolist() == [first]
    assert trace_df(mq, trace_id=str(trace_df(mq, second)["trace_id"].iloc[0]),
                    queue="q")["message_id"].tolist() == [second]


def test_a_message_s_trace_is_searched_only_in_the_queues_given(mq: pn.MessageQueue) -> None:
    mid = mq.publish("a", "t", 1)
    mq.declare("b")
    assert trace_df(mq, mid, queues=["b"]).empty
    assert trace_df(mq, mid, queues=["a"])["message_id"].tolist() == [mid]
    assert trace_df(mq, mid)["message_id"].tolist() == [mid]


@pytest.mark.parametrize(("t", "expected"), [
    ("100000000000", pd.NaT),  # exactly 1e11 is seconds: year 5138, past the time range
    ("9223372036", _ts(9_223_372_036_000)),  # seconds up to 2262-04-11 still fit
    ("9223372037", pd.NaT)])
def test_an_audit_time_of_at_most_1e11_is_seconds_and_past_the_range_missing(
        mq: pn.MessageQueue, t: str, expected: Any) -> None:
    mq.client.xadd(mq.keys.audit(mq.user), {"actor": "a", "t": t})
    [got] = audit_df(mq, window=None)["time"].tolist()
    assert got is pd.NaT if expected is pd.NaT else got == expected


def test_an_audit_time_past_the_range_in_iso_form_falls_back_to_the_entry_id(
        mq: pn.MessageQueue) -> None:
    mq.client.xadd(mq.keys.audit(mq.user), {"actor": "a", "time": "3000-01-01"}, id="5000-0")
    assert audit_df(mq, window=None)["time"].tolist() == [_ts(5000)]
