"""A group's decision exactly at its needed successes and one short of them, recorded
member by member through join.lua (issue #22: tests that fail when the Lua is wrong)."""

from __future__ import annotations

from typing import Any

import phantom_notebook as pn
from phantom_notebook.core.backend.records import JoinRecord
from phantom_notebook.core.model.envelope import now_ms
from phantom_notebook.core.results.flows import GroupHandle
from phantom_notebook.core.results.join import JoinState, expire_join, read_join, record_members

SCORE = pn.Task("threat-score", "threat.analysis.request", {"ioc": "198.51.100.7"})
RECORDED, DECIDED = 1, 2  # join.lua's codes (0: not recorded)


def _group(mq: pn.MessageQueue, n: int, **semantics: Any) -> GroupHandle:
    return mq.group([pn.Task(f"ioc-{i}", "ioc.enrichment.request", {"i": i}) for i in range(n)],
                    then=SCORE, **semantics)


def _record(mq: pn.MessageQueue, g: GroupHandle, member: int, state: str) -> int:
    """Record one member's outcome ("ok" / "failed"); join.lua's code for it."""
    [code] = record_members(mq, [JoinRecord(_state(mq, g).queue, g.id, member,
                                            g.members[member].id, state, b"sealed")],
                            now_ms(), "test")
    return code


def _state(mq: pn.MessageQueue, g: GroupHandle) -> JoinState:
    return read_join(mq, g.state().queue, g.id, open_results=False)


def _callbacks(mq: pn.MessageQueue) -> int:
    return mq.stats(["threat-score"])[0].ready


def test_an_all_group_succeeds_exactly_at_its_needed_successes(mq: pn.MessageQueue) -> None:
    two_of_three = _group(mq, 3, min_success=2)
    assert [_record(mq, two_of_three, 0, "ok"), _record(mq, two_of_three, 1, "failed")] == \
        [RECORDED, RECORDED], "undecided until every member settled"
    assert _record(mq, two_of_three, 2, "ok") == DECIDED
    assert _state(mq, two_of_three).status == "succeeded"

    every = _group(mq, 2)
    assert [_record(mq, every, 0, "ok"), _record(mq, every, 1, "ok")] == [RECORDED, DECIDED]
    assert _state(mq, every).status == "succeeded"
    one_short = _group(mq, 2)
    assert [_record(mq, one_short, 0, "ok"), _record(mq, one_short, 1, "failed")] == \
        [RECORDED, DECIDED]
    assert _state(mq, one_short).status == "failed"
    assert _callbacks(mq) == 3


def test_a_count_group_decides_exactly_when_the_count_is_reached_or_out_of_reach(
        mq: pn.MessageQueue) -> None:
    reached = _group(mq, 3, on=2)
    assert [_record(mq, reached, 0, "ok"), _record(mq, reached, 1, "ok")] == [RECORDED, DECIDED]
    assert _state(mq, reached).status == "succeeded"

    out_of_reach = _group(mq, 3, on=2)
    assert _record(mq, out_of_reach, 0, "failed") == RECORDED, "2 of the 2 left may succeed"
    assert _record(mq, out_of_reach, 1, "failed") == DECIDED
    assert _state(mq, out_of_reach).status == "failed"
    assert _callbacks(mq) == 2


def test_fail_fast_fails_an_all_group_exactly_when_its_need_is_out_of_reach(
        mq: pn.MessageQueue) -> None:
    fast = _group(mq, 3, min_success=2, fail_fast=True)
    assert _record(mq, fast, 0, "failed") == RECORDED, "2 of the 2 left may succeed"
    assert _record(mq, fast, 1, "failed") == DECIDED
    assert _state(mq, fast).status == "failed"

    patient = _group(mq, 3, min_success=2)
    assert [_record(mq, patient, 0, "failed"), _record(mq, patient, 1, "failed")] == \
        [RECORDED, RECORDED], "without fail_fast it waits for every member"
    assert _record(mq, patient, 2, "ok") == DECIDED
    assert _state(mq, patient).status == "failed"


def test_a_member_settled_again_keeps_its_first_outcome(mq: pn.MessageQueue) -> None:
    g = _group(mq, 2)
    assert _record(mq, g, 0, "ok") == RECORDED
    assert [_record(mq, g, 0, "ok"), _record(mq, g, 0, "failed")] == [0, 0]
    state = _state(mq, g)
    assert ([m.state for m in state.members], state.status) == (["ok", ""], "open")
    assert _record(mq, g, 1, "ok") == DECIDED
    assert _state(mq, g).status == "succeeded"


def test_a_member_settling_after_the_decision_fires_nothing_more(mq: pn.MessageQueue) -> None:
    g = _group(mq, 3, on="any")
    delayed = mq.queue_keys(g.state().queue).delayed
    assert mq.client.zcard(delayed) == 1, "the group's deadline waits"
    assert _record(mq, g, 0, "ok") == DECIDED
    assert mq.client.zcard(delayed) == 0, "a decided group's deadline is gone"
    assert [_record(mq, g, 1, "ok"), _record(mq, g, 2, "failed")] == [RECORDED, RECORDED]
    assert (_state(mq, g).status, _callbacks(mq)) == ("succeeded", 1)
    assert expire_join(mq, g.state().queue, g.id, now_ms(), "test") is False
    assert _callbacks(mq) == 1


def test_the_deadline_times_out_only_members_without_an_outcome(mq: pn.MessageQueue) -> None:
    g = _group(mq, 3)
    assert _record(mq, g, 0, "ok") == RECORDED
    assert expire_join(mq, g.state().queue, g.id, now_ms(), "test") is True
    state = _state(mq, g)
    assert [m.state for m in state.members] == ["ok", "timeout", "timeout"]
    assert (state.status, state.succeeded, state.failed) == ("failed", 1, 2)
    assert _callbacks(mq) == 1
