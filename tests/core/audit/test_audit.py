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
from phantom_notebook.core.audit.log import (
    AuditIntegrityError,
    AuditLog,
    audit_key_from_env,
    verify_audit,
)
from phantom_notebook.core.errors import ConfigError, ValidationError
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


def rows(mq: pn.MessageQueue) -> Rows:
    return [(sid.decode(), {k.decode(): v.decode() for k, v in raw.items()})
            for sid, raw in mq.client.xrange(mq.keys.audit)]


def rewrite(mq: pn.MessageQueue, edit: Callable[[Rows], Rows]) -> None:
    """Rebuild the stream with the same ids after ``edit`` (what an attacker can do)."""
    new = edit(rows(mq))
    mq.client.delete(mq.keys.audit)
    for sid, fields in new:
        mq.client.xadd(mq.keys.audit, fields, id=sid)


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
    assert len(mq.client.xrange(mq.keys.audit)[0][1][b"ids"]) < 60


def test_entries_reads_from_a_time_and_up_to_a_limit_skipping_checkpoints(
        mq: pn.MessageQueue) -> None:
    log = audit(mq)
    fill(log, 3)
    log.checkpoint()
    fill(log, 3)
    assert len(log.entries()) == 6 and len(log.entries(limit=4)) == 4
    assert log.entries(since_ms=10**13) == []


def test_an_untouched_log_with_checkpoints_and_several_writers_verifies(
        mq: pn.MessageQueue) -> None:
    a, b = audit(mq), audit(mq, actor="enricher-1")
    fill(a, 4)
    a.checkpoint()
    fill(b, 3)
    fill(a, 2)
    b.checkpoint()
    result = verify_audit(mq, KEY)
    assert result.ok and result.first_broken is None
    assert result.checked == 11 and result.writers == 2 and not result.trimmed
    assert "audit ok" in str(result)


def test_an_empty_log_verifies_and_checkpoint_writes_nothing(mq: pn.MessageQueue) -> None:
    assert audit(mq).checkpoint() is None
    assert verify_audit(mq, KEY).ok and verify_audit(mq, KEY).checked == 0


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
    assert not result.ok and result.first_broken is not None
    assert result.first_broken[0] == written[2]
    assert result.first_broken[1].startswith(("mac_mismatch", "unknown_key"))
    assert written[2] in str(result)


def test_an_entry_deleted_and_re_added_with_changed_content_is_named_by_the_next_link(
        mq: pn.MessageQueue) -> None:
    written = fill(audit(mq), 5)
    fields = dict(rows(mq)[1][1], outcome="denied")
    mq.client.xdel(mq.keys.audit, written[1])
    mq.client.xadd(mq.keys.audit, fields)
    result = verify_audit(mq, KEY)
    assert result.first_broken is not None and result.first_broken[0] == written[2]
    assert "missing" in result.first_broken[1] and "seq 2..2" in result.first_broken[1]
    assert written[0] in result.first_broken[1]


def test_a_deleted_entry_is_reported(mq: pn.MessageQueue) -> None:
    written = fill(audit(mq), 6)
    mq.client.xdel(mq.keys.audit, written[3])
    broken = verify_audit(mq, KEY).first_broken
    assert broken is not None and broken[0] == written[4] and "seq 4..4" in broken[1]


def test_a_deleted_newest_entry_is_caught_by_the_following_checkpoint(mq: pn.MessageQueue) -> None:
    a, b = audit(mq), audit(mq, actor="enricher-1")
    fill(a, 2)
    gone = fill(b, 2)[-1]
    ckpt = a.checkpoint()
    mq.client.xdel(mq.keys.audit, gone)
    result = verify_audit(mq, KEY)
    assert result.first_broken is not None and result.first_broken[0] == ckpt


def test_deleting_a_whole_writer_before_a_checkpoint_is_reported(mq: pn.MessageQueue) -> None:
    a, b = audit(mq), audit(mq, actor="short-lived")
    fill(a, 2)
    doomed = fill(b, 2)
    fill(a, 1)
    ckpt = a.checkpoint()
    mq.client.xdel(mq.keys.audit, *doomed)
    result = verify_audit(mq, KEY)
    assert result.first_broken is not None and result.first_broken[0] == ckpt
    assert "the checkpoint signed 2" in result.first_broken[1]


def test_deleting_a_checkpoint_is_reported(mq: pn.MessageQueue) -> None:
    log = audit(mq)
    fill(log, 2)
    first = log.checkpoint()
    fill(log, 2)
    second = log.checkpoint()
    fill(log, 1)
    log.checkpoint()
    assert first is not None
    mq.client.xdel(mq.keys.audit, first)
    broken = verify_audit(mq, KEY).first_broken
    assert broken is not None and broken[0] == second and "checkpoint seq 1" in broken[1]


def test_an_entry_forged_without_the_key_is_reported(mq: pn.MessageQueue) -> None:
    fill(audit(mq), 3)
    forger = AuditLog(mq, SecretKey("audit-1", os.urandom(32)), "mallory", "admin")
    forged = forger.record("acl_change", "role:analyst", detail="grant +@all")
    fill(audit(mq), 1)
    broken = verify_audit(mq, KEY).first_broken
    assert broken is not None and broken[0] == forged and broken[1].startswith("mac_mismatch")


def test_a_replayed_copy_of_a_genuine_entry_is_reported(mq: pn.MessageQueue) -> None:
    fill(audit(mq), 4)
    copy = mq.client.xadd(mq.keys.audit, rows(mq)[1][1]).decode()
    result = verify_audit(mq, KEY)
    assert result.first_broken is not None and result.first_broken[0] == copy
    assert result.first_broken[1].startswith("reordered")


