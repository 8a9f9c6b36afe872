"""Restoring an archive: verified first, then written back exactly once, on any topology.

1. The whole archive is verified (format, every seal, the end record): a tampered,
   truncated or foreign archive is refused before anything is written.
2. Each selected queue is declared in the target (its kind; the archive's partition count
   unless the queue exists or ``partitions`` says otherwise) and its consumer groups are
   created. Messages are routed by their partition key (as producers route them), so an
   archive of 4 partitions restores into 1 or 6; the same count keeps each message in its
   partition.
3. Two passes over the archive (each segment re-verified as it is read): first the entries
   consumer groups had received (in flight, or acked but kept by a broadcast queue), so
   they go back pending, with their delivery counts, before any ready entry is added
   (``lua/restore.lua``); then ready entries, delayed messages and retries (their due
   times kept: past ones come due at once), dead letters, dedup windows and the audit
   streams (their ids kept, so ``verify_audit`` passes).

Every record goes through the target partition's restore ledger in the same call that
writes it: restoring an archive twice, or two overlapping archives, writes each message
once. Envelopes are written exactly as archived: a target without the right key ring
gets them sealed, and dead-letters them as ``unknown_key`` only when they are consumed.
"""

from __future__ import annotations

import logging
import queue as queue_mod
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..admin.registry import select_queues
from ..audit.inline import AuditItem, record_safely
from ..backend.boundary import guarded
from ..errors import ArchiveError
from ..model.codec import peek_header
from ..model.envelope import now_ms
from ..model.routing import Layout
from ..security.keyring import SecretKey
from .archive import ArchiveReader, ArchiveSummary, Record, verify_archive
from .keys import backup_key
from .take import plural

if TYPE_CHECKING:
    from ..queues import MessageQueue

log = logging.getLogger("phantom_notebook.backup")

BATCH = 500
HOLDER = "pn-restore"
HOLD_IDLE_MS = 24 * 3600 * 1000
LEDGER_TTL_S = 14 * 24 * 3600.0
Progress = Callable[[int, int], None]
_COUNTS = ("entries", "pending", "as_ready", "delayed", "dead", "skipped", "dedup")


@dataclass
class RestoreReport:
    """What ``restore`` wrote (or, with ``dry_run``, would write), per queue."""

    path: str
    archive_id: str
    dry_run: bool
    queues: dict[str, dict[str, int]] = field(default_factory=dict)
    layouts: dict[str, list[str]] = field(default_factory=dict)
    #: audit entries written, and those the target already had (same stream, same id)
    audit: dict[str, int] = field(default_factory=lambda: {"written": 0, "skipped": 0})
    seconds: float = 0.0

    def total(self, what: str) -> int:
        """One count summed over the queues (``entries``, ``pending``, ``skipped`` ...)."""
        return sum(q.get(what, 0) for q in self.queues.values())

    @property
    def messages(self) -> int:
        """Messages written: stream entries, delayed messages and dead letters."""
        return self.total("entries") + self.total("delayed") + self.total("dead")

    @property
    def messages_per_s(self) -> float:
        """Messages written per second."""
        return self.messages / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        verb = "would restore" if self.dry_run else "restored"
        t = self.total
        text = (f"{verb} {self.path}: {plural(len(self.queues), 'queue')}, "
                f"{self.messages:,} messages "
                f"({t('entries'):,} stream entries, {t('pending'):,} back in flight with their "
                f"delivery counts, {t('as_ready'):,} in flight made ready, {t('delayed'):,} "
                f"delayed, {t('dead'):,} dead letters), {t('dedup'):,} dedup keys, "
                f"{self.audit['written']:,} audit entries")
        if t("skipped") or self.audit["skipped"]:
            text += (f"; already restored (skipped): {t('skipped'):,} messages, "
                     f"{self.audit['skipped']:,} audit entries")
        if not self.dry_run:
            text += f" in {self.seconds:.1f} s ({self.messages_per_s:,.0f} messages/s)"
        return text


