"""Backups on an interval with retention: ``phantom-notebook backup --every 1h --keep 48``.

Each run writes ``<dir>/pn-backup-<UTC time>.pnbk`` (complete or absent: archives are
written to ``.part`` and renamed), then deletes the oldest archives of that name pattern
beyond ``keep``. A failed run is logged and recorded (``<prefix>:backup:last`` keeps the
last *good* one, whose age health reports), and the next run comes at its time.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import PhantomError, ValidationError
from .take import BackupReport, take_backup

if TYPE_CHECKING:
    from ..queues import MessageQueue

log = logging.getLogger("phantom_notebook.backup")

PATTERN = "pn-backup-*.pnbk"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


def parse_duration(text: str) -> float:
    """Seconds in ``"90s"``, ``"15m"``, ``"1h"``, ``"2d"``."""
    m = _DURATION.match(text or "")
    if not m or float(m.group(1)) <= 0:
        raise ValidationError(f"invalid duration {text!r}: use a number and s, m, h or d "
                              "(e.g. 15m, 1h, 2d)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def archive_name(when: datetime | None = None) -> str:
    """The file name of an archive taken at ``when`` (UTC; sorts by time)."""
    when = when or datetime.now(UTC)
    return f"pn-backup-{when.strftime('%Y%m%dT%H%M%S')}Z.pnbk"


def prune(directory: str | Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest archives in ``directory``; returns those deleted."""
    if keep < 1:
        raise ValidationError(f"--keep must be at least 1, got {keep}")
    archives = sorted(Path(directory).glob(PATTERN))
    doomed = archives[:-keep]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def backup_once(mq: MessageQueue, directory: str | Path, keep: int,
                **options: Any) -> BackupReport:
    """One scheduled run: a new archive in ``directory``, then retention."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    path = out / archive_name()
    if path.exists():  # two runs in one second: never overwrite an archive
        time.sleep(1.0 - (time.time() % 1.0))
        path = out / archive_name()
    report = take_backup(mq, path, **options)
    for old in prune(out, keep):
        log.info("backup retention: removed %s", old)
    return report


def run_every(mq: MessageQueue, directory: str | Path, every_s: float, keep: int, *,
              stop: threading.Event | None = None,
              on_result: Callable[[BackupReport | None, BaseException | None], None]
              | None = None, **options: Any) -> int:
    """Back up every ``every_s`` seconds until ``stop`` is set; returns the failed runs."""
    stop = stop or threading.Event()
    failures = 0
    next_at = time.monotonic()
    while not stop.is_set():
        try:
            report = backup_once(mq, directory, keep, **options)
        except (PhantomError, OSError) as exc:
            failures += 1
            log.error("scheduled backup failed: %s", exc)
            if on_result is not None:
                on_result(None, exc)
        else:
            if on_result is not None:
                on_result(report, None)
        next_at += every_s
        stop.wait(max(0.0, next_at - time.monotonic()))
    return failures


__all__ = ["PATTERN", "archive_name", "backup_once", "parse_duration", "prune", "run_every"]