def test_swapping_two_entries_is_reported(mq: pn.MessageQueue) -> None:
    written = fill(audit(mq), 5)

    def swap(old: Rows) -> Rows:
        (a, fa), (b, fb) = old[1], old[2]
        old[1], old[2] = (a, fb), (b, fa)
        return old

    rewrite(mq, swap)
    result = verify_audit(mq, KEY)
    assert result.first_broken is not None and result.first_broken[0] == written[1]


def test_an_arbitrary_cut_of_the_oldest_entries_is_reported(mq: pn.MessageQueue) -> None:
    fill(audit(mq), 6)
    mq.client.xtrim(mq.keys.audit, maxlen=3, approximate=False)
    result = verify_audit(mq, KEY)
    assert not result.ok and result.first_broken is not None
    assert result.first_broken[1].startswith("missing")


def test_the_anchor_detects_deletion_of_the_newest_entries(mq: pn.MessageQueue) -> None:
    log = audit(mq)
    fill(log, 3)
    head = verify_audit(mq, KEY).head
    assert head is not None and verify_audit(mq, KEY, anchor=head).ok
    fill(log, 2)
    assert verify_audit(mq, KEY, anchor=head).ok
    mq.client.delete(mq.keys.audit)
    result = verify_audit(mq, KEY, anchor=head)
    assert not result.ok and result.first_broken is not None and result.first_broken[0] == head[0]


def test_retention_by_count_trims_at_a_checkpoint_and_still_verifies(mq: pn.MessageQueue) -> None:
    log = audit(mq)
    fill(log, 10)
    log.checkpoint()
    fill(log, 10)
    log.checkpoint()
    fill(log, 5)
    removed = log.trim(max_entries=12)
    assert removed == 10  # cut at the first checkpoint: the newest one <= the 12th newest
    result = verify_audit(mq, KEY)
    assert result.ok and result.trimmed and result.checked == len(rows(mq))
    fill(log, 2)
    survivor = rows(mq)[3][0]
    mq.client.xdel(mq.keys.audit, survivor)
    assert not verify_audit(mq, KEY).ok


def test_retention_by_age_keeps_younger_entries_and_removes_older_ones(mq: pn.MessageQueue) -> None:
    log = audit(mq, retention_s=3600)
    fill(log, 4)
    assert log.trim() == 0 and len(rows(mq)) == 5  # nothing is an hour old: only a checkpoint
    fill(log, 2)
    assert log.trim(max_age_s=0) in (4, 7)  # cut at the newest checkpoint before "now"
    assert verify_audit(mq, KEY).ok and verify_audit(mq, KEY).trimmed
    assert audit(mq).trim() == 0  # no retention configured: nothing to do


def test_checkpoint_refuses_to_sign_a_broken_log(mq: pn.MessageQueue) -> None:
    log = audit(mq)
    written = fill(log, 3)
    mq.client.xdel(mq.keys.audit, written[1])
    with pytest.raises(AuditIntegrityError, match="missing"):
        log.checkpoint()


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
                log.checkpoint()
        except Exception as exc:  # reported below, not swallowed
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    threads.append(threading.Thread(target=checkpointer))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.checkpoint()
    result = verify_audit(mq, KEY)
    assert errors == [] and result.ok, result
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
    log.checkpoint()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    log.checkpoint()
    result = verify_audit(real_mq, KEY)
    assert result.ok, result
    assert len(log.entries(limit=1000)) == 260 and result.writers == 5


def test_the_entry_rides_in_the_same_pipeline_as_the_action(mq: pn.MessageQueue) -> None:
    log = audit(mq)
    pipe = mq.client.pipeline(transaction=False)
    pipe.sadd(f"{mq.keys.prefix}:demo", "x")
    log.queue(pipe, "purge", "ioc-processing", detail={"removed": 1})
    added, entry_id = log.execute(pipe)
    assert added == 1 and log.entries()[0].id == entry_id.decode()


def test_a_failed_pipeline_starts_a_new_chain_instead_of_leaving_a_gap(mq: pn.MessageQueue) -> None:
    log = audit(mq)
    fill(log, 2)
    mq.client.set(f"{mq.keys.prefix}:str", "v")
    pipe = mq.client.pipeline(transaction=False)
    log.queue(pipe, "publish", "ioc-processing")
    pipe.xadd(f"{mq.keys.prefix}:str", {"a": "b"})  # WRONGTYPE: the batch fails
    with pytest.raises(redis.ResponseError):
        log.execute(pipe)
    fill(log, 2)
    result = verify_audit(mq, KEY)
    assert result.ok and result.writers == 2


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
    assert verify_audit(mq, KEY).ok


def test_old_entries_verify_after_the_audit_key_rotates(mq: pn.MessageQueue) -> None:
    fill(audit(mq), 2)
    new = SecretKey("audit-2", os.urandom(32))
    fill(AuditLog(mq, new, "a"), 2)
    assert verify_audit(mq, [new, KEY]).ok
    assert verify_audit(mq, new).first_broken[1].startswith("unknown_key")  # type: ignore[index]


def test_the_audit_key_never_appears_in_reprs_logs_or_the_stream(
        mq: pn.MessageQueue, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    log = audit(mq, retention_s=0)
    written = fill(log, 3)
    log.checkpoint()
    log.trim()
    mq.client.xdel(mq.keys.audit, *written)
    fill(log, 1)
    result = verify_audit(mq, KEY)
    raw = KEY.reveal()
    secrets = {KEY_B64, raw.hex(), repr(raw), base64.urlsafe_b64encode(raw).decode()}
    shown = " ".join([repr(log), str(log), repr(KEY), str(result), repr(result), caplog.text,
                      repr(log._macer), str(rows(mq))])
    assert not any(s in shown for s in secrets)
    assert "audit-1" in repr(log) and caplog.text  # something was logged, without the key
