"""Tamper-evident audit trail: per-user streams of per-writer HMAC chains, plus checkpoints.

Where entries live: every ACL user writes only streams of its own, so no role can switch
another's trail off (a stream whose last id was pushed to the maximum refuses every later
append: with one shared stream, any role could end everybody's trail)::

    <prefix>:{<queue>}:audit:<user>   the user's actions on one queue, in the queue's slot:
                                      the audit entry rides in the same function call as
                                      the action (publish, settle, replay), appended first,
                                      so a refused append refuses the action
    <prefix>:audit:<user>             the user's other actions (ACL changes, key rotation,
                                      permission denials)

Threat model: someone with write access to Redis but without the audit key edits, deletes,
reorders or invents entries. Each entry carries ``mac`` = HMAC-SHA256 over every other
field, keyed with a subkey HKDF-derived from the audit key. Nothing keyed runs in Redis
(the key would show in MONITOR/SLOWLOG), and stream ids are not authenticated (an attacker
may rebuild the stream with the same ids), so only client-side MACed fields count.

Why per-writer chains: a single chain (each MAC over the previous entry's MAC) needs the
previous MAC before the append: a read-then-CAS loop on a hot key. Instead every writer
(one per thread, process and stream, random id ``w``) chains its own entries: ``n`` = 1,
2, 3... and ``p`` = its previous MAC, both under the MAC. Editing fails the MAC; forging
needs the key; deleting or replaying leaves a gap or a repeat in ``n``; reordering within
a writer breaks ``n``/``p``.

Checkpoints (``audit/maintain.py``) close the gaps a set of chains leaves (a writer's last
entries, a whole short-lived writer); deleting the newest entries after the last checkpoint
is caught only against an anchor kept outside Redis (``phantom-notebook audit anchor``):
``verify_audit`` without one reports ``unanchored``, never ok. HMAC is symmetric: every
writer could forge entries in its own streams; the trail defends against Redis-level
attackers and against one role rewriting another's history.

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
from typing import TYPE_CHECKING, Any

import orjson

from ..backend.boundary import public
from ..backend.functions import AuditSection
from ..errors import ConfigError, ValidationError
from ..security.keyring import SecretKey
from . import verify as chain_ids
from .verify import ENV_AUDIT_KEY, PAGE, Macer, audit_key_from_env, audit_streams, s

if TYPE_CHECKING:
    from ..backend.keyspace import QueueKeys
    from .inline import AuditItem

log = logging.getLogger(__name__)

ACTIONS = frozenset({
    "publish", "consume", "ack", "retry", "dead_letter", "replay", "purge", "key_rotation",
    "acl_change", "settings_change", "permission_denied", "origin_rejected", "tlp_denied",
    "decrypt_failed", "repair", "cancel", "pause", "resume"})
OUTCOMES = ("ok", "denied", "failed")
FAILURE_MODES = ("fail", "degrade")
LISTED_IDS = 8              # a batch lists up to this many ids; beyond: first, last, digest
DETAIL_MAX = 4096
WRITER_TTL_S = 86_400.0     # checkpoints drop writers silent this long
WRITER_ROLL_S = 3_600.0     # a writer idle this long starts a new chain (< TTL, skew room)
_NAME = re.compile(r"[a-z][a-z0-9_.]{0,63}")
_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@\-]{0,63}")


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
    stream: str = ""

    def covers(self, ids: Sequence[str]) -> bool:
        """True if ``ids`` (in order) is exactly the batch this entry recorded."""
        return len(ids) == self.message_count and _digest(ids) == self.ids_digest


class _Chain:
    __slots__ = ("writer", "seq", "mac", "pid", "used")

    def __init__(self) -> None:
        self.writer, self.seq, self.mac = secrets.token_hex(8), 0, ""
        self.pid, self.used = os.getpid(), time.monotonic()


@public
class AuditLog:
    """Appends MACed, chained audit entries as ``actor`` with ``role`` for ACL ``user``.

    ``section`` builds the entries that ride in a function call (the action and its audit
    entry are one atomic step); ``record`` appends one entry to the user's global stream.
    ``mode`` is ``security.audit_failure``: "fail" refuses an action whose entry cannot be
    written, "degrade" lets it through and counts the failure (health turns CRITICAL).
    """

    def __init__(self, mq: Any, key: SecretKey | Iterable[SecretKey] | None, actor: str,
                 role: str = "", *, user: str = "default", mode: str = "fail",
                 retention_s: float | None = None, max_entries: int | None = None,
                 writer_ttl_s: float = WRITER_TTL_S) -> None:
        key = key if key is not None else audit_key_from_env()
        if key is None:
            raise ConfigError(ENV_AUDIT_KEY, "is not set", "base64 of 32 random bytes")
        if mode not in FAILURE_MODES:
            raise ConfigError("security.audit_failure", f"{mode!r} is not allowed",
                              ", ".join(FAILURE_MODES))
        if not isinstance(user, str) or not _USER.fullmatch(user):
            raise ConfigError("audit user", f"{user!r} is not a usable ACL user name")
        self.mq = mq
        self.client: Any = mq.client
        self.user, self.mode = user, mode
        self.stream: str = mq.keys.audit(user)
        self.actor, self.role = _text(actor, "actor", 200), _text(role, "role", 64, True)
        self.retention_s, self.max_entries = retention_s, max_entries
        self.writer_ttl_ms = int(writer_ttl_s * 1000)
        self.macer = Macer(key)
        self._local = threading.local()

    def __repr__(self) -> str:
        return (f"AuditLog(user={self.user!r}, actor={self.actor!r}, role={self.role!r}, "
                f"key_id={self.macer.active!r})")

    __str__ = __repr__

    # -- writing ----------------------------------------------------------------------------

    def stream_of(self, keys: QueueKeys) -> str:
        """This user's audit stream for the queue (or partition) of ``keys``."""
        return keys.audit(self.user)

    def section(self, stream: str, items: Sequence[AuditItem]) -> AuditSection:
        """The audit section of one function call appending ``items`` to ``stream``.

        The entries are chained now: if the call is not confirmed, call ``failed(stream)``
        so the next entry starts a fresh chain instead of leaving a false gap.
        """
        args: list[Any] = [self.mode, len(items)]
        for it in items:
            fields = self.entry(stream, it.action, it.target, it.outcome,
                                message_ids=it.message_ids, detail=dict(it.detail) or None)
            args.append(2 * len(fields))
            for kv in fields.items():
                args += kv
        return AuditSection(stream, tuple(args))

    def entry(self, stream: str, action: str, target: str, outcome: str = "ok", *,
              message_ids: Sequence[str] = (), detail: str | Mapping[str, Any] | None = None,
              actor: str | None = None, role: str | None = None) -> dict[str, str]:
        """The next entry of this thread's chain in ``stream``, MACed (fields incl. "mac")."""
        fields = self._fields(action, target, outcome, message_ids, detail, actor, role)
        chain = self._chain(stream)
        fields.update(kind="event", w=chain.writer, n=str(chain.seq + 1), p=chain.mac)
        mac = self.macer.mac(fields)
        assert mac is not None
        chain.seq, chain.mac, chain.used = chain.seq + 1, mac, time.monotonic()
        return {**fields, "mac": mac}

    def record(self, action: str, target: str, outcome: str = "ok", *,
               message_ids: Sequence[str] = (), detail: str | Mapping[str, Any] | None = None,
               actor: str | None = None, role: str | None = None) -> str:
        """Append one entry to this user's global stream now; returns its stream id."""
        fields = self.entry(self.stream, action, target, outcome, message_ids=message_ids,
                            detail=detail, actor=actor, role=role)
        try:
            return s(self.client.xadd(self.stream, fields))
        except BaseException:
            self.failed(self.stream)
            raise

    def failed(self, stream: str) -> None:
        """Start a fresh chain in ``stream`` for this thread (after an unconfirmed append)."""
        self._chains()[stream] = _Chain()

    def _chains(self) -> dict[str, _Chain]:
        chains: dict[str, _Chain] | None = getattr(self._local, "chains", None)
        if chains is None:
            chains = self._local.chains = {}
        return chains

    def _chain(self, stream: str) -> _Chain:
        chains = self._chains()
        chain = chains.get(stream)
        if chain is None or chain.pid != os.getpid() or \
                (chain.seq and time.monotonic() - chain.used > WRITER_ROLL_S):
            chain = chains[stream] = _Chain()
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
        return {"v": "1", "kid": self.macer.active, "t": str(int(time.time() * 1000)),
                "actor": _text(actor, "actor", 200) if actor else self.actor,
                "role": self.role if role is None else _text(role, "role", 64, True),
                "action": action, "target": _text(target, "target", 300, True),
                "outcome": outcome, "ids": ",".join(listed), "count": str(len(ids)),
                "ids_sha256": _digest(ids) if ids else "",
                "detail": _clean(text or "")[:DETAIL_MAX]}

    # -- reading ----------------------------------------------------------------------------

    def streams(self) -> list[str]:
        """Every audit stream of the deployment (all users, all queues), sorted."""
        return audit_streams(self.client, self.mq.keys.audit_patterns)

    def entries(self, since_ms: int | None = None, limit: int = 100,
                streams: Iterable[str] | None = None) -> list[AuditEntry]:
        """Events (not checkpoints) from ``since_ms`` (Redis time) on, oldest first, merged
        over ``streams`` (default: every audit stream)."""
        out: list[AuditEntry] = []
        for stream in streams if streams is not None else self.streams():
            out += self._stream_entries(stream, since_ms, limit)
        out.sort(key=lambda e: chain_ids.order(e.id))
        return out[:limit]

    def _stream_entries(self, stream: str, since_ms: int | None,
                        limit: int) -> list[AuditEntry]:
        out: list[AuditEntry] = []
        start = "-" if since_ms is None else str(int(since_ms))
        while len(out) < limit:
            page = self.client.xrange(stream, start, "+", count=PAGE)
            for sid, raw in page:
                entry = self._entry(stream, s(sid), raw)
                if entry is not None and len(out) < limit:
                    out.append(entry)
            if len(page) < PAGE:
                break
            start = chain_ids.after(s(page[-1][0]))
        return out

    def _entry(self, stream: str, sid: str, raw: Mapping[Any, Any]) -> AuditEntry | None:
        f = {s(k): s(v) for k, v in raw.items()}
        if f.get("kind") != "event":
            return None
        mac = f.pop("mac", "")
        good = hmac.compare_digest(self.macer.mac(f) or "", mac)
        g = f.get
        return AuditEntry(sid, _int(g("t")), g("actor", ""), g("role", ""), g("action", ""),
                          g("target", ""), g("outcome", ""),
                          tuple(filter(None, g("ids", "").split(","))), _int(g("count")),
                          g("ids_sha256", ""), g("detail", ""), g("w", ""), _int(g("n")), good,
                          stream)


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


__all__ = ["ACTIONS", "ENV_AUDIT_KEY", "FAILURE_MODES", "OUTCOMES", "AuditEntry", "AuditLog",
           "audit_key_from_env", "audit_streams"]
