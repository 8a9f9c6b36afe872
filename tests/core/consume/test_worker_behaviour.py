"""Workers keep their promises: bounded prefetch and concurrency, every handler shape, ack /
nack / reject, retries then dead letters, leases, expiry, junk bytes, full queues, dedup."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import phantom_notebook as pn
from phantom_notebook.core.model.envelope import decode
from tests.support.collect import Collector, eventually
from tests.support.redis_server import RedisServer

QUIET_S = 0.3  # how long "nothing more happens" is watched for


def stats(mq: pn.MessageQueue, queue: str) -> pn.QueueStats:
    return mq.stats([queue])[0]


def dead_letters(mq: pn.MessageQueue, queue: str) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in mq.client.xrange(mq.queue_keys(queue).dlq)]


def pending(mq: pn.MessageQueue, queue: str, group: str = "workers") -> int:
    return sum(mq.client.xpending(stream, group)["pending"]
               for stream in mq.queue_keys(queue).streams)


class Gate:
    """A handler that holds every message until released, counting who is inside."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.inside = 0
        self.max_inside = 0
        self.started = 0
        self.finished = 0
        self._cond = threading.Condition()

    def __call__(self, message: pn.Envelope, context: pn.MessageContext) -> None:
        with self._cond:
            self.started += 1
            self.inside += 1
            self.max_inside = max(self.max_inside, self.inside)
            self._cond.notify_all()
        self.release.wait(30)
        with self._cond:
            self.inside -= 1
            self.finished += 1
            self._cond.notify_all()

    def wait(self, predicate: Any, timeout_s: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout_s)


@contextmanager
def running(mq: pn.MessageQueue) -> Iterator[pn.Worker]:
    """A started worker, stopped on exit; an event loop it leaves open is closed here.

    The leak itself is pinned by ``test_stopping_a_worker_closes_its_async_event_loop``;
    closing it here keeps its ResourceWarning from failing whichever test runs next.
    """
    worker = mq.worker().start()
    try:
        yield worker
    finally:
        worker.stop()
        runner = worker._async
        if runner is not None and not runner.loop.is_closed():
            runner.loop.close()


# -- one round trip per batch -----------------------------------------------------------------


def test_publish_batch_of_500_is_one_function_call(own_server: RedisServer) -> None:
    mq = pn.connect(own_server.url, key_prefix="rt")
    try:
        mq.publish("bulk", "warm", {})  # declares the queue
        mq.client.config_resetstat()
        mq.publish_batch("bulk", [("ioc.raw", {"n": i}) for i in range(500)])
        commands = mq.client.info("commandstats")
    finally:
        mq.client.close()
    assert commands["cmdstat_fcall"]["calls"] == 1
    assert not {"cmdstat_eval", "cmdstat_evalsha", "cmdstat_function|load"} & set(commands)
    # all written by that one function call: 500 messages + 1 trace entry for the whole batch
    assert commands["cmdstat_xadd"]["calls"] == 501


# -- bounds -----------------------------------------------------------------------------------


def test_prefetch_count_bounds_the_messages_a_worker_holds(mq: pn.MessageQueue) -> None:
    gate = Gate()
    mq.publish_batch("bounded", [("t", i) for i in range(50)])
    mq.subscribe("bounded", "*", gate, prefetch_count=5, max_concurrency=5)
    worker = mq.worker().start()
    try:
        assert gate.wait(lambda g: g.started >= 5, 10)
        assert pending(mq, "bounded") == 5
        assert not gate.wait(lambda g: g.started > 5, QUIET_S)
        assert pending(mq, "bounded") == 5
        assert stats(mq, "bounded").ready == 45
        gate.release.set()
        assert gate.wait(lambda g: g.finished == 50, 10)
        assert eventually(lambda: stats(mq, "bounded").depth == 0)
    finally:
        gate.release.set()
        worker.stop()
    assert gate.max_inside == 5


