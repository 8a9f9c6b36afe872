"""Sealed envelopes (AES-256-GCM, header as associated data) and origin signatures.

Byte layout (wire format v1 of ``envelope.py``; only the body and two header keys are new)::

    raw         = 0x01 | u32 BE header length | header JSON (sorted keys) | body
    plain body  = orjson(payload)
    sealed body = nonce (12 random bytes) | AES-256-GCM ciphertext | tag (16 bytes)
    AAD         = raw[:5 + header length]: every byte before the body, so changing ANY
                  header byte (type, priority, origin, queue, tlp, id, attempt, key id,
                  signature...) or the wire version fails authentication
    header "k"  = id of the ``KeyRing`` key that sealed the body (absent when plain)

    header "h"["pn-sig"] = base64url (no padding) of the origin signature over
        b"pn-origin-sig/v1\\n" | u32 BE len(view) | view | orjson(payload)
        view = canonical JSON (sorted keys) of the header without "a" (attempt), "k"
               (key id) and the "pn-*" entries of "h" (retry bookkeeping, the signature)

The signature covers the plaintext payload and every header field the origin wrote
(including ``o``), but not what legitimately changes later: the attempt and ``pn-*``
bookkeeping a worker adds when it retries, and the key id and ciphertext a rotation
(``reseal``) replaces. So a retried or re-encrypted message keeps its origin's signature,
and no worker needs the origin's key. With encryption on, the AEAD additionally covers
the whole header, signature included.

Origin keys: HMAC-SHA256 by default, Ed25519 per origin when needed. At 60k msg/s an
Ed25519 verify (~50-100 us in ``cryptography``) costs 3-6 CPU cores; HMAC-SHA256 costs
~1-2 us. The price of HMAC: every consumer that verifies origin X holds X's secret and
could forge X. That is acceptable where consumers are as trusted as producers (one team's
workers); an origin whose messages must be unforgeable by consumers (an external feed, a
human analyst's notebook) uses an Ed25519 key instead: ``OriginSigner(origin,
Ed25519PrivateKey)`` and ``OriginVerifier({origin: Ed25519PublicKey})``. The verifier's
key type alone decides the algorithm (no algorithm field is read from the message).

``DecodeError`` reasons raised by ``SealingCodec.open``:

    decode_failed         not a v1 envelope, bad header JSON/fields, body too short, payload
                          not JSON, key id not a non-empty string
    unknown_key           header "k" names a key the ring lacks (or the codec has no ring)
    decrypt_failed        authentication failed: wrong key, tampered header/nonce/ciphertext
    unencrypted_rejected  no "k" but the codec requires encryption
    origin_rejected       (with a verifier) no origin, untrusted origin, no or bad signature

Nonces are random 96-bit: keep a key under ~2**32 messages (NIST SP 800-38D), i.e. rotate
at least daily at a sustained 60k msg/s; ``KeyRing.rotate`` + ``reseal`` make that cheap.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import os
import re
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ..errors import ConfigError, DecodeError
from ..model.envelope import (
    WIRE_VERSION,
    Envelope,
    encode_payload,
    envelope_from_header,
    frame,
    random_bytes,
    unframe,
)
from .keyring import KeyRing, SecretKey, decode_key

SIGNATURE_HEADER = "pn-sig"
NONCE_BYTES = 12
TAG_BYTES = 16
_HEAD = struct.Struct(">BI")
_LEN = struct.Struct(">I")
_SIG_DOMAIN = b"pn-origin-sig/v1\n"
_SORT = orjson.OPT_SORT_KEYS
_ORIGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")

SignerKey = bytes | str | SecretKey | Ed25519PrivateKey
VerifierKey = bytes | str | SecretKey | Ed25519PublicKey


def signed_bytes(header: Mapping[str, Any], body: bytes) -> bytes:
    """The exact bytes an origin signs: domain tag, header view and plaintext payload."""
    view = dict(header)
    view.pop("a", None)
    view.pop("k", None)
    extra = view.get("h")
    if type(extra) is dict and len(extra) == 1 and SIGNATURE_HEADER in extra:
        del view["h"]  # the common case on the consume path: only the signature itself
    elif isinstance(extra, Mapping):
        kept = {k: v for k, v in extra.items() if not str(k).startswith("pn-")}
        if kept:
            view["h"] = kept
        else:
            del view["h"]
    head = orjson.dumps(view, option=_SORT)
    return b"".join((_SIG_DOMAIN, _LEN.pack(len(head)), head, body))


class OriginSigner:
    """Signs the envelopes of one origin with its HMAC-SHA256 or Ed25519 key."""

    __slots__ = ("origin", "algorithm", "_pads", "_ed25519")

    def __init__(self, origin: str, key: SignerKey) -> None:
        self.origin = _check_origin(origin)
        self._pads: tuple[Any, Any] | None = None
        self._ed25519: Ed25519PrivateKey | None = None
        if isinstance(key, Ed25519PrivateKey):
            self._ed25519 = key
        elif isinstance(key, str) and key.startswith("ed25519:"):
            seed = decode_key(key[8:], origin, f"origin key of {origin!r}")
            self._ed25519 = Ed25519PrivateKey.from_private_bytes(seed)
        else:
            self._pads = _hmac_pads(_hmac_key(origin, key))
        self.algorithm = "ed25519" if self._ed25519 is not None else "hmac-sha256"

    def sign(self, message: bytes) -> str:
        """The base64url signature of ``message`` (see ``signed_bytes``)."""
        if self._ed25519 is not None:
            raw = self._ed25519.sign(message)
        else:
            assert self._pads is not None
            raw = _hmac_sha256(self._pads, message)
        return _b64url(raw)

    def __repr__(self) -> str:
        return f"OriginSigner(origin={self.origin!r}, algorithm={self.algorithm!r}, ***)"

    __str__ = __repr__


class OriginVerifier:
    """Accepts only envelopes signed by an allowed origin: ``{origin: key or [keys]}``.

    Keys are HMAC secrets (32 bytes, or their base64, or a ``SecretKey``) or Ed25519
    public keys (``Ed25519PublicKey`` or ``"ed25519:<base64 raw public key>"``). Several
    keys per origin let its key rotate without a flag day.
    """

    __slots__ = ("_keys",)

    def __init__(self, allowed_origins: Mapping[str, VerifierKey | Sequence[VerifierKey]]
                 ) -> None:
        self._keys: dict[str, tuple[tuple[Any, Any] | Ed25519PublicKey, ...]] = {}
        for origin, keys in allowed_origins.items():
            _check_origin(origin)
            listed = list(keys) if isinstance(keys, list | tuple) else [keys]
            if not listed:
                raise ConfigError(f"origin {origin!r}", "has no key")
            self._keys[origin] = tuple(_verify_key(origin, k) for k in listed)

    @classmethod
    def parse(cls, spec: str) -> OriginVerifier:
        """Build from ``"origin:<base64>,origin2:ed25519:<base64>"`` (repeat an origin for
        several keys)."""
        keys: dict[str, list[VerifierKey]] = {}
        for n, item in enumerate(filter(None, (p.strip() for p in spec.split(","))), 1):
            origin, sep, key = item.partition(":")
            if not sep:
                raise ConfigError("trusted origins", f"entry {n} is not '<origin>:<key>'")
            keys.setdefault(origin.strip(), []).append(key.strip())
        return cls(keys)

    @property
    def origins(self) -> tuple[str, ...]:
        """The origins this verifier accepts."""
        return tuple(self._keys)

    def verify(self, header: Mapping[str, Any], body: bytes, raw: bytes = b"") -> None:
        """Return if ``header``+``body`` carry a valid signature; else ``origin_rejected``."""
        origin = header.get("o")
        if not isinstance(origin, str) or not origin:
            raise DecodeError("origin_rejected", "message has no origin", raw)
        keys = self._keys.get(origin)
        if keys is None:
            raise DecodeError("origin_rejected", f"origin {origin[:64]!r} is not trusted", raw)
        extra = header.get("h")
        sig = extra.get(SIGNATURE_HEADER) if type(extra) is dict else None
        if not isinstance(sig, str) or not sig:
            raise DecodeError("origin_rejected", f"message from {origin!r} is not signed", raw)
        try:
            signature = binascii.a2b_base64(
                sig.replace("-", "+").replace("_", "/") + "=" * (-len(sig) % 4),
                strict_mode=True)
        except (binascii.Error, ValueError):
            raise DecodeError("origin_rejected", "signature is not base64url", raw) from None
        message = signed_bytes(header, body)
        for key in keys:
            if isinstance(key, tuple):
                if hmac.compare_digest(_hmac_sha256(key, message), signature):
                    return
                continue
            try:
                key.verify(signature, message)
                return
            except (InvalidSignature, ValueError):
                continue
        raise DecodeError("origin_rejected",
                          f"signature does not match any key of origin {origin!r}", raw)

    def __repr__(self) -> str:
        return f"OriginVerifier(origins={list(self._keys)!r}, ***)"

    __str__ = __repr__


class SealingCodec:
    """The ``Codec`` that encrypts payloads (AES-256-GCM) and/or signs origins.

    ``SealingCodec(ring)`` encrypts; add ``signer`` on producers and ``verifier`` on
    consumers for origin checks; ``SealingCodec(None, signer=..., verifier=...)`` signs
    without encrypting. ``require_encryption`` (default: True when there is a ring)
    dead-letters plaintext envelopes as ``unencrypted_rejected``; set it False only while
    migrating queues that still hold plaintext messages.
    """

    __slots__ = ("keyring", "signer", "verifier", "require_encryption")

    def __init__(self, keyring: KeyRing | None, signer: OriginSigner | None = None,
                 verifier: OriginVerifier | None = None, *,
                 require_encryption: bool | None = None) -> None:
        if require_encryption is None:
            require_encryption = keyring is not None
        if require_encryption and keyring is None:
            raise ConfigError("require_encryption", "needs a key ring")
        self.keyring = keyring
        self.signer = signer
        self.verifier = verifier
        self.require_encryption = require_encryption

    def __repr__(self) -> str:
        return (f"SealingCodec(keyring={self.keyring!r}, signer={self.signer!r}, "
                f"verifier={self.verifier!r}, require_encryption={self.require_encryption})")

    __str__ = __repr__

    # -- Codec protocol ----------------------------------------------------------------------

    def seal(self, env: Envelope, max_payload_bytes: int) -> bytes:
        """Encode ``env``: sign it if it is a new message of our origin, then encrypt.

        A signature is made only for a first attempt that carries none (a publish); retries
        and re-encryptions carry the origin's signature unchanged, so an unverified message
        is never signed on an origin's behalf. Raises ``PayloadError`` for a bad payload and
        ``ConfigError`` for a new message whose origin is not the signer's.
        """
        header = env.header()
        body = encode_payload(env.payload, max_payload_bytes)
        signer = self.signer
        if signer is not None and env.attempt == 1 \
                and SIGNATURE_HEADER not in env.headers:
            if env.origin is None:
                header["o"] = signer.origin
            elif env.origin != signer.origin:
                raise ConfigError("origin", f"message origin {env.origin!r} is not the "
                                            f"signer's origin {signer.origin!r}")
            extra = dict(env.headers)
            extra[SIGNATURE_HEADER] = signer.sign(signed_bytes(header, body))
            header["h"] = extra
        return self._encrypt(header, body)

    def new_sealer(self, n: int) -> Callable[[dict[str, Any], bytes], bytes]:
        """A function sealing the new messages of a publish batch of ``n``, one by one:
        ``(header, encoded payload) -> wire bytes``, the bytes ``seal`` would make.

        The header is a first attempt's (``"a": 1``, no ``"k"``; completed in place). Less
        work per message than ``seal``: the signed view is the header itself minus ``"a"``
        (one ``orjson.dumps``, no copy) unless its ``"h"`` has ``pn-*`` entries, an HMAC
        signature is computed inline, and the batch's GCM nonces come from one
        ``random_bytes`` call (not a syscall per message).
        """
        signer, ring = self.signer, self.keyring
        dumps, sort, pack, join = orjson.dumps, _SORT, _HEAD.pack, b"".join
        origin = signer.origin if signer is not None else None
        pads = signer._pads if signer is not None else None
        if ring is None:
            kid, encrypt, nonces = "", None, b""
        else:
            kid, encrypt = ring.active_id, ring.active_aead.encrypt
            nonces = random_bytes(NONCE_BYTES * n)
        used = [0]  # bytes of ``nonces`` handed out: each nonce is used once

        def seal(header: dict[str, Any], body: bytes) -> bytes:
            extra = header.get("h")
            if signer is not None and (extra is None or SIGNATURE_HEADER not in extra):
                mine = header.get("o")
                if mine is None:
                    header["o"] = origin
                elif mine != origin:
                    raise ConfigError("origin", f"message origin {mine!r} is not the "
                                                f"signer's origin {origin!r}")
                if extra is None or not any(k.startswith("pn-") for k in extra):
                    del header["a"]  # the view of signed_bytes: no "a", no "k" (not set yet)
                    view = dumps(header, option=sort)
                    header["a"] = 1
                    message = join((_SIG_DOMAIN, _LEN.pack(len(view)), view, body))
                else:
                    message = signed_bytes(header, body)
                if pads is not None:  # OriginSigner.sign without its method call
                    sig = _b64url(_hmac_sha256(pads, message))
                else:
                    sig = signer.sign(message)
                header["h"] = {**extra, SIGNATURE_HEADER: sig} if extra else \
                    {SIGNATURE_HEADER: sig}
            if encrypt is None:
                return frame(header, body)
            header["k"] = kid
            head = dumps(header, option=sort)
            prefix = pack(WIRE_VERSION, len(head)) + head
            at = used[0]
            used[0] = at + NONCE_BYTES
            nonce = nonces[at:at + NONCE_BYTES] if at < len(nonces) else \
                random_bytes(NONCE_BYTES)
            return join((prefix, nonce, encrypt(nonce, body, prefix)))

        return seal

    def open(self, raw: bytes) -> Envelope:
        """Decode, decrypt and (with a verifier) authenticate ``raw``; ``DecodeError`` else."""
        header, body = self._decrypt(raw)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise DecodeError("decode_failed", f"payload is not JSON: {exc}", raw) from None
        try:
            env = envelope_from_header(header, payload)
        except DecodeError as exc:
            raise DecodeError(exc.reason, exc.detail, raw) from None
        if self.verifier is not None:
            self.verifier.verify(header, body, raw)
        return env

    # -- rotation and redelivery ---------------------------------------------------------------

    def reseal(self, raw: bytes, env: Envelope | None = None) -> bytes:
        """Re-encrypt stored bytes under the active key with a new nonce (key rotation).

        The plaintext is authenticated with its old key first (a tampered message raises
        ``DecodeError`` instead of being laundered under the new key); the header is kept
        except ``k``, or replaced by ``env``'s header when given (``PlainCodec.reseal``'s
        contract: ``env`` is a decoded copy of ``raw`` with changed header fields; its
        payload is ignored). Never signs: the origin's signature travels unchanged.
        """
        header, body = self._decrypt(raw)
        if env is not None:
            header = env.header()
        return self._encrypt(header, body)

    def needs_reseal(self, raw: bytes) -> bool:
        """True when ``raw`` is not sealed under the active key (what a rotation job moves)."""
        try:
            key_id = unframe(raw)[1].get("k")
        except DecodeError:
            return False
        return self.keyring is not None and key_id != self.keyring.active_id

    # -- internals -----------------------------------------------------------------------------

    def _encrypt(self, header: dict[str, Any], body: bytes) -> bytes:
        ring = self.keyring
        if ring is None:
            header.pop("k", None)
            return frame(header, body)
        header["k"] = ring.active_id
        head = orjson.dumps(header, option=_SORT)
        prefix = _HEAD.pack(WIRE_VERSION, len(head)) + head
        nonce = os.urandom(NONCE_BYTES)
        return prefix + nonce + ring.active_aead.encrypt(nonce, body, prefix)

    def _decrypt(self, raw: bytes) -> tuple[dict[str, Any], bytes]:
        """The header dict and plaintext body of ``raw``, authenticated when sealed."""
        if not isinstance(raw, bytes):
            if not isinstance(raw, bytearray | memoryview):
                raise DecodeError("decode_failed", f"expected bytes, not {type(raw).__name__}")
            raw = bytes(raw)
        head, header, body = unframe(raw)
        if "k" not in header:
            if self.require_encryption:
                raise DecodeError("unencrypted_rejected",
                                  "envelope is not encrypted and this codec requires it", raw)
            return header, body
        key_id = header["k"]
        if not isinstance(key_id, str) or not key_id:
            raise DecodeError("decode_failed", "key id is not a non-empty string", raw)
        aead = self.keyring.aead(key_id) if self.keyring is not None else None
        if aead is None:
            where = "the key ring" if self.keyring is not None else "a key ring (none is set)"
            raise DecodeError("unknown_key", f"key id {key_id[:40]!r} is not in {where}", raw)
        if len(body) < NONCE_BYTES + TAG_BYTES:
            raise DecodeError("decode_failed", f"sealed body is {len(body)} bytes, shorter "
                                               f"than nonce and tag", raw)
        aad = raw[:_HEAD.size + len(head)]
        try:
            plain = aead.decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], aad)
        except InvalidTag:
            raise DecodeError("decrypt_failed", f"authentication failed under key "
                                                f"{key_id!r}", raw) from None
        return header, plain


def _check_origin(origin: object) -> str:
    # the bad value is not echoed: a swapped '<key>:<origin>' entry would leak the key
    if not isinstance(origin, str) or not _ORIGIN.fullmatch(origin):
        raise ConfigError("origin", "an origin name is not usable",
                          "1-64 of A-Z a-z 0-9 . _ @ -, starting with a letter or digit")
    return origin


def _hmac_key(origin: str, key: object) -> bytes:
    field = f"origin key of {origin!r}"
    if isinstance(key, SecretKey):
        return key.reveal()
    if isinstance(key, str):
        text = key[5:] if key.startswith("hmac:") else key
        return decode_key(text, origin, field)
    if isinstance(key, bytes | bytearray):
        if len(key) < 32:
            raise ConfigError(field, f"HMAC key is {len(key)} bytes, need at least 32")
        return bytes(key)
    raise ConfigError(field, f"unsupported key type {type(key).__name__}")


def _hmac_pads(key: bytes) -> tuple[Any, Any]:
    """SHA-256 states keyed with the HMAC inner and outer pads (RFC 2104).

    HMAC(key, m) = H(key ^ opad | H(key ^ ipad | m)): copying these two states per message
    is ~0.8 us against ~1.15 us for ``hmac.HMAC.copy`` + update + digest (its Python
    wrappers) and ~1.6 us for the one-shot ``hmac.digest`` (OpenSSL 3 set-up per call).
    """
    if len(key) > 64:  # the SHA-256 block size: longer keys are hashed first
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return (hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD)))


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))
_B64URL = bytes.maketrans(b"+/", b"-_")


def _b64url(raw: bytes) -> str:
    """base64url without padding (as ``urlsafe_b64encode(raw).rstrip(b"=")``)."""
    return binascii.b2a_base64(raw, newline=False).translate(_B64URL).rstrip(b"=").decode()


def _hmac_sha256(pads: tuple[Any, Any], message: bytes) -> bytes:
    """HMAC-SHA256 of ``message`` from the pre-keyed pad states of ``_hmac_pads``."""
    inner = pads[0].copy()
    inner.update(message)
    outer = pads[1].copy()
    outer.update(inner.digest())
    return bytes(outer.digest())


def _verify_key(origin: str, key: object) -> tuple[Any, Any] | Ed25519PublicKey:
    if isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"origin key of {origin!r}",
                          "verifiers take the Ed25519 public key, not the private key")
    if isinstance(key, str) and key.startswith("ed25519:"):
        raw = decode_key(key[8:], origin, f"origin key of {origin!r}")
        return Ed25519PublicKey.from_public_bytes(raw)
    return _hmac_pads(_hmac_key(origin, key))


__all__ = ["SIGNATURE_HEADER", "OriginSigner", "OriginVerifier", "SealingCodec",
           "signed_bytes"]
