"""Backup and restore: every state of every message survives, restoring is idempotent, a
tampered or foreign archive is refused before anything is written, sealed messages stay
sealed, and the audit trail still verifies after a restore."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import phantom_notebook as pn
from phantom_notebook.core.audit.verify import verify_audit
from phantom_notebook.core.backup.archive import SEAL_EVERY, verify_archive
from phantom_notebook.core.backup.keys import backup_key
from phantom_notebook.core.backup.take import CONSISTENCY
from phantom_notebook.core.config.settings import SecuritySettings
from phantom_notebook.core.errors import ArchiveError, ConfigError, Reject, Retry
from phantom_notebook.core.security.keyring import SecretKey
from tests.support.collect import Collector, eventually

BACKUP_KEY = "bk-1:" + base64.b64encode(bytes(range(32))).decode()
OTHER_KEY = "bk-2:" + base64.b64encode(bytes(range(1, 33))).decode()
AUDIT_KEY = "audit-1:" + base64.b64encode(bytes(range(40, 72))).decode()
RING_A = "k1:" + base64.b64encode(bytes(range(100, 132))).decode()
RING_B = "k9:" + base64.b64encode(bytes(range(150, 182))).decode()


def settings(**security: Any) -> pn.Settings:
    return pn.Settings(security=SecuritySettings(backup_key=BACKUP_KEY, **security))


@pytest.fixture(params=["redis", "embedded"])
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[pn.MessageQueue, pn.MessageQueue]]:
    """A source deployment and an empty target deployment (another prefix, same server)."""
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    tag = uuid.uuid4().hex[:8]
    source = pn.connect(url, key_prefix=f"src{tag}", settings=settings(audit_key=AUDIT_KEY))
    target = pn.connect(url, key_prefix=f"dst{tag}", settings=settings(audit_key=AUDIT_KEY))
    yield source, target
    source.close()
    target.close()


def seed(mq: pn.MessageQueue, queue: str = "ioc-intel") -> dict[str, Any]:
    """A queue holding messages in every state: ready at every priority, in flight with
    delivery counts 1 and 2 (a worker that died holding them), delayed, retrying, dead."""
    mq.declare(queue, kind="priority", max_deliveries=5)

    def handle(message: pn.Envelope, context: pn.MessageContext) -> None:
        if message.payload["n"] == "retry":
            raise Retry("provider said later", delay_s=3600)
        raise Reject("malformed indicator")

    mq.publish(queue, "ioc.bad", {"n": "dead"}, priority="LOW")
    mq.publish(queue, "ioc.bad", {"n": "retry"}, priority="LOW")
    sub = mq.subscribe(queue, "ioc.bad", handle)
    with mq.worker():
        assert eventually(lambda: mq.stats(queue)[0].dead == 1
                          and mq.stats(queue)[0].delayed == 1)
    mq._subscriptions.remove(sub)
    ready = [mq.publish(queue, "ioc.raw", {"n": i}, priority=i % 4) for i in range(12)]
    later = mq.publish(queue, "ioc.raw", {"n": "later"}, delay=timedelta(hours=1))
    keys = mq.queue_keys(queue)
    # a worker took two CRITICAL messages and died; one of them was delivered twice
    mq.client.xreadgroup("workers", "dead-worker", {keys.stream(0): ">"}, count=2)
    first = mq.client.xrange(keys.stream(0), count=1)[0][0]
    mq.client.xclaim(keys.stream(0), "workers", "dead-worker", 0, [first])
    return {"ready": ready, "later": later, "stats": mq.stats(queue)[0]}


def pending_counts(mq: pn.MessageQueue, queue: str) -> list[int]:
    stream = mq.queue_keys(queue).stream(0)
    return sorted(int(p["times_delivered"])
                  for p in mq.client.xpending_range(stream, "workers", "-", "+", 100))


def delayed_dues(mq: pn.MessageQueue, queue: str) -> list[int]:
    return sorted(int(score) for _, score in
                  mq.client.zrange(mq.queue_keys(queue).delayed, 0, -1, withscores=True))


def test_every_state_comes_back_as_it_was(pair: Any, tmp_path: Path) -> None:
    source, target = pair
    seeded = seed(source)
    archive = tmp_path / "intel.pnbk"

    taken = source.backup(archive)
    restored = target.restore(archive)

    before, after = seeded["stats"], target.stats("ioc-intel")[0]
    assert (after.ready, after.in_flight, after.delayed, after.dead, after.by_priority) == \
        (before.ready, before.in_flight, before.delayed, before.dead, before.by_priority)
    assert (after.in_flight, after.delayed, after.dead) == (2, 2, 1)
    assert pending_counts(target, "ioc-intel") == pending_counts(source, "ioc-intel") == [1, 2]
    assert delayed_dues(target, "ioc-intel") == delayed_dues(source, "ioc-intel")
    [letter] = target.dlq("ioc-intel").list()
    [original] = source.dlq("ioc-intel").list()
    assert letter.envelope is not None and letter.envelope.payload == {"n": "dead"}
    assert (letter.reason, letter.error_type, letter.error, letter.attempts,
            letter.first_failure_ms, letter.message_id) == (
        original.reason, original.error_type, original.error, original.attempts,
        original.first_failure_ms, original.message_id)
    assert "malformed indicator" in letter.reason + letter.error
    assert taken.messages == restored.messages == 15
    assert restored.total("pending") == 2 and restored.total("as_ready") == 0


def seeded_and_restored(pair: Any, tmp_path: Path) -> tuple[pn.MessageQueue, Path]:
    """The seeded source backed up to ``a.pnbk`` and restored once into the target."""
    source, target = pair
    seed(source)
    source.backup(tmp_path / "a.pnbk")
    target.restore(tmp_path / "a.pnbk")
    return target, tmp_path / "a.pnbk"


def test_restored_in_flight_messages_are_delivered_once_counting_one_more_delivery(
        pair: Any, tmp_path: Path) -> None:
    target, _ = seeded_and_restored(pair, tmp_path)
    target.declare("ioc-intel", visibility_timeout_s=0.2)
    got = Collector()
    target.subscribe("ioc-intel", "ioc.raw", got)

    with target.worker():
        assert got.wait_for(12)
        assert eventually(lambda: target.stats("ioc-intel")[0].in_flight == 0)

    by_id = dict(zip((e.id for e in got.envelopes), got.delivery_counts, strict=True))
    assert len(got.envelopes) == len(by_id) == 12  # none twice, the delayed one not yet
    assert sorted(by_id.values()) == [1] * 10 + [2, 3]


def test_restoring_the_same_archive_twice_writes_nothing_the_second_time(
        pair: Any, tmp_path: Path) -> None:
    target, archive = seeded_and_restored(pair, tmp_path)
    once = target.stats("ioc-intel")[0]

    again = target.restore(archive)

    assert again.messages == 0 and again.total("skipped") == 15
    twice = target.stats("ioc-intel")[0]
    assert (twice.ready, twice.in_flight, twice.delayed, twice.dead) == \
        (once.ready, once.in_flight, once.delayed, once.dead)


def test_restoring_into_the_source_itself_duplicates_nothing_already_there_after_loss(
        pair: Any, tmp_path: Path) -> None:
    """After an incident lost one queue's keys, restoring the archive into the same
    deployment brings back that queue only (the others are skipped by --queues)."""
    source, _ = pair
    seed(source, "ioc-intel")
    source.declare("ioc-other")
    source.publish("ioc-other", "ioc.raw", {"keep": 1})
    source.backup(tmp_path / "all.pnbk")
    source.client.delete(*source.queue_keys("ioc-intel").streams,
                         source.queue_keys("ioc-intel").delayed)

    report = source.restore(tmp_path / "all.pnbk", queues="ioc-intel")

    assert list(report.queues) == ["ioc-intel"]
    assert source.stats("ioc-intel")[0].ready == 10
    assert source.stats("ioc-other")[0].ready == 1


def test_one_changed_byte_anywhere_is_refused_before_anything_is_written(
        pair: Any, tmp_path: Path) -> None:
    source, target = pair
    mq = source
    mq.declare("bulk", kind="fifo")
    mq.publish_batch("bulk", [("ioc.raw", {"i": i, "pad": "x" * 50}) for i in range(
        3 * SEAL_EVERY)])
    good = tmp_path / "good.pnbk"
    mq.backup(good)
    data = good.read_bytes()
    for at in (len(data) // 5, len(data) // 2, len(data) - 20):
        bad = tmp_path / f"bad-{at}.pnbk"
        bad.write_bytes(data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:])

        with pytest.raises(ArchiveError, match="does not verify|damaged|truncated"):
            target.restore(bad)

    assert target.queues() == []
    assert not list(target.client.scan_iter(f"{target.keys.prefix}:*"))


def test_a_truncated_archive_is_refused(pair: Any, tmp_path: Path) -> None:
    source, target = pair
    seed(source)
    good = tmp_path / "a.pnbk"
    source.backup(good)
    cut = tmp_path / "cut.pnbk"
    cut.write_bytes(good.read_bytes()[:-40])

    with pytest.raises(ArchiveError, match="truncated|damaged"):
        target.restore(cut)
    assert target.queues() == []


def test_an_archive_checked_with_another_key_is_refused_naming_both_keys(
        pair: Any, tmp_path: Path) -> None:
    source, _ = pair
    seed(source)
    source.backup(tmp_path / "a.pnbk")
    other = SecretKey.from_base64("bk-2", OTHER_KEY.split(":", 1)[1])

    with pytest.raises(ArchiveError, match="'bk-1'.*'bk-2'"):
        verify_archive(tmp_path / "a.pnbk", other)


def test_a_file_that_is_no_archive_or_a_newer_format_is_refused_clearly(tmp_path: Path) -> None:
    key = backup_key(settings())
    (tmp_path / "x.pnbk").write_bytes(b"hello world")
    (tmp_path / "new.pnbk").write_bytes(b"PNBACKUP\x07rest")

    with pytest.raises(ArchiveError, match="not a phantom_notebook backup"):
        verify_archive(tmp_path / "x.pnbk", key)
    with pytest.raises(ArchiveError, match="format 7.*upgrade"):
        verify_archive(tmp_path / "new.pnbk", key)


def test_backing_up_without_any_key_is_a_clear_config_error(tmp_path: Path,
                                                           monkeypatch: Any) -> None:
    for var in ("PHANTOM_BACKUP_KEY", "PHANTOM_AUDIT_KEY"):
        monkeypatch.delenv(var, raising=False)
    mq = pn.connect(None, key_prefix=f"k{uuid.uuid4().hex[:6]}", settings=pn.Settings())

    with pytest.raises(ConfigError, match="PHANTOM_BACKUP_KEY"):
        mq.backup(tmp_path / "a.pnbk")
    assert not (tmp_path / "a.pnbk").exists()


def test_sealed_messages_stay_sealed_and_a_wrong_key_ring_dead_letters_them_on_consume(
        redis_url: str, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    source = pn.connect(redis_url, key_prefix=f"e{tag}", settings=settings(keys=RING_A))
    target = pn.connect(redis_url, key_prefix=f"f{tag}", settings=settings(keys=RING_B))
    source.declare("ioc-secret", enable_encryption=True)
    for i in range(20):
        source.publish("ioc-secret", "ioc.raw", {"secret-indicator": f"evil-{i}.example"})
    archive = tmp_path / "sealed.pnbk"
    source.backup(archive)

    assert b"evil-" not in _decompressed(archive)
    target.restore(archive)
    target.declare("ioc-secret", enable_encryption=True)
    target.subscribe("ioc-secret", "*", Collector())
    with target.worker():
        assert eventually(lambda: target.stats("ioc-secret")[0].dead == 20)
    reasons = {x.reason for x in target.dlq("ioc-secret").list()}
    assert reasons == {"unknown_key"}
    assert target.stats("ioc-secret")[0].ready == 0


def _decompressed(path: Path) -> bytes:
    import zstandard

    data = path.read_bytes()[9:]
    return zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True).read()


def test_a_four_partition_queue_restores_into_one_and_into_three_partitions(
        redis_url: str, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    source = pn.connect(redis_url, key_prefix=f"p{tag}", settings=settings())
    source.declare("ioc-wide", kind="priority", partitions=4)
    published = set(source.publish_batch("ioc-wide", [
        pn.Message("ioc.raw", {"ioc": {"value": f"10.0.0.{i}"}}) for i in range(400)]))
    source.backup(tmp_path / "wide.pnbk")

    for count in (1, 3):
        target = pn.connect(redis_url, key_prefix=f"q{count}{tag}", settings=settings())
        target.restore(tmp_path / "wide.pnbk", partitions=count)
        assert target.layout("ioc-wide").count == count
        got = Collector()
        target.subscribe("ioc-wide", "*", got)
        with target.worker():
            assert got.wait_for(400)
        assert {e.id for e in got.envelopes} == published
        assert len(got.envelopes) == 400
        # each indicator's messages live in the partition its key routes to
        layout = target.layout("ioc-wide")
        assert sum(target.stats_of_partitions(layout.active)[i].depth
                   for i in range(count)) == 0


def test_the_audit_trail_is_restored_with_its_ids_and_still_verifies(
        pair: Any, tmp_path: Path) -> None:
    source, target = pair
    seed(source)
    assert source.audit is not None
    for i in range(5):
        source.audit.record("acl_change", "*", detail={"n": i})
    source.backup(tmp_path / "a.pnbk", audit=True)

    report = target.restore(tmp_path / "a.pnbk")
    again = target.restore(tmp_path / "a.pnbk")

    assert report.audit["written"] >= 6 and again.audit == {"written": 0,
                                                           "skipped": report.audit["written"]}
    key = SecretKey.from_base64("audit-1", AUDIT_KEY.split(":", 1)[1])
    assert verify_audit(target, key).status in ("ok", "unanchored")
    assert target.audit is not None
    taken = [(e.action, e.target) for e in source.audit.entries(limit=10_000)]
    restored = [(e.action, e.target) for e in target.audit.entries(limit=10_000)]
    assert taken.count(("backup", "ioc-intel")) == 1  # written after the archive closed
    assert restored.count(("restore", "ioc-intel")) == 2
    assert verify_audit(target, key).checked >= report.audit["written"]


def test_a_dry_run_reports_what_it_would_restore_and_writes_nothing(
        pair: Any, tmp_path: Path) -> None:
    source, target = pair
    seed(source)
    source.backup(tmp_path / "a.pnbk")

    report = target.restore(tmp_path / "a.pnbk", dry_run=True)

    assert report.dry_run and report.messages == 15
    assert "would restore" in str(report)
    assert not list(target.client.scan_iter(f"{target.keys.prefix}:*"))


def test_dedup_windows_survive_so_a_republished_duplicate_is_still_caught(
        pair: Any, tmp_path: Path) -> None:
    source, target = pair
    source.declare("feeds", kind="fifo", enable_deduplication=True)
    source.publish("feeds", "ioc.raw", {"v": 1}, dedup_key="feed-7:row-1")
    source.backup(tmp_path / "a.pnbk")
    target.restore(tmp_path / "a.pnbk")
    target.declare("feeds", kind="fifo", enable_deduplication=True)

    target.publish("feeds", "ioc.raw", {"v": 1}, dedup_key="feed-7:row-1")

    assert target.stats("feeds")[0].ready == 1


def test_the_manifest_says_what_a_backup_under_load_includes(pair: Any, tmp_path: Path) -> None:
    source, _ = pair
    seed(source)
    source.backup(tmp_path / "a.pnbk")

    summary = verify_archive(tmp_path / "a.pnbk", backup_key(source.settings))

    m = summary.manifest
    assert m["consistency"] == CONSISTENCY and "exactly once" in m["consistency"]
    assert (m["format"], m["prefix"], m["queues"], m["key_id"]) == (
        1, source.keys.prefix, ["ioc-intel"], "bk-1")
    assert summary.queues["ioc-intel"] == {"entry": 12, "delayed": 2, "dead": 1}
    assert os.path.getsize(tmp_path / "a.pnbk") == summary.compressed_bytes


def test_snapshot_copies_are_gone_after_the_backup(pair: Any, tmp_path: Path) -> None:
    source, _ = pair
    seed(source)
    source.backup(tmp_path / "a.pnbk")

    assert not list(source.client.scan_iter(f"{source.keys.prefix}:*:bk:*"))


def test_a_broadcast_queue_comes_back_with_each_groups_place(pair: Any, tmp_path: Path) -> None:
    """Group "siem" had received 6 of 10 (acked 4, holds 2); group "soar" was down."""
    source, target = pair
    source.declare("alerts-fanout", kind="broadcast")
    for group in ("siem", "soar"):
        source.ensure_group("alerts-fanout", group)
    ids = [source.publish("alerts-fanout", "alert.raw", {"n": i}) for i in range(10)]
    stream = source.queue_keys("alerts-fanout").stream(2)
    got = source.client.xreadgroup("siem", "siem-1", {stream: ">"}, count=6)[0][1]
    source.client.xack(stream, "siem", *[sid for sid, _ in got[:4]])
    source.backup(tmp_path / "b.pnbk")

    target.restore(tmp_path / "b.pnbk")

    tstream = target.queue_keys("alerts-fanout").stream(2)
    assert target.client.xlen(tstream) == 10
    siem = target.client.xreadgroup("siem", "siem-2", {tstream: ">"})[0][1]
    soar = target.client.xreadgroup("soar", "soar-2", {tstream: ">"})[0][1]
    held = target.client.xpending_range(tstream, "siem", "-", "+", 10)

    def payload_ids(entries: Any) -> list[int]:
        return [int(target.codec.open(f[b"m"]).payload["n"]) for _, f in entries]

    assert payload_ids(siem) == [6, 7, 8, 9]
    assert payload_ids(soar) == list(range(10))
    assert sorted(int(p["times_delivered"]) for p in held if p["consumer"] == b"pn-restore") \
        == [1, 1]
    assert len(ids) == 10


def test_many_restored_in_flight_messages_are_handed_out_at_once_not_a_batch_per_reclaim(
        pair: Any, tmp_path: Path) -> None:
    """300 in flight, workers fetching 20 at a time, a 30 s visibility timeout: without
    reclaiming again while reclaims fill whole batches this took 15 x 7.5 s."""
    source, target = pair
    source.declare("ioc-busy", kind="fifo")
    source.publish_batch("ioc-busy", [("ioc.raw", {"i": i}) for i in range(300)])
    source.ensure_group("ioc-busy")
    stream = source.queue_keys("ioc-busy").stream(2)
    source.client.xreadgroup("workers", "crashed", {stream: ">"}, count=300)
    source.backup(tmp_path / "busy.pnbk")
    target.restore(tmp_path / "busy.pnbk")
    got = Collector()
    target.subscribe("ioc-busy", "*", got, prefetch_count=20)

    with target.worker():
        assert got.wait_for(300, timeout_s=20)

    assert sorted(got.delivery_counts) == [2] * 300
