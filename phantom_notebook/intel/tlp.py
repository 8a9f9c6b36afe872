"""Traffic Light Protocol 2.0 markings, ordered from least to most restrictive.

``TLP.CLEAR < TLP.GREEN < TLP.AMBER < TLP.AMBER_STRICT < TLP.RED``, so the
strictest of several markings is simply ``max(markings)``.  ``TLP.parse``
accepts TLP 2.0 labels in any case, with or without the ``TLP:`` prefix, and
the TLP 1.0 label ``WHITE`` as an alias of ``CLEAR``.
"""

from __future__ import annotations

import re
from enum import Enum

from phantom_notebook.core.errors import ValidationError

__all__ = ["TLP", "InvalidTLPError", "TLPDowngradeError"]


class InvalidTLPError(ValidationError):
    """Raised when a string is not a TLP 2.0 (or TLP 1.0 WHITE) label."""


class TLPDowngradeError(ValidationError):
    """Raised when a message would be marked looser than the indicators it carries."""


class TLP(Enum):
    """A TLP 2.0 marking; members compare by restrictiveness, CLEAR lowest, RED highest."""

    CLEAR = "CLEAR"
    GREEN = "GREEN"
    AMBER = "AMBER"
    AMBER_STRICT = "AMBER+STRICT"
    RED = "RED"

    @property
    def rank(self) -> int:
        """Position in the ordering: 0 for CLEAR up to 4 for RED."""
        return _RANK[self]

    @property
    def label(self) -> str:
        """The official display label, e.g. ``TLP:AMBER+STRICT``."""
        return f"TLP:{self.value}"

    def __str__(self) -> str:
        return self.label

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, TLP):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, TLP):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, TLP):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, TLP):
            return NotImplemented
        return self.rank >= other.rank

    @classmethod
    def parse(cls, text: str | TLP) -> TLP:
        """Return the marking named by ``text``, e.g. ``"amber+strict"`` or ``"TLP:WHITE"``.

        Case, surrounding whitespace and the ``TLP:`` prefix are ignored;
        ``AMBER STRICT`` and ``AMBER_STRICT`` are accepted for ``AMBER+STRICT``
        and TLP 1.0 ``WHITE`` maps to ``CLEAR``.
        """
        if isinstance(text, TLP):
            return text
        if not isinstance(text, str):
            raise InvalidTLPError(f"{text!r} is not a TLP label: expected a string")
        key = _PREFIX.sub("", text.strip().upper())
        key = _STRICT_SEP.sub("+", key.strip())
        found = _ALIASES.get(key)
        if found is None:
            allowed = ", ".join(m.value for m in cls)
            raise InvalidTLPError(f"{text!r} is not a TLP label: expected one of {allowed}")
        return found


_RANK: dict[TLP, int] = {member: index for index, member in enumerate(TLP)}
_PREFIX = re.compile(r"^TLP\s*:\s*")
_STRICT_SEP = re.compile(r"\s*[+_\s]\s*")
_ALIASES: dict[str, TLP] = {member.value: member for member in TLP}
_ALIASES["WHITE"] = TLP.CLEAR
