"""The dead-letter queue can be listed, filtered, inspected, replayed, purged and trimmed;
replays keep their lineage and are processed again, and nothing is ever read unpaged."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import phantom_notebook as pn
from phantom_notebook.core.admin.dlq import (
    PAGE,
    REPLAYED_FROM,
    REPLAYED_ORIGIN,
    DeadLetterNotFoundError,
    DeadLetterQueue,
)
from phantom_notebook.core.model.envelope import Envelope, new_id, new_traceparent, now_ms
from tests.support.collect import Collector, eventually
from tests.support.redis_server import RedisServer

DAY_MS = 24 * 3600 * 1000
JUNK = b"\x00\xffnot an envelope"


def sealed(mq: pn.MessageQueue, queue: str, type: str = "ioc.raw", payload: Any = None,
           priority: pn.MessagePriority = pn.MessagePriority.NORMAL, **fields: Any,
           ) -> tuple[str, bytes]:
    """A message id and the stored bytes of a fresh envelope."""
    env = Envelope(id=new_id(), type=type, queue=queue, payload=payload, priority=priority,
                   created_at_ms=now_ms(), traceparent=new_traceparent(), **fields)
    return env.id, mq.codec.seal(env, 1 << 20)


def bury(mq: pn.MessageQueue, queue: str, raw: bytes, *, reason: str = "bad",
         entry_id: str = "*", attempts: int = 1, client: Any = None) -> str:
    """Write one dead letter the way settle.lua does; returns its DLQ entry id."""
    mq.declare(queue)
    now = now_ms()
    sid = (client or mq.client).xadd(mq.queue_keys(queue).dlq, {
        "m": raw, "reason": reason, "error_type": "Reject", "error": f"said {reason}",
        "traceback": "Traceback ...", "attempts": attempts, "consumer": "c-1",
        "group": "workers", "first_failure_ms": now - 5, "last_failure_ms": now,
        "stream_id": "1-1"}, id=entry_id)
    return sid.decode() if isinstance(sid, bytes) else str(sid)


def stream_lengths(mq: pn.MessageQueue, queue: str) -> list[int]:
    return [mq.client.xlen(s) for s in mq.queue_keys(queue).streams]


def replayed_counter(mq: pn.MessageQueue, queue: str) -> int:
    pattern = f"{mq.queue_keys(queue).base}:m:*"
    return sum(int(mq.client.hget(k, "replayed") or 0) for k in mq.client.scan_iter(pattern))


# -- reading ----------------------------------------------------------------------------------


def test_list_shows_dead_letters_newest_first_with_their_details(mq: pn.MessageQueue) -> None:
    first, raw1 = sealed(mq, "intel", "ioc.raw", {"ioc": "a"}, pn.MessagePriority.HIGH)
    second, raw2 = sealed(mq, "intel", "ioc.enriched", {"ioc": "b"})
    id1 = bury(mq, "intel", raw1, reason="bad", attempts=3)
    id2 = bury(mq, "intel", raw2, reason="expired")
    dlq = DeadLetterQueue(mq, "intel")

    letters = dlq.list()

    assert [x.dlq_id for x in letters] == [id2, id1]
    assert [x.dlq_id for x in dlq.list(newest_first=False)] == [id1, id2]
    old = letters[1]
    assert (old.message_id, old.type, old.priority) == (first, "ioc.raw", pn.MessagePriority.HIGH)
    assert (old.reason, old.error_type, old.error, old.attempts) == ("bad", "Reject", "said bad", 3)
    assert (old.consumer, old.group, old.queue) == ("c-1", "workers", "intel")
    assert old.last_failure_ms - old.first_failure_ms == 5
    assert old.envelope is not None and old.envelope.payload == {"ioc": "a"}
    assert old.raw == raw1 and old.decodable
    assert letters[0].message_id == second
    assert len(dlq) == 2 and dlq.count() == 2
    assert dlq.list(limit=1) == letters[:1]


def test_list_filters_by_reason_type_pattern_and_message_id(mq: pn.MessageQueue) -> None:
    a, raw_a = sealed(mq, "intel", "ioc.raw")
    b, raw_b = sealed(mq, "intel", "ioc.enriched")
    c, raw_c = sealed(mq, "intel", "alert.high")
    bury(mq, "intel", raw_a, reason="bad")
    bury(mq, "intel", raw_b, reason="expired")
    bury(mq, "intel", raw_c, reason="bad")
    dlq = DeadLetterQueue(mq, "intel")

    def ids(**filters: Any) -> set[str | None]:
        return {x.message_id for x in dlq.list(**filters)}

    assert ids(reason="bad") == {a, c}
    assert ids(reason=["bad", "expired"]) == {a, b, c}
    assert ids(type_pattern="ioc.*") == {a, b}
    assert ids(type_pattern="ioc.*", reason="bad") == {a}
    assert ids(message_id=b) == {b}
    assert ids(message_id="01NOSUCHMESSAGE") == set()
    assert dlq.count(reason="bad") == 2
    assert dlq.count(type_pattern="alert.*") == 1


def test_list_filters_by_when_the_message_was_dead_lettered(mq: pn.MessageQueue) -> None:
    now = now_ms()
    hours = [bury(mq, "intel", sealed(mq, "intel")[1], entry_id=f"{now - h * 3600_000}-0")
             for h in (5, 3, 1)]
    dlq = DeadLetterQueue(mq, "intel")

    def window(**bounds: Any) -> list[str]:
        return [x.dlq_id for x in dlq.list(newest_first=False, **bounds)]

    assert window(since=timedelta(hours=2)) == hours[2:]
    assert window(since=datetime.fromtimestamp((now - 4 * 3600_000) / 1000, UTC)) == hours[1:]
    assert window(until=now - 3 * 3600_000) == hours[:1]  # until is exclusive
    assert window(since=now - 3 * 3600_000, until=now - 3600_000) == hours[1:2]
    with pytest.raises(pn.ValidationError, match="timezone-aware"):
        dlq.list(since=datetime(2020, 1, 1))


def test_get_finds_a_dead_letter_by_its_dlq_id_or_by_its_message_id(mq: pn.MessageQueue) -> None:
    mid, raw = sealed(mq, "intel")
    sid = bury(mq, "intel", raw)
    bury(mq, "intel", sealed(mq, "intel")[1])
    dlq = DeadLetterQueue(mq, "intel")

    assert dlq.get(sid) == dlq.get(mid)
    assert dlq.get(sid).message_id == mid
    assert dlq.get(mid).dlq_id == sid


def test_get_of_an_unknown_id_raises_dead_letter_not_found(mq: pn.MessageQueue) -> None:
    bury(mq, "intel", sealed(mq, "intel")[1])
    dlq = DeadLetterQueue(mq, "intel")
    for missing in ("1-1", "01HZZZZZZZZZZZZZZZZZZZZZZZ"):
        with pytest.raises(DeadLetterNotFoundError, match=f"no dead letter '{missing}'") as err:
            dlq.get(missing)
        assert isinstance(err.value, pn.ValidationError) and isinstance(err.value, KeyError)


def test_summary_counts_dead_letters_per_reason_most_frequent_first(
        mq: pn.MessageQueue) -> None:
    for reason in ("expired", "bad", "bad", "decode_failed", "bad", "expired"):
        bury(mq, "intel", sealed(mq, "intel")[1], reason=reason)
    summary = DeadLetterQueue(mq, "intel").summary()
    assert summary == {"bad": 3, "expired": 2, "decode_failed": 1}
    assert list(summary) == ["bad", "expired", "decode_failed"]
    assert DeadLetterQueue(mq, "empty").summary() == {}


def test_an_undecodable_dead_letter_is_listed_with_what_its_clear_header_gives(
        mq: pn.MessageQueue) -> None:
    mid, raw = sealed(mq, "intel", "ioc.raw", {"ioc": "x"}, pn.MessagePriority.LOW)
    broken = raw[:-3] + b"}}}"  # header intact, payload no longer JSON
    junk_id = bury(mq, "intel", JUNK, reason="decode_failed")
    broken_id = bury(mq, "intel", broken, reason="decode_failed")
    dlq = DeadLetterQueue(mq, "intel")

    junk, half = dlq.get(junk_id), dlq.get(broken_id)

    assert junk.envelope is None and not junk.decodable and junk.raw == JUNK
    assert (junk.message_id, junk.type, junk.priority) == (None, None, None)
    assert junk.decode_error is not None and junk.decode_error.startswith("decode_failed")
    assert (half.message_id, half.type, half.priority) == (mid, "ioc.raw",
                                                           pn.MessagePriority.LOW)
    assert dlq.list(type_pattern="ioc.*") == [half]
    assert half.to_dict()["envelope"] is None


def test_the_repr_of_a_dead_letter_hides_its_payload_error_and_raw_bytes(
        mq: pn.MessageQueue) -> None:
    secret = "hunter2-victim@example.org"
    _, raw = sealed(mq, "intel", "ioc.raw", {"credential": secret})
    mq.declare("intel")
    mq.client.xadd(mq.queue_keys("intel").dlq, {"m": raw, "reason": "bad", "error": secret,
                                                "traceback": secret})
    [letter] = DeadLetterQueue(mq, "intel").list()
    text = repr(letter)
    assert secret not in text and "credential" not in text and repr(raw) not in text
    assert "dlq_id=" in text and "reason='bad'" in text and "ioc.raw" in text
    assert letter.to_dict()["envelope"]["payload"] == {"credential": secret}
    assert "raw" not in letter.to_dict() and letter.to_dict()["raw_bytes"] == len(raw)


# -- replay -----------------------------------------------------------------------------------


def test_a_replayed_message_keeps_its_lineage_and_is_processed_by_a_fixed_handler(
        mq: pn.MessageQueue) -> None:
    fixed = threading.Event()

    def handler(message: pn.Envelope, context: pn.MessageContext) -> None:
        if not fixed.is_set():
            raise pn.Reject("bad")

    got = Collector(handler)
    original = mq.publish("intel", "ioc.raw", {"ioc": "evil.example"}, headers={"team": "a"},
                          priority=pn.MessagePriority.HIGH, ttl_s=3600)
    mq.subscribe("intel", "ioc.*", got)
    dlq = DeadLetterQueue(mq, "intel")
    with mq.worker():
        assert eventually(lambda: len(dlq) == 1)
        [letter] = dlq.list()
        assert (letter.reason, letter.message_id) == ("bad", original)
        fixed.set()
        [replayed] = dlq.replay(letter.dlq_id)  # one dead letter needs no confirm
        assert got.wait_for(1)
        assert eventually(lambda: mq.stats(["intel"])[0].depth == 0)
    [env] = got.envelopes
    dead = letter.envelope
    assert dead is not None
    assert env.id == replayed and replayed != original
    assert env.causation_id == original and env.correlation_id == original
    assert env.trace_id == dead.trace_id and env.traceparent != dead.traceparent
    assert env.attempt == 1 and env.payload == {"ioc": "evil.example"}
    assert env.priority == pn.MessagePriority.HIGH and env.type == "ioc.raw"
    assert env.headers == {"team": "a", REPLAYED_FROM: letter.dlq_id}
    assert env.expires_at_ms is not None and env.expires_at_ms - env.created_at_ms == 3600_000
    assert len(dlq) == 0 and mq.stats(["intel"])[0].dead == 0
    assert replayed_counter(mq, "intel") == 1


def test_a_replay_keeps_the_correlation_id_and_drops_bookkeeping_and_signature(
        mq: pn.MessageQueue) -> None:
    mid, raw = sealed(mq, "intel", attempt=4, correlation_id="case-42", origin="feed",
                      headers={"pn-first-failure-ms": "1", "pn-last-error": "ValueError: no",
                               "pn-sig": "c2lnbmVk", "src": "feed"})
    sid = bury(mq, "intel", raw)
    [new] = DeadLetterQueue(mq, "intel").replay(mid)  # a message id works too
    [(_, fields)] = mq.client.xrange(mq.queue_keys("intel").stream(2))
    env = mq.codec.open(fields[b"m"])
    assert env.id == new and env.attempt == 1
    assert (env.correlation_id, env.causation_id) == ("case-42", mid)
    assert env.origin == mq.origin  # whoever replays publishes the new message
    assert env.headers == {"src": "feed", REPLAYED_FROM: sid, REPLAYED_ORIGIN: "feed"}


def test_an_encrypted_signed_dead_letter_replays_into_a_verified_worker(
        mq: pn.MessageQueue) -> None:
    crypto = pytest.importorskip("phantom_notebook.core.security.sealing")
    from phantom_notebook.core.security.keyring import KeyRing, SecretKey

    ring = KeyRing([SecretKey("k1", os.urandom(32))])
    feed_key, analyst_key = os.urandom(32), os.urandom(32)
    verifier = crypto.OriginVerifier({"feed": feed_key, "analyst": analyst_key})
    mq.codec = crypto.SealingCodec(ring, crypto.OriginSigner("feed", feed_key), verifier)
    analyst = pn.MessageQueue(mq.client, mq.settings, origin="analyst", codec=crypto.SealingCodec(
        ring, crypto.OriginSigner("analyst", analyst_key), verifier))
    fixed = threading.Event()

    def handler(message: pn.Envelope, context: pn.MessageContext) -> None:
        if not fixed.is_set():
            raise pn.Reject("bad")

    got = Collector(handler)
    original = mq.publish("intel", "ioc.raw", {"ioc": "evil.example"})
    assert b"evil.example" not in mq.client.xrange(mq.queue_keys("intel").stream(2))[0][1][b"m"]
    mq.subscribe("intel", "*", got)
    dlq = DeadLetterQueue(analyst, "intel")
    with mq.worker():
        assert eventually(lambda: len(dlq) == 1)
        fixed.set()
        [replayed] = dlq.replay(original)
        assert got.wait_for(1)
    [env] = got.envelopes
    assert (env.id, env.causation_id, env.payload) == (replayed, original,
                                                       {"ioc": "evil.example"})
    assert env.origin == "analyst" and env.headers[REPLAYED_ORIGIN] == "feed"
    assert len(dlq) == 0


def test_replaying_several_dead_letters_requires_confirm(mq: pn.MessageQueue) -> None:
    sids = [bury(mq, "intel", sealed(mq, "intel")[1]) for _ in range(3)]
    dlq = DeadLetterQueue(mq, "intel")
    with pytest.raises(pn.ValidationError, match="replay of 3 dead letters .* confirm=True"):
        dlq.replay()
    with pytest.raises(pn.ValidationError, match="replay of 2 dead letters .* confirm=True"):
        dlq.replay(sids[:2])
    with pytest.raises(pn.ValidationError, match="ids or filters, not both"):
        dlq.replay(sids[:1], reason="bad")
    assert len(dlq) == 3 and stream_lengths(mq, "intel") == [0, 0, 0, 0]
    assert len(dlq.replay(sids[:2], confirm=True)) == 2
    assert len(dlq) == 1


def test_replaying_all_with_confirm_moves_each_to_its_priority_stream(
        mq: pn.MessageQueue) -> None:
    for prio in ("CRITICAL", "LOW", "LOW", "NORMAL"):
        bury(mq, "intel", sealed(mq, "intel", priority=pn.MessagePriority[prio])[1])
    dlq = DeadLetterQueue(mq, "intel")
    ids = dlq.replay(confirm=True)
    assert len(ids) == len(set(ids)) == 4
    assert stream_lengths(mq, "intel") == [1, 0, 1, 2]
    assert len(dlq) == 0 and replayed_counter(mq, "intel") == 4
    assert dlq.replay(confirm=True) == [] and dlq.replay() == []


def test_a_fifo_queue_replays_every_priority_into_its_single_stream(
        mq: pn.MessageQueue) -> None:
    mq.declare("orders", kind="fifo")
    for prio in (pn.MessagePriority.CRITICAL, pn.MessagePriority.LOW):
        bury(mq, "orders", sealed(mq, "orders", priority=prio)[1])
    assert len(DeadLetterQueue(mq, "orders").replay(confirm=True)) == 2
    assert stream_lengths(mq, "orders") == [0, 0, 2, 0]


def test_a_filtered_replay_moves_only_the_matching_dead_letters(mq: pn.MessageQueue) -> None:
    bury(mq, "intel", sealed(mq, "intel", "ioc.raw")[1], reason="bad")
    keep = bury(mq, "intel", sealed(mq, "intel", "alert.high")[1], reason="bad")
    bury(mq, "intel", sealed(mq, "intel", "ioc.enriched")[1], reason="bad")
    dlq = DeadLetterQueue(mq, "intel")
    assert len(dlq.replay(type_pattern="ioc.*", confirm=True)) == 2
    assert [x.dlq_id for x in dlq.list()] == [keep]


def test_replaying_undecodable_dead_letters_is_refused_unless_skipped(
        mq: pn.MessageQueue) -> None:
    bury(mq, "intel", sealed(mq, "intel")[1])
    junk = bury(mq, "intel", JUNK, reason="decode_failed")
    dlq = DeadLetterQueue(mq, "intel")
    with pytest.raises(pn.ValidationError, match=f"1 undecodable dead letter.*{junk}"):
        dlq.replay(confirm=True)
    with pytest.raises(pn.ValidationError, match="undecodable"):
        dlq.replay(junk)
    assert len(dlq) == 2 and stream_lengths(mq, "intel") == [0, 0, 0, 0]  # nothing written
    assert len(dlq.replay(confirm=True, skip_undecodable=True)) == 1
    assert [x.dlq_id for x in dlq.list()] == [junk]
    assert dlq.purge(junk) == 1 and len(dlq) == 0  # what cannot be replayed can be purged


def test_a_replay_into_a_full_queue_raises_queue_full_and_keeps_the_dead_letters(
        mq: pn.MessageQueue) -> None:
    mq.declare("tiny", max_queue_size=2)
    mq.publish_batch("tiny", [("t", 1), ("t", 2)])
    bury(mq, "tiny", sealed(mq, "tiny")[1])
    dlq = DeadLetterQueue(mq, "tiny")
    with pytest.raises(pn.QueueFullError, match="max_queue_size is 2"):
        dlq.replay(confirm=True)
    assert len(dlq) == 1 and sum(stream_lengths(mq, "tiny")) == 2


def test_a_dead_letter_purged_during_a_replay_is_not_replayed(mq: pn.MessageQueue) -> None:
    sids = [bury(mq, "intel", sealed(mq, "intel")[1]) for _ in range(2)]
    dlq = DeadLetterQueue(mq, "intel")

    class RacingCodec:
        """Seals as usual, but someone else purges the first dead letter meanwhile."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def open(self, raw: bytes) -> Envelope:
            return self.inner.open(raw)  # type: ignore[no-any-return]

        def seal(self, env: Envelope, max_payload_bytes: int) -> bytes:
            mq.client.xdel(mq.queue_keys("intel").dlq, sids[0])
            return self.inner.seal(env, max_payload_bytes)  # type: ignore[no-any-return]

    mq.codec = RacingCodec(mq.codec)
    replayed = dlq.replay(confirm=True)
    assert len(replayed) == 1 and sum(stream_lengths(mq, "intel")) == 1
    assert len(dlq) == 0 and replayed_counter(mq, "intel") == 1


