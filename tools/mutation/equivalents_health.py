"""Equivalent mutants of health.py (see python_equivalents.py)."""

from __future__ import annotations

EQUIVALENT: dict[str, tuple[str, str]] = {
    "phantom_notebook.core.observe.health.x__memory__mutmut_2": (
        'mq.client.info(None)',
        "INFO without a section returns the default sections, memory (used_memory, maxmemory) "
        "among them; the embedded Redis refuses INFO with or without one"),
    "phantom_notebook.core.observe.health.x__memory__mutmut_4": (
        'mq.client.info("MEMORY")',
        "Redis matches INFO section names case-insensitively"),
    # also recorded in python_equivalents.py
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
}
