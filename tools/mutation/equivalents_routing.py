"""Equivalent mutants of routing.py (see python_equivalents.py)."""

from __future__ import annotations

EQUIVALENT: dict[str, tuple[str, str]] = {
    "phantom_notebook.core.model.routing.xǁLayoutǁread__mutmut_2": (
        "client.pipeline(transaction=None)",
        "transaction=None is falsy: redis-py sends the same plain (non-MULTI) pipeline"),
}