# -- purge and retention ----------------------------------------------------------------------


def test_purging_a_filtered_set_needs_confirm_and_deletes_only_matches(
        mq: pn.MessageQueue) -> None:
    bury(mq, "intel", sealed(mq, "intel")[1], reason="expired")
    keep = bury(mq, "intel", sealed(mq, "intel")[1], reason="bad")
    bury(mq, "intel", JUNK, reason="expired")
    dlq = DeadLetterQueue(mq, "intel")
    with pytest.raises(pn.ValidationError, match="purge of 2 dead letters .* confirm=True"):
        dlq.purge(reason="expired")
    assert len(dlq) == 3
    assert dlq.purge(reason="expired", confirm=True) == 2
    assert [x.dlq_id for x in dlq.list()] == [keep]
    assert dlq.purge(reason="expired", confirm=True) == 0
    assert dlq.purge(keep) == 1 and len(dlq) == 0  # a single one needs no confirm


def test_trim_expired_removes_only_dead_letters_older_than_the_retention(
        mq: pn.MessageQueue) -> None:
    now = now_ms()
    bury(mq, "intel", sealed(mq, "intel")[1], entry_id=f"{now - 9 * DAY_MS}-0")
    bury(mq, "intel", sealed(mq, "intel")[1], entry_id=f"{now - 8 * DAY_MS}-0")
    week = bury(mq, "intel", sealed(mq, "intel")[1], entry_id=f"{now - 6 * DAY_MS}-0")
    fresh = bury(mq, "intel", sealed(mq, "intel")[1])
    dlq = DeadLetterQueue(mq, "intel")
    assert dlq.trim_expired() == 2  # default retention: 7 days
    assert [x.dlq_id for x in dlq.list()] == [fresh, week]
    assert dlq.trim_expired() == 0
    assert dlq.trim_expired(now_ms=now + 2 * DAY_MS) == 1
    assert [x.dlq_id for x in dlq.list()] == [fresh]


