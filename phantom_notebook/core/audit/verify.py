"""The audit trail's verification core: entry MACs, chain replay, ``verify_audit``.

The design (per-writer HMAC chains + signed checkpoints) is explained in ``audit.py``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..backend.boundary import guarded
from ..errors import ConfigError
from ..security.keyring import SecretKey

log = logging.getLogger("phantom_notebook.core.audit.log")

ENV_AUDIT_KEY = "PHANTOM_AUDIT_KEY"
_DOMAIN = b"pn-audit/v1\n"
PAGE = 1000
Heads = dict[str, tuple[int, str, int, str]]  # writer -> (n, mac, time ms, stream id)


def audit_key_from_env(environ: Mapping[str, str] | None = None) -> SecretKey | None:
    """The key in ``PHANTOM_AUDIT_KEY`` (``[<id>:]<base64>``, id "audit" by default), or None."""
    text = (os.environ if environ is None else environ).get(ENV_AUDIT_KEY, "").strip()
    if not text:
        return None
    kid, sep, material = text.partition(":")
    return SecretKey.from_base64(kid if sep else "audit", material if sep else text,
                                 field=ENV_AUDIT_KEY)


class Macer:
    """HMAC-SHA256 over canonical entry bytes, one HKDF subkey per audit key id."""

    __slots__ = ("active", "_keys", "_secrets")

    def __init__(self, keys: SecretKey | Iterable[SecretKey]) -> None:
        items = [keys] if isinstance(keys, SecretKey) else list(keys)
        if not items or not all(isinstance(k, SecretKey) for k in items):
            raise ConfigError("audit key", "give one or more SecretKey", ENV_AUDIT_KEY)
        self.active = items[0].key_id
        self._secrets = tuple(items)
        self._keys = {k.key_id: HKDF(hashes.SHA256(), 32, None, b"phantom-notebook audit mac v1")
                      .derive(k.reveal()) for k in items}

    def mac(self, fields: Mapping[str, str]) -> str | None:
        """The MAC of ``fields`` (without "mac") under their "kid", or None if unknown."""
        key = self._keys.get(fields.get("kid", ""))
        if key is None:
            return None
        body = _DOMAIN + orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
        return hmac.new(key, body, hashlib.sha256).hexdigest()

    def materials(self) -> list[tuple[str, bytes]]:
        """(key id, raw key) of every audit key, the active one first: for keys derived
        from the audit key for another purpose (``observe/indicators.py``), never a log."""
        return [(k.key_id, k.reveal()) for k in self._secrets]

    def __repr__(self) -> str:
        return f"Macer(ids={list(self._keys)!r}, ***)"


#: an anchor: the head (id, mac) of every audit stream at some earlier moment
Anchor = dict[str, tuple[str, str]]
STATUSES = ("ok", "unanchored", "empty", "broken")


@dataclass(frozen=True)
class AuditVerification:
    """Result of ``verify_audit``. Only ``status == "ok"`` is ok.

    ``ok``: every link verifies and every anchored head is still there. ``unanchored``:
    the links verify, but no anchor was given, so deleting the newest entries (or a whole
    stream) could not be detected. ``empty``: there is no audit entry at all. ``broken``:
    ``first_broken`` = (stream, entry id, reason). ``heads`` is what to keep outside Redis
    as the next anchor (``phantom-notebook audit anchor``).
    """

    status: str
    checked: int
    first_broken: tuple[str, str, str] | None
    heads: Anchor
    streams: int
    writers: int
    trimmed: bool
    unanchored_streams: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True only when the trail verified against an anchor."""
        return self.status == "ok"

    def __str__(self) -> str:
        if self.status == "broken":
            assert self.first_broken is not None
            where, sid, reason = self.first_broken
            return f"audit BROKEN in {where} at {sid}: {reason}"
        if self.status == "empty":
            return "audit EMPTY: no audit entries at all (was the trail deleted?)"
        base = f"{self.checked} entries in {self.streams} streams, {self.writers} live writers"
        if self.status == "unanchored":
            return (f"audit UNANCHORED: {base}; links verify, but without an anchor a "
                    "deletion of the newest entries cannot be detected (pass --anchor)")
        extra = (f"; {len(self.unanchored_streams)} stream(s) newer than the anchor"
                 if self.unanchored_streams else "")
        return f"audit ok: {base}, anchor verified{extra}"


