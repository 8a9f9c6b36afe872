"""Splices an insider with the audit key could make still break the chain at that entry.

Every entry below is re-MACed with the real key, so its MAC verifies: only the links can
tell. An event whose ``p`` (its writer's previous MAC) names another entry, and a
checkpoint whose ``upto`` (the entry just before it) or whose own ``n``/``p`` link is
wrong, are each reported as broken at exactly that entry.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

import phantom_notebook as pn
from phantom_notebook.core.audit.maintain import checkpoint
from phantom_notebook.core.audit.verify import Macer, verify_audit
from tests.core.audit.test_audit import KEY, Rows, audit, broken_at, fill, links_verify, rows

Edit = Callable[[Rows], None]


def _splice(mq: pn.MessageQueue, edit: Edit) -> None:
    """Apply ``edit`` to the stream's entries, re-MAC every entry it changed with the
    audit key, and rebuild the stream with the same ids."""
    old = rows(mq)
    new = [(sid, dict(fields)) for sid, fields in old]
    edit(new)
    macer = Macer(KEY)
    stream = mq.keys.audit(mq.user)
    mq.client.delete(stream)
    for (sid, fields), (_, before) in zip(new, old, strict=True):
        if fields != before:
            body = {k: v for k, v in fields.items() if k != "mac"}
            mac = macer.mac(body)
            assert mac is not None
            fields = {**body, "mac": mac}
        mq.client.xadd(stream, fields, id=sid)


def _events_and_two_checkpoints(mq: pn.MessageQueue) -> list[str]:
    """3 events, a checkpoint, 2 events, a checkpoint: the ids in stream order."""
    log = audit(mq)
    fill(log, 3)
    checkpoint(log)
    fill(log, 2)
    checkpoint(log)
    return [sid for sid, _ in rows(mq)]


def test_the_untouched_log_and_a_re_maced_unchanged_copy_verify(mq: pn.MessageQueue) -> None:
    _events_and_two_checkpoints(mq)
    assert links_verify(verify_audit(mq, KEY))
    _splice(mq, lambda entries: None)
    assert links_verify(verify_audit(mq, KEY))


@pytest.mark.parametrize(("index", "link_to"), [(2, 0), (1, None), (4, 1)],
                         ids=["skips-one-back", "restarts-the-chain", "after-a-checkpoint"])
def test_an_event_whose_previous_mac_names_another_entry_is_reported_there(
        mq: pn.MessageQueue, index: int, link_to: int | None) -> None:
    ids = _events_and_two_checkpoints(mq)

    def relink(entries: Rows) -> None:
        entries[index][1]["p"] = "" if link_to is None else entries[link_to][1]["mac"]

    _splice(mq, relink)
    result = verify_audit(mq, KEY)
    assert result.status == "broken"
    sid, reason = broken_at(result)
    assert sid == ids[index] and reason.startswith("missing: writer")


def test_an_event_spliced_in_with_the_next_sequence_number_of_another_chain_is_reported(
        mq: pn.MessageQueue) -> None:
    a, b = audit(mq), audit(mq, actor="enricher-1")
    fill(a, 2)
    fill(b, 2)
    ids = [sid for sid, _ in rows(mq)]

    def swap_writer(entries: Rows) -> None:  # b's second entry claims to be a's third
        entries[3][1].update(w=entries[0][1]["w"], n="3")

    _splice(mq, swap_writer)
    sid, reason = broken_at(verify_audit(mq, KEY))
    assert sid == ids[3] and reason.startswith("missing: writer")


@pytest.mark.parametrize("upto", [0, 3, 4], ids=["much-earlier", "the-checkpoint", "one-early"])
def test_a_checkpoint_whose_upto_is_not_the_entry_before_it_is_reported(
        mq: pn.MessageQueue, upto: int) -> None:
    ids = _events_and_two_checkpoints(mq)

    def move_upto(entries: Rows) -> None:
        entries[6][1]["upto"] = ids[upto]

    _splice(mq, move_upto)
    sid, reason = broken_at(verify_audit(mq, KEY))
    assert sid == ids[6]
    assert reason == (f"missing: entry {ids[upto]} before this checkpoint is gone, or an "
                      "entry was inserted")


def test_an_event_inserted_just_before_a_checkpoint_is_caught_by_its_upto(
        mq: pn.MessageQueue) -> None:
    log = audit(mq)
    written = fill(log, 2)
    checkpoint(log)
    (_, first), (_, second), (_, ckpt) = rows(mq)
    ms, _, seq = written[1].partition("-")
    forged = dict(first, w="f" * 16, n="1", p="", ids="forged")  # a new writer's first entry
    inserted, moved = f"{ms}-{int(seq) + 1}", f"{ms}-{int(seq) + 2}"  # ids are not MACed
    stream = mq.keys.audit(mq.user)
    mq.client.delete(stream)
    macer = Macer(KEY)
    for sid, fields in ((written[0], first), (written[1], second), (inserted, forged),
                        (moved, ckpt)):
        body = {k: v for k, v in fields.items() if k != "mac"}
        mq.client.xadd(stream, {**body, "mac": macer.mac(body) or ""}, id=sid)
    sid, reason = broken_at(verify_audit(mq, KEY))
    assert sid == moved
    assert reason.startswith(f"missing: entry {written[1]} before this checkpoint is gone")


@pytest.mark.parametrize(("field", "value"), [("n", "3"), ("n", "1"), ("p", "")],
                         ids=["skips-a-number", "repeats-the-first", "unlinked"])
def test_a_checkpoint_out_of_sequence_with_the_one_before_is_reported(
        mq: pn.MessageQueue, field: str, value: str) -> None:
    ids = _events_and_two_checkpoints(mq)

    def relink(entries: Rows) -> None:
        entries[6][1][field] = value

    _splice(mq, relink)
    sid, reason = broken_at(verify_audit(mq, KEY))
    assert sid == ids[6] and reason == "missing: checkpoint seq 2 deleted or reordered"
