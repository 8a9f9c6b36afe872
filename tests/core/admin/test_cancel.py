"""Cancelling a message by id in each state: ready, delayed and retrying ones are removed,
one in flight is asked to stop and is never retried, and each cancel is traced."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

import phantom_notebook as pn
from phantom_notebook.core.errors import Retry
from tests.support.collect import Collector, eventually


def traced(mq: pn.MessageQueue, queue: str, event: str) -> list[str]:
    """Message ids of the ``event`` trace entries of ``queue``."""
    out = []
    for _, fields in mq.client.xrange(mq.queue_keys(queue).trace):
        if fields.get(b"ev") == event.encode():
            out += [item.split("|")[0] for item in fields[b"m"].decode().split(";")]
    return out


def test_a_ready_message_is_removed_and_the_rest_are_delivered(mq: pn.MessageQueue) -> None:
    mq.declare("ioc-feed", kind="priority")
    ids = [mq.publish("ioc-feed", "ioc.raw", {"i": i}, priority=i % 4) for i in range(6)]

    assert mq.cancel("ioc-feed", ids[2]) == "cancelled"
    assert mq.cancel("ioc-feed", ids[2]) == "not_found"  # gone

    got = Collector()
    mq.subscribe("ioc-feed", "*", got)
    with mq.worker():
        assert got.wait_for(5)
    assert {e.id for e in got.envelopes} == set(ids) - {ids[2]}
    assert traced(mq, "ioc-feed", "cancelled") == [ids[2]]


def test_a_delayed_message_is_removed_before_it_comes_due(mq: pn.MessageQueue) -> None:
    mq.declare("ioc-later", kind="delayed")
    later = mq.publish("ioc-later", "ioc.raw", {"n": 1}, delay=timedelta(hours=1))
    keep = mq.publish("ioc-later", "ioc.raw", {"n": 2}, delay=timedelta(hours=1))

    assert mq.cancel("ioc-later", later) == "cancelled"

    assert mq.stats("ioc-later")[0].delayed == 1
    assert mq.cancel("ioc-later", keep) == "cancelled"
    assert mq.stats("ioc-later")[0].delayed == 0


def test_a_retrying_message_is_removed_while_it_waits_for_its_next_attempt(
        mq: pn.MessageQueue) -> None:
    mq.declare("ioc-flaky", kind="fifo")
    mid = mq.publish("ioc-flaky", "ioc.raw", {"n": 1})
    tried = threading.Event()

    def busy(message: pn.Envelope, context: pn.MessageContext) -> None:
        tried.set()
        raise Retry("provider busy", delay_s=3600)

    mq.subscribe("ioc-flaky", "*", busy)
    with mq.worker():
        assert tried.wait(10)
        assert eventually(lambda: mq.stats("ioc-flaky")[0].delayed == 1)

    assert mq.cancel("ioc-flaky", mid) == "cancelled"
    assert mq.stats("ioc-flaky")[0].depth == 0


def test_a_message_in_flight_is_asked_to_stop_and_is_not_retried(mq: pn.MessageQueue) -> None:
    mq.declare("ioc-sandbox", kind="fifo")
    mid = mq.publish("ioc-sandbox", "ioc.detonate", {"sample": "a" * 64})
    started, saw_cancel = threading.Event(), threading.Event()
    calls: list[int] = []

    def detonate(message: pn.Envelope, context: pn.MessageContext) -> None:
        calls.append(context.attempt)
        started.set()
        while not context.cancelled:  # a long job that checks in now and then
            if saw_cancel.wait(0.05):
                break
        saw_cancel.set()
        raise RuntimeError("stopped half way")  # would be retried, were it not cancelled

    mq.subscribe("ioc-sandbox", "*", detonate)
    with mq.worker():
        assert started.wait(10)
        assert mq.cancel("ioc-sandbox", mid) == "cancelling"
        assert saw_cancel.wait(10)
        assert eventually(lambda: mq.stats("ioc-sandbox")[0].depth == 0)

    assert calls == [1]
    assert mq.stats("ioc-sandbox")[0].dead == 0
    assert traced(mq, "ioc-sandbox", "cancel_requested") == [mid]


def test_only_a_role_that_manages_the_queue_may_cancel(mq: pn.MessageQueue, prefix: str) -> None:
    mq.declare("ioc-feed", kind="fifo")
    mid = mq.publish("ioc-feed", "ioc.raw", {"n": 1})
    url = None if mq.embedded else mq.settings.redis.url
    analyst = pn.connect(url, key_prefix=prefix,
                         settings=pn.Settings.from_dict({"security": {"role": "analyst"}}))

    with pytest.raises(pn.PermissionDeniedError, match="may not manage"):
        analyst.cancel("ioc-feed", mid)
    assert mq.stats("ioc-feed")[0].ready == 1


def test_an_unknown_id_is_reported_not_found(mq: pn.MessageQueue) -> None:
    mq.declare("ioc-feed", kind="fifo")
    mq.publish("ioc-feed", "ioc.raw", {"n": 1})

    assert mq.cancel("ioc-feed", "01a23a8c-0000-7000-8000-000000000000") == "not_found"
    assert mq.stats("ioc-feed")[0].ready == 1


def test_an_async_handler_in_flight_sees_the_cancel_too(mq: pn.MessageQueue) -> None:
    import asyncio

    mq.declare("ioc-async", kind="fifo")
    mid = mq.publish("ioc-async", "ioc.detonate", {"n": 1})
    started, saw = threading.Event(), threading.Event()

    async def detonate(message: pn.Envelope, context: pn.MessageContext) -> None:
        started.set()
        for _ in range(400):  # the job: up to 20 s of work, checking context.cancelled every 50 ms
            if context.cancelled:
                saw.set()
                return
            await asyncio.sleep(0.05)

    mq.subscribe("ioc-async", "*", detonate)
    with mq.worker():
        assert started.wait(10)
        assert mq.cancel("ioc-async", mid) == "cancelling"
        assert saw.wait(10)
        assert eventually(lambda: mq.stats("ioc-async")[0].depth == 0)
