"""Fan-out / fan-in: a callback runs once when its group is decided, with each member's
result; the failure semantics (on, min_success, fail_fast, ignore_failures) and chains."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import phantom_notebook as pn
from phantom_notebook.core.backend.records import JoinRecord
from phantom_notebook.core.consume.subscription import DEFAULT_GROUP
from phantom_notebook.core.model.envelope import now_ms
from phantom_notebook.core.results.join import read_join, record_members
from phantom_notebook.core.testing import wait_until
from phantom_notebook.notebook import trace_df


def _enrich(message: Any, context: Any) -> dict[str, Any]:
    p = message.payload
    if p.get("fail"):
        raise pn.Reject(f"{p['source']} has no record")
    if p.get("wait"):
        p_wait = _gates[p["wait"]]
        p_wait.wait(10)  # held until the test releases it
    return {"source": p["source"], "score": p.get("score", 0)}


_gates: dict[str, threading.Event] = {}
_callbacks: list[dict[str, Any]] = []


def _score(message: Any, context: pn.MessageContext) -> dict[str, Any]:
    join = context.join
    assert join is not None
    _callbacks.append({"group": join.group_id, "states": [m.state for m in join.members],
                       "values": join.values})
    return {"risk": sum(v["score"] for v in join.values), "sources": len(join.values)}


@pytest.fixture
def pipeline(mq: pn.MessageQueue) -> pn.MessageQueue:
    _callbacks.clear()
    for queue in ("ioc-vt", "ioc-otx", "ioc-whois"):
        mq.subscribe(queue, "*", _enrich, max_concurrency=4)
    mq.subscribe("threat-score", "*", _score)
    return mq


def _members(*specs: dict[str, Any]) -> list[pn.Task]:
    queues = ["ioc-vt", "ioc-otx", "ioc-whois"]
    return [pn.Task(queues[i], "ioc.enrichment.request", {"source": queues[i], **spec})
            for i, spec in enumerate(specs)]


SCORE = pn.Task("threat-score", "threat.analysis.request", {"ioc": "198.51.100.7"})


def test_the_callback_runs_once_with_every_members_result_in_member_order(
        pipeline: pn.MessageQueue) -> None:
    with pipeline.worker():
        g = pipeline.group(_members({"score": 40}, {"score": 30}, {"score": 5}), then=SCORE)
        assert g.result(timeout=10) == {"risk": 75, "sources": 3}
    assert _callbacks == [{"group": g.id, "states": ["ok", "ok", "ok"], "values": [
        {"source": "ioc-vt", "score": 40}, {"source": "ioc-otx", "score": 30},
        {"source": "ioc-whois", "score": 5}]}]
    assert g.state().status == "succeeded"
    assert [m.result(timeout=1)["source"] for m in g.members] == ["ioc-vt", "ioc-otx", "ioc-whois"]


def test_on_any_runs_the_callback_at_the_first_success_despite_a_failure(
        pipeline: pn.MessageQueue) -> None:
    _gates["slow"] = threading.Event()
    with pipeline.worker():
        g = pipeline.group(_members({"fail": True}, {"score": 9}, {"wait": "slow"}),
                           then=SCORE, on="any")
        assert g.result(timeout=10) == {"risk": 9, "sources": 1}
        _gates["slow"].set()
        assert wait_until(lambda: g.state().settled == 3, timeout_s=10)
    assert _callbacks[0]["states"][1] == "ok"
    assert len(_callbacks) == 1  # the late member settled without firing again


def test_min_success_two_of_three_succeeds_with_one_member_failing(
        pipeline: pn.MessageQueue) -> None:
    with pipeline.worker():
        g = pipeline.group(_members({"score": 1}, {"fail": True}, {"score": 2}), then=SCORE,
                           min_success=2)
        assert g.result(timeout=10) == {"risk": 3, "sources": 2}
    assert _callbacks[0]["states"] == ["ok", "failed", "ok"]
    failed = g.state().members[1]
    assert not failed.ok and failed.error == "Reject: ioc-otx has no record"


def test_a_group_short_of_min_success_dead_letters_its_callback(
        pipeline: pn.MessageQueue) -> None:
    with pipeline.worker():
        g = pipeline.group(_members({"score": 1}, {"fail": True}, {"fail": True}),
                           then=SCORE, min_success=2)
        with pytest.raises(pn.TaskFailedError) as caught:
            g.result(timeout=10)
    assert caught.value.reason == "group_failed"
    assert "1 of 3 members succeeded, 2 needed" in caught.value.error
    assert _callbacks == []  # the callback's handler never ran
    assert [d.reason for d in pipeline.dlq("threat-score").list()] == ["group_failed"]


def test_fail_fast_decides_at_the_first_failure_without_waiting_for_slow_members(
        pipeline: pn.MessageQueue) -> None:
    _gates["held"] = threading.Event()
    with pipeline.worker():
        g = pipeline.group(_members({"fail": True}, {"wait": "held"}, {"wait": "held"}),
                           then=SCORE, fail_fast=True)
        with pytest.raises(pn.TaskFailedError, match="group_failed"):
            g.result(timeout=10)
        assert g.state().settled == 1  # decided while two members still run
        _gates["held"].set()


def test_ignore_failures_runs_the_callback_even_when_every_member_failed(
        pipeline: pn.MessageQueue) -> None:
    with pipeline.worker():
        g = pipeline.group(_members({"fail": True}, {"fail": True}, {"fail": True}),
                           then=SCORE, ignore_failures=True)
        assert g.result(timeout=10) == {"risk": 0, "sources": 0}
    assert _callbacks[0]["states"] == ["failed", "failed", "failed"]


def test_a_count_group_fails_as_soon_as_the_count_cannot_be_reached(
        pipeline: pn.MessageQueue) -> None:
    _gates["never"] = threading.Event()
    with pipeline.worker():
        g = pipeline.group(_members({"fail": True}, {"fail": True}, {"wait": "never"}),
                           then=SCORE, on=2)
        with pytest.raises(pn.TaskFailedError, match="group_failed"):
            g.result(timeout=10)
        _gates["never"].set()


def test_a_member_nobody_handles_fails_as_timeout_at_the_groups_deadline(
        pipeline: pn.MessageQueue) -> None:
    members = [*_members({"score": 4}, {"score": 6}),
               pn.Task("ioc-unserved", "ioc.enrichment.request", {"source": "x"})]
    with pipeline.worker():
        g = pipeline.group(members, then=SCORE, min_success=2, timeout=0.5)
        assert g.result(timeout=10) == {"risk": 10, "sources": 2}
    state = g.state()
    assert [m.state for m in state.members] == ["ok", "ok", "timeout"]
    assert state.members[2].error == "no outcome before the group's deadline"


def test_a_member_recorded_twice_counts_once_and_the_callback_is_enqueued_once(
        mq: pn.MessageQueue) -> None:
    g = mq.group([pn.Task("ioc-vt", "t", {}), pn.Task("ioc-otx", "t", {})], then=SCORE)
    m0, m1 = g.members
    join_queue = g.state().queue
    sealed = b"x"
    twice = [JoinRecord(join_queue, g.id, 0, m0.id, "ok", sealed)] * 2
    assert record_members(mq, twice, now_ms(), "test") == [1, 0]
    assert record_members(mq, [JoinRecord(join_queue, g.id, 1, m0.id, "ok", sealed)],
                          now_ms(), "test") == [0]  # not member 1's message: refused
    assert record_members(mq, [JoinRecord(join_queue, g.id, 1, m1.id, "failed", sealed)] * 3,
                          now_ms(), "test") == [2, 0, 0]
    assert mq.stats("threat-score")[0].ready == 1
    assert read_join(mq, join_queue, g.id, open_results=False).status == "failed"


def test_a_chain_runs_its_steps_in_order_passing_each_result(mq: pn.MessageQueue) -> None:
    order: list[str] = []

    def step(message: Any, context: pn.MessageContext) -> list[str]:
        order.append(message.payload["name"])
        return [*(context.previous or []), message.payload["name"]]

    for queue in ("ioc-extract", "ioc-enrich", "threat-report"):
        mq.subscribe(queue, "*", step)
    with mq.worker():
        last = mq.chain([pn.Task("ioc-extract", "t", {"name": "extract"}),
                         pn.Task("ioc-enrich", "t", {"name": "enrich"}),
                         pn.Task("threat-report", "t", {"name": "report"})])
        assert last.result(timeout=10) == ["extract", "enrich", "report"]
    assert order == ["extract", "enrich", "report"]


def test_a_failed_step_stops_the_chain_and_fails_its_last_result(mq: pn.MessageQueue) -> None:
    ran: list[str] = []

    def step(message: Any, context: Any) -> str:
        ran.append(message.payload["name"])
        if message.payload["name"] == "enrich":
            raise pn.Reject("API key revoked")
        return "ok"

    for queue in ("ioc-extract", "ioc-enrich", "threat-report"):
        mq.subscribe(queue, "*", step)
    with mq.worker():
        last = mq.chain([pn.Task("ioc-extract", "t", {"name": "extract"}),
                         pn.Task("ioc-enrich", "t", {"name": "enrich"}),
                         pn.Task("threat-report", "t", {"name": "report"})])
        with pytest.raises(pn.TaskFailedError) as caught:
            last.result(timeout=10)
    assert ran == ["extract", "enrich"]
    assert caught.value.reason == "group_failed" and "API key revoked" in caught.value.error


def test_a_group_shares_one_trace_whose_members_name_the_group_as_their_cause(
        pipeline: pn.MessageQueue) -> None:
    with pipeline.worker():
        g = pipeline.group(_members({}, {}, {}), then=SCORE)
        g.result(timeout=10)
    frame = trace_df(pipeline, g.callback.id, queues=["threat-score"])
    trace_id = frame["trace_id"].iloc[0]
    whole = trace_df(pipeline, trace_id=trace_id)
    ids = set(whole["message_id"])
    assert {m.id for m in g.members} | {g.callback.id} <= ids
    assert "group_succeeded" in set(whole["event"])


@pytest.mark.parametrize(("options", "error"), [
    ({"on": 4}, "on must be"), ({"on": "any", "min_success": 1}, "go with on='all'"),
    ({"min_success": 5}, "min_success must be 0..3"), ({"timeout": 0}, "timeout"),
])
def test_impossible_group_semantics_are_refused_before_anything_is_written(
        mq: pn.MessageQueue, options: dict[str, Any], error: str) -> None:
    with pytest.raises(pn.ValidationError, match=error):
        mq.group(_members({}, {}, {}), then=SCORE, **options)
    assert not list(mq.client.scan_iter(f"{mq.keys.prefix}:*:join:*"))


def test_a_member_that_keeps_killing_its_worker_fails_its_group_without_waiting_for_the_deadline(
        mq: pn.MessageQueue) -> None:
    mq.declare("ioc-crash", max_deliveries=2, visibility_timeout_s=0.05)
    mq.ensure_group("ioc-crash")
    g = mq.group([pn.Task("ioc-crash", "t", {}), pn.Task("ioc-vt", "t", {"source": "vt"})],
                 then=SCORE, min_success=1, timeout=3600)
    keys = mq.queue_keys("ioc-crash")
    # two deliveries that never settle: what a worker SIGKILLed each time leaves behind
    for _ in range(2):
        assert wait_until(lambda: bool(mq.client.xreadgroup(
            DEFAULT_GROUP, "dies", {keys.stream(2): ">"}, count=1)) or bool(
            mq.client.xautoclaim(keys.stream(2), DEFAULT_GROUP, "dies", 40, "0-0")[1]),
            timeout_s=5)
    mq.subscribe("ioc-crash", "*", _enrich)
    mq.subscribe("ioc-vt", "*", _enrich)
    mq.subscribe("threat-score", "*", _score)
    _callbacks.clear()
    with mq.worker():
        assert g.result(timeout=10) == {"risk": 0, "sources": 1}
        crashed = g.members[0].get(timeout=5)
    assert not crashed.ok and crashed.reason == "max_deliveries"
    assert [m.state for m in g.state().members] == ["failed", "ok"]
