"""Blind indicator tags: find the messages that carried an IOC without writing the IOC down.

A published message whose payload names an indicator (``payload["ioc"]["value"]``, a string
``payload["ioc"]`` — the partition key of ``model/routing.py`` — and the first entries of a
``payload["iocs"]`` list of such dicts or strings, as the intel catalog's campaign and
ingestion messages carry) gets one token per indicator appended to its ``published`` trace
item::

    <message id>|<trace id>|1|[due <ms> ]ioc=<12 hex>[ ioc=<12 hex>...]

The token is ``blake2b(normalised value, key=tag key, digest_size=6)``; ``normalise`` strips
and lowercases the value and refangs the usual defanged forms (``hxxp``, ``[.]``, ``(.)``,
``{.}``, ``[dot]``, ``[@]``, ``[at]``, ``[:]``, ``[://]``, ``[/]``), so ``evil[.]example``
and ``EVIL.example`` get the same tag. ``parse_entry`` (``tracing.py``) moves the tokens
out of the event's ``detail`` into ``TraceEvent.tags``: timelines show ``due <ms>`` or
nothing, as before.

**Which key tags** (the first that applies, for every publisher of the deployment):

1. the deployment's **audit key** (``security.audit_key`` / ``$PHANTOM_AUDIT_KEY``, the
   active key of ``mq.audit``), through HKDF-SHA256 with its own ``info`` (the tag key is
   not the audit MAC key, and neither reveals the other);
2. else the **active envelope key** of the codec's ``KeyRing`` when the codec seals,
   through HKDF-SHA256 the same way;
3. else none: **unkeyed** blake2b. Such a deployment stores payloads in clear, so whoever
   can read the trace stream can usually read the messages anyway.

The audit key comes first because it does not rotate with the envelope keys and is held by
every audited writer. **Search** (``search.py``) computes the tag under every key the
searcher holds — every audit key of its ``AuditLog``, every key of its ring (old, rotated-out
keys too) and unkeyed — so messages published before a key rotation, or before keys were
configured at all, are still found.

**Threat model.** The trace stream is readable by the ``stats`` role (dashboards, health
probes) and by whoever gets a copy of Redis (a replica, an RDB/AOF backup). Indicators are
often sensitive (a victim's domain, an unreleased C2 address, TLP:RED values), and an
unkeyed hash of a low-entropy value can be tested against a dictionary of candidates. With
a key configured, a reader without the key cannot test a guess, nor link a tag to one seen
under another key. What remains visible: equal tags in one deployment mean the same
(normalised) indicator, so a reader learns *how often* an unknown indicator recurs and in
which queues and when. Anyone holding the tag key (every audited writer, or every holder of
the ring) can test guesses; with the ring they can read the payloads anyway.

**Size.** 48-bit tags (12 hex): the token is 16 bytes per indicator in a stream that holds
20,000 batch entries of up to thousands of items each; a false match in search is ~n/2**48
for n traced items (one in ~10**7 searches of a full 20-million-item stream), and search
hits are shown, not acted on.
"""

from __future__ import annotations

import hashlib
import re
import weakref
from collections.abc import Iterable
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: indicators tagged per message (a campaign message may list hundreds: the first few count)
MAX_TAGS = 8
TAG_PREFIX = "ioc="
TAG_HEX = 12  # 48 bits: a false match is ~n/2**48 for n traced items, 4 bytes less than 64
_INFO = b"phantom-notebook indicator tag v1"
_PERSON = b"pn-ioc-tag-v1"
_TAG = re.compile(r"ioc=[0-9a-f]{12}")

# bracketed separators: evil[.]example, evil (dot) example, a[@]b, hxxp[://]x, fe80[:]1
_BRACKETED = re.compile(r"[ \t]?[\[({][ \t]*(\.|dot|@|at|://|:|/)[ \t]*[\])}][ \t]?")
_UNBRACKET = {".": ".", "dot": ".", "@": "@", "at": "@", "://": "://", ":": ":", "/": "/"}
_SCHEME = re.compile(r"^(?:h(?:xx|xt|tx)p|fxp)(?=s?:)")
_FANGED = ("hxxp", "hxtp", "htxp", "fxp")


def normalise(value: str) -> str:
    """``value`` as tagged: stripped, lowercased, refanged (``hxxp://evil[.]example`` ->
    ``http://evil.example``). Idempotent; a value without defanged forms costs a few
    membership tests."""
    v = value.strip().lower()
    if "[" in v or "(" in v or "{" in v:
        v = _BRACKETED.sub(lambda m: _UNBRACKET[m[1]], v)
    if v.startswith(_FANGED):
        v = _SCHEME.sub(lambda m: "ftp" if m[0] == "fxp" else "http", v)
    return v


def indicator_values(payload: Any) -> list[str]:
    """The indicator values of ``payload`` (raw, at most ``MAX_TAGS``, first ones first)."""
    if not isinstance(payload, dict):
        return []
    out: list[str] = []
    one = _value(payload.get("ioc"))
    if one:
        out.append(one)
    many = payload.get("iocs")
    if isinstance(many, list):
        for entry in many:
            if len(out) >= MAX_TAGS:
                break
            value = _value(entry)
            if value:
                out.append(value)
    return out


def _value(ioc: Any) -> str | None:
    if isinstance(ioc, str):
        return ioc
    if isinstance(ioc, dict):
        value = ioc.get("value")
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    return None


