"""Equivalent mutants of envelope.py (see python_equivalents.py)."""

from __future__ import annotations

#: mutant name -> (a fragment of its diff's mutated line, why no test can tell it apart)
EQUIVALENT: dict[str, tuple[str, str]] = {
    "phantom_notebook.core.model.envelope.x__header_problem__mutmut_20": (
        '(("p", 1), ("c", 0), ("a", 1))',
        "only called once h['p'] was read: the default of p is never used"),
    "phantom_notebook.core.model.envelope.x__header_problem__mutmut_23": (
        '(("p", 0), ("c", 1), ("a", 1))',
        "the default only has to be an int (a missing c is valid): 0 and 1 both are"),
    "phantom_notebook.core.model.envelope.x__header_problem__mutmut_26": (
        '(("p", 0), ("c", 0), ("a", 2))',
        "the default only has to be an int (a missing a is valid): 1 and 2 both are"),
    "phantom_notebook.core.model.envelope.x__header_problem__mutmut_45": (
        'h.get(f, "XXXX")',
        "the default only has to be a str (a missing v/tp/tlp is valid): any str is"),
    "phantom_notebook.core.model.envelope.x_new_id__mutmut_13": (
        "ms.to_bytes(6, )",
        "int.to_bytes defaults to big-endian since Python 3.11 (the oldest supported)"),
    "phantom_notebook.core.model.envelope.x_new_ids__mutmut_5": (
        "now_ms.to_bytes(6, )",
        "int.to_bytes defaults to big-endian since Python 3.11 (the oldest supported)"),
    "phantom_notebook.core.model.envelope.x_new_ids__mutmut_12": (
        "ms[8:13]",
        "ms is the hex of 6 bytes, 12 characters: [8:13] is [8:12]"),
    "phantom_notebook.core.model.envelope.xǁMessagePriorityǁparse__mutmut_5": (
        "raise ValueError(None)",
        "the ValueError is caught at once and replaced by the ValidationError"),
}