class _Target:
    """Where one archived queue goes in the target deployment."""

    def __init__(self, mq: MessageQueue, record: Record,
                 partitions: int | Mapping[str, int] | None) -> None:
        meta = record.meta
        self.name: str = meta["queue"]
        self.kind: str = meta["kind"]
        self.source_count = int(meta.get("partitions", 1))
        wanted = partitions.get(self.name) if isinstance(partitions, Mapping) else partitions
        keys = mq.queue_keys(self.name)
        exists = mq.client.hget(keys.meta, "kind") is not None
        overrides: dict[str, Any] = {}
        if wanted is not None:
            overrides["partitions"] = int(wanted)
        elif not exists:
            overrides["partitions"] = self.source_count
        mq.declare(self.name, self.kind, **overrides)
        self.layout: Layout = mq.layout(self.name, fresh=True)
        self.keep = self.layout.count == self.source_count
        self.mq = mq
        self.groups: set[tuple[int, str]] = set()

    def create_groups(self, groups: Iterable[Mapping[str, Any]]) -> None:
        """Create the archived consumer groups on every target partition (once each)."""
        start = "$" if self.kind == "broadcast" else "0"
        new = {(int(g["level"]), str(g["name"])) for g in groups} - self.groups
        if not new:
            return
        pipe = self.mq.client.pipeline(transaction=False)
        for level, name in sorted(new):
            for part in self.layout.active:
                pipe.xgroup_create(self.mq.queue_keys(part).stream(level), name, id=start,
                                   mkstream=True)
        for result in pipe.execute(raise_on_error=False):
            if isinstance(result, Exception) and "BUSYGROUP" not in str(result):
                raise result
        self.groups |= new

    def route(self, source_part: str, header: Mapping[str, Any]) -> str:
        """The target partition of a message archived in ``source_part``."""
        if self.keep and source_part in self.layout.active:
            return source_part
        return self.layout.route_header(header)

    def dedup_targets(self, source_part: str) -> tuple[str, ...]:
        """Where a dedup window goes: its own partition, else every partition (a key's
        messages route by their partition key, which the window does not record)."""
        if self.keep and source_part in self.layout.active:
            return (source_part,)
        return self.layout.active


class _Writer:
    """Buffers restore records per (target partition, kind) and writes them in batches.

    The function calls go out on one sender thread, in order, while the caller decodes
    the next records (at most ``DEPTH`` batches queued: memory stays bounded); an error
    of a call is raised to the caller at its next ``add``/``flush_all``.
    """

    DEPTH = 4

    def __init__(self, mq: MessageQueue, report: RestoreReport, ledger_ttl_ms: int,
                 batch: int, tick: Callable[[int], None]) -> None:
        self.mq, self.report, self.ledger_ttl_ms = mq, report, ledger_ttl_ms
        self.batch, self.tick = batch, tick
        self.buffers: dict[tuple[str, str, str], list[list[Any]]] = {}
        self._calls: queue_mod.Queue[tuple[str, str, str, list[list[Any]]] | None] = \
            queue_mod.Queue(maxsize=self.DEPTH)
        self._error: BaseException | None = None
        self._sender = threading.Thread(target=self._send, name="pn-restore-writer",
                                        daemon=True)
        self._sender.start()

    def add(self, queue: str, part: str, kind: str, args: list[Any]) -> None:
        buf = self.buffers.setdefault((queue, part, kind), [])
        buf.append(args)
        if len(buf) >= self.batch:
            self.flush(queue, part, kind)

    def flush(self, queue: str, part: str, kind: str) -> None:
        rows = self.buffers.pop((queue, part, kind), [])
        if rows:
            self._raise()
            self._calls.put((queue, part, kind, rows))

    def flush_all(self) -> None:
        """Send everything buffered and wait until Redis has written it."""
        for queue, part, kind in list(self.buffers):
            self.flush(queue, part, kind)
        self._calls.join()
        self._raise()

    def close(self) -> None:
        """Stop the sender (after what is queued)."""
        self._calls.put(None)
        self._sender.join()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _send(self) -> None:
        while True:
            item = self._calls.get()
            try:
                if item is None:
                    return
                if self._error is None:
                    self._write(*item)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                self._error = exc
            finally:
                self._calls.task_done()

    def _write(self, queue: str, part: str, kind: str, rows: list[list[Any]]) -> None:
        keys = self.mq.queue_keys(part)
        argv: list[Any] = [self.ledger_ttl_ms, HOLDER, HOLD_IDLE_MS, len(rows)]
        for row in rows:
            argv += row
        written, skipped, pending, as_ready = self.mq.functions.call(
            "restore", [*keys.streams, keys.delayed, keys.dlq, keys.restore_ledger], argv)
        counts = self.report.queues.setdefault(queue, dict.fromkeys(_COUNTS, 0))
        counts[{"e": "entries", "d": "delayed", "x": "dead"}[kind]] += int(written)
        counts["skipped"] += int(skipped)
        counts["pending"] += int(pending)
        counts["as_ready"] += int(as_ready)
        self.tick(len(rows))


