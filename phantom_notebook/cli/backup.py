"""``backup``, ``backup verify``, ``restore`` and ``retention``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC
from typing import Any

from .. import core
from ..core.backup.archive import verify_archive
from ..core.backup.keys import backup_key
from ..core.backup.schedule import parse_duration, run_every
from .common import add_connection, connect


def register(sub: Any) -> None:
    """Add ``backup`` (and ``backup verify``), ``restore`` and ``retention``."""
    b = add_connection(sub.add_parser(
        "backup", help="Back up queues, dead letters (and the audit trail) to a signed archive.",
        description="Write a zstd-compressed, HMAC-signed archive of every stored message "
                    "(ready, in flight, delayed, retrying, dead), dedup windows and consumer "
                    "groups; each partition is snapshotted at one point while work goes on. "
                    "Key: $PHANTOM_BACKUP_KEY, security.backup_key, else the audit key."))
    b.add_argument("--output", "-o", help="archive file to write")
    b.add_argument("--output-dir", help="directory for scheduled archives (with --every)")
    b.add_argument("--every", help="back up on this interval (15m, 1h, 1d) until stopped")
    b.add_argument("--keep", type=int, default=48, help="archives kept in --output-dir (48)")
    b.add_argument("--queues", help="comma-separated names or globs (default: every queue)")
    b.add_argument("--audit", action="store_true", help="include the audit trail")
    b.add_argument("--quiet", "-q", action="store_true", help="no progress bar (cron)")
    b.set_defaults(func=_backup)
    b_sub = b.add_subparsers(dest="backup_command", metavar="ACTION")
    verify = add_connection(b_sub.add_parser(
        "verify", help="Check an archive's format, HMAC and counts (no Redis needed)."))
    verify.add_argument("archive")
    verify.set_defaults(func=_verify)

    r = add_connection(sub.add_parser(
        "restore", help="Restore a backup archive (verified first; idempotent).",
        description="Restore an archive into this deployment: any topology, any partition "
                    "count; in-flight messages come back pending with their delivery counts, "
                    "delayed ones keep their due times; restoring twice writes nothing new."))
    r.add_argument("archive")
    r.add_argument("--queues", help="comma-separated names or globs (default: all archived)")
    r.add_argument("--into-prefix", help="restore under this key prefix instead")
    r.add_argument("--partitions", type=int, help="partition count for queues not yet here")
    r.add_argument("--dry-run", action="store_true", help="verify and report; write nothing")
    r.add_argument("--no-audit", action="store_true", help="leave the archived audit trail out")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    r.set_defaults(func=_restore)

    t = add_connection(sub.add_parser(
        "retention", help="Show every retention policy per queue; --apply enforces them.",
        description="Message TTL, dead-letter TTL, trace and metric retention per queue, and "
                    "the audit retention (checkpointed before trimming)."))
    t.add_argument("--queues", help="comma-separated names or globs (default: every queue)")
    t.add_argument("--apply", action="store_true",
                   help="trim expired dead letters and the audit trail now (an admin's job)")
    t.set_defaults(func=_retention)


@contextmanager
def _bar(quiet: bool, label: str) -> Iterator[Callable[[int, int], None] | None]:
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _backup(args: argparse.Namespace) -> int:
    mq = connect(args)
    options: dict[str, Any] = {"queues": args.queues, "audit": args.audit}
    if args.every or args.output_dir:
        if not (args.every and args.output_dir):
            raise core.ValidationError("scheduled backups need both --every and --output-dir")
        every = parse_duration(args.every)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())

        def said(report: Any, error: BaseException | None) -> None:
            if report is not None and not args.quiet:
                print(report, flush=True)

        try:
            failures = run_every(mq, args.output_dir, every, args.keep, stop=stop,
                                 on_result=said, **options)
        except KeyboardInterrupt:
            return 0
        return 1 if failures else 0
    if not args.output:
        raise core.ValidationError("backup needs --output FILE (or --every and --output-dir)")
    with _bar(args.quiet, "backup") as progress:
        report = mq.backup(args.output, progress=progress, **options)
    if not args.quiet:
        print(report)
    return 0


def _verify(args: argparse.Namespace) -> int:
    settings = core.Settings.load(args.settings)
    summary = verify_archive(args.archive, backup_key(settings))
    m = summary.manifest
    print(f"{args.archive}: OK - format {m.get('format')}, archive {m.get('archive_id')}, "
          f"taken {_when(m.get('created_ms'))} from prefix {m.get('prefix')!r} "
          f"({m.get('source')}), key {m.get('key_id')!r}")
    print(f"  {summary.messages:,} messages in {len(summary.queues)} queues, "
          f"{summary.counts.get('dedup', 0):,} dedup records, "
          f"{summary.counts.get('audit', 0):,} audit entries, "
          f"{summary.compressed_bytes / 2**20:.1f} MiB")
    for queue, per in sorted(summary.queues.items()):
        print(f"  {queue}: {per.get('entry', 0):,} in streams, {per.get('delayed', 0):,} "
              f"delayed, {per.get('dead', 0):,} dead letters")
    return 0


def _restore(args: argparse.Namespace) -> int:
    overrides = {"key_prefix": args.into_prefix} if args.into_prefix else {}
    mq = connect(args, **overrides)
    with _bar(args.quiet or args.dry_run, "restore") as progress:
        report = mq.restore(args.archive, queues=args.queues, dry_run=args.dry_run,
                            partitions=args.partitions, audit=not args.no_audit,
                            progress=progress)
    print(report)
    return 0


def _retention(args: argparse.Namespace) -> int:
    from ..core.admin.retention import apply_retention, retention_policies

    mq = connect(args)
    policies = retention_policies(mq, args.queues)
    for p in policies:
        print(p.describe())
    if args.apply:
        done = apply_retention(mq, args.queues)
        print(f"applied: {done['dead_letters']:,} expired dead letters removed, "
              f"{done['audit']:,} audit entries trimmed (after a checkpoint)")
    return 0


def _when(ms: Any) -> str:
    from datetime import datetime

    if not isinstance(ms, int):
        return "?"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
