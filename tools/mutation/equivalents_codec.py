"""Equivalent mutants of codec.py (see python_equivalents.py): none, every mutant is killed."""

from __future__ import annotations

#: mutant name -> (a fragment of its diff's mutated line, why no test can tell it apart)
EQUIVALENT: dict[str, tuple[str, str]] = {}
