"""Audit trail: entries, HMAC chains, checkpoints, retention, tamper detection, key hygiene."""

from __future__ import annotations

import base64
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis

import phantom_notebook as pn
from phantom_notebook.core.audit.inline import AuditItem
from phantom_notebook.core.audit.log import AuditLog, audit_key_from_env
from phantom_notebook.core.audit.maintain import AuditIntegrityError, checkpoint, trim
from phantom_notebook.core.audit.verify import AuditVerification, verify_audit
from phantom_notebook.core.backend.records import PublishColumns
from phantom_notebook.core.errors import ConfigError, ValidationError
from phantom_notebook.core.observe.metrics import metrics_key
from phantom_notebook.core.security.keyring import SecretKey

KEY_B64 = base64.b64encode(bytes(range(7, 39))).decode()
KEY = SecretKey.from_base64("audit-1", KEY_B64)
EVENT_FIELDS = ["v", "kid", "t", "actor", "role", "action", "target", "outcome", "ids", "count",
                "ids_sha256", "detail", "kind", "w", "n", "p", "mac"]
Rows = list[tuple[str, dict[str, str]]]


def audit(mq: pn.MessageQueue, actor: str = "analyst-notebook", **kw: Any) -> AuditLog:
    return AuditLog(mq, KEY, actor, "analyst", **kw)


def fill(log: AuditLog, n: int, target: str = "ioc-processing") -> list[str]:
    return [log.record("publish", target, message_ids=[f"m{i}"]) for i in range(n)]


def stream(mq: pn.MessageQueue) -> str:
    """The global audit stream of the test's user (where ``record`` writes)."""
    return mq.keys.audit(mq.user)


def rows(mq: pn.MessageQueue) -> Rows:
    return [(sid.decode(), {k.decode(): v.decode() for k, v in raw.items()})
            for sid, raw in mq.client.xrange(stream(mq))]


def rewrite(mq: pn.MessageQueue, edit: Callable[[Rows], Rows]) -> None:
    """Rebuild the stream with the same ids after ``edit`` (what an attacker can do)."""
    new = edit(rows(mq))
    mq.client.delete(stream(mq))
    for sid, fields in new:
        mq.client.xadd(stream(mq), fields, id=sid)


def links_verify(result: AuditVerification) -> bool:
    """Every MAC and link verifies (without an anchor the status is "unanchored")."""
    return result.status == "unanchored" and result.first_broken is None


def broken_at(result: AuditVerification) -> tuple[str, str]:
    """(entry id, reason) of the first broken link."""
    assert result.first_broken is not None, result
    return result.first_broken[1], result.first_broken[2]


def test_recorded_entries_carry_actor_role_action_target_ids_outcome_and_detail(
        mq: pn.MessageQueue) -> None:
    log = audit(mq)
    first = log.record("publish", "ioc-processing", message_ids=["m1", "m2"],
                       detail={"priority": "HIGH"})
    log.record("permission_denied", "dlq:ioc-processing", "denied", actor="bob", role="enricher")
    entries = log.entries()
    assert [e.action for e in entries] == ["publish", "permission_denied"]
    e = entries[0]
    assert (e.id, e.actor, e.role, e.target, e.outcome) == (
        first, "analyst-notebook", "analyst", "ioc-processing", "ok")
    assert e.message_ids == ("m1", "m2") and e.message_count == 2 and e.covers(["m1", "m2"])
    assert e.detail == '{"priority":"HIGH"}' and e.authentic and e.seq == 1
    assert (entries[1].actor, entries[1].role, entries[1].outcome) == ("bob", "enricher", "denied")


def test_a_batch_of_500_publishes_is_one_entry_with_first_last_count_and_digest(
        mq: pn.MessageQueue) -> None:
    log, batch = audit(mq), [f"01J{i:023d}" for i in range(500)]
    log.record("publish", "ioc-processing", message_ids=batch)
    [entry] = log.entries()
    assert entry.message_ids == (batch[0], batch[-1]) and entry.message_count == 500
    assert entry.covers(batch) and not entry.covers(batch[:-1])
    assert len(mq.client.xrange(stream(mq))[0][1][b"ids"]) < 60


