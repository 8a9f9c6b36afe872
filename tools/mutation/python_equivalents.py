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
    # health.py
    "phantom_notebook.core.observe.health.x__paused__mutmut_3": (
        "None)",
        "the merged bucket's queue name is never read, only its counts"),
    "phantom_notebook.core.observe.health.x__paused__mutmut_5": (
        ")",
        "the merged bucket's queue name is never read, only its counts"),
    "phantom_notebook.core.observe.health.x__queue_checks__mutmut_3": (
        "mq.layout(queue).all), None)",
        "the merged bucket's queue name is never read, only its counts"),
    "phantom_notebook.core.observe.health.x__queue_checks__mutmut_5": (
        "mq.layout(queue).all), )",
        "the merged bucket's queue name is never read, only its counts"),
    # envelope.py
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
    "phantom_notebook.core.model.envelope.xǁ_Entropyǁ__init____mutmut_5": (
        "self._at = 1",
        "with the buffer empty the first take refills it and resets the offset to 0"),
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