@guarded
def restore_backup(mq: MessageQueue, path: str | Path, *,
                   queues: str | Iterable[str] | None = None, dry_run: bool = False,
                   key: SecretKey | str | None = None,
                   partitions: int | Mapping[str, int] | None = None, audit: bool = True,
                   progress: Progress | None = None, ledger_ttl_s: float = LEDGER_TTL_S,
                   batch: int = BATCH) -> RestoreReport:
    """Restore the archive at ``path`` into ``mq``'s deployment (see the module text).

    ``queues`` selects archived queues (comma-separated globs); ``partitions`` sets the
    partition count of queues the target does not have yet; ``dry_run`` verifies and
    reports what would be written, writing nothing. Needs ``manage`` on the queues.
    """
    started = time.perf_counter()
    secret = backup_key(mq.settings, key)
    summary = verify_archive(path, secret)
    manifest = summary.manifest
    names = select_queues(manifest.get("queues", []), queues)
    for name in names:
        mq.authorize("manage", name)
    report = RestoreReport(str(path), str(manifest.get("archive_id", "")), dry_run)
    if dry_run:
        _preview(summary, names, report)
        report.seconds = time.perf_counter() - started
        return report
    wanted = set(names)
    total = sum(n for q, per in summary.queues.items() if q in wanted for n in per.values())
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(done[0], max(total, done[0]))

    writer = _Writer(mq, report, int(ledger_ttl_s * 1000), batch, tick)
    for name in names:
        report.queues[name] = dict.fromkeys(_COUNTS, 0)
    passes = _Passes(mq, writer, report, wanted, partitions, audit, str(path))
    passes.two = bool(summary.received)
    try:
        # the first pass only when some entry was received by a group (else one does all)
        for first in ((True, False) if summary.received else (False,)):
            passes.run(ArchiveReader(path, secret).records(), first)
            writer.flush_all()
    finally:
        writer.close()
    report.seconds = time.perf_counter() - started
    record_safely(mq.audit, AuditItem("restore", ",".join(names) or "*", "ok", detail={
        "archive_id": report.archive_id, "messages": report.messages,
        "skipped": report.total("skipped")}))
    log.info("%s", report)
    return report


class _Passes:
    """The two passes over the archive: received entries first, then everything else."""

    def __init__(self, mq: MessageQueue, writer: _Writer, report: RestoreReport,
                 wanted: set[str], partitions: int | Mapping[str, int] | None, audit: bool,
                 path: str) -> None:
        self.mq, self.writer, self.report, self.wanted = mq, writer, report, wanted
        self.partitions, self.audit, self.path = partitions, audit, path
        self.targets: dict[str, _Target] = {}
        self.info: dict[tuple[str, str], Mapping[str, Any]] = {}
        self.two = True  # two passes: groups are created in the first
        self.audit_rows: list[dict[str, Any]] = []

    def run(self, records: Iterable[Record], first: bool) -> None:
        for record in records:
            if record.kind == "audit":
                if not first and self.audit:
                    self.audit_rows.append(record.meta)
                    if len(self.audit_rows) >= BATCH:
                        self.flush_audit()
                continue
            queue = record.meta.get("queue")
            if queue in self.wanted:
                self._one(record, str(queue), first)
        self.flush_audit()

    def flush_audit(self) -> None:
        """Append the buffered audit entries with their own ids, in one pipeline; an id at
        or below a stream's last one is already there (a second restore) and skipped."""
        rows, self.audit_rows = self.audit_rows, []
        if not rows:
            return
        pipe = self.mq.client.pipeline(transaction=False)
        for meta in rows:
            pipe.xadd(f"{self.mq.keys.prefix}:{meta['key']}", meta["fields"], id=meta["id"])
        for result in pipe.execute(raise_on_error=False):
            if isinstance(result, Exception):
                if "equal or smaller" not in str(result):
                    raise result
                self.report.audit["skipped"] += 1
            else:
                self.report.audit["written"] += 1

    def _one(self, record: Record, queue: str, first: bool) -> None:
        kind, meta = record.kind, record.meta
        if kind == "queue":
            if queue not in self.targets:
                self.targets[queue] = _Target(self.mq, record, self.partitions)
                self.report.layouts[queue] = list(self.targets[queue].layout.active)
            return
        target = self.targets.get(queue)
        if target is None:
            raise ArchiveError(f"backup archive {self.path!r} is damaged: records of "
                               f"{queue!r} come before the queue's own record")
        if kind == "partition":
            self.info[(queue, meta["part"])] = meta
            if first or not self.two:
                target.create_groups(meta.get("groups", []))
        elif kind == "entry":
            # pass 1: the entries groups had received; pass 2 (or the only pass): the rest
            if meta.get("recv") or not first:
                _entry(self.writer, target, record, received=first)
        elif first:
            return
        elif kind == "delayed":
            _delayed(self.writer, target, record)
        elif kind == "dead":
            _dead(self.writer, target, record)
        elif kind == "dedup":
            _dedup(self.mq, target, record, self.info.get((queue, meta["part"])), self.report)