def test_entries_reads_from_a_time_and_up_to_a_limit_skipping_checkpoints(
        mq: pn.MessageQueue) -> None:
    log = audit(mq)
    fill(log, 3)
    checkpoint(log)
    fill(log, 3)
    assert len(log.entries()) == 6 and len(log.entries(limit=4)) == 4
    assert log.entries(since_ms=10**13) == []


def test_an_untouched_log_with_checkpoints_and_several_writers_verifies(
        mq: pn.MessageQueue) -> None:
    a, b = audit(mq), audit(mq, actor="enricher-1")
    fill(a, 4)
    checkpoint(a)
    fill(b, 3)
    fill(a, 2)
    checkpoint(b)
    result = verify_audit(mq, KEY)
    assert links_verify(result) and not result.ok  # no anchor: "unanchored", never ok
    assert result.checked == 11 and result.writers == 2 and not result.trimmed
    assert "UNANCHORED" in str(result)
    anchored = verify_audit(mq, KEY, anchor=result.heads)
    assert anchored.ok and "audit ok" in str(anchored)


def test_an_empty_trail_is_reported_as_empty_never_ok_and_checkpoint_writes_nothing(
        mq: pn.MessageQueue) -> None:
    assert checkpoint(audit(mq)) is None
    result = verify_audit(mq, KEY)
    assert result.status == "empty" and not result.ok and result.checked == 0
    assert "EMPTY" in str(result)


@pytest.mark.parametrize("field", EVENT_FIELDS)
def test_changing_any_field_in_place_is_reported_at_that_entry(
        mq: pn.MessageQueue, field: str) -> None:
    written = fill(audit(mq), 5)

    def edit(old: Rows) -> Rows:
        _, fields = old[2]
        fields[field] = fields[field] + "0" if field != "mac" else "0" * 64
        return old

    rewrite(mq, edit)
    result = verify_audit(mq, KEY)
    assert result.status == "broken" and not result.ok
    sid, reason = broken_at(result)
    assert sid == written[2] and reason.startswith(("mac_mismatch", "unknown_key"))
    assert written[2] in str(result)


def test_an_entry_deleted_and_re_added_with_changed_content_is_named_by_the_next_link(
        mq: pn.MessageQueue) -> None:
    written = fill(audit(mq), 5)
    fields = dict(rows(mq)[1][1], outcome="denied")
    mq.client.xdel(stream(mq), written[1])
    mq.client.xadd(stream(mq), fields)
    sid, reason = broken_at(verify_audit(mq, KEY))
    assert sid == written[2] and "missing" in reason and "seq 2..2" in reason
    assert written[0] in reason


def test_a_deleted_entry_is_reported(mq: pn.MessageQueue) -> None:
    written = fill(audit(mq), 6)
    mq.client.xdel(stream(mq), written[3])
    sid, reason = broken_at(verify_audit(mq, KEY))
    assert sid == written[4] and "seq 4..4" in reason


def test_a_deleted_newest_entry_is_caught_by_the_following_checkpoint(mq: pn.MessageQueue) -> None:
    a, b = audit(mq), audit(mq, actor="enricher-1")
    fill(a, 2)
    gone = fill(b, 2)[-1]
    ckpt = checkpoint(a)
    mq.client.xdel(stream(mq), gone)
    assert broken_at(verify_audit(mq, KEY))[0] == ckpt


def test_deleting_a_whole_writer_before_a_checkpoint_is_reported(mq: pn.MessageQueue) -> None:
    a, b = audit(mq), audit(mq, actor="short-lived")
    fill(a, 2)
    doomed = fill(b, 2)
    fill(a, 1)
    ckpt = checkpoint(a)
    mq.client.xdel(stream(mq), *doomed)
    sid, reason = broken_at(verify_audit(mq, KEY))
    assert sid == ckpt and "the checkpoint signed 2" in reason


