"""The TLP gate of a subscription: a label up to ``max_tlp`` is delivered, one above is not.

For every adjacent pair of TLP 2.0 levels (CLEAR < GREEN < AMBER < AMBER+STRICT < RED), a
subscription whose ``max_tlp`` is the lower level gets the message labelled exactly at its
limit and dead-letters (``tlp_denied``) the one labelled one level above, on real Redis and
on the embedded backend; then the gate alone, for every (label, limit) pair.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any

import pytest

import phantom_notebook as pn
from phantom_notebook.core.consume.context import Action
from phantom_notebook.core.consume.middleware import TLPMiddleware
from phantom_notebook.core.model.envelope import Envelope
from phantom_notebook.core.model.tlp import ORDER
from tests.support.collect import Collector, eventually

ADJACENT = list(itertools.pairwise(ORDER))  # (limit, the level just above it)


def _dead_letters(mq: pn.MessageQueue, queue: str) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in mq.client.xrange(mq.queue_keys(queue).dlq)]


@pytest.mark.parametrize(("limit", "above"), ADJACENT, ids=[f"{a}<{b}" for a, b in ADJACENT])
def test_the_label_at_the_limit_is_delivered_and_the_one_above_is_dead_lettered(
        mq: pn.MessageQueue, limit: str, above: str) -> None:
    got = Collector()
    mq.subscribe("shared", "*", got, max_tlp=limit)
    mq.publish("shared", "t", "at the limit", tlp=limit)
    refused = mq.publish("shared", "t", "one level above", tlp=above)
    with mq.worker():
        assert got.wait_for(1)
        assert eventually(lambda: mq.stats(["shared"])[0].dead == 1)
    assert got.payloads == ["at the limit"]
    assert [e.tlp for e in got.envelopes] == [limit]
    [letter] = _dead_letters(mq, "shared")
    assert letter[b"reason"] == b"tlp_denied"
    [dead] = mq.dlq("shared").list()
    assert dead.message_id == refused and dead.envelope is not None
    assert dead.envelope.tlp == above
    assert f"TLP:{above}" in dead.error and f"up to TLP:{limit}" in dead.error


def test_a_red_limit_delivers_every_level_and_no_limit_delivers_red(
        mq: pn.MessageQueue) -> None:
    red, unlimited = Collector(), Collector()
    mq.subscribe("red-ok", "*", red, max_tlp="TLP:RED")
    mq.subscribe("no-limit", "*", unlimited)
    for level in ORDER:
        mq.publish("red-ok", "t", level, tlp=level)
    mq.publish("no-limit", "t", "RED", tlp="RED")
    with mq.worker():
        assert red.wait_for(len(ORDER)) and unlimited.wait_for(1)
    assert sorted(red.payloads, key=ORDER.index) == list(ORDER)
    assert unlimited.payloads == ["RED"]
    assert mq.stats(["red-ok", "no-limit"])[0].dead == 0


def test_a_limit_spelled_in_lower_case_with_the_prefix_gates_like_the_canonical_one(
        mq: pn.MessageQueue) -> None:
    got = Collector()
    mq.subscribe("spelled", "*", got, max_tlp="tlp:amber+strict")
    mq.publish("spelled", "t", "amber+strict", tlp="AMBER+STRICT")
    mq.publish("spelled", "t", "red", tlp="RED")
    with mq.worker():
        assert got.wait_for(1)
        assert eventually(lambda: mq.stats(["spelled"])[0].dead == 1)
    assert got.payloads == ["amber+strict"]


def _gate(label: str, limit: str | None) -> Any:
    env = Envelope("m1", "t", "q", None, tlp=label)
    lane: Any = SimpleNamespace()
    sub: Any = SimpleNamespace(max_tlp=limit)  # what the gate reads of a subscription
    return TLPMiddleware().after_route(lane, sub, env)


@pytest.mark.parametrize(("label", "limit"), list(itertools.product(ORDER, ORDER)))
def test_the_gate_lets_through_exactly_the_labels_at_or_below_the_limit(label: str,
                                                                         limit: str) -> None:
    outcome = _gate(label, limit)
    if ORDER.index(label) <= ORDER.index(limit):
        assert outcome is None
        return
    assert outcome.action == Action.DEAD and outcome.reason == "tlp_denied"
    assert isinstance(outcome.error, PermissionError)
    assert str(outcome.error) == (f"message is TLP:{label}, subscription accepts up to "
                                  f"TLP:{limit}")


@pytest.mark.parametrize("label", ORDER)
def test_without_a_limit_the_gate_lets_every_label_through(label: str) -> None:
    assert _gate(label, None) is None
