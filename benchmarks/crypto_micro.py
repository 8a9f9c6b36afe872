"""Micro-benchmark: µs per seal/open of a ~300-byte IOC payload, plain vs sealed vs signed.

Run: ``.venv/bin/python -m benchmarks.crypto_micro [--n 50000]``. Prints the best of five
runs per row, plus the raw AES-256-GCM and HMAC-SHA256 cost as the floor.
"""

from __future__ import annotations

import argparse
import hmac
import os
import timeit
from collections.abc import Callable

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from phantom_notebook.core.model.codec import Codec, PlainCodec
from phantom_notebook.core.model.envelope import Envelope, MessagePriority, new_id
from phantom_notebook.core.security.keyring import KeyRing, generate_key
from phantom_notebook.core.security.sealing import OriginSigner, OriginVerifier, SealingCodec

MAX = 1024 * 1024
PAYLOAD = {
    "ioc": "198.51.100.7", "kind": "ipv4", "confidence": 85, "score": 0.93,
    "tags": ["c2", "cobalt-strike", "apt29"], "first_seen": "2026-11-27T08:15:00Z",
    "last_seen": "2026-11-27T09:41:12Z", "source": "misp", "event_id": 48213,
    "note": "beacon observed on 443/tcp, JA3 72a589da586844d7f0818ce684948eea",
}


def envelope() -> Envelope:
    """The benchmark message: a full header and the ~300-byte payload."""
    return Envelope(
        id=new_id(), type="ioc.enrichment.request", queue="ioc-processing", payload=PAYLOAD,
        priority=MessagePriority.HIGH, created_at_ms=1_700_000_000_000,
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        origin="analyst-notebook", tlp="AMBER", headers={"tenant": "soc-eu"})


def per_op_us(fn: Callable[[], object], n: int) -> float:
    """Best-of-five microseconds per call of ``fn``."""
    return min(timeit.repeat(fn, number=n, repeat=5)) / n * 1e6


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=50_000, help="calls per timing run")
    n = parser.parse_args().n
    ring = KeyRing.from_base64({"k1": generate_key()})
    hmac_key, ed_key = os.urandom(32), Ed25519PrivateKey.generate()
    codecs: dict[str, Codec] = {
        "plain": PlainCodec(),
        "sealed": SealingCodec(ring),
        "signed (hmac, no encryption)": SealingCodec(
            None, OriginSigner("analyst-notebook", hmac_key),
            OriginVerifier({"analyst-notebook": hmac_key})),
        "sealed+signed (hmac)": SealingCodec(
            ring, OriginSigner("analyst-notebook", hmac_key),
            OriginVerifier({"analyst-notebook": hmac_key})),
        "sealed+signed (ed25519)": SealingCodec(
            ring, OriginSigner("analyst-notebook", ed_key),
            OriginVerifier({"analyst-notebook": ed_key.public_key()})),
    }
    env = envelope()
    body = orjson.dumps(PAYLOAD)
    print(f"payload {len(body)} B, {n:,} ops per run, best of 5")
    print(f"{'codec':32} {'seal µs':>9} {'open µs':>9} {'bytes':>7}")
    for name, codec in codecs.items():
        raw = codec.seal(env, MAX)
        runs = n // 50 if "ed25519" in name else n
        seal = per_op_us(lambda c=codec: c.seal(env, MAX), runs)  # type: ignore[misc]
        opened = per_op_us(lambda c=codec, r=raw: c.open(r), runs)  # type: ignore[misc]
        print(f"{name:32} {seal:9.2f} {opened:9.2f} {len(raw):7d}")
    aead, aad = AESGCM(os.urandom(32)), os.urandom(260)
    nonce = os.urandom(12)
    sealed = aead.encrypt(nonce, body, aad)
    print("floor (raw primitives, 300 B):")
    print(f"  {'urandom(12) + AESGCM.encrypt':30} "
          f"{per_op_us(lambda: aead.encrypt(os.urandom(12), body, aad), n):9.2f}")
    print(f"  {'AESGCM.decrypt':30} {per_op_us(lambda: aead.decrypt(nonce, sealed, aad), n):9.2f}")
    print(f"  {'hmac.digest sha256':30} "
          f"{per_op_us(lambda: hmac.digest(hmac_key, body + aad, 'sha256'), n):9.2f}")


if __name__ == "__main__":
    main()
