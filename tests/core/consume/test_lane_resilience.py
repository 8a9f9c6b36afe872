"""A lane never dies: malformed entries, hostile headers, Redis errors, handlers that hang.

Each case used to stop a lane thread for good while the worker process stayed up.
"""

from __future__ import annotations

import dataclasses
import threading

import phantom_notebook as pn
from phantom_notebook.core.consume.settler import FIRST_FAILURE, first_failure_ms
from phantom_notebook.core.observe.consumers import read_heartbeats
from tests.support.collect import Collector, eventually


def _stats(mq: pn.MessageQueue, queue: str) -> pn.QueueStats:
    return mq.stats(queue)[0]


def _letters(mq: pn.MessageQueue, queue: str) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in mq.client.xrange(mq.queue_keys(queue).dlq)]


def test_an_entry_without_the_message_field_is_dead_lettered_with_its_raw_fields(
        mq: pn.MessageQueue) -> None:
    mq.declare("feed")
    stream = mq.queue_keys("feed").stream(2)
    mq.publish_batch("feed", [("t", i) for i in range(50)])
    mq.client.xadd(stream, {"data": b"\x00 from another producer", "source": "legacy"})
    mq.publish_batch("feed", [("t", i) for i in range(50, 100)])
    got = Collector()
    mq.subscribe("feed", "*", got)
    with mq.worker():
        assert got.wait_for(100), f"only {len(got.envelopes)} of 100 handled"
        assert eventually(lambda: _stats(mq, "feed").dead == 1)
    assert sorted(got.payloads) == list(range(100))
    [letter] = _letters(mq, "feed")
    assert letter[b"reason"] == b"decode_failed"
    assert b"legacy" in b"".join(letter.values()), "the raw fields are kept for inspection"
    assert _stats(mq, "feed").depth == 0


def test_a_foreign_encoding_in_the_message_field_is_dead_lettered_and_the_lane_goes_on(
        mq: pn.MessageQueue) -> None:
    mq.declare("feed")
    stream = mq.queue_keys("feed").stream(2)
    for junk in (b'{"json": "but not ours"}', "\u00e9t\u00e9".encode("latin-1"), b""):
        mq.client.xadd(stream, {"m": junk})
    mq.publish("feed", "t", "after the junk")
    got = Collector()
    mq.subscribe("feed", "*", got)
    with mq.worker():
        assert got.wait_for(1)
        assert eventually(lambda: _stats(mq, "feed").dead == 3)
    assert got.payloads == ["after the junk"]
    assert {letter[b"reason"] for letter in _letters(mq, "feed")} == {b"decode_failed"}


def test_a_garbage_retry_header_written_behind_the_api_is_ignored_not_fatal(
        mq: pn.MessageQueue) -> None:
    mq.declare("feed")
    mq.publish("feed", "t", "template")
    stream = mq.queue_keys("feed").stream(2)
    [(entry_id, fields)] = mq.client.xrange(stream)
    mq.client.xdel(stream, entry_id)
    template = mq.codec.open(fields[b"m"])
    hostile = dataclasses.replace(template, id=template.id[:-4] + "beef", payload="hostile",
                                  headers={FIRST_FAILURE: "not-a-number"})
    mq.client.xadd(stream, {"m": mq.codec.seal(hostile, 1 << 20)})
    mq.publish_batch("feed", [("t", i) for i in range(20)])
    failed_once = threading.Event()

    def fails_the_hostile_one_once(message: pn.Envelope, context: pn.MessageContext) -> None:
        if message.payload == "hostile" and not failed_once.is_set():
            failed_once.set()
            raise ConnectionError("downstream hiccup")

    got = Collector(fails_the_hostile_one_once)
    mq.subscribe("feed", "*", got, retry=pn.RetrySettings(initial_delay_s=0.01, jitter=0))
    with mq.worker():
        assert got.wait_for(21), f"{len(got.envelopes)} of 21 handled"
    assert failed_once.is_set() and "hostile" in got.payloads
    assert sorted(p for p in got.payloads if p != "hostile") == list(range(20))


def test_the_first_failure_header_is_parsed_defensively() -> None:
    env = pn.Envelope(id="0" * 32, type="t", queue="q", payload=1)
    for value, expected in (("1700000000000", 1700000000000), ("-5", 42), ("nan", 42),
                            ("1" * 40, 42), ("", 42)):
        assert first_failure_ms(dataclasses.replace(env, headers={FIRST_FAILURE: value}),
                                42) == expected
    assert first_failure_ms(None, 42) == 42


