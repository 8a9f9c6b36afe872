"""Key rotation: activate a new key, then re-encrypt everything stored under it, safely.

Safe to run twice at once (two operators, a cron job and a person):

* **the key file is locked** (``KeyFileLock``: an exclusive ``flock`` on ``<file>.lock``) for
  the whole rotation, activation and reseal; the ring is re-read under the lock and the new
  key added to what the file holds *now*, so a concurrent rotation's key is never dropped.
  Key ids are unique to the microsecond plus random bits (``new_key_id``), and an id
  already in the ring is never reused.
* **each queue's reseal is fenced** (``<prefix>:{<queue>}:rotation``, a counter): a
  rotation takes the next token before resealing a queue and every reseal call carries
  it; the function refuses a stale token, so a rotation that stalled (or runs elsewhere)
  while another took the queue over can never write envelopes sealed under its ring.

``reseal_all`` walks every queue's ready streams, delayed set and dead-letter queue and
replaces each envelope sealed with an older key by its copy under the active key, in
batches, each batch one atomic function call (``lua/reseal.lua``). Interrupting it (even
with SIGKILL) loses nothing, and running it again continues where it stopped (an envelope
already under the active key is skipped). Entries a worker already holds are left to it
(its retry, if any, is sealed with the active key). Moved ready entries go to the tail of
their level stream: during a rotation, messages published meanwhile may overtake older
ones of the same priority.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import redis

from ..errors import ConfigError, DecodeError, PhantomError
from ..security.keyring import KeyRing

if TYPE_CHECKING:
    from ..ports import Deployment

PAGE = 500


class RotationFencedError(PhantomError):
    """Raised when another rotation took a queue over while this one was resealing it."""


@dataclass
class RotationReport:
    """What a reseal pass did; ``unreadable`` envelopes need attention (non-zero exit)."""

    resealed: int = 0
    skipped_in_flight: int = 0
    unreadable: int = 0
    by_queue: dict[str, int] = field(default_factory=dict)


class KeyFileLock:
    """An exclusive lock on a key file for a whole rotation (``flock`` on ``<file>.lock``).

    Blocks until the lock is free (``timeout_s`` then ``ConfigError``). The OS releases it
    when the process dies, so a killed rotation never leaves the file locked.
    """

    def __init__(self, path: str | os.PathLike[str], timeout_s: float = 600.0) -> None:
        self.path = Path(str(path) + ".lock")
        self.timeout_s = timeout_s
        self._fd: int | None = None

    def __enter__(self) -> KeyFileLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise ConfigError("key file", f"{self.path} stayed locked for "
                                      f"{self.timeout_s:.0f} s (another rotation?)") from None
                time.sleep(0.05)  # waiting for another process's lock: nothing to wait on
        self._fd = fd
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def new_key_id() -> str:
    """A key id unique to the microsecond plus 24 random bits
    (``k20261202T072004123456Z-a1b2c3``)."""
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now % 1 * 1e6):06d}"
    return f"k{stamp}Z-{secrets.token_hex(3)}"


def activate_new_key(path: str | os.PathLike[str], activate: str | None = None) -> KeyRing:
    """Re-read the key file (the caller holds its ``KeyFileLock``), add a new key (or make
    ``activate`` active) and write it back; every key already in the file is kept."""
    ring = KeyRing.from_file(path)
    if activate is not None:
        ring = KeyRing.from_base64([(k, ring.key(k).to_base64()) for k in ring.ids],
                                   active=activate)
    else:
        key_id = new_key_id()
        while key_id in ring:
            key_id = new_key_id()
        ring = ring.rotate(key_id)
    ring.write_key_file(path)
    return ring


def pending_count(mq: Deployment) -> int:
    """How many stored envelopes are not yet sealed under the active key."""
    codec = _codec(mq)
    return sum(1 for _ in _candidates(mq, codec, queues=None))


def reseal_all(mq: Deployment, queues: list[str] | None = None,
               progress: Callable[[int], None] | None = None) -> RotationReport:
    """Re-encrypt every stored envelope of ``queues`` (all) under the active key.

    Raises ``RotationFencedError`` when another rotation took a queue over meanwhile.
    """
    codec = _codec(mq)
    report = RotationReport()
    for queue in queues if queues is not None else mq.queues():
        for part in mq.layout(queue).all:
            _reseal_part(mq, codec, queue, part, report, progress)
    return report


def _reseal_part(mq: Deployment, codec: Any, queue: str, part: str, report: RotationReport,
                 progress: Callable[[int], None] | None) -> None:
    keys = mq.queue_keys(part)
    token = str(mq.client.incr(keys.rotation_fence))  # this rotation owns the queue now
    batch: list[tuple[str, str, str | bytes, bytes]] = []

    def flush() -> None:
        by_key: dict[tuple[str, str], list[Any]] = {}
        for key, mode, *pair in batch:
            by_key.setdefault((key, mode), []).extend(pair)
        for (key, mode), pairs in by_key.items():
            try:
                done = int(mq.functions.call("reseal", [key, keys.rotation_fence],
                                             [mode, token, len(pairs) // 2, *pairs]))
            except redis.ResponseError as exc:
                if "FENCED" not in str(exc):
                    raise
                raise RotationFencedError(
                    f"another rotation took queue {part!r} over (fence {str(exc)[7:]}, "
                    f"ours {token}): it reseals the queue under its key") from None
            report.resealed += done
            report.skipped_in_flight += len(pairs) // 2 - done
            report.by_queue[queue] = report.by_queue.get(queue, 0) + done
            if progress is not None:
                progress(len(pairs) // 2)
        batch.clear()

    for key, mode, old, raw in _candidates_of(mq, codec, keys):
        try:
            fresh = codec.reseal(raw)
        except DecodeError:
            report.unreadable += 1  # tampered, or sealed under a key this ring lacks
            continue
        new = old[:1] + fresh if isinstance(old, bytes) else fresh  # zset: keep the level
        batch.append((key, mode, old, new))
        if len(batch) >= PAGE:
            flush()
    flush()


def _codec(mq: Deployment) -> Any:
    codec = mq.codec
    if not hasattr(codec, "needs_reseal") or getattr(codec, "keyring", None) is None:
        raise ConfigError("security.keys", "rotation needs a key ring on this connection",
                          "connect with [security] keys / key_file or $PHANTOM_KEYS")
    return codec


def _candidates(mq: Deployment, codec: Any, queues: list[str] | None,
                ) -> Iterator[tuple[str, str, str | bytes, bytes]]:
    """(key, mode, old id or member, envelope bytes) of everything to reseal."""
    for queue in queues if queues is not None else mq.queues():
        for part in mq.layout(queue).all:
            yield from _candidates_of(mq, codec, mq.queue_keys(part))


def _candidates_of(mq: Deployment, codec: Any, keys: Any,
                   ) -> Iterator[tuple[str, str, str | bytes, bytes]]:
    for stream in keys.streams:
        for sid, fields in _scan_stream(mq, stream):
            raw = fields.get(b"m", b"")
            if raw and codec.needs_reseal(raw):
                yield stream, "stream", sid, raw
    for member in _scan_zset(mq, keys.delayed):
        if codec.needs_reseal(member[1:]):
            yield keys.delayed, "zset", member, member[1:]
    for sid, fields in _scan_stream(mq, keys.dlq):
        raw = fields.get(b"m", b"")
        if raw and codec.needs_reseal(raw):
            yield keys.dlq, "dlq", sid, raw


def _scan_stream(mq: Deployment, key: str) -> Iterator[tuple[str, dict[bytes, bytes]]]:
    last = "-"
    while True:
        page = mq.client.xrange(key, min=last, max="+", count=PAGE)
        for sid, fields in page:
            yield sid.decode(), fields
        if len(page) < PAGE:
            return
        last = "(" + page[-1][0].decode()


def _scan_zset(mq: Deployment, key: str) -> Iterator[bytes]:
    cursor = 0
    while True:
        cursor, members = mq.client.zscan(key, cursor, count=PAGE)
        yield from (m for m, _ in members)
        if cursor == 0:
            return


__all__ = ["KeyFileLock", "RotationFencedError", "RotationReport", "activate_new_key",
           "new_key_id", "pending_count", "reseal_all"]
