"""Audit checkpoints and retention: sign every writer's head, and trim only at a checkpoint.

``checkpoint(log, stream)`` verifies a stream since its last checkpoint, then appends
(``audit_append``, compare-and-append: only if no entry arrived since it read) a MACed
entry holding every live writer's head (``n``, mac, time), the id of the entry right
before it (``upto``) and the previous checkpoint's MAC (checkpoints form a keyed chain
too). Deleting anything before a checkpoint is then detected. Writers silent for ``ttl``
leave the heads; a writer idle for ``WRITER_ROLL_S`` starts a fresh chain, so no chain
resumes after it left.

Retention: ``trim()`` cuts only at a checkpoint (``XTRIM MINID`` exact, never ``~``): the
retained log starts with a MACed checkpoint that seeds verification, so trimming is not
tampering. An operator's job: it needs XTRIM on every user's audit streams.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import TYPE_CHECKING

import orjson

from ..backend.boundary import guarded
from ..errors import PhantomError
from . import verify as chain_ids
from .verify import PAGE, Verifier, feed_all, s

if TYPE_CHECKING:
    from .log import AuditLog

log = logging.getLogger("phantom_notebook.audit")


class AuditIntegrityError(PhantomError):
    """Raised when a checkpoint or trim finds the audit log broken (it never signs over it)."""


@guarded
def checkpoint(audit: AuditLog, stream: str | None = None) -> str | None:
    """Verify ``stream`` (default: the user's global one) since its last checkpoint, then
    sign every writer's head; returns the checkpoint's id.

    Returns the newest checkpoint's id unchanged when nothing was appended since, None
    for an empty stream. Raises ``AuditIntegrityError`` rather than sign a broken log.
    """
    stream = stream or audit.stream
    base = _find_checkpoint(audit, stream, "+")
    v = Verifier(audit.macer)
    _scan(audit, stream, v, base or "-")
    for _ in range(100):
        if v.last is None or v.last_kind == "checkpoint":
            return v.last[0] if v.last else None
        now = int(time.time() * 1000)
        heads = {w: list(h[:3]) for w, h in sorted(v.live(now, audit.writer_ttl_ms).items())}
        n, prev = (v.ckpt[0] + 1, v.ckpt[1]) if v.ckpt else (1, "")
        fields = {"v": "1", "kid": audit.macer.active, "kind": "checkpoint", "t": str(now),
                  "n": str(n), "p": prev, "upto": v.prev_id, "ttl": str(audit.writer_ttl_ms),
                  "heads": orjson.dumps(heads).decode()}
        mac = audit.macer.mac(fields)
        argv = [v.prev_id, *(x for kv in {**fields, "mac": mac}.items() for x in kv)]
        done, at = audit.mq.functions.call("audit_append", [stream], argv)
        if int(done):
            log.info("audit checkpoint %s in %s: %d writer heads signed", s(at), stream,
                     len(heads))
            return s(at)
        _scan(audit, stream, v, chain_ids.after(v.prev_id))
    raise PhantomError(f"audit checkpoint of {stream}: the log kept moving; try again")


@guarded
def checkpoint_all(audit: AuditLog) -> dict[str, str | None]:
    """A checkpoint in every audit stream of the deployment: stream -> checkpoint id."""
    return {stream: checkpoint(audit, stream) for stream in audit.streams()}


@guarded
def trim(audit: AuditLog, stream: str | None = None, max_age_s: float | None = None,
         max_entries: int | None = None) -> int:
    """Checkpoint ``stream``, then drop entries older than its newest checkpoint within
    retention.

    Retention defaults to the ``retention_s`` / ``max_entries`` given to the log; only
    entries older than both limits allow are removed (cut at a checkpoint, exactly).
    """
    stream = stream or audit.stream
    age = audit.retention_s if max_age_s is None else max_age_s
    most = audit.max_entries if max_entries is None else max_entries
    if age is None and most is None:
        return 0
    checkpoint(audit, stream)
    client = audit.client
    cutoffs: list[str] = []
    if age is not None:
        sec, usec = client.time()
        cutoffs.append(f"{int(sec) * 1000 + int(usec) // 1000 - int(age * 1000)}-0")
    if most is not None:
        newest = client.xrevrange(stream, "+", "-", count=max(most, 1))
        if newest and len(newest) >= most:
            cutoffs.append(s(newest[-1][0]))
    cut = max(cutoffs, key=chain_ids.order, default=None)
    at = _find_checkpoint(audit, stream, cut) if cut else None
    if at is None:
        return 0
    removed = int(client.xtrim(stream, minid=at, approximate=False))
    log.info("audit retention: %d entries of %s before checkpoint %s removed", removed,
             stream, at)
    return removed


@guarded
def trim_all(audit: AuditLog, max_age_s: float | None = None,
             max_entries: int | None = None) -> int:
    """``trim`` every audit stream; returns the entries removed."""
    return sum(trim(audit, stream, max_age_s, max_entries) for stream in audit.streams())


def _find_checkpoint(audit: AuditLog, stream: str, before: str) -> str | None:
    """The id of the newest authentic checkpoint at or before ``before``."""
    while True:
        page = audit.client.xrevrange(stream, before, "-", count=PAGE)
        for sid, raw in page:
            f = {s(k): s(v) for k, v in raw.items()}
            if f.get("kind") == "checkpoint":
                mac = f.pop("mac", "")
                if hmac.compare_digest(audit.macer.mac(f) or "", mac):
                    return s(sid)
        if len(page) < PAGE:
            return None
        before = chain_ids.before(s(page[-1][0]))


def _scan(audit: AuditLog, stream: str, v: Verifier, start: str) -> None:
    feed_all(audit.client, stream, v, start)
    if v.broken:
        raise AuditIntegrityError(f"audit log {stream} broken at {v.broken[0]}: "
                                  f"{v.broken[1]}")


__all__ = ["AuditIntegrityError", "checkpoint", "checkpoint_all", "trim", "trim_all"]
