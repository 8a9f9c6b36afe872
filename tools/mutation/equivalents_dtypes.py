"""Equivalent mutants of _dtypes.py (see python_equivalents.py).

Every survivor of the last run that no test can tell apart, each reviewed; the
others are killed by tests (notes of this module in python_equivalents.py that are
not repeated here are of mutants a test now kills)."""

from __future__ import annotations

#: mutant name -> (a fragment of its diff's mutated line, why no test can tell it apart)
EQUIVALENT: dict[str, tuple[str, str]] = {
    "phantom_notebook.notebook._dtypes.x_column__mutmut_28": (
        "dtype=None)",
        "number() gives floats or None: the inferred dtype is float64 (all-None: NaT either way)"),
    "phantom_notebook.notebook._dtypes.x_column__mutmut_30": (
        "for v in values], )",
        "number() gives floats or None: the inferred dtype is float64 (all-None: NaT either way)"),
    "phantom_notebook.notebook._dtypes.x_text__mutmut_8": (
        'value.decode("UTF-8", "replace")',
        "codec names are case-insensitive: UTF-8 is utf-8"),
}
