"""A backup taken under load on a 3-master Cluster restores into a different partition
count with every message accounted for: restored, or consumed at the source before its
partition's cut; none twice; dead letters with their reasons; the audit trail verifying."""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import phantom_notebook as pn
from phantom_notebook.core.audit.verify import verify_audit
from phantom_notebook.core.backup.archive import PAGES, ArchiveReader
from phantom_notebook.core.backup.keys import backup_key
from phantom_notebook.core.config.settings import SecuritySettings
from phantom_notebook.core.errors import Reject, Retry
from phantom_notebook.core.model.codec import peek_header
from phantom_notebook.core.security.keyring import SecretKey
from tests.support.cluster import RedisClusterFixture
from tests.support.collect import eventually

pytestmark = pytest.mark.slow

AUDIT = "audit-1:" + base64.b64encode(bytes(range(9, 41))).decode()
TOTAL = 100_000
BATCH = 1_000


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterFixture]:
    built = RedisClusterFixture(masters=3, replicas=0).start()
    try:
        yield built
    finally:
        built.close()


class Ledger:
    """Ids a handler saw (thread-safe), and how often."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}
        self.lock = threading.Lock()

    def add(self, mid: str) -> None:
        with self.lock:
            self.seen[mid] = self.seen.get(mid, 0) + 1

    def count(self) -> int:
        with self.lock:
            return len(self.seen)


def read_archive(path: Path, mq: pn.MessageQueue) -> tuple[dict[str, str], dict[str, str]]:
    """Message id -> kind of every stored message, and id -> reason of every dead letter."""
    archived: dict[str, str] = {}
    dead_reasons: dict[str, str] = {}
    for record in ArchiveReader(path, backup_key(mq.settings)).records():
        if record.kind not in PAGES:
            continue
        for i, blob in enumerate(record.envelopes()):
            mid = str(peek_header(blob).get("id"))
            if record.kind == "dead":
                dead_reasons[mid] = record.meta["fields"][i]["reason"]
            else:
                assert mid not in archived, "a message archived twice"
                archived[mid] = record.kind
    return archived, dead_reasons


def load(mq: pn.MessageQueue, published: dict[str, str], stop: threading.Event) -> None:
    """Publish TOTAL messages in batches: every 10th delayed 1.5 s, some to be retried
    once, some poisoned (dead-lettered), every 7th batch to the FIFO queue."""
    n = 0
    while n < TOTAL and not stop.is_set():
        rows, flags = [], []
        for i in range(n, n + BATCH):
            flag = "poison" if i % 97 == 0 else "retry" if i % 89 == 0 else ""
            rows.append(pn.Message("ioc.raw", {"ioc": {"value": f"198.51.{i // 250}.{i % 250}"},
                                               "flag": flag},
                                   priority=i % 4, delay=1.5 if i % 10 == 0 else None))
            flags.append(flag)
        queue = "ioc-fifo" if (n // BATCH) % 7 == 0 else "ioc-load"
        for mid, flag in zip(mq.publish_batch(queue, rows), flags, strict=True):
            published[mid] = flag
        n += BATCH


def test_a_backup_under_load_restores_into_another_partition_count_accounting_for_all(
        cluster: RedisClusterFixture, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    conf = pn.Settings(security=SecuritySettings(audit_key=AUDIT))
    source = pn.connect(cluster.url, key_prefix=f"s{tag}", settings=conf)
    source.declare("ioc-load", kind="priority", partitions=4)
    source.declare("ioc-fifo", kind="fifo")
    published: dict[str, str] = {}  # id -> its flag ("", "retry", "poison")
    consumed = Ledger()
    stop = threading.Event()

    def handle(message: pn.Envelope, context: pn.MessageContext) -> None:
        flag = message.payload.get("flag")
        if flag == "poison":
            raise Reject("poisoned indicator")
        if flag == "retry" and message.attempt == 1:
            raise Retry("enrichment provider busy", delay_s=0.5)
        consumed.add(message.id)

    for queue in ("ioc-load", "ioc-fifo"):
        source.subscribe(queue, "*", handle, prefetch_count=50)
    producer = threading.Thread(target=load, args=(source, published, stop))
    producer.start()
    worker = source.worker().start()
    try:
        assert eventually(lambda: len(published) >= TOTAL // 2 and consumed.count() > 5_000,
                          timeout_s=60)
        before = set(published)  # publishes confirmed before the backup began
        report = source.backup(tmp_path / "load.pnbk", audit=True)  # producers and workers run
        producer.join(timeout=120)
        assert not producer.is_alive()
    finally:
        stop.set()
        worker.stop()
    print(f"\n{report}")

    archived, dead_reasons = read_archive(tmp_path / "load.pnbk", source)
    assert set(archived) | set(dead_reasons) <= set(published)
    missing = before - set(archived) - set(dead_reasons)
    # what the archive lacks of what was published before it began was consumed (or
    # dead-lettered) at the source before the cut: never lost
    dead_at_source = {x.message_id for q in ("ioc-load", "ioc-fifo")
                      for x in source.dlq(q).list(limit=None)}
    assert missing <= set(consumed.seen) | dead_at_source

    target = pn.connect(cluster.url, key_prefix=f"t{tag}", settings=conf)
    restored = target.restore(tmp_path / "load.pnbk", partitions={"ioc-load": 6, "ioc-fifo": 3})
    print(restored)
    assert target.layout("ioc-load").count == 6 and target.layout("ioc-fifo").count == 3
    assert restored.messages == len(archived) + len(dead_reasons)

    again = Ledger()

    def drain(message: pn.Envelope, context: pn.MessageContext) -> None:
        if message.payload.get("flag") == "poison":
            raise Reject("poisoned indicator")
        again.add(message.id)

    for queue in ("ioc-load", "ioc-fifo"):
        target.declare(queue, visibility_timeout_s=1.0)
        target.subscribe(queue, "*", drain, prefetch_count=200)
    live = set(archived)
    poisoned = {mid for mid in live if published[mid] == "poison"}
    with target.worker():
        assert eventually(lambda: again.count() >= len(live - poisoned), timeout_s=120)
        assert eventually(lambda: sum(s.depth for s in target.stats(["ioc-load", "ioc-fifo"]))
                          == 0, timeout_s=30)

    duplicates = [mid for mid, n in again.seen.items() if n > 1]
    print(f"published {len(published):,} ({len(before):,} before the backup began); "
          f"consumed at the source {consumed.count():,}; "
          f"archived {len(archived):,} + {len(dead_reasons):,} dead letters; "
          f"published before the backup but not archived (consumed or dead before the cut) "
          f"{len(missing):,}; restored "
          f"{restored.messages:,}; consumed after restore {again.count():,}; "
          f"duplicates {len(duplicates)}")
    assert duplicates == []
    assert set(again.seen) == live - poisoned
    target_dead = {x.message_id: x.reason for q in ("ioc-load", "ioc-fifo")
                   for x in target.dlq(q).list(limit=None)}
    assert {m: target_dead[m] for m in dead_reasons} == dead_reasons
    audit_key = SecretKey.from_base64("audit-1", AUDIT.split(":", 1)[1])
    assert verify_audit(target, audit_key).status in ("ok", "unanchored")
    source.close()
    target.close()
