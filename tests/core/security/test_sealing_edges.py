"""The sealing codec's exact bytes, messages and edge cases, checked against the standard
library (HMAC, base64url) and the wire format.

test_sealing.py checks the properties (round trips, tampering fails, rotation); this file
pins what a property cannot see: the signed view of a header, the signature's encoding,
each refusal's reason and detail, and the shapes of input each step accepts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
from types import MappingProxyType
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from phantom_notebook import ConfigError, DecodeError, Envelope
from phantom_notebook.core.model.envelope import frame, unframe
from phantom_notebook.core.security.keyring import KeyRing, SecretKey
from phantom_notebook.core.security.sealing import (
    SIGNATURE_HEADER,
    OriginSigner,
    OriginVerifier,
    SealingCodec,
    signed_bytes,
)

KEY = bytes(range(32))
OTHER = bytes(range(32, 64))
K1, K2 = SecretKey("k1", bytes(range(64, 96))), SecretKey("k2", bytes(range(96, 128)))
DOMAIN = b"pn-origin-sig/v1\n"


def _view(header: dict[str, Any]) -> bytes:
    head = orjson.dumps(header, option=orjson.OPT_SORT_KEYS)
    return DOMAIN + struct.pack(">I", len(head)) + head


def _stdlib_sig(key: bytes, message: bytes) -> str:
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _env(**fields: Any) -> Envelope:
    return Envelope("m1", "ioc", "intel", {"ioc": "x"}, **fields)


def _reason(codec: SealingCodec | OriginVerifier, raw: bytes, *more: Any) -> tuple[str, str]:
    with pytest.raises(DecodeError) as caught:
        if isinstance(codec, OriginVerifier):
            codec.verify(*more)
        else:
            codec.open(raw)
    if not isinstance(codec, OriginVerifier):
        assert caught.value.raw == raw
    return caught.value.reason, caught.value.detail


# -- the signed view -------------------------------------------------------------------------

@pytest.mark.parametrize(("header", "view"), [
    ({"id": "m", "o": "x"}, {"id": "m", "o": "x"}),  # no "a", no "k", no "h"
    ({"id": "m", "a": 3, "k": "k1"}, {"id": "m"}),
    ({"id": "m", "h": {SIGNATURE_HEADER: "s"}}, {"id": "m"}),
    ({"id": "m", "h": {SIGNATURE_HEADER: "s", "src": "misp"}}, {"id": "m", "h": {"src": "misp"}}),
    ({"id": "m", "h": {"src": "misp"}}, {"id": "m", "h": {"src": "misp"}}),
    ({"id": "m", "h": {"pn-retry": "2", SIGNATURE_HEADER: "s"}}, {"id": "m"}),
    ({"id": "m", "h": MappingProxyType({"pn-x": "1", "t": "2"})}, {"id": "m", "h": {"t": "2"}}),
    ({"id": "m", "h": "not a mapping"}, {"id": "m", "h": "not a mapping"})])
def test_the_signature_covers_the_header_without_attempt_key_id_and_pn_entries(
        header: dict[str, Any], view: dict[str, Any]) -> None:
    assert signed_bytes(header, b"BODY") == _view(view) + b"BODY"
    assert "h" not in view or header.get("h") is not None


def test_signing_a_view_changes_nothing_in_the_header() -> None:
    header = {"id": "m", "a": 2, "k": "k1", "h": {"pn-sig": "s", "src": "x"}}
    signed_bytes(header, b"")
    assert header == {"id": "m", "a": 2, "k": "k1", "h": {"pn-sig": "s", "src": "x"}}


# -- signers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("key", [KEY, base64.b64encode(KEY).decode(),
                                 "hmac:" + base64.b64encode(KEY).decode(),
                                 SecretKey("origin", KEY), bytearray(KEY)])
def test_an_hmac_signature_is_the_standard_hmac_sha256_in_base64url(key: Any) -> None:
    signer = OriginSigner("analyst", key)
    assert signer.algorithm == "hmac-sha256"
    for message in (b"", b"m", os.urandom(300)):
        assert signer.sign(message) == _stdlib_sig(KEY, message)
        assert "=" not in signer.sign(message)


def test_a_key_longer_than_a_sha256_block_is_hashed_first_as_hmac_does() -> None:
    for size in (65, 100):
        long_key = bytes(range(size))
        assert OriginSigner("analyst", long_key).sign(b"m") == _stdlib_sig(long_key, b"m")
    exact = bytes(range(64))
    assert OriginSigner("analyst", exact).sign(b"m") == _stdlib_sig(exact, b"m")


def test_an_ed25519_signer_signs_with_its_private_key() -> None:
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes_raw()
    for key in (private, "ed25519:" + base64.b64encode(seed).decode()):
        signer = OriginSigner("feed", key)
        assert signer.algorithm == "ed25519"
        sig = signer.sign(b"message")
        raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
        private.public_key().verify(raw, b"message")  # raises if wrong
    assert repr(OriginSigner("feed", private)) == \
        "OriginSigner(origin='feed', algorithm='ed25519', ***)"


@pytest.mark.parametrize(("key", "problem"), [
    (KEY[:31], "HMAC key is 31 bytes, need at least 32"),
    (7, "unsupported key type int"),
    ("***", "key 'analyst' is not valid base64"),
    ("hmac:AAAA", "key 'analyst' decodes to 3 bytes, need exactly 32")])
def test_an_unusable_signing_key_is_refused_naming_the_origin(key: Any, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        OriginSigner("analyst", key)
    assert str(caught.value) == f"invalid setting \"origin key of 'analyst'\": {problem}"


@pytest.mark.parametrize("origin", ["", "-x", "a b", "x" * 65, "a:b", None, 3])
def test_an_unusable_origin_name_is_refused_without_echoing_it(origin: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        OriginSigner(origin, KEY)
    assert str(caught.value) == ("invalid setting 'origin': an origin name is not usable "
                                 "(allowed: 1-64 of A-Z a-z 0-9 . _ @ -, starting with a letter "
                                 "or digit)")


@pytest.mark.parametrize("origin", ["a", "x" * 64, "svc@host.example", "feed_1-2.3"])
def test_usable_origin_names(origin: str) -> None:
    assert OriginSigner(origin, KEY).origin == origin


# -- verifiers -------------------------------------------------------------------------------

def _signed(key: bytes = KEY, origin: str = "analyst", **header: Any) -> dict[str, Any]:
    h = {"id": "m", "o": origin, **header}
    h["h"] = {**h.get("h", {}), SIGNATURE_HEADER: _stdlib_sig(key, signed_bytes(h, b"B"))}
    return h


def test_a_verifier_accepts_any_of_an_origin_s_keys() -> None:
    verifier = OriginVerifier({"analyst": [OTHER, KEY], "feed": KEY})
    assert verifier.origins == ("analyst", "feed")
    verifier.verify(_signed(KEY), b"B")
    verifier.verify(_signed(OTHER), b"B")
    verifier.verify(_signed(KEY, "feed"), b"B")
    assert repr(verifier) == "OriginVerifier(origins=['analyst', 'feed'], ***)"


def test_a_verifier_tries_every_ed25519_key_of_an_origin() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    verifier = OriginVerifier({"feed": (old.public_key(), new.public_key())})
    for private in (old, new):
        header: dict[str, Any] = {"id": "m", "o": "feed"}
        header["h"] = {SIGNATURE_HEADER: OriginSigner("feed", private).sign(
            signed_bytes(header, b"B"))}
        verifier.verify(header, b"B")
    stranger = Ed25519PrivateKey.generate()
    header = {"id": "m", "o": "feed"}
    header["h"] = {SIGNATURE_HEADER: OriginSigner("feed", stranger).sign(
        signed_bytes(header, b"B"))}
    with pytest.raises(DecodeError, match="does not match any key of origin 'feed'"):
        verifier.verify(header, b"B")


@pytest.mark.parametrize(("header", "detail"), [
    ({"id": "m"}, "message has no origin"),
    ({"id": "m", "o": ""}, "message has no origin"),
    ({"id": "m", "o": 7}, "message has no origin"),
    ({"id": "m", "o": "mallory"}, "origin 'mallory' is not trusted"),
    ({"id": "m", "o": "m" * 70}, f"origin {'m' * 64!r} is not trusted"),
    ({"id": "m", "o": "analyst"}, "message from 'analyst' is not signed"),
    ({"id": "m", "o": "analyst", "h": "sig"}, "message from 'analyst' is not signed"),
    ({"id": "m", "o": "analyst", "h": {SIGNATURE_HEADER: ""}},
     "message from 'analyst' is not signed"),
    ({"id": "m", "o": "analyst", "h": {SIGNATURE_HEADER: 12}},
     "message from 'analyst' is not signed"),
    ({"id": "m", "o": "analyst", "h": {SIGNATURE_HEADER: "a"}}, "signature is not base64url"),
    ({"id": "m", "o": "analyst", "h": {SIGNATURE_HEADER: "AAAA!AAA"}},
     "signature is not base64url"),
    ({"id": "m", "o": "analyst", "h": {SIGNATURE_HEADER: "AAAA"}},
     "signature does not match any key of origin 'analyst'")])
def test_each_refused_origin_says_why(header: dict[str, Any], detail: str) -> None:
    verifier = OriginVerifier({"analyst": KEY})
    with pytest.raises(DecodeError) as caught:
        verifier.verify(header, b"B", b"RAW")
    assert (caught.value.reason, caught.value.detail, caught.value.raw) == (
        "origin_rejected", detail, b"RAW")
    with pytest.raises(DecodeError) as caught:
        verifier.verify(header, b"B")
    assert caught.value.raw == b""


def test_a_signature_with_a_character_outside_base64url_is_refused_not_skipped() -> None:
    header = _signed()
    sig = header["h"][SIGNATURE_HEADER]
    header["h"] = {SIGNATURE_HEADER: sig[:10] + ".." + sig[10:]}  # lenient decoding skips ".."
    with pytest.raises(DecodeError, match="signature is not base64url"):
        OriginVerifier({"analyst": KEY}).verify(header, b"B")


def test_the_verifier_spec_lists_origins_and_keys() -> None:
    ed = Ed25519PrivateKey.generate()
    pub = base64.b64encode(ed.public_key().public_bytes_raw()).decode()
    b64 = base64.b64encode(KEY).decode()
    verifier = OriginVerifier.parse(f" analyst : {b64} ,, feed:ed25519:{pub}, analyst:"
                                    f"{base64.b64encode(OTHER).decode()}")
    assert verifier.origins == ("analyst", "feed")
    verifier.verify(_signed(OTHER), b"B")
    with pytest.raises(ConfigError) as caught:
        OriginVerifier.parse(f"analyst:{b64},{b64}")
    assert str(caught.value) == ("invalid setting 'trusted origins': entry 2 is not "
                                 "'<origin>:<key>'")


def test_a_verifier_refuses_an_origin_without_keys_or_a_private_key() -> None:
    with pytest.raises(ConfigError) as caught:
        OriginVerifier({"analyst": []})
    assert str(caught.value) == "invalid setting \"origin 'analyst'\": has no key"
    with pytest.raises(ConfigError) as caught:
        OriginVerifier({"feed": Ed25519PrivateKey.generate()})  # type: ignore[dict-item]
    assert str(caught.value) == ("invalid setting \"origin key of 'feed'\": verifiers take the "
                                 "Ed25519 public key, not the private key")


@pytest.mark.parametrize(("key", "problem"), [
    ("ed25519:***", "key 'feed' is not valid base64"),
    ("ed25519:AAAA", "key 'feed' decodes to 3 bytes, need exactly 32"),
    (b"short", "HMAC key is 5 bytes, need at least 32")])
def test_an_unusable_verifying_key_is_refused_naming_the_origin(key: Any, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        OriginVerifier({"feed": key})
    assert str(caught.value) == f"invalid setting \"origin key of 'feed'\": {problem}"
    if isinstance(key, str):
        with pytest.raises(ConfigError) as caught:
            OriginSigner("feed", key)
        assert str(caught.value) == f"invalid setting \"origin key of 'feed'\": {problem}"
    with pytest.raises(ConfigError, match="origin name is not usable"):
        OriginVerifier({"bad origin": KEY})


# -- the codec -------------------------------------------------------------------------------

def _ring(active: str = "k1") -> KeyRing:
    return KeyRing([K1, K2], active)


def test_encryption_is_required_exactly_when_there_is_a_ring_unless_told() -> None:
    assert SealingCodec(_ring()).require_encryption is True
    assert SealingCodec(None).require_encryption is False
    assert SealingCodec(_ring(), require_encryption=False).require_encryption is False
    with pytest.raises(ConfigError) as caught:
        SealingCodec(None, require_encryption=True)
    assert str(caught.value) == "invalid setting 'require_encryption': needs a key ring"
    assert repr(SealingCodec(_ring())) == (
        "SealingCodec(keyring=KeyRing(active='k1', ids=['k1', 'k2']), signer=None, "
        "verifier=None, require_encryption=True)")


def test_a_new_message_is_signed_once_with_the_signer_s_origin() -> None:
    codec = SealingCodec(None, OriginSigner("analyst", KEY))
    _, header, body = unframe(codec.seal(_env(), 1000))
    assert header["o"] == "analyst"
    sig = header["h"][SIGNATURE_HEADER]
    assert sig == _stdlib_sig(KEY, signed_bytes(header, body))
    _, again, _ = unframe(codec.seal(_env(origin="analyst", headers={"src": "x"}), 1000))
    assert set(again["h"]) == {"src", SIGNATURE_HEADER}
    for env in (_env(attempt=2), _env(headers={SIGNATURE_HEADER: "theirs"})):
        _, kept, _ = unframe(codec.seal(env, 1000))
        assert kept.get("h", {}).get(SIGNATURE_HEADER) in (None, "theirs")
        assert "o" not in kept
    with pytest.raises(ConfigError) as caught:
        codec.seal(_env(origin="misp-feed"), 1000)
    assert str(caught.value) == ("invalid setting 'origin': message origin 'misp-feed' is not "
                                 "the signer's origin 'analyst'")


def test_every_sealed_header_is_canonical_json_with_sorted_keys() -> None:
    env = _env(origin="analyst", headers={"z": "1", "a": "2"}, expires_at_ms=9)
    for codec in (SealingCodec(_ring()), SealingCodec(_ring(), OriginSigner("analyst", KEY))):
        head, header, _ = unframe(codec.seal(env, 1000))
        assert head == orjson.dumps(header, option=orjson.OPT_SORT_KEYS)
        seal = codec.new_sealer(1)
        head, header, _ = unframe(seal(env.header(), b'{"ioc":"x"}'))
        assert head == orjson.dumps(header, option=orjson.OPT_SORT_KEYS)
        assert codec.open(codec.reseal(codec.seal(env, 1000))).headers["z"] == "1"


def test_a_batch_draws_all_its_nonces_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from phantom_notebook.core.security import sealing

    calls: list[int] = []

    def draw(n: int) -> bytes:
        calls.append(n)
        return os.urandom(n)

    monkeypatch.setattr(sealing, "random_bytes", draw)
    codec = SealingCodec(_ring())
    seal = codec.new_sealer(3)
    raws = [seal(_env().header(), b'{"ioc":"x"}') for _ in range(3)]
    assert calls == [36] and len({unframe(r)[2][:12] for r in raws}) == 3
    seal(_env().header(), b"1")  # a fourth message: one more nonce of its own
    assert calls == [36, 12]
    assert all(codec.open(r) == _env(key_id="k1") for r in raws)


def test_the_batch_sealer_refuses_a_foreign_origin_with_the_seal_s_message() -> None:
    seal = SealingCodec(None, OriginSigner("analyst", KEY)).new_sealer(1)
    with pytest.raises(ConfigError) as caught:
        seal(_env(origin="misp-feed").header(), b"{}")
    assert str(caught.value) == ("invalid setting 'origin': message origin 'misp-feed' is not "
                                 "the signer's origin 'analyst'")


def test_sealed_bytes_are_header_nonce_ciphertext_under_the_active_key() -> None:
    codec = SealingCodec(_ring("k2"))
    raw = codec.seal(_env(), 1000)
    head, header, body = unframe(raw)
    assert header["k"] == "k2" and len(body) == 12 + len(b'{"ioc":"x"}') + 16
    assert codec.open(raw) == _env(key_id="k2")
    assert not codec.needs_reseal(raw)
    assert SealingCodec(_ring("k1")).needs_reseal(raw)
    assert not SealingCodec(None).needs_reseal(raw) and not codec.needs_reseal(b"junk")
    plain = SealingCodec(None).seal(_env(key_id="k1"), 1000)
    assert "k" not in unframe(plain)[1]  # no ring: a stale key id is not written
    assert codec.needs_reseal(plain)


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_open_takes_any_bytes_like_value(wrap: Any) -> None:
    codec = SealingCodec(_ring())
    assert codec.open(wrap(codec.seal(_env(), 1000))) == _env(key_id="k1")


def test_open_refuses_what_is_not_bytes() -> None:
    with pytest.raises(DecodeError) as caught:
        SealingCodec(_ring()).open("text")  # type: ignore[arg-type]
    assert (caught.value.reason, caught.value.detail) == ("decode_failed",
                                                          "expected bytes, not str")


def _sealed_with(**header: Any) -> bytes:
    raw = SealingCodec(_ring()).seal(_env(), 1000)
    _, h, body = unframe(raw)
    return frame({**h, **header}, body)


@pytest.mark.parametrize(("make", "codec", "reason", "detail"), [
    (lambda: _sealed_with(k=""), SealingCodec(_ring()), "decode_failed",
     "key id is not a non-empty string"),
    (lambda: _sealed_with(k=["k1"]), SealingCodec(_ring()), "decode_failed",
     "key id is not a non-empty string"),
    (lambda: _sealed_with(k="k9" * 30), SealingCodec(_ring()), "unknown_key",
     f"key id {'k9' * 20!r} is not in the key ring"),
    (lambda: _sealed_with(), SealingCodec(None), "unknown_key",
     "key id 'k1' is not in a key ring (none is set)"),
    (lambda: frame({"id": "m1", "t": "t", "q": "q", "p": 2, "k": "k1"}, b"\x00" * 27),
     SealingCodec(_ring()), "decode_failed", "sealed body is 27 bytes, shorter than nonce and tag"),
    (lambda: frame({"id": "m1", "t": "t", "q": "q", "p": 2, "k": "k1"}, b"\x00" * 28),
     SealingCodec(_ring()), "decrypt_failed", "authentication failed under key 'k1'"),
    (lambda: frame({"id": "m1", "t": "t", "q": "q", "p": 2}, b"{}"), SealingCodec(_ring()),
     "unencrypted_rejected", "envelope is not encrypted and this codec requires it"),
    (lambda: frame({"id": "m1", "t": "t", "q": "q", "p": 2}, b"not json"), SealingCodec(None),
     "decode_failed", "payload is not JSON: "),
    (lambda: frame({"id": 1, "t": "t", "q": "q", "p": 2}, b"{}"), SealingCodec(None),
     "decode_failed", "bad header field: TypeError('wrong type in header field(s) id')")])
def test_each_refusal_of_open_has_its_reason_and_detail(make: Any, codec: SealingCodec,
                                                        reason: str, detail: str | None) -> None:
    raw = make()
    got_reason, got_detail = _reason(codec, raw)
    assert got_reason == reason
    if detail is not None and detail.endswith(": "):
        assert got_detail.startswith(detail) and len(got_detail) > len(detail)
    elif detail is not None:
        assert got_detail == detail


def test_a_plain_message_opens_where_plaintext_is_still_accepted() -> None:
    raw = frame({"id": "m1", "t": "ioc", "q": "intel", "p": 2}, b'{"ioc":"x"}')
    codec = SealingCodec(_ring(), require_encryption=False)
    assert codec.open(raw) == _env()
    assert unframe(codec.reseal(raw))[1]["k"] == "k1"


def test_open_with_a_verifier_authenticates_the_origin_after_decrypting() -> None:
    producer = SealingCodec(_ring(), OriginSigner("analyst", KEY))
    consumer = SealingCodec(_ring(), verifier=OriginVerifier({"analyst": KEY}))
    raw = producer.seal(_env(), 1000)
    assert consumer.open(raw).origin == "analyst"
    stranger = SealingCodec(_ring(), verifier=OriginVerifier({"analyst": OTHER}))
    assert _reason(stranger, raw) == ("origin_rejected",
                                      "signature does not match any key of origin 'analyst'")


def test_reseal_keeps_the_header_or_takes_a_given_envelope_s_and_never_signs() -> None:
    codec = SealingCodec(_ring("k2"), OriginSigner("analyst", KEY))
    old = SealingCodec(_ring("k1")).seal(_env(), 1000)
    moved = codec.reseal(old)
    assert unframe(moved)[1]["k"] == "k2" and "o" not in unframe(moved)[1]
    assert codec.open(moved) == _env(key_id="k2")
    retried = codec.reseal(old, _env(attempt=4, key_id="k1"))
    assert codec.open(retried) == _env(attempt=4, key_id="k2")
    assert SIGNATURE_HEADER not in unframe(retried)[1].get("h", {})
