"""Taking a backup: each partition snapshotted atomically, then streamed into an archive.

For every selected queue, every partition (active and draining) is copied inside Redis by
one call of ``pn1_snapshot`` (a single point for all of that partition's keys, while
producers and consumers keep running), then read from the copies page by page and written
as records (``archive.py``); the copies are dropped at once. Memory on the client is one
page (``page`` entries), however large the queues.

What one backup holds, per partition: every stream entry (ready, or in flight with its
delivery count and the group holding it), every delayed message and retry with its due
time, every dead letter with its reason, the dedup windows, the consumer groups and
their positions, the queue's kind, layout and settings; with ``audit=True`` the audit
streams up to the moment they are read. Not held: metrics, traces, heartbeats, breaker
states, replay claims and idempotency marks (all rebuilt or short-lived), pub/sub
traffic (never stored). Each partition has its own point in time; partitions are not cut
together (a message can be acked in partition 1 after partition 0 was taken).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..admin.registry import select_queues
from ..audit.inline import AuditItem, record_safely
from ..backend.boundary import guarded
from ..backend.keyspace import QueueKeys
from ..model.envelope import new_id, now_ms
from ..security.keyring import SecretKey
from .archive import FORMAT, ArchiveWriter
from .keys import backup_key

if TYPE_CHECKING:
    from ..queues import MessageQueue

log = logging.getLogger("phantom_notebook.backup")

PAGE = 1000
SNAPSHOT_TTL_MS = 3600 * 1000
Progress = Callable[[int, int], None]

CONSISTENCY = (
    "Each partition was copied at one point in time (one atomic Redis call over all of its "
    "keys) while producers and consumers ran: every message it held then is in the archive "
    "exactly once, in the state it had at that point (ready, in flight with its delivery "
    "count, delayed or retrying with its due time, dead-lettered). Messages published after "
    "that point are not included; messages acked before it are not included. Partitions "
    "are not cut together. Audit streams are read up to 'audit_cut_ms'. Not included: "
    "metrics, traces, heartbeats, breaker states, replay claims, idempotency marks and "
    "pub/sub traffic.")


@dataclass
class BackupReport:
    """What ``backup`` wrote."""

    path: str
    archive_id: str
    queues: list[str]
    partitions: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    raw_bytes: int = 0
    seconds: float = 0.0
    snapshot_ms_max: float = 0.0

    @property
    def messages(self) -> int:
        """Messages archived: stream entries, delayed messages and dead letters."""
        return sum(self.counts.get(k, 0) for k in ("entry", "delayed", "dead"))

    @property
    def messages_per_s(self) -> float:
        """Archived messages per second of the whole backup."""
        return self.messages / self.seconds if self.seconds else 0.0

    @property
    def bytes_per_message(self) -> float:
        """Archive bytes (compressed) per archived message."""
        return self.bytes / self.messages if self.messages else 0.0

    def __str__(self) -> str:
        c = self.counts
        return (f"backup {self.path}: {plural(len(self.queues), 'queue')}, "
                f"{plural(self.partitions, 'partition')}, "
                f"{self.messages:,} messages ({c.get('entry', 0):,} in streams of which "
                f"{c.get('inflight', 0):,} in flight, {c.get('delayed', 0):,} delayed, "
                f"{c.get('dead', 0):,} dead letters), {c.get('audit', 0):,} audit entries; "
                f"{self.bytes / 2**20:.1f} MiB ({self.bytes_per_message:.0f} B/message) in "
                f"{self.seconds:.1f} s ({self.messages_per_s:,.0f} messages/s)")


@guarded
def take_backup(mq: MessageQueue, output: str | Path, *, queues: str | Iterable[str] | None = None,
                audit: bool = False, key: SecretKey | str | None = None,
                progress: Progress | None = None, page: int = PAGE) -> BackupReport:
    """Write an archive of the selected queues (and optionally the audit trail) to ``output``.

    Needs ``manage`` on every selected queue (and ``read_audit`` for ``audit``); the
    archive is MACed with the backup key (``keys.py``). Returns a ``BackupReport``.
    """
    started = time.perf_counter()
    secret = backup_key(mq.settings, key)
    names = select_queues(mq.queues(), queues)
    for name in names:
        mq.authorize("manage", name)
    if audit:
        mq.authorize("read_audit")
    archive_id = new_id()
    report = BackupReport(str(output), archive_id, names)
    counts = report.counts
    with ArchiveWriter(output, secret) as writer:
        writer.write("archive", {
            "format": FORMAT, "archive_id": archive_id, "created_ms": now_ms(),
            "software": _version(), "prefix": mq.keys.prefix, "key_id": secret.key_id,
            "source": _topology(mq), "queues": names, "audit": audit,
            "selection": queues if isinstance(queues, str) or queues is None else list(queues),
            "consistency": CONSISTENCY})
        reader = _PartitionReader(mq, writer, archive_id[-12:], counts, page, progress)
        for name in names:
            qs = mq.declare(name)
            layout = mq.layout(name, fresh=True)
            created = mq.client.hget(mq.queue_keys(name).meta, "created_ms")
            writer.write("queue", {
                "queue": name, "kind": qs.kind, "partitions": layout.count,
                "active": list(layout.active), "draining": list(layout.draining),
                "created_ms": int(created) if created else None,
                "settings": _settings(qs)})
            for part in layout.all:
                took = reader.take(name, part, qs.kind, int(qs.deduplication_window_s * 1000))
                report.snapshot_ms_max = max(report.snapshot_ms_max, took)
                report.partitions += 1
        if audit:
            _audit(mq, writer, names, counts)
        report.raw_bytes = writer.raw_bytes
        writer.close(archive_id=archive_id, messages=report.messages)
    report.bytes = Path(output).stat().st_size
    report.seconds = time.perf_counter() - started
    _record(mq, report)
    record_safely(mq.audit, AuditItem("backup", ",".join(names) or "*", "ok", detail={
        "archive_id": archive_id, "messages": report.messages, "audit": audit,
        "path": report.path}))
    log.info("%s", report)
    return report


class _PartitionReader:
    """Snapshot one partition, then page through its copies into the archive."""

    def __init__(self, mq: MessageQueue, writer: ArchiveWriter, token: str,
                 counts: dict[str, int], page: int, progress: Progress | None) -> None:
        self.mq, self.writer, self.token = mq, writer, token
        self.counts, self.page, self.progress = counts, page, progress
        self.done = 0
        self.total = 0

    def _add(self, kind: str, n: int = 1) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + n

    def take(self, queue: str, part: str, kind: str, window_ms: int) -> float:
        mq = self.mq
        keys: QueueKeys = mq.queue_keys(part)
        window = max(window_ms, 1)
        bucket = now_ms() // window
        copies = keys.snapshot(self.token)
        source = [*keys.streams, keys.delayed, keys.dlq, keys.dedup_bucket(bucket),
                  keys.dedup_bucket(bucket - 1)]
        t0 = time.perf_counter()
        cut, copied, ttl0, ttl1, flat = mq.functions.call(
            "snapshot", [*source, *copies], [SNAPSHOT_TTL_MS])
        took = (time.perf_counter() - t0) * 1000
        try:
            groups = [{"level": int(flat[i]), "name": _s(flat[i + 1]), "last": _s(flat[i + 2]),
                       "pending": int(flat[i + 3])} for i in range(0, len(flat), 4)]
            pipe = mq.client.pipeline(transaction=False)
            for i in range(4):
                pipe.xlen(copies[i])
            pipe.zcard(copies[4])
            pipe.xlen(copies[5])
            sizes = pipe.execute()
            self.total += sum(sizes)
            self.writer.write("partition", {
                "queue": queue, "part": part, "cut_ms": int(cut), "groups": groups,
                "sizes": {"streams": sizes[:4], "delayed": sizes[4], "dlq": sizes[5]},
                "dedup": {"window_ms": window, "buckets": [bucket, bucket - 1],
                          "ttl_ms": [int(ttl0), int(ttl1)]}})
            for level in range(4):
                if copied[level]:
                    self._stream(queue, part, level, copies[level], copies[8],
                                 [g for g in groups if g["level"] == level])
            if copied[4]:
                self._delayed(queue, part, copies[4])
            if copied[5]:
                self._dead(queue, part, copies[5])
            for which in (0, 1):
                if copied[6 + which]:
                    self._dedup(queue, part, which, copies[6 + which])
        finally:
            mq.client.unlink(*copies)
        return took

    def _tick(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.done, max(self.total, self.done))

    def _stream(self, queue: str, part: str, level: int, key: str, pel_key: str,
                groups: list[dict[str, Any]]) -> None:
        client = self.mq.client
        has_pending = any(g["pending"] for g in groups)
        lasts = [(g["name"], _order(g["last"])) for g in groups]
        newest = max((last for _, last in lasts), default=(-1, -1))
        start = "-"
        while True:
            entries = client.xrange(key, start, "+", count=self.page)
            if not entries:
                return
            sids = [_s(sid) for sid, _ in entries]
            pel: list[Any] = []
            if has_pending and _order(sids[0]) <= newest:
                pel = client.hmget(pel_key, [f"{level}:{sid}" for sid in sids])
            recv: dict[str, dict[str, int]] = {}
            raw: dict[str, dict[str, str]] = {}
            lens: list[int] = []
            blobs: list[bytes] = []
            for i, (sid, (_, fields)) in enumerate(zip(sids, entries, strict=True)):
                at = _order(sid)
                if at <= newest:  # received by some group (in flight, or acked and kept)
                    counts = _pending(pel[i]) if pel else {}
                    got = {name: counts.get(name, 0) for name, last in lasts if at <= last}
                    if got:
                        recv[str(i)] = got
                        if any(got.values()):
                            self._add("inflight")
                blob = fields.get(b"m")
                if not isinstance(blob, bytes) or len(fields) != 1:
                    raw[str(i)] = {_s(k): _s(v) for k, v in fields.items() if k != b"m"}
                    blob = blob if isinstance(blob, bytes) else b""
                lens.append(len(blob))
                blobs.append(blob)
            meta: dict[str, Any] = {"queue": queue, "part": part, "level": level, "sids": sids,
                                    "lens": lens}
            if recv:
                meta["recv"] = recv
            if raw:
                meta["fields"] = raw
            self.writer.write("entry", meta, b"".join(blobs), items=len(entries))
            self._add("entry", len(entries))
            self._tick(len(entries))
            start = "(" + sids[-1]

    def _delayed(self, queue: str, part: str, key: str) -> None:
        client = self.mq.client
        at = 0
        while True:
            members = client.zrange(key, at, at + self.page - 1, withscores=True)
            if not members:
                return
            self.writer.write("delayed", {
                "queue": queue, "part": part, "levels": [int(m[:1]) for m, _ in members],
                "dues": [int(score) for _, score in members],
                "lens": [len(m) - 1 for m, _ in members]},
                b"".join(m[1:] for m, _ in members), items=len(members))
            self._add("delayed", len(members))
            self._tick(len(members))
            at += len(members)

    def _dead(self, queue: str, part: str, key: str) -> None:
        client = self.mq.client
        start = "-"
        while True:
            entries = client.xrange(key, start, "+", count=self.page)
            if not entries:
                return
            blobs = [f.get(b"m") if isinstance(f.get(b"m"), bytes) else b"" for _, f in entries]
            self.writer.write("dead", {
                "queue": queue, "part": part, "ids": [_s(sid) for sid, _ in entries],
                "fields": [{_s(k): _s(v) for k, v in f.items() if k != b"m"} for _, f in entries],
                "lens": [len(b) for b in blobs]}, b"".join(blobs), items=len(entries))
            self._add("dead", len(entries))
            self._tick(len(entries))
            start = "(" + _s(entries[-1][0])

    def _dedup(self, queue: str, part: str, which: int, key: str) -> None:
        cursor = 0
        while True:
            cursor, chunk = self.mq.client.hscan(key, cursor, count=self.page)
            if chunk:
                self.writer.write("dedup", {"queue": queue, "part": part, "which": which,
                                            "fields": {_s(k): _s(v) for k, v in chunk.items()}},
                                  items=len(chunk))
                self._add("dedup", len(chunk))
            if not cursor:
                return


def _audit(mq: MessageQueue, writer: ArchiveWriter, names: list[str],
           counts: dict[str, int]) -> None:
    client = mq.client
    sec, usec = client.time()
    cut = f"{int(sec) * 1000 + int(usec) // 1000}-18446744073709551615"
    writer.write("audit_cut", {"cut_ms": int(sec) * 1000 + int(usec) // 1000})
    prefix = mq.keys.prefix + ":"
    streams: set[str] = set()
    for pattern in mq.keys.audit_patterns:
        for key in client.scan_iter(match=pattern, count=1000):
            streams.add(_s(key))
    included = set(names)
    for stream in sorted(streams):
        rel = stream[len(prefix):]
        if rel.startswith("{"):
            queue = rel[1:rel.index("}")].split("#")[0]
            if queue not in included:
                continue
        start = "-"
        while True:
            entries = client.xrange(stream, start, cut, count=PAGE)
            if not entries:
                break
            for sid, fields in entries:
                writer.write("audit", {"key": rel, "id": _s(sid),
                                       "fields": {_s(k): _s(v) for k, v in fields.items()}})
            counts["audit"] = counts.get("audit", 0) + len(entries)
            start = "(" + _s(entries[-1][0])


def _record(mq: MessageQueue, report: BackupReport) -> None:
    """Remember the last good backup where health can read it (best effort)."""
    try:
        pipe = mq.client.pipeline(transaction=False)
        pipe.hset(mq.keys.backup_last, mapping={
            "time_ms": now_ms(), "archive_id": report.archive_id, "path": report.path,
            "messages": report.messages, "bytes": report.bytes, "queues": len(report.queues)})
        pipe.hincrby(mq.keys.backup_last, "count", 1)  # good backups so far
        pipe.execute()
    except Exception as exc:  # noqa: BLE001 - the archive is written; health just won't see it
        log.warning("could not record the backup in %s: %s", mq.keys.backup_last, exc)


def _settings(qs: Any) -> dict[str, Any]:
    return {k: v for k, v in asdict(qs).items() if not callable(v)}


def _topology(mq: MessageQueue) -> str:
    if mq.embedded:
        return "embedded"
    url = mq.settings.redis.url or ""
    scheme = url.split("://", 1)[0]
    return {"redis+cluster": "cluster", "redis+sentinel": "sentinel"}.get(scheme, "single")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"phantom_notebook {version('phantom_notebook')}"
    except PackageNotFoundError:
        return "phantom_notebook"


def _pending(raw: Any) -> dict[str, int]:
    if not raw:
        return {}
    out: dict[str, int] = {}
    for item in _s(raw).split(","):
        name, _, count = item.rpartition("=")
        out[name] = int(count)
    return out


def _order(sid: str) -> tuple[int, int]:
    """A stream id as a comparable pair."""
    ms, _, seq = sid.partition("-")
    return int(ms), int(seq or 0)


def _s(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)



def plural(count: int, word: str) -> str:
    """``1 queue``, ``2 queues``."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


__all__ = ["CONSISTENCY", "BackupReport", "plural", "take_backup"]