def test_a_redis_error_during_fetch_is_counted_and_retried_and_the_lane_recovers(
        mq: pn.MessageQueue) -> None:
    keys = mq.queue_keys("feed")
    mq.declare("feed")
    mq.publish("feed", "t", "waiting")
    mq.client.delete(keys.delayed)
    mq.client.set(keys.delayed, "not a sorted set")  # every fetch now fails with WRONGTYPE
    got = Collector()
    mq.subscribe("feed", "*", got)
    with mq.worker() as worker:
        assert eventually(lambda: worker.stats.lane_errors >= 2), "errors are retried"
        assert "WRONGTYPE" in (worker.stats.last_error or "")
        assert worker.failures() == [] and all(t.is_alive() for t in worker._lane_threads)
        assert eventually(lambda: any(
            "WRONGTYPE" in str(b.extra.get("last_error")) for b in read_heartbeats(mq)))
        mq.client.delete(keys.delayed)  # the operator repairs the key
        assert got.wait_for(1), "the lane carries on once Redis answers again"
    assert got.payloads == ["waiting"]


def test_a_sync_handler_that_hangs_is_timed_out_and_reported_while_others_carry_on(
        mq: pn.MessageQueue) -> None:
    release = threading.Event()
    hung: list[str] = []
    started: list[tuple[str, int]] = []

    def hangs_on_its_first_attempt(message: pn.Envelope, context: pn.MessageContext) -> None:
        started.append((message.id, message.attempt))
        if message.payload == "hangs" and message.attempt == 1:
            hung.append(message.id)
            release.wait(30)

    got = Collector(hangs_on_its_first_attempt)
    mq.subscribe("slow", "*", got, handler_timeout_s=0.3, max_concurrency=2,
                 retry=pn.RetrySettings(initial_delay_s=0.01, jitter=0))
    stuck_id = mq.publish("slow", "t", "hangs")
    try:
        with mq.worker() as worker:
            assert eventually(lambda: worker.stats.timed_out == 1, timeout_s=5)
            mq.publish_batch("slow", [("t", i) for i in range(5)])
            # the retry (attempt 2) runs on the free thread and succeeds
            assert eventually(lambda: (stuck_id, 2) in started, timeout_s=5)
            assert got.wait_for(6, timeout_s=5)
            assert eventually(lambda: any(
                b.extra.get("stuck") and b.extra["stuck"][0]["message_id"] == stuck_id
                for b in read_heartbeats(mq)))
            release.set()
    finally:
        release.set()
    assert hung == [stuck_id]
    assert [a for mid, a in started if mid == stuck_id] == [1, 2]
    final = _stats(mq, "slow")
    assert (final.depth, final.dead) == (0, 0), "the late return of attempt 1 changed nothing"


def test_a_handler_that_hangs_past_its_retries_is_dead_lettered_as_handler_timeout(
        mq: pn.MessageQueue) -> None:
    release = threading.Event()
    mq.subscribe("slow", "*", lambda m, c: release.wait(30), handler_timeout_s=0.2,
                 max_concurrency=3, retry=pn.RetrySettings(max_retries=1,
                                                           initial_delay_s=0.01, jitter=0))
    mq.publish("slow", "t", "always hangs")
    try:
        with mq.worker():
            assert eventually(lambda: _stats(mq, "slow").dead == 1, timeout_s=10)
            release.set()
    finally:
        release.set()
    [letter] = _letters(mq, "slow")
    assert letter[b"reason"] == b"handler_timeout"
    assert b"handler_timeout_s=0.2" in letter[b"error"]


def test_an_async_handler_past_its_timeout_is_cancelled(mq: pn.MessageQueue) -> None:
    import asyncio

    cancelled = threading.Event()

    async def sleeps_forever(message: pn.Envelope, context: pn.MessageContext) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    mq.subscribe("slow", "*", sleeps_forever, handler_timeout_s=0.2,
                 retry=pn.RetrySettings(max_retries=0))
    mq.publish("slow", "t", "x")
    with mq.worker():
        assert eventually(lambda: _stats(mq, "slow").dead == 1, timeout_s=10)
    assert cancelled.is_set()
    [letter] = _letters(mq, "slow")
    assert letter[b"reason"] == b"handler_timeout"