def test_max_concurrency_bounds_the_handlers_running_at_once(mq: pn.MessageQueue) -> None:
    gate = Gate()
    mq.publish_batch("busy", [("t", i) for i in range(30)])
    mq.subscribe("busy", "*", gate, prefetch_count=20, max_concurrency=3)
    worker = mq.worker().start()
    try:
        assert gate.wait(lambda g: g.inside == 3, 10)
        assert eventually(lambda: pending(mq, "busy") == 20)  # prefetched, but waiting
        assert not gate.wait(lambda g: g.inside > 3, QUIET_S)
        gate.release.set()
        assert gate.wait(lambda g: g.finished == 30, 10)
    finally:
        gate.release.set()
        worker.stop()
    assert gate.max_inside == 3


# -- handler shapes ---------------------------------------------------------------------------


def function_handler(got: Collector) -> Any:
    def handle(message: pn.Envelope, context: pn.MessageContext) -> None:
        got(message, context)
    return handle


def async_function_handler(got: Collector) -> Any:
    async def handle(message: pn.Envelope, context: pn.MessageContext) -> None:
        got(message, context)
    return handle


def one_argument_handler(got: Collector) -> Any:
    def handle(message: pn.Envelope) -> None:
        got(message, _NoContext())  # type: ignore[arg-type]
    return handle


def async_one_argument_handler(got: Collector) -> Any:
    async def handle(message: pn.Envelope) -> None:
        got(message, _NoContext())  # type: ignore[arg-type]
    return handle


def class_handler(got: Collector) -> Any:
    class Enricher:
        def handle(self, message: pn.Envelope, context: pn.MessageContext) -> None:
            got(message, context)
    return Enricher()


def async_class_handler(got: Collector) -> Any:
    class Enricher:
        async def handle(self, message: pn.Envelope, context: pn.MessageContext) -> None:
            got(message, context)
    return Enricher()


def callable_object_handler(got: Collector) -> Any:
    class Enricher:
        def __call__(self, message: pn.Envelope, context: pn.MessageContext) -> None:
            got(message, context)
    return Enricher()


class _NoContext:
    delivery_count = 0


@pytest.mark.parametrize("make", [
    function_handler, async_function_handler, one_argument_handler,
    async_one_argument_handler, class_handler, async_class_handler, callable_object_handler,
])
def test_every_handler_shape_receives_every_message_and_acks_it(mq: pn.MessageQueue,
                                                                make: Any) -> None:
    got = Collector()
    mq.publish_batch("shapes", [("ioc.raw", i) for i in range(20)])
    mq.subscribe("shapes", "*", make(got))
    with running(mq):
        assert got.wait_for(20)
        assert eventually(lambda: stats(mq, "shapes").depth == 0)
    assert sorted(got.payloads) == list(range(20))


def test_async_handlers_run_concurrently_up_to_max_concurrency(mq: pn.MessageQueue) -> None:
    import asyncio

    state = {"inside": 0, "max": 0, "done": 0}
    cond = threading.Condition()
    release = asyncio.Event()

    async def handle(message: pn.Envelope, context: pn.MessageContext) -> None:
        with cond:
            state["inside"] += 1
            state["max"] = max(state["max"], state["inside"])
            cond.notify_all()
        await asyncio.wait_for(release.wait(), 30)
        with cond:
            state["inside"] -= 1
            state["done"] += 1
            cond.notify_all()

    mq.publish_batch("async", [("t", i) for i in range(12)])
    mq.subscribe("async", "*", handle, prefetch_count=12, max_concurrency=4)
    with running(mq) as worker:
        runner = worker._async
        assert runner is not None
        try:
            with cond:
                assert cond.wait_for(lambda: state["inside"] == 4, 10)
                assert not cond.wait_for(lambda: state["inside"] > 4, QUIET_S)
            runner.loop.call_soon_threadsafe(release.set)
            with cond:
                assert cond.wait_for(lambda: state["done"] == 12, 10)
        finally:
            runner.loop.call_soon_threadsafe(release.set)
    assert state["max"] == 4


def test_stopping_a_worker_closes_its_async_event_loop(mq: pn.MessageQueue) -> None:
    got = Collector()
    mq.subscribe("async", "*", async_function_handler(got))
    worker = mq.worker().start()
    mq.publish("async", "t", "one")
    assert got.wait_for(1)
    worker.stop()
    runner = worker._async
    assert runner is not None
    closed = runner.loop.is_closed()
    if not closed:
        runner.loop.close()  # do not leak it into the next test's warnings
    assert closed, "Worker.stop() leaves the async handlers' event loop (and its sockets) open"


