"""What the Python mutation report needs besides mutmut's results.

``EQUIVALENT``: survivors that no test can kill, each with the mutated line (so a note goes
stale, and the survivor is reported as needing a test again, when mutmut renumbers the
mutants of a changed function) and a one-line reason. ``EXCLUDED``: what is not mutated and
why. ``BASELINE``: each module's kill rate before the tests of issue #22.
"""

from __future__ import annotations

#: mutant name -> (a fragment of its diff's mutated line, why no test can tell it apart)
EQUIVALENT: dict[str, tuple[str, str]] = {
    # routing.py
    "phantom_notebook.core.model.routing.x_parent_of__mutmut_4": (
        'stored.split("#", )[0]',
        "queue names cannot hold '#' and a partition adds one: every split keeps the same head"),
    "phantom_notebook.core.model.routing.x_parent_of__mutmut_5": (
        'stored.rsplit("#", 1)[0]',
        "a stored name holds at most one '#': split and rsplit cut at the same place"),
    "phantom_notebook.core.model.routing.x_parent_of__mutmut_7": (
        'stored.split("#", 2)[0]',
        "a stored name holds at most one '#': maxsplit 1 or 2 give the same head"),
    # _dtypes.py
    "phantom_notebook.notebook._dtypes.x_column__mutmut_28": (
        'dtype=None)',
        "number() gives floats or None: the inferred dtype is float64 (all-None: NaT either way)"),
    "phantom_notebook.notebook._dtypes.x_column__mutmut_30": (
        "for v in values], )",
        "number() gives floats or None: the inferred dtype is float64 (all-None: NaT either way)"),
    "phantom_notebook.notebook._dtypes.x_text__mutmut_8": (
        'value.decode("UTF-8", "replace")',
        "codec names are case-insensitive: UTF-8 is utf-8"),
    "phantom_notebook.core.model.routing.xǁLayoutǁread__mutmut_2": (
        "client.pipeline(transaction=None)",
        "two HGETs of one hash: wrapped in MULTI/EXEC or not, the replies are the same"),
    "phantom_notebook.core.model.routing.xǁLayoutǁread__mutmut_3": (
        "client.pipeline(transaction=True)",
        "two HGETs of one hash: wrapped in MULTI/EXEC or not, the replies are the same"),
}

#: function or file -> why mutmut does not mutate it
EXCLUDED: dict[str, str] = {}

#: module -> kill rate (%) measured before the issue #22 tests
BASELINE: dict[str, float] = {}