def test_trim_expired_follows_the_queue_s_dead_letter_ttl(mq: pn.MessageQueue) -> None:
    mq.declare("short", dead_letter_ttl_s=3600)
    now = now_ms()
    bury(mq, "short", sealed(mq, "short")[1], entry_id=f"{now - 2 * 3600_000}-0")
    fresh = bury(mq, "short", sealed(mq, "short")[1])
    dlq = DeadLetterQueue(mq, "short")
    assert dlq.trim_expired() == 1
    assert [x.dlq_id for x in dlq.list()] == [fresh]


# -- paging -----------------------------------------------------------------------------------


@pytest.fixture
def spied_reads(mq: pn.MessageQueue, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every COUNT the DLQ code passes to XRANGE / XREVRANGE (None = unbounded)."""
    counts: list[Any] = []
    for name in ("xrange", "xrevrange"):
        real = getattr(mq.client, name)

        def spy(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            counts.append(kwargs.get("count"))
            return _real(*args, **kwargs)

        monkeypatch.setattr(mq.client, name, spy)
    yield counts


def test_listing_counting_and_replaying_page_through_1200_dead_letters(
        mq: pn.MessageQueue, spied_reads: list[Any]) -> None:
    mq.declare("bulk", max_queue_size=None)
    pipe = mq.client.pipeline(transaction=False)
    mids = []
    for i in range(1200):
        mid, raw = sealed(mq, "bulk", "odd" if i % 2 else "even", {"n": i})
        mids.append(mid)
        bury(mq, "bulk", raw, reason=f"r{i % 3}", client=pipe)
    pipe.execute()
    dlq = DeadLetterQueue(mq, "bulk")

    everything = dlq.list(limit=None)
    assert [x.message_id for x in everything] == mids[::-1]
    assert [x.message_id for x in dlq.list(limit=700, newest_first=False)] == mids[:700]
    assert dlq.count(type_pattern="odd") == 600
    assert dlq.summary() == {"r0": 400, "r1": 400, "r2": 400}
    assert dlq.get(mids[3]).envelope is not None
    with pytest.raises(pn.ValidationError, match="replay of 400 dead letters"):
        dlq.replay(reason="r1")
    assert len(dlq.replay(reason="r1", confirm=True)) == 400
    assert dlq.purge(type_pattern="even", confirm=True) == 600 - 200
    assert dlq.count() == 1200 - 400 - 400
    assert spied_reads and all(c is not None and c <= PAGE for c in spied_reads)


def test_replaying_1200_dead_letters_is_one_function_call_per_500(own_server: RedisServer) -> None:
    mq = pn.connect(own_server.url, key_prefix="rp")
    try:
        mq.declare("bulk", max_queue_size=None)
        dlq = DeadLetterQueue(mq, "bulk")
        dlq.replay(bury(mq, "bulk", sealed(mq, "bulk")[1]))  # before the reset
        pipe = mq.client.pipeline(transaction=False)
        for _ in range(1200):
            bury(mq, "bulk", sealed(mq, "bulk")[1], client=pipe)
        pipe.execute()
        mq.client.config_resetstat()
        assert len(dlq.replay(confirm=True)) == 1200
        commands = mq.client.info("commandstats")
    finally:
        mq.client.close()
    assert commands["cmdstat_fcall"]["calls"] == 3
    assert not {"cmdstat_eval", "cmdstat_evalsha", "cmdstat_function|load"} & set(commands)
    assert commands["cmdstat_xadd"]["calls"] == 1200
    assert commands["cmdstat_xdel"]["calls"] == 1200