class Verifier:
    """Replays the chains over entries in stream order; stops at the first broken link."""

    def __init__(self, macer: Macer) -> None:
        self.macer = macer
        self.heads: Heads = {}
        self.ckpt: tuple[int, str] | None = None
        self.prev_id = "0-0"
        self.last: tuple[str, str] | None = None
        self.last_kind = ""
        self.first: str | None = None
        self.trimmed = False
        self.checked = 0
        self.broken: tuple[str, str] | None = None

    def feed(self, sid: str, raw: Mapping[Any, Any]) -> bool:
        """Check one entry; False (and ``broken`` set) when it breaks the log."""
        try:
            fields = {s(k): s(v) for k, v in raw.items()}
        except UnicodeDecodeError:
            return self._fail(sid, "malformed: fields are not UTF-8 text")
        mac = fields.pop("mac", "")
        expected = self.macer.mac(fields)
        if expected is None:
            return self._fail(sid, f"unknown_key: no audit key {fields.get('kid', '')!r}")
        if not hmac.compare_digest(expected, mac):
            return self._fail(sid, "mac_mismatch: entry modified, or forged without the key")
        try:
            kind, n, t = fields["kind"], int(fields["n"]), int(fields["t"])
            ok = (self._checkpoint(sid, fields, n, t, mac) if kind == "checkpoint"
                  else self._event(sid, fields["w"], n, fields["p"], t, mac))
        except (KeyError, ValueError, TypeError, orjson.JSONDecodeError) as exc:
            return self._fail(sid, f"malformed: {type(exc).__name__}")
        if ok:
            self.first = self.first or sid
            self.prev_id, self.last, self.last_kind = sid, (sid, mac), kind
            self.checked += 1
        return ok

    def _event(self, sid: str, w: str, n: int, p: str, t: int, mac: str) -> bool:
        head = self.heads.get(w)
        have = head[0] if head else 0
        if n != have + 1 or p != (head[1] if head else ""):
            if n <= have:
                return self._fail(sid, f"reordered: writer {w} seq {n} after seq {have}")
            where = f" (after entry {head[3]})" if head and head[3] else ""
            return self._fail(sid, f"missing: writer {w} seq {have + 1}..{n - 1}{where} "
                                   "deleted before this entry")
        self.heads[w] = (n, mac, t, sid)
        return True

    def _checkpoint(self, sid: str, fields: Mapping[str, str], n: int, t: int,
                    mac: str) -> bool:
        stored = {w: (int(h[0]), str(h[1]), int(h[2]))
                  for w, h in orjson.loads(fields["heads"]).items()}
        if self.first is None:  # the retained log starts here: seed the chains from it
            self.heads = {w: (*h, "") for w, h in stored.items()}
            self.ckpt, self.trimmed = (n, mac), fields["upto"] != "0-0"
            return True
        want = (self.ckpt[0] + 1, self.ckpt[1]) if self.ckpt else (1, "")
        if (n, fields["p"]) != want:
            return self._fail(sid, f"missing: checkpoint seq {want[0]} deleted or reordered")
        if fields["upto"] != self.prev_id:
            return self._fail(sid, f"missing: entry {fields['upto']} before this checkpoint "
                                   "is gone, or an entry was inserted")
        live = self.live(t, int(fields["ttl"]))
        for w in sorted(set(live) | set(stored)):
            mine = live[w][:3] if w in live else None
            signed = stored.get(w)
            if mine != signed:
                return self._fail(sid, f"missing: writer {w} is at seq {mine and mine[0]} in "
                                       f"the log, the checkpoint signed {signed and signed[0]}")
        self.heads, self.ckpt = live, (n, mac)
        return True

    def live(self, now: int, ttl_ms: int) -> Heads:
        """The writer heads a checkpoint at ``now`` keeps (silent for less than ``ttl_ms``)."""
        return {w: h for w, h in self.heads.items() if h[2] >= now - ttl_ms}

    def _fail(self, sid: str, reason: str) -> bool:
        self.broken = (sid, reason)
        return False