def test_deleting_a_checkpoint_is_reported(mq: pn.MessageQueue) -> None:
    log = audit(mq)
    fill(log, 2)
    first = checkpoint(log)
    fill(log, 2)
    second = checkpoint(log)
    fill(log, 1)
    checkpoint(log)
    assert first is not None
    mq.client.xdel(stream(mq), first)
    sid, reason = broken_at(verify_audit(mq, KEY))
    assert sid == second and "checkpoint seq 1" in reason


def test_an_entry_forged_without_the_key_is_reported(mq: pn.MessageQueue) -> None:
    fill(audit(mq), 3)
    forger = AuditLog(mq, SecretKey("audit-1", os.urandom(32)), "mallory", "admin")
    forged = forger.record("acl_change", "role:analyst", detail="grant +@all")
    fill(audit(mq), 1)
    sid, reason = broken_at(verify_audit(mq, KEY))
    assert sid == forged and reason.startswith("mac_mismatch")


def test_a_replayed_copy_of_a_genuine_entry_is_reported(mq: pn.MessageQueue) -> None:
    fill(audit(mq), 4)
    copy = mq.client.xadd(stream(mq), rows(mq)[1][1]).decode()
    sid, reason = broken_at(verify_audit(mq, KEY))
    assert sid == copy and reason.startswith("reordered")


def test_swapping_two_entries_is_reported(mq: pn.MessageQueue) -> None:
    written = fill(audit(mq), 5)

    def swap(old: Rows) -> Rows:
        (a, fa), (b, fb) = old[1], old[2]
        old[1], old[2] = (a, fb), (b, fa)
        return old

    rewrite(mq, swap)
    assert broken_at(verify_audit(mq, KEY))[0] == written[1]


def test_an_arbitrary_cut_of_the_oldest_entries_is_reported(mq: pn.MessageQueue) -> None:
    fill(audit(mq), 6)
    mq.client.xtrim(stream(mq), maxlen=3, approximate=False)
    assert broken_at(verify_audit(mq, KEY))[1].startswith("missing")


def test_the_anchor_detects_deletion_of_the_newest_entries(mq: pn.MessageQueue) -> None:
    log = audit(mq)
    fill(log, 3)
    anchor = verify_audit(mq, KEY).heads
    assert verify_audit(mq, KEY, anchor=anchor).ok
    fill(log, 2)
    assert verify_audit(mq, KEY, anchor=anchor).ok  # growing is fine
    newest = rows(mq)[-1][0]
    anchor = verify_audit(mq, KEY).heads
    mq.client.xdel(stream(mq), newest)  # the newest entry: no later link names it
    assert links_verify(verify_audit(mq, KEY))  # without the anchor this goes unnoticed
    sid, reason = broken_at(verify_audit(mq, KEY, anchor=anchor))
    assert sid == newest and "deleted or replaced" in reason


def test_the_anchor_detects_a_deleted_trail(mq: pn.MessageQueue) -> None:
    fill(audit(mq), 3)
    anchor = verify_audit(mq, KEY).heads
    mq.client.delete(stream(mq))
    assert verify_audit(mq, KEY).status == "empty"
    result = verify_audit(mq, KEY, anchor=anchor)
    assert result.status == "broken" and broken_at(result)[1] == "missing: the stream was deleted"


def test_retention_by_count_trims_at_a_checkpoint_and_still_verifies(mq: pn.MessageQueue) -> None:
    log = audit(mq)
    fill(log, 10)
    checkpoint(log)
    fill(log, 10)
    checkpoint(log)
    fill(log, 5)
    removed = trim(log, None, max_entries=12)
    assert removed == 10  # cut at the first checkpoint: the newest one <= the 12th newest
    result = verify_audit(mq, KEY)
    assert links_verify(result) and result.trimmed and result.checked == len(rows(mq))
    fill(log, 2)
    survivor = rows(mq)[3][0]
    mq.client.xdel(stream(mq), survivor)
    assert verify_audit(mq, KEY).status == "broken"


