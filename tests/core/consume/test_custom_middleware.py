"""An application's own policy plugs into a subscription's lane: ``middleware=[...]``."""

from __future__ import annotations

import pytest

import phantom_notebook as pn
from phantom_notebook.core.model.envelope import now_ms
from tests.support.collect import Collector, eventually


class QuarantineSandboxHits(pn.Middleware):
    """Dead-letters indicators a sandbox already flagged, before any handler runs."""

    def before_process(self, lane, env, ctx):  # type: ignore[no-untyped-def]
        if isinstance(env.payload, dict) and env.payload.get("sandbox") == "malicious":
            return pn.Outcome(pn.Action.DEAD, reason="quarantined")
        return None


class QuotaErrorsWaitLonger(pn.Middleware):
    """A provider's quota error is retried after 5 s instead of the queue's backoff."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def after_process(self, lane, sub, env, ctx, error, outcome):  # type: ignore[no-untyped-def]
        if isinstance(error, LookupError):
            self.seen.append(env.id)
            return pn.Outcome(pn.Action.RETRY, delay_s=5.0, reason="quota", error=error)
        return outcome


def test_an_application_policy_runs_before_the_handler_and_settles_the_message(
        mq: pn.MessageQueue) -> None:
    got = Collector()
    mq.subscribe("sandbox", "*", got, middleware=[QuarantineSandboxHits()])
    mq.publish("sandbox", "t", {"ioc": "a.example", "sandbox": "malicious"})
    mq.publish("sandbox", "t", {"ioc": "b.example", "sandbox": "clean"})
    with mq.worker():
        assert got.wait_for(1)
        assert eventually(lambda: mq.stats("sandbox")[0].dead == 1)
    assert [e.payload["ioc"] for e in got.envelopes] == ["b.example"]
    [(_, letter)] = mq.client.xrange(mq.queue_keys("sandbox").dlq)
    assert letter[b"reason"] == b"quarantined"


def test_an_application_policy_rewrites_an_outcome_before_the_retry_policy_sees_it(
        mq: pn.MessageQueue) -> None:
    policy = QuotaErrorsWaitLonger()

    def over_quota(message: pn.Envelope, context: pn.MessageContext) -> None:
        raise LookupError("provider quota exceeded")

    mq.subscribe("enrich", "*", over_quota, middleware=policy)
    mid = mq.publish("enrich", "t", {"ioc": "203.0.113.5"})
    with mq.worker():
        assert eventually(lambda: mq.stats("enrich")[0].delayed == 1)
    assert policy.seen == [mid]
    [(_, due_ms)] = mq.client.zrange(mq.queue_keys("enrich").delayed, 0, -1, withscores=True)
    assert due_ms > now_ms() + 3_000, "retried after the policy's 5 s, not the queue's backoff"


def test_middleware_must_be_middleware(mq: pn.MessageQueue) -> None:
    with pytest.raises(pn.ValidationError, match="Middleware instances"):
        mq.subscribe("q", "*", print, middleware=[lambda env: None])