@guarded
def verify_audit(mq: Any, key: SecretKey | Iterable[SecretKey] | Macer,
                 anchor: Anchor | None = None,
                 streams: Iterable[str] | None = None) -> AuditVerification:
    """Check every retained entry's MAC and chain links in every audit stream, and that
    every head of ``anchor`` (an earlier verification's ``heads``, kept outside Redis) is
    still in its stream with the same MAC unless retention trimmed past it.
    """
    macer = key if isinstance(key, Macer) else Macer(key)
    names = list(streams) if streams is not None else \
        audit_streams(mq.client, mq.keys.audit_patterns)
    for name in (anchor or {}):
        if name not in names:
            names.append(name)
    checked = writers = 0
    trimmed = False
    heads: Anchor = {}
    broken: tuple[str, str, str] | None = None
    for name in sorted(names):
        v = Verifier(macer)
        feed_all(mq.client, name, v, "-")
        checked, writers = checked + v.checked, writers + len(v.heads)
        trimmed = trimmed or v.trimmed
        if v.last is not None:
            heads[name] = v.last
        if v.broken is not None:
            broken = broken or (name, *v.broken)
            continue
        anchored = (anchor or {}).get(name)
        if anchored is not None and broken is None:
            problem = _anchor_problem(mq.client, name, anchored, v)
            if problem:
                broken = (name, anchored[0], problem)
    if broken:
        log.warning("audit verification failed in %s at %s: %s", *broken)
        status = "broken"
    elif not heads:
        status = "empty"
    elif anchor is None:
        status = "unanchored"
    else:
        status = "ok"
    newer = tuple(n for n in sorted(heads) if anchor is not None and n not in anchor)
    return AuditVerification(status, checked, broken, heads, len(heads), writers, trimmed,
                             newer)


def _anchor_problem(client: Any, stream: str, anchored: tuple[str, str],
                    v: Verifier) -> str | None:
    """Why the anchored head of ``stream`` is not where it should be (None: it is)."""
    sid, mac = anchored
    if v.first is not None and order(sid) < order(v.first):
        return None if v.trimmed else "missing: the anchored entry and everything before " \
                                      "the oldest retained one were deleted"
    found = client.xrange(stream, sid, sid)
    held = s({s(k): x for k, x in found[0][1].items()}.get("mac", b"")) if found else ""
    if not hmac.compare_digest(held, mac):
        return ("missing: the anchored entry was deleted or replaced" if v.first is not None
                else "missing: the stream was deleted")
    return None


def audit_streams(client: Any, patterns: Iterable[str]) -> list[str]:
    """The stream keys matching ``patterns`` (SCAN on every master of a cluster)."""
    found: set[str] = set()
    for pattern in patterns:
        for key in _scan(client, pattern):
            found.add(s(key))
    return sorted(found)


def _scan(client: Any, pattern: str) -> Iterator[Any]:
    try:
        yield from client.scan_iter(match=pattern, count=1000, _type="stream")
    except TypeError:  # fakeredis / old clients without TYPE
        yield from client.scan_iter(match=pattern, count=1000)


def feed_all(client: Any, key: str, v: Verifier, start: str) -> None:
    """Feed ``v`` the stream from ``start`` on, page by page, until it ends or breaks."""
    while True:
        page = client.xrange(key, start, "+", count=PAGE)
        for sid, raw in page:
            if not v.feed(s(sid), raw):
                return
        if len(page) < PAGE:
            return
        start = after(s(page[-1][0]))


def s(value: Any) -> str:
    """A Redis reply as text."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def order(sid: str) -> tuple[int, int]:
    """A stream id as a sortable (ms, seq) pair."""
    ms, _, seq = sid.partition("-")
    return int(ms), int(seq or 0)


def after(sid: str) -> str:
    """The smallest stream id above ``sid``."""
    ms, seq = order(sid)
    return f"{ms}-{seq + 1}"


def before(sid: str) -> str:
    """The largest stream id below ``sid``."""
    ms, seq = order(sid)
    return f"{ms}-{seq - 1}" if seq else f"{ms - 1}-18446744073709551615"


__all__ = ["STATUSES", "Anchor", "AuditVerification", "ENV_AUDIT_KEY", "Macer", "Verifier",
           "audit_key_from_env", "audit_streams", "verify_audit"]
