"""Request/reply: a handler's return value comes back to the requester, sealed like a
message, with its failure, TLP and TTL; plain publishes keep today's behaviour."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest
import redis

import phantom_notebook as pn
from phantom_notebook.core.testing import wait_until

KEY = base64.b64encode(os.urandom(32)).decode()
OTHER = base64.b64encode(os.urandom(32)).decode()


def _verdict(message: Any, context: pn.MessageContext) -> dict[str, Any]:
    return {"ioc": message.payload["ioc"], "verdict": "malicious", "attempt": context.attempt}


async def _async_verdict(message: Any, context: pn.MessageContext) -> dict[str, Any]:
    return {"ioc": message.payload["ioc"], "verdict": "benign"}


def test_a_request_returns_the_sync_handlers_value(mq: pn.MessageQueue) -> None:
    mq.subscribe("ioc-enrich", "*", _verdict)
    with mq.worker():
        pending = mq.request("ioc-enrich", "ioc.enrichment.request", {"ioc": "198.51.100.7"})
        assert pending.result(timeout=10) == {"ioc": "198.51.100.7", "verdict": "malicious",
                                              "attempt": 1}
    assert pending.done and pending.progress == pn.Progress(1.0, "done",
                                                            pending.get().finished_ms)


def test_a_request_returns_the_async_handlers_value(mq: pn.MessageQueue) -> None:
    mq.subscribe("ioc-enrich", "*", _async_verdict)
    with mq.worker():
        pendings = mq.request_batch("ioc-enrich", [("ioc.enrichment.request", {"ioc": v})
                                                   for v in ("a.example", "b.example")])
        values = [p.result(timeout=10) for p in pendings]
    assert values == [{"ioc": "a.example", "verdict": "benign"},
                      {"ioc": "b.example", "verdict": "benign"}]


def test_a_failed_request_raises_the_handlers_failure_with_its_dlq_reason(
        mq: pn.MessageQueue) -> None:
    def broken(message: Any, context: Any) -> None:
        raise pn.Reject("feed says unknown indicator type")

    mq.subscribe("ioc-enrich", "*", broken)
    with mq.worker():
        pending = mq.request("ioc-enrich", "ioc.enrichment.request", {"ioc": "x"})
        with pytest.raises(pn.TaskFailedError) as caught:
            pending.result(timeout=10)
    assert caught.value.reason == "feed says unknown indicator type"
    assert caught.value.error_type == "Reject"
    assert caught.value.message_id == pending.id
    dead = mq.dlq("ioc-enrich").list()
    assert [d.envelope.id for d in dead] == [pending.id]


def test_a_handler_that_keeps_failing_fails_its_request_once_retries_are_spent(
        mq: pn.MessageQueue) -> None:
    def flaky(message: Any, context: Any) -> None:
        raise TimeoutError("enrichment API timed out")

    mq.declare("ioc-enrich", retry=pn.RetrySettings(max_retries=1, initial_delay_s=0.01))
    mq.subscribe("ioc-enrich", "*", flaky)
    with mq.worker():
        result = mq.request("ioc-enrich", "ioc.enrichment.request", {"ioc": "x"}).get(10)
    assert not result.ok and result.error_type == "TimeoutError"
    assert result.error == "enrichment API timed out" and result.reason


def test_a_return_value_that_cannot_be_stored_dead_letters_the_request(
        mq: pn.MessageQueue) -> None:
    mq.subscribe("ioc-enrich", "*", lambda m, c: {"when": object()})
    with mq.worker():
        result = mq.request("ioc-enrich", "ioc.enrichment.request", {"ioc": "x"}).get(10)
    assert not result.ok and result.reason == "result_invalid"
    assert [d.reason for d in mq.dlq("ioc-enrich").list()] == ["result_invalid"]


def test_a_result_expires_after_its_result_ttl(mq: pn.MessageQueue) -> None:
    mq.subscribe("ioc-enrich", "*", _verdict)
    with mq.worker():
        pending = mq.request("ioc-enrich", "ioc.enrichment.request", {"ioc": "x"},
                             result_ttl=0.3)
        assert pending.result(timeout=10)["verdict"] == "malicious"
        ttl = mq.client.pttl(pending.key)
    # stored with the result's TTL (or, on a slow machine, expired already: -2), never kept
    assert ttl <= 300 and ttl != -1
    assert wait_until(lambda: mq.results([pending.id], "ioc-enrich")[pending.id] is None,
                      timeout_s=5)


def test_the_result_carries_the_requests_tlp_or_the_stricter_one_the_handler_chose(
        mq: pn.MessageQueue) -> None:
    def stricter(message: Any, context: pn.MessageContext) -> str:
        context.result_tlp = message.payload["label"]
        return "seen"

    mq.subscribe("ioc-enrich", "*", stricter)
    with mq.worker():
        raised = mq.request("ioc-enrich", "t", {"label": "RED"}, tlp="AMBER").get(10)
        kept = mq.request("ioc-enrich", "t", {"label": "CLEAR"}, tlp="AMBER").get(10)
    assert (raised.tlp, kept.tlp) == ("RED", "AMBER")
    assert "seen" not in repr(raised)  # values never in reprs


def test_a_plain_publish_stores_no_result_even_when_the_handler_returns_one(
        mq: pn.MessageQueue) -> None:
    mq.subscribe("ioc-enrich", "*", _verdict)
    with mq.worker():
        mid = mq.publish("ioc-enrich", "ioc.enrichment.request", {"ioc": "x"})
        assert wait_until(lambda: mq.stats("ioc-enrich")[0].ready == 0
                          and mq.stats("ioc-enrich")[0].in_flight == 0, timeout_s=10)
    assert mq.results([mid], "ioc-enrich") == {mid: None}
    assert not list(mq.client.scan_iter(f"{mq.keys.prefix}:*:res:*"))


def test_user_code_cannot_forge_a_request_or_a_group_header(mq: pn.MessageQueue) -> None:
    for header in ("pn-reply", "pn-member", "pn-joined"):
        with pytest.raises(pn.ValidationError, match="reserved"):
            mq.publish("ioc-enrich", "t", {}, headers={header: "1"})


def test_requests_need_a_work_queue(mq: pn.MessageQueue) -> None:
    mq.declare("threat-apt", kind="broadcast")
    with pytest.raises(pn.ValidationError, match="broadcast"):
        mq.request("threat-apt", "t", {})


def test_no_result_in_time_raises_a_result_timeout(mq: pn.MessageQueue) -> None:
    pending = mq.request("ioc-enrich", "t", {})  # nobody consumes
    with pytest.raises(pn.ResultTimeoutError, match=pending.id):
        pending.result(timeout=0.2)


def test_awaiting_a_pending_result_gives_the_value(mq: pn.MessageQueue) -> None:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor
    mq.subscribe("ioc-enrich", "*", _verdict)
    with mq.worker(), ThreadPoolExecutor(1) as service:
        pending = mq.request("ioc-enrich", "t", {"ioc": "x"})
        # a service's own event loop (this thread may already run one: notebook tests)
        value = service.submit(asyncio.run, _await(pending)).result(timeout=20)
    assert value["verdict"] == "malicious"


async def _await(pending: pn.PendingResult) -> Any:
    return await pending


def test_results_are_sealed_and_unreadable_without_the_key(redis_url: str,
                                                            prefix: str) -> None:
    sealed = pn.connect(redis_url, key_prefix=prefix, settings=pn.Settings.from_dict(
        {"security": {"keys": f"k1:{KEY}"}}))
    sealed.subscribe("ioc-enrich", "*", _verdict)
    with sealed.worker():
        pending = sealed.request("ioc-enrich", "t", {"ioc": "203.0.113.99"}, tlp="RED")
        assert pending.result(timeout=10)["ioc"] == "203.0.113.99"
    raw = redis.Redis.from_url(redis_url).hget(pending.key, "v")
    assert raw and b"203.0.113.99" not in raw and b"malicious" not in raw
    stranger = pn.connect(redis_url, key_prefix=prefix, settings=pn.Settings.from_dict(
        {"security": {"keys": f"k9:{OTHER}"}}))
    with pytest.raises(pn.DecodeError, match="k1"):
        stranger.results([pending.id], "ioc-enrich")
    sealed.close()
    stranger.close()


def test_a_result_moved_onto_another_request_is_refused(mq: pn.MessageQueue) -> None:
    mq.subscribe("ioc-enrich", "*", _verdict)
    with mq.worker():
        first, second = mq.request_batch("ioc-enrich", [("t", {"ioc": "1"}), ("t", {"ioc": "2"})])
        first.result(timeout=10)
        second.result(timeout=10)
    mq.client.hset(second.key, "v", mq.client.hget(first.key, "v"))
    with pytest.raises(pn.DecodeError, match="not the result of"):
        mq.results([second.id], "ioc-enrich")


def test_a_handler_knows_whether_someone_waits_for_its_return_value(
        mq: pn.MessageQueue) -> None:
    seen: dict[str, bool] = {}

    def note(message: Any, context: pn.MessageContext) -> None:
        seen[message.payload["kind"]] = context.is_request

    mq.subscribe("ioc-enrich", "*", note)
    with mq.worker():
        mq.request("ioc-enrich", "t", {"kind": "request"}).result(timeout=10)
        mq.publish("ioc-enrich", "t", {"kind": "plain"})
        assert wait_until(lambda: "plain" in seen, timeout_s=10)
    assert seen == {"request": True, "plain": False}
