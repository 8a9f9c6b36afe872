"""pytest plugin for mutation runs: a mutant's tests run fastest first.

mutmut hands pytest the tests that call the mutated function in no particular order and
stops at the first failure (``-x``); most mutants are killed by a fast unit test, so
running those before the seconds-long worker tests makes a killed mutant cost well under
a second. Durations come from mutmut's stats run (``mutmut-stats.json`` in the working
directory, ``mutants/``); without it the order is left alone. Loaded by ``[tool.mutmut]``
``pytest_add_cli_args`` (``-p tools.mutation.fastest_first``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

STATS = Path("mutmut-stats.json")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Sort the collected tests by their duration in the stats run (unknown ones last)."""
    try:
        durations = json.loads(STATS.read_text()).get("duration_by_test", {})
    except (OSError, ValueError):
        return
    if durations:
        items.sort(key=lambda item: durations.get(item.nodeid, float("inf")))
