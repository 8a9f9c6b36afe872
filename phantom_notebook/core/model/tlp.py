"""TLP 2.0 labels as the core knows them: names and their order (CLEAR < ... < RED).

The intel layer's ``TLP`` enum is the rich model; the core only needs to validate the
envelope field and compare labels, so this stays dependency-free.
"""

from __future__ import annotations

from ..errors import ValidationError

ORDER = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
_ALIASES = {"WHITE": "CLEAR", "AMBER_STRICT": "AMBER+STRICT"}
_CANONICAL = frozenset(ORDER)


def parse_tlp(value: object) -> str:
    """Normalize a TLP label (``"tlp:amber+strict"`` -> ``"AMBER+STRICT"``)."""
    if value in _CANONICAL:  # the publish hot path: already canonical
        return str(value)
    text = str(getattr(value, "value", value)).strip().upper().removeprefix("TLP:")
    text = _ALIASES.get(text, text)
    if text not in ORDER:
        raise ValidationError(f"invalid TLP {value!r}: use one of {', '.join(ORDER)}")
    return text


def tlp_rank(label: str) -> int:
    """The position of a label in CLEAR < GREEN < AMBER < AMBER+STRICT < RED."""
    return ORDER.index(parse_tlp(label))
