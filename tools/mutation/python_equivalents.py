"""What the Python mutation report needs besides mutmut's results.

``EQUIVALENT``: survivors that no test can kill (here: routing and access; the other
modules keep theirs in ``equivalents_<module>.py``), each with the mutated line (so a note goes
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
    # access.py
    "phantom_notebook.core.security.access.x__role__mutmut_1": (
        'Role.from_table(None, actions)',
        "_role builds the built-in roles once, at import, before any mutant is active"),
    "phantom_notebook.core.security.access.x__role__mutmut_2": (
        'Role.from_table(name, None)',
        "_role builds the built-in roles once, at import, before any mutant is active"),
    "phantom_notebook.core.security.access.x__role__mutmut_3": (
        'Role.from_table(actions)',
        "_role builds the built-in roles once, at import, before any mutant is active"),
    "phantom_notebook.core.security.access.x__role__mutmut_4": (
        'Role.from_table(name, )',
        "_role builds the built-in roles once, at import, before any mutant is active"),
    "phantom_notebook.core.security.access.x__scopes__mutmut_22": (
        '("XX*XX",) if role.reads_audit',
        "the read_audit rows name no {q}/{n}: the scope's one pattern only counts as one pass"),
    "phantom_notebook.core.security.access.x__scopes__mutmut_28": (
        '("XX*XX",) if role.reads_audit and',
        "the audit_maintain rows name no {q}/{n}: the scope's one pattern only counts as one pass"),
    "phantom_notebook.core.security.access.x__scopes__mutmut_37": (
        'scopes["all"] = ("XX*XX",)',
        "the 'all' rows name no {q}/{n}: the scope's one pattern only counts as one pass"),
    "phantom_notebook.core.security.access.x_apply_acl__mutmut_12": (
        'execute_command("acl", "SETUSER"',
        "Redis command names are case-insensitive"),
    "phantom_notebook.core.security.access.x_apply_acl__mutmut_14": (
        'execute_command("ACL", "setuser"',
        "Redis command names are case-insensitive"),
    "phantom_notebook.core.security.access.x_apply_acl__mutmut_32": (
        'execute_command("acl", "SAVE")',
        "Redis command names are case-insensitive"),
    "phantom_notebook.core.security.access.x_apply_acl__mutmut_34": (
        'execute_command("ACL", "save")',
        "Redis command names are case-insensitive"),
    "phantom_notebook.core.security.access.xǁGrantǁcovers__mutmut_23": (
        'queue.split("#", )[0]',
        "queue names cannot hold '#' and a partition adds one: every split keeps the same head"),
    "phantom_notebook.core.security.access.xǁGrantǁcovers__mutmut_24": (
        'queue.rsplit("#", 1)[0]',
        "a stored name holds at most one '#': split and rsplit cut at the same place"),
    "phantom_notebook.core.security.access.xǁGrantǁcovers__mutmut_26": (
        'queue.split("#", 2)[0]',
        "a stored name holds at most one '#': maxsplit 1 or 2 give the same head"),
}

def _more() -> None:
    """Merge the notes of ``equivalents_<module>.py`` (one file per module, each with its own
    ``EQUIVALENT`` dict) into ``EQUIVALENT``."""
    import importlib
    from pathlib import Path

    for path in sorted(Path(__file__).parent.glob("equivalents_*.py")):
        more = importlib.import_module(f"tools.mutation.{path.stem}")
        EQUIVALENT.update(more.EQUIVALENT)


_more()

#: function or file -> why mutmut does not mutate it
EXCLUDED: dict[str, str] = {}

#: module -> kill rate (%) of the first mutmut run (2026-12-03 11:29-12:46 UTC, commit ef29414:
#: after the boundary tests of issue #22, before the tests written against its survivors;
#: frames and dtypes were not run then)
BASELINE: dict[str, float] = {
    "policies": 95.3, "middleware": 75.6, "envelope": 65.2, "codec": 50.0, "sealing": 69.9,
    "keyring": 65.1, "access": 68.7, "health": 41.7, "routing": 62.2, "ioc_extract": 88.8,
    "defang": 95.2,
}
