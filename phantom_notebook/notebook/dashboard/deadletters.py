"""The dashboard's dead letters: paged (never loading everything), redacted by TLP, gated.

``DeadLetterPager(mq, role=...)`` shows ``page_size`` letters at a time, newest first, of one
queue or of every queue (merged by time); ``older()`` / ``newer()`` move by DLQ entry id, so a
page costs one ``XREVRANGE COUNT page_size`` per queue however many letters there are.

Who sees what: a role that may ``manage`` a queue (an operator) sees payloads of any TLP,
with sources and PII masked unless the role is in ``reveal_roles``; a read-only role sees
a payload only up to ``max_tlp`` (TLP:GREEN by default: shareable within the community),
above that the payload is withheld whole, and never a traceback. Replay and purge need
``manage``; the core checks it again, audits a refusal, and Redis ACLs check a third time.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...core.admin.dlq import DeadLetter
from ...core.errors import PermissionDeniedError, ValidationError
from ...core.model.tlp import parse_tlp, tlp_rank
from ...core.security.redaction import redact
from ..widgets.dlq import REVEAL_ROLES, _by_queue, _defang_payload, repeats

if TYPE_CHECKING:
    from ...core.queues import MessageQueue

Key = tuple[str, str]  # (queue, dlq entry id)
PAGE_SIZE = 15


@dataclass(frozen=True)
class Page:
    """One page of dead letters, newest first."""

    letters: tuple[DeadLetter, ...]
    number: int
    has_older: bool
    total: int  # dead letters of the queues shown (XLEN), not just this page

    def keys(self) -> list[Key]:
        """The (queue, dlq id) of each letter shown."""
        return [(d.queue, d.dlq_id) for d in self.letters]


class DeadLetterPager:
    """Pages through dead letters of one queue or all; inspect, replay, purge (gated)."""

    def __init__(self, mq: MessageQueue, *, role: str | None = None,
                 page_size: int = PAGE_SIZE, max_tlp: str = "GREEN",
                 reveal_roles: Sequence[str] = REVEAL_ROLES) -> None:
        if page_size < 1:
            raise ValidationError(f"page_size must be >= 1, got {page_size}")
        self.mq = mq
        self.role = role if role is not None else mq.role
        self.page_size = page_size
        self.max_tlp = parse_tlp(max_tlp)
        self.reveal_roles = tuple(reveal_roles)
        self.queue: str | None = None  # None: every queue with dead letters
        self.reason: str | None = None
        self._cursors: list[dict[str, str | None]] = [{}]  # per page: queue -> before id
        self.page: Page | None = None

    def __repr__(self) -> str:
        return f"DeadLetterPager(queue={self.queue!r}, role={self.role!r})"

    # -- access ------------------------------------------------------------------------------

    def may_manage(self, queue: str) -> bool:
        """True when this role may replay and purge ``queue``'s dead letters."""
        return self.role is None or self.mq.access.allows(self.role, "manage", queue)

    def _readable(self, queue: str) -> bool:
        return self.role is None or self.mq.access.allows(self.role, "stats", queue)

    # -- paging ------------------------------------------------------------------------------

    def choose(self, queue: str | None = None, reason: str | None = None) -> Page:
        """Show ``queue`` (None: all) filtered by ``reason``, from the newest letter."""
        if queue is not None and not self._readable(queue):
            raise PermissionDeniedError(f"role {self.role!r} may not read queue {queue!r}")
        self.queue, self.reason = queue, reason or None
        self._cursors = [{}]
        return self.load()

    def queues(self, dead: dict[str, int] | None = None) -> list[str]:
        """The queues browsed: the chosen one, else every readable queue with dead letters
        (``dead`` maps queue -> dead letters, e.g. from the dashboard snapshot)."""
        if self.queue is not None:
            return [self.queue]
        if dead is None:
            names = [q for q in sorted(self.mq.queues()) if self._readable(q)]
            dead = {s.queue: s.dead for s in self.mq.stats(names)} if names else {}
        return [q for q, n in sorted(dead.items()) if n and self._readable(q)]

    def load(self, dead: dict[str, int] | None = None) -> Page:
        """(Re)read the current page."""
        names = self.queues(dead)
        before = self._cursors[-1]
        # one page more than shown per queue: whether an older page exists
        per = {q: self.mq.dlq(q).list(limit=self.page_size + 1, reason=self.reason,
                                       before=before.get(q)) for q in names}
        merged = list(heapq.merge(*per.values(), key=lambda d: _order(d.dlq_id), reverse=True))
        shown = tuple(merged[:self.page_size])
        total = sum(dead.get(q, 0) for q in names) if dead is not None else \
            sum(len(self.mq.dlq(q)) for q in names)
        self.page = Page(shown, len(self._cursors), len(merged) > self.page_size, total)
        return self.page

    def older(self, dead: dict[str, int] | None = None) -> Page:
        """The next page back in time (the same page when there is none)."""
        if self.page is None:
            return self.load(dead)
        if not self.page.has_older:
            return self.page
        cursor = dict(self._cursors[-1])
        for q in self.queues(dead):
            mine = [d.dlq_id for d in self.page.letters if d.queue == q]
            if mine:
                cursor[q] = mine[-1]
        self._cursors.append(cursor)
        return self.load(dead)

    def newer(self, dead: dict[str, int] | None = None) -> Page:
        """The page before this one (newer letters); the first page stays the first."""
        if len(self._cursors) > 1:
            self._cursors.pop()
        return self.load(dead)

    # -- one letter ----------------------------------------------------------------------------

    def inspect(self, queue: str, dlq_id: str) -> dict[str, Any]:
        """One letter as a dict; the payload withheld or masked as the role requires."""
        if not self._readable(queue):
            raise PermissionDeniedError(f"role {self.role!r} may not read queue {queue!r}")
        letter = self.mq.dlq(queue).get(dlq_id)
        out = letter.to_dict()
        envelope = out.pop("envelope", None) or {}
        payload = envelope.pop("payload", None)
        tlp = str(envelope.get("tlp") or "CLEAR")
        manage = self.may_manage(queue)
        out.update(tlp=tlp, headers=envelope.get("headers"),
                   traceparent=envelope.get("traceparent"), origin=envelope.get("origin"),
                   may_manage=manage, will_fail_again=repeats(letter.reason) or
                   not letter.decodable)
        if not manage and tlp_rank(tlp) > tlp_rank(self.max_tlp):
            out["payload"] = (f"[TLP:{tlp} payload withheld: role {self.role!r} is read-only "
                              f"and sees payloads up to TLP:{self.max_tlp}]")
            out["payload_redacted"] = "tlp"
        else:
            reveal = self.role is None or self.role in self.reveal_roles
            out["payload"] = _defang_payload(redact(payload, reveal=reveal))
            out["payload_redacted"] = "" if reveal else "sensitive fields"
        if not manage:
            out["traceback"] = "[withheld from read-only roles]"
            out["error"] = _first_line(str(out.get("error") or ""))
        return out

    # -- changing --------------------------------------------------------------------------

    def replay(self, keys: Iterable[Key]) -> list[str]:
        """Replay the chosen letters (the core checks ``manage`` and audits); new ids."""
        out: list[str] = []
        for queue, ids in _by_queue(keys).items():
            out += self.mq.dlq(queue).replay(ids, confirm=True)
        return out

    def purge(self, keys: Iterable[Key]) -> int:
        """Delete the chosen letters (the core checks ``manage`` and audits); how many."""
        return sum(int(self.mq.dlq(queue).purge(ids, confirm=True))
                   for queue, ids in _by_queue(keys).items())


def _order(dlq_id: str) -> tuple[int, int]:
    ms, _, seq = dlq_id.partition("-")
    return int(ms or 0), int(seq or 0)


def _first_line(text: str) -> str:
    return text.splitlines()[0][:200] if text else ""


__all__ = ["DeadLetterPager", "Page"]