# -- settling from the handler ----------------------------------------------------------------


def test_nack_with_requeue_redelivers_the_same_message_as_attempt_2(mq: pn.MessageQueue) -> None:
    def nack_first(message: pn.Envelope, context: pn.MessageContext) -> None:
        if context.attempt == 1:
            context.nack(requeue=True, delay_s=0)

    got = Collector(nack_first)
    first_id = mq.publish("nacks", "t", "again")
    mq.subscribe("nacks", "*", got)
    with mq.worker():
        assert got.wait_for(2)
        assert eventually(lambda: stats(mq, "nacks").depth == 0)
    assert [e.attempt for e in got.envelopes] == [1, 2]
    assert {e.id for e in got.envelopes} == {first_id}
    assert stats(mq, "nacks").dead == 0


def test_nack_without_requeue_dead_letters_the_message(mq: pn.MessageQueue) -> None:
    got = Collector(lambda m, c: c.nack(requeue=False))
    mq.publish("nacks", "t", "drop me")
    mq.subscribe("nacks", "*", got)
    with mq.worker():
        assert eventually(lambda: stats(mq, "nacks").dead == 1)
    assert len(got.envelopes) == 1
    assert dead_letters(mq, "nacks")[0][b"reason"] == b"nacked"


def test_reject_puts_the_message_in_the_dlq_with_the_given_reason(mq: pn.MessageQueue) -> None:
    got = Collector(lambda m, c: c.reject("bad"))
    mid = mq.publish("rejects", "ioc.raw", {"ioc": "evil.example"})
    mq.subscribe("rejects", "*", got)
    with mq.worker():
        assert eventually(lambda: stats(mq, "rejects").dead == 1)
    assert len(got.envelopes) == 1
    assert stats(mq, "rejects").depth == 0
    [letter] = dead_letters(mq, "rejects")
    assert letter[b"reason"] == b"bad"
    assert decode(letter[b"m"]).id == mid
    assert decode(letter[b"m"]).payload == {"ioc": "evil.example"}


def test_raising_reject_dead_letters_at_once_without_retrying(mq: pn.MessageQueue) -> None:
    calls: list[int] = []

    def refuse(message: pn.Envelope, context: pn.MessageContext) -> None:
        calls.append(context.attempt)
        raise pn.Reject("x")

    mq.publish("rejects", "t", "no")
    mq.subscribe("rejects", "*", refuse, retry=pn.RetrySettings(initial_delay_s=0, jitter=0))
    with mq.worker():
        assert eventually(lambda: stats(mq, "rejects").dead == 1)
    assert calls == [1]
    [letter] = dead_letters(mq, "rejects")
    assert letter[b"error_type"] == b"Reject"
    assert letter[b"error"] == b"x"
    assert letter[b"reason"] == b"x"
    assert letter[b"attempts"] == b"1"


def test_a_failing_handler_is_retried_max_retries_times_then_dead_lettered(
        mq: pn.MessageQueue) -> None:
    calls: list[int] = []

    def broken(message: pn.Envelope, context: pn.MessageContext) -> None:
        calls.append(context.attempt)
        raise ValueError("enrichment API said no")

    mq.publish("flaky", "t", "doomed")
    mq.subscribe("flaky", "*", broken,
                 retry=pn.RetrySettings(max_retries=2, initial_delay_s=0.01, jitter=0))
    with mq.worker():
        assert eventually(lambda: stats(mq, "flaky").dead == 1)
    assert calls == [1, 2, 3]
    assert stats(mq, "flaky").depth == 0
    [letter] = dead_letters(mq, "flaky")
    assert letter[b"reason"] == b"retries_exhausted"
    assert letter[b"error_type"] == b"ValueError"
    assert letter[b"error"] == b"enrichment API said no"
    assert letter[b"attempts"] == b"3"
    assert b"ValueError: enrichment API said no" in letter[b"traceback"]
    assert b"in broken" in letter[b"traceback"]


