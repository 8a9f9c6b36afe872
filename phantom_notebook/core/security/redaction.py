"""Redaction of sensitive fields (sources, reporter identity, PII) for display and logs.

Threat intelligence protects its sources: wherever a payload is shown — DataFrames, logs,
reprs, widgets — fields named here are masked unless the caller's role may see them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

SENSITIVE_FIELDS = frozenset({
    "source", "sources", "reporter", "reporter_identity", "reported_by", "analyst",
    "submitter", "informant", "contact", "pii", "personal_data", "phone", "email_address",
    "customer", "victim", "victim_name", "attribution_source", "handler_notes",
})
MASK = "[redacted]"


def redact(value: Any, fields: Iterable[str] = SENSITIVE_FIELDS, *, reveal: bool = False,
           mask: str = MASK) -> Any:
    """A copy of ``value`` with every sensitive key's value replaced by ``mask``.

    Walks nested dicts and lists; keys match case-insensitively. ``reveal=True`` (a role
    that may see sources) returns ``value`` unchanged.
    """
    if reveal:
        return value
    names = {f.lower() for f in fields}
    return _walk(value, names, mask)


def _walk(value: Any, names: set[str], mask: str) -> Any:
    if isinstance(value, dict):
        return {k: mask if isinstance(k, str) and k.lower() in names else _walk(v, names, mask)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(v, names, mask) for v in value]
    return value
