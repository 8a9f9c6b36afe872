"""Equivalent mutants of sealing.py (see python_equivalents.py)."""

from __future__ import annotations

EQUIVALENT: dict[str, tuple[str, str]] = {
    "phantom_notebook.core.security.sealing.x__b64url__mutmut_9": (
        'rstrip(b"XX=XX")',
        "only 32- and 64-byte signatures are encoded: their last character before the '=' "
        "has zero low bits, so it is never 'X'"),
    "phantom_notebook.core.security.sealing.x_signed_bytes__mutmut_19": (
        'if type(None) is dict and',
        "the skipped fast path and the general branch drop a lone pn-sig alike"),
    "phantom_notebook.core.security.sealing.xǁSealingCodecǁnew_sealer__mutmut_8": (
        'pads = None',
        "without the inline HMAC the sealer calls signer.sign: the same signature, only slower"),
    "phantom_notebook.core.security.sealing.xǁSealingCodecǁnew_sealer__mutmut_9": (
        '(signer is not None) and False',
        "without the inline HMAC the sealer calls signer.sign: the same signature, only slower"),
    "phantom_notebook.core.security.sealing.xǁSealingCodecǁnew_sealer__mutmut_14": (
        'kid, encrypt, nonces = "XXXX", None, b""',
        "without a ring the sealer returns the plain frame before the key id is used"),
    "phantom_notebook.core.security.sealing.xǁSealingCodecǁnew_sealer__mutmut_15": (
        'kid, encrypt, nonces = "", None, b"XXXX"',
        "without a ring the sealer returns the plain frame before a nonce is taken"),
}