def test_retention_by_age_keeps_younger_entries_and_removes_older_ones(mq: pn.MessageQueue) -> None:
    log = audit(mq, retention_s=3600)
    fill(log, 4)
    assert trim(log) == 0 and len(rows(mq)) == 5  # nothing is an hour old: only a checkpoint
    fill(log, 2)
    assert trim(log, None, max_age_s=0) in (4, 7)  # cut at the newest checkpoint before "now"
    assert links_verify(verify_audit(mq, KEY)) and verify_audit(mq, KEY).trimmed
    assert trim(audit(mq)) == 0  # no retention configured: nothing to do


def test_checkpoint_refuses_to_sign_a_broken_log(mq: pn.MessageQueue) -> None:
    log = audit(mq)
    written = fill(log, 3)
    mq.client.xdel(stream(mq), written[1])
    with pytest.raises(AuditIntegrityError, match="missing"):
        checkpoint(log)


def test_concurrent_threads_with_a_concurrent_checkpointer_keep_the_log_verifiable(
        mq: pn.MessageQueue) -> None:
    log = audit(mq)
    start, errors = threading.Barrier(9), list[Exception]()

    def writer() -> None:
        start.wait()
        fill(log, 40)

    def checkpointer() -> None:
        start.wait()
        try:
            for _ in range(10):
                checkpoint(log)
        except Exception as exc:  # reported below, not swallowed
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    threads.append(threading.Thread(target=checkpointer))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    checkpoint(log)
    result = verify_audit(mq, KEY)
    assert errors == [] and links_verify(result), result
    assert len(log.entries(limit=1000)) == 320 and result.writers == 8


def _write_from_process(url: str, prefix: str, n: int) -> None:
    queue = pn.connect(url, key_prefix=prefix)
    log = AuditLog(queue, SecretKey.from_base64("audit-1", KEY_B64), f"p{os.getpid()}", "x")
    for i in range(n):
        log.record("ack", "ioc-processing", message_ids=[f"{os.getpid()}-{i}"])
    queue.client.close()


def test_concurrent_processes_keep_the_log_verifiable(
        real_mq: pn.MessageQueue, redis_url: str, prefix: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_from_process, args=(redis_url, prefix, 60))
             for _ in range(4)]
    for p in procs:
        p.start()
    log = audit(real_mq)
    fill(log, 20)
    checkpoint(log)
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    checkpoint(log)
    result = verify_audit(real_mq, KEY)
    assert links_verify(result), result
    assert len(log.entries(limit=1000)) == 260 and result.writers == 5


def test_the_entry_rides_in_the_same_function_call_as_the_action(
        mq: pn.MessageQueue) -> None:
    log = audit(mq)
    keys = mq.queue_keys("ioc-processing")
    mine = log.stream_of(keys)
    section = log.section(mine, [AuditItem("publish", "ioc-processing", message_ids=["m1"])])
    batch = PublishColumns([2], [0], [None], ["m1"], [""], [b"\x01"])
    mq.functions.publish(keys, metrics_key(keys, 0), batch, max_size=None, dedup_window_ms=1,
                         now_ms=0, metrics_ttl_s=0, audit=section)
    [entry] = log.entries(streams=[mine])
    assert (entry.action, entry.message_ids, entry.authentic) == ("publish", ("m1",), True)
    assert mq.client.xlen(keys.stream(2)) == 1


