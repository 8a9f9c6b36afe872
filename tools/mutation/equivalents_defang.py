"""Equivalent mutants of defang.py (see python_equivalents.py).

Every survivor of the last run that no test can tell apart, each reviewed; the
others are killed by tests (notes of this module in python_equivalents.py that are
not repeated here are of mutants a test now kills)."""

from __future__ import annotations

#: mutant name -> (a fragment of its diff's mutated line, why no test can tell it apart)
EQUIVALENT: dict[str, tuple[str, str]] = {
    "phantom_notebook.intel.defang.x__replacement__mutmut_6": (
        "match[1].translate(_TO_FANGED)",
        "for a scheme match group 1 is the scheme group, the whole match"),
    "phantom_notebook.intel.defang.x_refang_with_offsets__mutmut_3": (
        "position = None",
        "text[None:n] is text[0:n]: None and 0 slice alike"),
}