def test_a_handler_that_fails_once_succeeds_on_the_retry(mq: pn.MessageQueue) -> None:
    def flaky(message: pn.Envelope, context: pn.MessageContext) -> None:
        if context.attempt == 1:
            raise ConnectionError("timeout talking to VirusTotal")

    got = Collector(flaky)
    mq.publish("flaky", "t", "eventually fine")
    mq.subscribe("flaky", "*", got, retry=pn.RetrySettings(initial_delay_s=0.01, jitter=0))
    with mq.worker():
        assert got.wait_for(1)
        assert eventually(lambda: stats(mq, "flaky").depth == 0)
    assert [e.attempt for e in got.envelopes] == [2]
    assert got.envelopes[0].headers["pn-last-error"].startswith("ConnectionError")
    assert stats(mq, "flaky").dead == 0


def test_with_auto_ack_off_a_handler_that_acks_removes_the_message(mq: pn.MessageQueue) -> None:
    got = Collector(lambda m, c: c.ack())
    mq.publish_batch("manual", [("t", i) for i in range(3)])
    mq.subscribe("manual", "*", got, auto_ack=False)
    with mq.worker():
        assert got.wait_for(3)
        assert eventually(lambda: stats(mq, "manual").depth == 0)
    assert mq.client.xlen(mq.queue_keys("manual").stream(2)) == 0


def test_with_auto_ack_off_a_handler_that_does_not_ack_leaves_the_message_in_flight(
        mq: pn.MessageQueue) -> None:
    got = Collector()
    mq.publish("manual", "t", "keep me")
    mq.subscribe("manual", "*", got, auto_ack=False)
    with mq.worker():
        assert got.wait_for(1)
    after = stats(mq, "manual")
    assert (after.in_flight, after.ready, after.dead) == (1, 0, 0)


# -- leases -----------------------------------------------------------------------------------


def test_extending_the_lease_keeps_a_long_handler_s_message_from_a_second_worker(
        mq: pn.MessageQueue) -> None:
    mq.declare("slow", visibility_timeout_s=0.5)
    both_running = threading.Event()
    done = threading.Event()

    def long_job(message: pn.Envelope, context: pn.MessageContext) -> None:
        both_running.wait(10)
        until = time.monotonic() + 1.5  # three visibility timeouts
        while time.monotonic() < until and not done.wait(0.05):
            context.extend_lease()

    got = Collector(long_job)
    mq.subscribe("slow", "*", got)
    first, second = mq.worker(name="a").start(), mq.worker(name="b").start()
    try:
        mq.publish("slow", "t", "long")
        both_running.set()
        assert got.wait_for(1, timeout_s=10)
        assert not got.wait_for(2, timeout_s=QUIET_S)
        assert eventually(lambda: stats(mq, "slow").depth == 0)
    finally:
        done.set()
        first.stop()
        second.stop()
    assert got.delivery_counts == [1]
    assert stats(mq, "slow").dead == 0


def test_extend_lease_resets_the_idle_time_redis_reclaims_by(mq: pn.MessageQueue) -> None:
    mq.declare("lease", visibility_timeout_s=30)  # the worker's own renewal stays out of it
    idle_ms: list[int] = []

    def measure(message: pn.Envelope, context: pn.MessageContext) -> None:
        stream = mq.queue_keys("lease").stream(context.delivery.level)
        sid = context.delivery.stream_id

        def idle() -> int:
            [entry] = mq.client.xpending_range(stream, "workers", sid, sid, 1)
            return int(entry["time_since_delivered"])

        assert eventually(lambda: idle() >= 200, timeout_s=5)
        idle_ms.append(idle())
        context.extend_lease()
        idle_ms.append(idle())

    got = Collector(measure)
    mq.publish("lease", "t", "x")
    mq.subscribe("lease", "*", got)
    with mq.worker():
        assert got.wait_for(1)
    before, after = idle_ms
    assert before >= 200
    assert after < 100


# -- messages that must never reach a handler -------------------------------------------------