def tags_in(detail: str) -> tuple[str, tuple[str, ...]]:
    """Split a trace item's detail into (the detail without tags, the tag tokens)."""
    if TAG_PREFIX not in detail:
        return detail, ()
    words = detail.split(" ")
    tags = tuple(w for w in words if len(w) == 16 and _TAG.fullmatch(w))
    if not tags:
        return detail, ()
    return " ".join(w for w in words if w not in tags), tags


class IndicatorTagger:
    """Tags indicators under one key (the first of ``keys``) and lists the tags of a value
    under every key (for search). ``keys`` are ``(name, 32-byte tag key or None)``; None is
    the unkeyed hash. Key material never shows in ``repr``."""

    __slots__ = ("names", "_states", "_tagger")

    def __init__(self, keys: Iterable[tuple[str, bytes | None]]) -> None:
        pairs = list(dict(keys).items()) or [("unkeyed", None)]
        self.names = tuple(name for name, _ in pairs)
        # one pre-keyed blake2b state per key: a tag is copy + update (no key schedule)
        self._states = [hashlib.blake2b(digest_size=TAG_HEX // 2, person=_PERSON)
                        if key is None else
                        hashlib.blake2b(digest_size=TAG_HEX // 2, key=key, person=_PERSON)
                        for _, key in pairs]
        self._tagger = self._states[0]

    def __repr__(self) -> str:
        return f"IndicatorTagger(tags_with={self.names[0]!r}, searches={list(self.names)!r})"

    @property
    def key_name(self) -> str:
        """Which key tags: ``audit:<id>``, ``keyring:<id>`` or ``unkeyed``."""
        return self.names[0]

    def tag(self, value: str) -> str:
        """The tag token (``ioc=<12 hex>``) of ``value`` under the tagging key ("" for a
        value that is blank once normalised)."""
        data = normalise(value).encode()
        if not data:
            return ""
        h = self._tagger.copy()
        h.update(data)
        return TAG_PREFIX + h.hexdigest()

    def detail(self, payload: Any) -> str:
        """The tag tokens of ``payload``'s indicators, space separated ("" without any).

        The publish hot path (~0.8 us for the common ``{"ioc": {"value": ...}}`` payload:
        normalise inline, one copy of the pre-keyed hash state, one update).
        """
        if type(payload) is not dict:
            return ""
        ioc = payload.get("ioc")
        if "iocs" in payload:
            tags = dict.fromkeys(self.tag(v) for v in indicator_values(payload))
            return " ".join(t for t in tags if t)
        if type(ioc) is dict:
            value = ioc.get("value")
            if type(value) is not str:
                value = _value(ioc)
                if value is None:
                    return ""
        elif type(ioc) is str:
            value = ioc
        else:
            return ""
        v = value.strip().lower()
        if "[" in v or "(" in v or "{" in v or v.startswith(_FANGED):
            v = normalise(v)
        if not v:
            return ""
        h = self._tagger.copy()
        h.update(v.encode())
        return TAG_PREFIX + h.hexdigest()

    def search_tags(self, value: str) -> tuple[str, ...]:
        """The tag tokens ``value`` may have been written with: one per key held."""
        data = normalise(value).encode()
        if not data:
            return ()
        out = []
        for state in self._states:
            h = state.copy()
            h.update(data)
            out.append(TAG_PREFIX + h.hexdigest())
        return tuple(dict.fromkeys(out))


def tag_key(material: bytes) -> bytes:
    """The 32-byte tag key derived from an audit or envelope key (HKDF-SHA256)."""
    return HKDF(hashes.SHA256(), 32, None, _INFO).derive(material)


def held_keys(mq: Any) -> list[tuple[str, bytes | None]]:
    """Every tag key ``mq`` holds, the tagging one first: audit keys, ring keys, unkeyed."""
    keys: list[tuple[str, bytes | None]] = []
    audit = getattr(mq, "audit", None)
    macer = getattr(audit, "macer", None)
    if macer is not None:
        keys += [(f"audit:{kid}", tag_key(material)) for kid, material in macer.materials()]
    ring = getattr(getattr(mq, "codec", None), "keyring", None)
    if ring is not None:
        ids = [ring.active_id, *(kid for kid in ring.ids if kid != ring.active_id)]
        keys += [(f"keyring:{kid}", tag_key(ring.key(kid).reveal())) for kid in ids]
    keys.append(("unkeyed", None))
    return keys


_CACHE: weakref.WeakKeyDictionary[Any, tuple[Any, Any, IndicatorTagger]] = \
    weakref.WeakKeyDictionary()


def tagger_of(mq: Any) -> IndicatorTagger:
    """The ``IndicatorTagger`` of a connection, built once per (audit log, codec) it uses."""
    audit, codec = mq.audit, mq.codec
    try:
        cached = _CACHE.get(mq)
    except TypeError:  # not weak-referenceable (a test double): build it each time
        return IndicatorTagger(held_keys(mq))
    if cached is not None and cached[0] is audit and cached[1] is codec:
        return cached[2]
    tagger = IndicatorTagger(held_keys(mq))
    _CACHE[mq] = (audit, codec, tagger)
    return tagger


__all__ = ["MAX_TAGS", "IndicatorTagger", "held_keys", "indicator_values", "normalise",
           "tag_key", "tagger_of", "tags_in"]