def test_a_refused_call_writes_nothing_and_starts_a_new_chain(mq: pn.MessageQueue) -> None:
    log = audit(mq)
    keys = mq.queue_keys("ioc-processing")
    mine = log.stream_of(keys)
    def batch(mid: str) -> PublishColumns:
        return PublishColumns([2], [0], [None], [mid], [""], [b"\x01"])

    mq.functions.publish(keys, metrics_key(keys, 0), batch("m1"), max_size=1, dedup_window_ms=1,
                         now_ms=0, metrics_ttl_s=0,
                         audit=log.section(mine, [AuditItem("publish", "q")]))
    with pytest.raises(redis.ResponseError, match="QUEUE_FULL"):  # refused before any write
        mq.functions.publish(keys, metrics_key(keys, 0), batch("m2"), max_size=1,
                             dedup_window_ms=1,
                             now_ms=0, metrics_ttl_s=0,
                             audit=log.section(mine, [AuditItem("publish", "q")]))
    log.failed(mine)
    mq.functions.publish(keys, metrics_key(keys, 0), batch("m3"), max_size=None,
                         dedup_window_ms=1,
                         now_ms=0, metrics_ttl_s=0,
                         audit=log.section(mine, [AuditItem("publish", "q")]))
    assert len(log.entries(streams=[mine])) == 2 and mq.client.xlen(keys.stream(2)) == 2
    result = verify_audit(mq, KEY)
    assert links_verify(result) and result.writers == 2


def test_bad_action_outcome_or_actor_is_rejected_before_redis(mq: pn.MessageQueue) -> None:
    log = audit(mq)
    with pytest.raises(ValidationError):
        log.record("Publish!", "q")
    with pytest.raises(ValidationError):
        log.record("publish", "q", "maybe")
    with pytest.raises(ValidationError):
        AuditLog(mq, KEY, "", "analyst")
    assert rows(mq) == []


def test_the_key_comes_from_the_environment_with_an_optional_id(
        mq: pn.MessageQueue, monkeypatch: pytest.MonkeyPatch) -> None:
    assert audit_key_from_env({}) is None
    plain = audit_key_from_env({"PHANTOM_AUDIT_KEY": KEY_B64})
    assert plain == SecretKey("audit", KEY.reveal())
    assert audit_key_from_env({"PHANTOM_AUDIT_KEY": f"a2:{KEY_B64}"}) == SecretKey.from_base64(
        "a2", KEY_B64)
    monkeypatch.delenv("PHANTOM_AUDIT_KEY", raising=False)
    with pytest.raises(ConfigError, match="PHANTOM_AUDIT_KEY"):
        AuditLog(mq, None, "a")
    with pytest.raises(ConfigError) as info:
        audit_key_from_env({"PHANTOM_AUDIT_KEY": "a2:" + KEY_B64[:-8]})
    assert KEY_B64[:-8] not in str(info.value)
    monkeypatch.setenv("PHANTOM_AUDIT_KEY", f"audit-1:{KEY_B64}")
    AuditLog(mq, None, "a").record("settings_change", "settings.toml")
    assert links_verify(verify_audit(mq, KEY))


def test_old_entries_verify_after_the_audit_key_rotates(mq: pn.MessageQueue) -> None:
    fill(audit(mq), 2)
    new = SecretKey("audit-2", os.urandom(32))
    fill(AuditLog(mq, new, "a"), 2)
    assert links_verify(verify_audit(mq, [new, KEY]))
    assert broken_at(verify_audit(mq, new))[1].startswith("unknown_key")


def test_the_audit_key_never_appears_in_reprs_logs_or_the_stream(
        mq: pn.MessageQueue, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    log = audit(mq, retention_s=0)
    written = fill(log, 3)
    checkpoint(log)
    trim(log)
    mq.client.xdel(stream(mq), *written)
    fill(log, 1)
    result = verify_audit(mq, KEY)
    raw = KEY.reveal()
    secrets = {KEY_B64, raw.hex(), repr(raw), base64.urlsafe_b64encode(raw).decode()}
    shown = " ".join([repr(log), str(log), repr(KEY), str(result), repr(result), caplog.text,
                      repr(log.macer), str(rows(mq))])
    assert not any(s in shown for s in secrets)
    assert "audit-1" in repr(log) and caplog.text  # something was logged, without the key
