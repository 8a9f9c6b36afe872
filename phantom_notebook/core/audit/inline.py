"""Audit items of the engine's actions, and opening a connection's ``AuditLog``.

An action on a queue (publish, settle, replay) carries its ``AuditItem`` s into the same
function call (``AuditLog.section``): the function appends them to the caller's audit
stream of that queue before it writes anything else. Actions outside a queue's slot (ACL
changes, key rotations, permission denials) are recorded with ``record_safely`` in the
user's global audit stream.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..security.keyring import SecretKey
from .log import AuditLog
from .verify import audit_key_from_env

log = logging.getLogger("phantom_notebook.audit")

#: dead-letter reasons that are security events of their own in the audit trail
SECURITY_REASONS = {"origin_rejected": "origin_rejected", "tlp_denied": "tlp_denied",
                    "decrypt_failed": "decrypt_failed", "unknown_key": "decrypt_failed",
                    "unencrypted_rejected": "decrypt_failed", "queue_mismatch": "decrypt_failed",
                    "replayed": "origin_rejected"}


@dataclass
class AuditItem:
    """One entry to append: action, target, outcome, ids and a small detail mapping."""

    action: str
    target: str
    outcome: str = "ok"
    message_ids: Sequence[str] = ()
    detail: Mapping[str, Any] = field(default_factory=dict)


def record_safely(audit: AuditLog | None, item: AuditItem) -> None:
    """Append one entry to the user's global stream; a failure is logged, never raised
    (the audited action already happened)."""
    if audit is None:
        return
    try:
        audit.record(item.action, item.target, item.outcome, message_ids=item.message_ids,
                     detail=dict(item.detail) or None)
    except Exception as exc:  # noqa: BLE001 - the audited action already happened
        log.warning("audit append of %s failed: %s", item.action, exc)


def open_audit(mq: Any, settings: Any, user: str = "default") -> AuditLog | None:
    """The connection's ``AuditLog`` when an audit key is configured, else None."""
    text = settings.security.audit_key
    key: SecretKey | None
    if text:
        kid, sep, material = text.partition(":")
        key = SecretKey.from_base64(kid if sep else "audit", material if sep else text,
                                    field="security.audit_key")
    else:
        key = audit_key_from_env()
    if key is None:
        return None
    actor = mq.origin or settings.security.origin or "phantom_notebook"
    return AuditLog(mq, key, actor=actor, role=mq.role or "", user=user,
                    mode=settings.security.audit_failure,
                    retention_s=settings.security.audit_retention_s,
                    max_entries=settings.security.audit_max_entries)


__all__ = ["SECURITY_REASONS", "AuditItem", "open_audit", "record_safely"]