def _ledger(header: Mapping[str, Any], fallback: str) -> str:
    mid, attempt = header.get("id"), header.get("a")
    if isinstance(mid, str) and mid and isinstance(attempt, int):
        return f"e:{mid}:{attempt}"
    return fallback


def _entry(writer: _Writer, target: _Target, record: Record, received: bool) -> None:
    """The page's entries that groups had received (``received``) or those they had not."""
    meta = record.meta
    part_from, level, sids = meta["part"], int(meta["level"]), meta["sids"]
    recv: Mapping[str, Mapping[str, int]] = meta.get("recv") or {}
    raw: Mapping[str, Mapping[str, str]] = meta.get("fields") or {}
    for i, blob in enumerate(record.envelopes()):
        got = recv.get(str(i))
        if bool(got) != received:
            continue
        header = peek_header(blob) if blob else {}
        fields: list[Any] = ["m", blob] if blob else []
        for k, v in (raw.get(str(i)) or {}).items():
            fields += [k, v]
        if not fields:
            continue
        spec = ",".join(f"{g}={int(c)}" for g, c in got.items()) if got else ""
        ledger = _ledger(header, f"r:{part_from}:{level}:{sids[i]}")
        writer.add(target.name, target.route(part_from, header), "e",
                   ["e", ledger, level, spec, len(fields), *fields])


def _delayed(writer: _Writer, target: _Target, record: Record) -> None:
    meta = record.meta
    part_from = meta["part"]
    for blob, level, due in zip(record.envelopes(), meta["levels"], meta["dues"], strict=True):
        header = peek_header(blob)
        ledger = _ledger(header, f"d:{part_from}:{due}:{len(blob)}")
        writer.add(target.name, target.route(part_from, header), "d",
                   ["d", ledger, int(level), int(due), blob])


def _dead(writer: _Writer, target: _Target, record: Record) -> None:
    meta = record.meta
    part_from = meta["part"]
    for blob, dlq_id, extra in zip(record.envelopes(), meta["ids"], meta["fields"],
                                   strict=True):
        header = peek_header(blob) if blob else {}
        fields: list[Any] = ["m", blob]
        for k, v in extra.items():
            fields += [k, v]
        writer.add(target.name, target.route(part_from, header), "x",
                   ["x", f"x:{part_from}:{dlq_id}", len(fields), *fields])


def _dedup(mq: MessageQueue, target: _Target, record: Record,
           info: Mapping[str, Any] | None, report: RestoreReport) -> None:
    if info is None:
        return
    meta = record.meta
    which = int(meta["which"])
    dedup = info.get("dedup", {})
    ttl = int(dedup["ttl_ms"][which]) - (now_ms() - int(info["cut_ms"]))
    if ttl <= 0:
        return  # the window has passed: nothing left to deduplicate against
    bucket = int(dedup["buckets"][which])
    fields: Mapping[str, str] = meta.get("fields") or {}
    pipe = mq.client.pipeline(transaction=False)
    for part in target.dedup_targets(meta["part"]):
        key = mq.queue_keys(part).dedup_bucket(bucket)
        for k, v in fields.items():
            pipe.hsetnx(key, k, v)
        pipe.pexpire(key, ttl)
    pipe.execute()
    report.queues[target.name]["dedup"] += len(fields)


def _preview(summary: ArchiveSummary, names: list[str], report: RestoreReport) -> None:
    for name in names:
        per = summary.queues.get(name, {})
        report.queues[name] = {**dict.fromkeys(_COUNTS, 0), "entries": per.get("entry", 0),
                               "delayed": per.get("delayed", 0), "dead": per.get("dead", 0)}
    report.audit["written"] = summary.counts.get("audit", 0)



__all__ = ["RestoreReport", "restore_backup"]
