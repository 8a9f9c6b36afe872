"""The key an archive is MACed with: ``$PHANTOM_BACKUP_KEY`` / ``security.backup_key``,
else the audit key. Keys are given as ``[<id>:]<base64 of 32 bytes>``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..audit.verify import audit_key_from_env
from ..errors import ConfigError
from ..security.keyring import SecretKey

ENV_BACKUP_KEY = "PHANTOM_BACKUP_KEY"


def _parse(text: str, default_id: str, field: str) -> SecretKey:
    kid, sep, material = text.strip().partition(":")
    return SecretKey.from_base64(kid if sep else default_id, material if sep else text.strip(),
                                 field=field)


def backup_key(settings: Any, key: SecretKey | str | None = None,
               environ: Mapping[str, str] | None = None) -> SecretKey:
    """The archive key: ``key`` if given, else the backup key, else the audit key."""
    if isinstance(key, SecretKey):
        return key
    if isinstance(key, str) and key:
        return _parse(key, "backup", "backup key")
    env = os.environ if environ is None else environ
    text = env.get(ENV_BACKUP_KEY, "").strip()
    if text:
        return _parse(text, "backup", ENV_BACKUP_KEY)
    configured = getattr(settings.security, "backup_key", None)
    if configured:
        return _parse(configured, "backup", "security.backup_key")
    if settings.security.audit_key:
        return _parse(settings.security.audit_key, "audit", "security.audit_key")
    audit = audit_key_from_env(env)
    if audit is not None:
        return audit
    raise ConfigError("backup key", "a backup archive is signed (HMAC) and none of its keys is "
                      "configured", f"set ${ENV_BACKUP_KEY} (or security.backup_key, or the "
                      "audit key) to [<id>:]<base64 of 32 random bytes>, e.g. from "
                      "`openssl rand -base64 32`")


__all__ = ["ENV_BACKUP_KEY", "backup_key"]