def test_an_expired_message_goes_to_the_dlq_and_never_to_a_handler(mq: pn.MessageQueue) -> None:
    stale = mq.publish("ttl", "t", "stale", ttl_s=0.05)
    [(_, fields)] = mq.client.xrange(mq.queue_keys("ttl").stream(2))
    expires_at_ms = decode(fields[b"m"]).expires_at_ms
    assert expires_at_ms is not None
    assert eventually(lambda: time.time() * 1000 > expires_at_ms + 1, timeout_s=2)
    fresh = mq.publish("ttl", "t", "fresh")
    got = Collector()
    mq.subscribe("ttl", "*", got)
    with mq.worker():
        assert got.wait_for(1)
        assert eventually(lambda: stats(mq, "ttl").dead == 1)
    assert [e.id for e in got.envelopes] == [fresh]
    [letter] = dead_letters(mq, "ttl")
    assert letter[b"reason"] == b"expired"
    assert decode(letter[b"m"]).id == stale
    assert stats(mq, "ttl").depth == 0


def test_bytes_that_are_not_an_envelope_go_to_the_dlq_and_the_worker_carries_on(
        mq: pn.MessageQueue) -> None:
    mq.declare("junk")
    junk = b"\x00\xffnot an envelope"
    mq.client.xadd(mq.queue_keys("junk").stream(2), {"m": junk})
    mq.publish("junk", "t", "good")
    got = Collector()
    mq.subscribe("junk", "*", got)
    with mq.worker():
        assert got.wait_for(1)
        assert eventually(lambda: stats(mq, "junk").dead == 1)
        mq.publish("junk", "t", "also good")
        assert got.wait_for(2)
    assert got.payloads == ["good", "also good"]
    [letter] = dead_letters(mq, "junk")
    assert letter[b"reason"] == b"decode_failed"
    assert letter[b"m"] == junk
    assert letter[b"error_type"] == b"DecodeError"
    assert stats(mq, "junk").depth == 0


# -- refusals at publish time -----------------------------------------------------------------


def test_a_batch_that_does_not_fit_raises_queue_full_and_writes_nothing(
        mq: pn.MessageQueue) -> None:
    mq.declare("tiny", max_queue_size=10)
    with pytest.raises(pn.QueueFullError, match="max_queue_size is 10"):
        mq.publish_batch("tiny", [("t", i) for i in range(11)])
    assert stats(mq, "tiny").depth == 0


def test_publishing_into_a_full_queue_raises_queue_full(mq: pn.MessageQueue) -> None:
    mq.declare("tiny", max_queue_size=10)
    mq.publish_batch("tiny", [("t", i) for i in range(10)])
    with pytest.raises(pn.QueueFullError, match="10 messages queued"):
        mq.publish("tiny", "t", 10)
    assert isinstance(pn.QueueFullError("x"), pn.PublishError)
    assert stats(mq, "tiny").depth == 10


def test_delayed_messages_count_towards_the_queue_size(mq: pn.MessageQueue) -> None:
    mq.declare("tiny", max_queue_size=2)
    mq.publish("tiny", "t", 1, delay=60)
    mq.publish("tiny", "t", 2)
    with pytest.raises(pn.QueueFullError):
        mq.publish("tiny", "t", 3)
    assert (stats(mq, "tiny").delayed, stats(mq, "tiny").ready) == (1, 1)


def test_a_duplicate_dedup_key_returns_the_first_id_and_writes_nothing(
        mq: pn.MessageQueue) -> None:
    first = mq.publish("dedup", "ioc.raw", {"ioc": "1.2.3.4"}, dedup_key="ioc:1.2.3.4")
    again = mq.publish("dedup", "ioc.raw", {"ioc": "1.2.3.4", "v": 2}, dedup_key="ioc:1.2.3.4")
    assert again == first
    assert stats(mq, "dedup").depth == 1


def test_a_duplicate_inside_one_batch_gets_the_first_id(mq: pn.MessageQueue) -> None:
    ids = mq.publish_batch("dedup", [pn.Message("t", 1, dedup_key="k"),
                                     pn.Message("t", 2, dedup_key="k"),
                                     pn.Message("t", 3, dedup_key="other")])
    assert ids[1] == ids[0]
    assert len(set(ids)) == 2
    assert stats(mq, "dedup").depth == 2
