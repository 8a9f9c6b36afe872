"""Tamper-evident audit trail in ``<prefix>:audit``: per-writer HMAC chains + checkpoints.

Threat model: someone with write access to Redis but without the audit key edits, deletes,
reorders or invents entries. Each entry carries ``mac`` = HMAC-SHA256 over every other
field, keyed with a subkey HKDF-derived from the audit key. Nothing keyed runs in Redis
(the key would show in MONITOR/SLOWLOG), and stream ids are not authenticated (an attacker
may rebuild the stream with the same ids), so only client-side MACed fields count.

Why per-writer chains: a single global chain (each MAC over the previous entry's MAC)
needs the previous MAC before the append. Across processes that is a read-then-CAS loop
on a hot key: retries grow with writers and the append can no longer ride in the action's
round trip. Instead every writer (one per thread and process, random id ``w``) chains its
own entries: ``n`` = 1, 2, 3... and ``p`` = its previous MAC, both under the MAC. Editing
fails the MAC; forging needs the key; deleting or replaying leaves a gap or a repeat in
``n``; reordering within a writer breaks ``n``/``p``. Appends are plain ``XADD`` in the
caller's pipeline: one round trip, no coordination, no script-cache check.

Checkpoints close the gaps a set of chains leaves (a writer's last entries, a whole
short-lived writer): ``checkpoint()`` verifies the log since the last checkpoint, then
appends (``audit_append.lua``, compare-and-append: only if no entry arrived since it read)
a MACed entry holding every live writer's head (``n``, mac, time), the id of the entry
right before it (``upto``) and the previous checkpoint's MAC (checkpoints form a keyed
chain too). Deleting anything before a checkpoint is then detected. Writers silent for
``ttl`` leave the heads; a writer idle for ``WRITER_ROLL_S`` starts a fresh chain, so no
chain resumes after it left.

Retention: ``trim()`` cuts only at a checkpoint (``XTRIM MINID`` exact, never ``~``): the
retained log starts with a MACed checkpoint that seeds verification, so trimming is not
tampering. Any other cut of the oldest entries is reported. Limits: deleting the newest
entries after the last checkpoint is not detectable from Redis alone — pass the ``head``
of an earlier verification (kept outside Redis) as ``anchor``; a trim by an attacker at a
genuine checkpoint looks like retention — check ``oldest_id`` against the policy. HMAC is
symmetric: every writer could forge; the trail defends against Redis-level attackers.

Key: a dedicated ``PHANTOM_AUDIT_KEY`` (``[<id>:]<base64 of 32 bytes>``), not derived from
the envelope KeyRing: audit logs outlive daily encryption-key rotation, and an auditor can
verify the trail without being able to decrypt intel. Entries name their key id, so audit
keys rotate by passing old and new keys to ``verify_audit``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ..backend.functions import source
from ..errors import ConfigError, PhantomError, ValidationError
from ..security.keyring import SecretKey
from . import verify as chain_ids
from .verify import (
    ENV_AUDIT_KEY,
    PAGE,
    AuditVerification,
    Macer,
    Verifier,
    audit_key_from_env,
    feed_all,
    s,
    verify_audit,
)

log = logging.getLogger(__name__)

ACTIONS = frozenset({
    "publish", "consume", "ack", "retry", "dead_letter", "replay", "purge", "key_rotation",
    "acl_change", "settings_change", "permission_denied", "origin_rejected", "tlp_denied",
    "decrypt_failed"})
OUTCOMES = ("ok", "denied", "failed")
LISTED_IDS = 8              # a batch lists up to this many ids; beyond: first, last, digest
DETAIL_MAX = 4096
WRITER_TTL_S = 86_400.0     # checkpoints drop writers silent this long
WRITER_ROLL_S = 3_600.0     # a writer idle this long starts a new chain (< TTL, skew room)
_NAME = re.compile(r"[a-z][a-z0-9_.]{0,63}")


class AuditIntegrityError(PhantomError):
    """Raised when a checkpoint or trim finds the audit log broken (it never signs over it)."""


@dataclass(frozen=True)
class AuditEntry:
    """One audit event as read back; ``authentic`` = its MAC verifies (not the chain)."""

    id: str
    time_ms: int
    actor: str
    role: str
    action: str
    target: str
    outcome: str
    message_ids: tuple[str, ...]
    message_count: int
    ids_digest: str
    detail: str
    writer: str
    seq: int
    authentic: bool

    def covers(self, ids: Sequence[str]) -> bool:
        """True if ``ids`` (in order) is exactly the batch this entry recorded."""
        return len(ids) == self.message_count and _digest(ids) == self.ids_digest


class _Chain:
    __slots__ = ("writer", "seq", "mac", "pid", "used")

    def __init__(self) -> None:
        self.writer, self.seq, self.mac = secrets.token_hex(8), 0, ""
        self.pid, self.used = os.getpid(), time.monotonic()


class AuditLog:
    """Appends MACed, chained audit entries as ``actor`` with ``role``; reads and maintains them.

    ``record`` writes one entry (one round trip); ``queue`` adds it to the caller's redis-py
    pipeline so it rides with the action — then run that pipeline with ``execute``.
    """

    def __init__(self, mq: Any, key: SecretKey | Iterable[SecretKey] | None, actor: str,
                 role: str = "", *, retention_s: float | None = None,
                 max_entries: int | None = None, writer_ttl_s: float = WRITER_TTL_S) -> None:
        key = key if key is not None else audit_key_from_env()
        if key is None:
            raise ConfigError(ENV_AUDIT_KEY, "is not set", "base64 of 32 random bytes")
        self.client: Any = mq.client
        self.stream: str = mq.keys.audit
        self.actor, self.role = _text(actor, "actor", 200), _text(role, "role", 64, True)
        self.retention_s, self.max_entries = retention_s, max_entries
        self.writer_ttl_ms = int(writer_ttl_s * 1000)
        self._macer = Macer(key)
        self._local = threading.local()
        self._append = self.client.register_script(source("audit_append"))

    def __repr__(self) -> str:
        return (f"AuditLog(stream={self.stream!r}, actor={self.actor!r}, role={self.role!r}, "
                f"key_id={self._macer.active!r})")

    __str__ = __repr__

    # -- writing ----------------------------------------------------------------------------

    def queue(self, pipe: Any, action: str, target: str, outcome: str = "ok", *,
              message_ids: Sequence[str] = (), detail: str | Mapping[str, Any] | None = None,
              actor: str | None = None, role: str | None = None) -> None:
        """Add the entry's ``XADD`` to ``pipe``; run the pipeline with ``execute(pipe)``.

        Per thread, run pipelines in the order their entries were queued: the chain
        expects this thread's entries to land in sequence.
        """
        fields = self._fields(action, target, outcome, message_ids, detail, actor, role)
        chain = self._chain()
        fields.update(kind="event", w=chain.writer, n=str(chain.seq + 1), p=chain.mac)
        mac = self._macer.mac(fields)
        assert mac is not None
        chain.seq, chain.mac, chain.used = chain.seq + 1, mac, time.monotonic()
        pipe.xadd(self.stream, {**fields, "mac": mac})

    def execute(self, pipe: Any, **kwargs: Any) -> list[Any]:
        """``pipe.execute()``; if it fails, this thread starts a new chain (no false gap)."""
        try:
            out: list[Any] = pipe.execute(**kwargs)
        except BaseException:
            self.restart_chain()
            raise
        if any(isinstance(x, Exception) for x in out):
            self.restart_chain()
        return out

    def record(self, action: str, target: str, outcome: str = "ok", *,
               message_ids: Sequence[str] = (), detail: str | Mapping[str, Any] | None = None,
               actor: str | None = None, role: str | None = None) -> str:
        """Append one entry now; returns its stream id."""
        pipe = self.client.pipeline(transaction=False)
        self.queue(pipe, action, target, outcome, message_ids=message_ids, detail=detail,
                   actor=actor, role=role)
        return s(self.execute(pipe)[-1])

    def restart_chain(self) -> None:
        """Start a fresh chain for this thread (after an unconfirmed append)."""
        self._local.chain = _Chain()

    def _chain(self) -> _Chain:
        chain: _Chain | None = getattr(self._local, "chain", None)
        if chain is None or chain.pid != os.getpid() or \
                (chain.seq and time.monotonic() - chain.used > WRITER_ROLL_S):
            chain = self._local.chain = _Chain()
        return chain

    def _fields(self, action: str, target: str, outcome: str, ids: Sequence[str],
                detail: str | Mapping[str, Any] | None, actor: str | None,
                role: str | None) -> dict[str, str]:
        if not _NAME.fullmatch(action):
            raise ValidationError(f"audit action {action!r}: use a-z 0-9 _ . (e.g. publish)")
        if outcome not in OUTCOMES:
            raise ValidationError(f"audit outcome {outcome!r}: use one of {OUTCOMES}")
        ids = list(map(str, ids))
        listed = ids if len(ids) <= LISTED_IDS else [ids[0], ids[-1]]
        text = detail if isinstance(detail, str) or detail is None else \
            orjson.dumps(detail, option=orjson.OPT_SORT_KEYS, default=str).decode()
        return {"v": "1", "kid": self._macer.active, "t": str(int(time.time() * 1000)),
                "actor": _text(actor, "actor", 200) if actor else self.actor,
                "role": self.role if role is None else _text(role, "role", 64, True),
                "action": action, "target": _text(target, "target", 300, True),
                "outcome": outcome, "ids": ",".join(listed), "count": str(len(ids)),
                "ids_sha256": _digest(ids) if ids else "",
                "detail": _clean(text or "")[:DETAIL_MAX]}

    # -- reading ----------------------------------------------------------------------------

    def entries(self, since_ms: int | None = None, limit: int = 100) -> list[AuditEntry]:
        """Events (not checkpoints) from ``since_ms`` (Redis time) on, oldest first."""
        out: list[AuditEntry] = []
        start = "-" if since_ms is None else str(int(since_ms))
        while len(out) < limit:
            page = self.client.xrange(self.stream, start, "+", count=PAGE)
            for sid, raw in page:
                entry = self._entry(s(sid), raw)
                if entry is not None and len(out) < limit:
                    out.append(entry)
            if len(page) < PAGE:
                break
            start = chain_ids.after(s(page[-1][0]))
        return out

    def _entry(self, sid: str, raw: Mapping[Any, Any]) -> AuditEntry | None:
        f = {s(k): s(v) for k, v in raw.items()}
        if f.get("kind") != "event":
            return None
        mac = f.pop("mac", "")
        good = hmac.compare_digest(self._macer.mac(f) or "", mac)
        g = f.get
        return AuditEntry(sid, _int(g("t")), g("actor", ""), g("role", ""), g("action", ""),
                          g("target", ""), g("outcome", ""),
                          tuple(filter(None, g("ids", "").split(","))), _int(g("count")),
                          g("ids_sha256", ""), g("detail", ""), g("w", ""), _int(g("n")), good)

    # -- checkpoints and retention --------------------------------------------------------------

    def checkpoint(self) -> str | None:
        """Verify since the last checkpoint, then sign every writer's head; returns its id.

        Returns the newest checkpoint's id unchanged when nothing was appended since, None
        for an empty log. Raises ``AuditIntegrityError`` rather than sign a broken log.
        """
        base = self._find_checkpoint("+")
        v = Verifier(self._macer)
        self._scan(v, base or "-")
        for _ in range(100):
            if v.last is None or v.last_kind == "checkpoint":
                return v.last[0] if v.last else None
            now = int(time.time() * 1000)
            heads = {w: list(h[:3]) for w, h in sorted(v.live(now, self.writer_ttl_ms).items())}
            n, prev = (v.ckpt[0] + 1, v.ckpt[1]) if v.ckpt else (1, "")
            fields = {"v": "1", "kid": self._macer.active, "kind": "checkpoint", "t": str(now),
                      "n": str(n), "p": prev, "upto": v.prev_id, "ttl": str(self.writer_ttl_ms),
                      "heads": orjson.dumps(heads).decode()}
            mac = self._macer.mac(fields)
            argv = [v.prev_id, *(x for kv in {**fields, "mac": mac}.items() for x in kv)]
            done, at = self._append(keys=[self.stream], args=argv)
            if int(done):
                log.info("audit checkpoint %s: %d writer heads signed", s(at), len(heads))
                return s(at)
            self._scan(v, chain_ids.after(v.prev_id))
        raise PhantomError("audit checkpoint: the log kept moving; try again")

    def trim(self, max_age_s: float | None = None, max_entries: int | None = None) -> int:
        """Checkpoint, then drop entries older than the newest checkpoint within retention.

        Retention defaults to the ``retention_s`` / ``max_entries`` given to the log; only
        entries older than both limits allow are removed (cut at a checkpoint, exactly).
        """
        age = self.retention_s if max_age_s is None else max_age_s
        most = self.max_entries if max_entries is None else max_entries
        if age is None and most is None:
            return 0
        self.checkpoint()
        cutoffs: list[str] = []
        if age is not None:
            sec, usec = self.client.time()
            cutoffs.append(f"{int(sec) * 1000 + int(usec) // 1000 - int(age * 1000)}-0")
        if most is not None:
            newest = self.client.xrevrange(self.stream, "+", "-", count=max(most, 1))
            if newest and len(newest) >= most:
                cutoffs.append(s(newest[-1][0]))
        cut = max(cutoffs, key=chain_ids.order, default=None)
        at = self._find_checkpoint(cut) if cut else None
        if at is None:
            return 0
        removed = int(self.client.xtrim(self.stream, minid=at, approximate=False))
        log.info("audit retention: %d entries before checkpoint %s removed", removed, at)
        return removed

    def _find_checkpoint(self, before: str) -> str | None:
        """The id of the newest authentic checkpoint at or before ``before``."""
        while True:
            page = self.client.xrevrange(self.stream, before, "-", count=PAGE)
            for sid, raw in page:
                f = {s(k): s(v) for k, v in raw.items()}
                if f.get("kind") == "checkpoint":
                    mac = f.pop("mac", "")
                    if hmac.compare_digest(self._macer.mac(f) or "", mac):
                        return s(sid)
            if len(page) < PAGE:
                return None
            before = chain_ids.before(s(page[-1][0]))

    def _scan(self, v: Verifier, start: str) -> None:
        feed_all(self.client, self.stream, v, start)
        if v.broken:
            raise AuditIntegrityError(f"audit log broken at {v.broken[0]}: {v.broken[1]}")


def _digest(ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


def _text(value: Any, name: str, limit: int, empty_ok: bool = False) -> str:
    if not isinstance(value, str) or len(value) > limit or (not value and not empty_ok):
        raise ValidationError(f"audit {name} must be a string of 1-{limit} characters")
    return _clean(value)


def _clean(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8")


def _int(value: str | None) -> int:
    return int(value) if value and value.isdigit() else 0


__all__ = ["ACTIONS", "ENV_AUDIT_KEY", "OUTCOMES", "AuditEntry", "AuditIntegrityError",
           "AuditLog", "AuditVerification", "audit_key_from_env", "verify_audit"]
