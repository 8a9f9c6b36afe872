"""Build the codec a connection uses from its security settings (and the environment)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..config.settings import SecuritySettings
from ..errors import ConfigError
from ..model.codec import Codec, PlainCodec


def build_codec(security: SecuritySettings, origin: str | None,
                environ: Mapping[str, str] | None = None) -> Codec:
    """A ``SealingCodec`` when keys, an origin key or trusted origins are configured.

    Without any of them the payload travels in clear (``PlainCodec``). With a key ring every
    queue is encrypted and unencrypted envelopes are refused (``require_encryption``
    defaults to True): encryption is a property of the deployment, so a forgotten flag on
    one queue cannot leak it.
    """
    from .keyring import KeyRing
    from .sealing import OriginSigner, OriginVerifier, SealingCodec

    env = os.environ if environ is None else environ
    ring = None
    if security.keys:
        ring = KeyRing.parse(security.keys, active=security.active_key)
    elif security.key_file:
        ring = KeyRing.from_file(security.key_file, insecure_ok=security.insecure_key_file_ok)
    else:
        ring = KeyRing.from_env(env)
    signer = None
    who = origin or security.origin
    origin_key = security.origin_key or env.get("PHANTOM_ORIGIN_KEY")
    if origin_key:
        if not who:
            raise ConfigError("security.origin", "an origin key needs an origin name",
                              "connect(origin=...) or [security] origin")
        signer = OriginSigner(who, origin_key)
    trusted = security.trusted_origins or env.get("PHANTOM_TRUSTED_ORIGINS")
    verifier = OriginVerifier.parse(trusted) if trusted else None
    if ring is None and signer is None and verifier is None:
        if security.require_encryption:
            raise ConfigError("security.require_encryption", "true but no keys are configured",
                              "set security.keys, security.key_file or $PHANTOM_KEYS")
        return PlainCodec()
    return SealingCodec(ring, signer, verifier, require_encryption=security.require_encryption)
