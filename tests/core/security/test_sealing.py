"""Sealed envelopes round-trip, fail authentication on any changed byte, rotate keys without
losing messages, keep key material out of every repr, and reject forged origins."""

from __future__ import annotations

import base64
import os
import pickle
import stat
import struct
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import phantom_notebook as pn
from phantom_notebook import ConfigError, DecodeError, Envelope, MessagePriority, PayloadError
from phantom_notebook.core.model.codec import Codec, PlainCodec, peek_header
from phantom_notebook.core.model.envelope import frame, new_id, unframe
from phantom_notebook.core.security.keyring import KeyRing, generate_key
from phantom_notebook.core.security.sealing import (
    SIGNATURE_HEADER,
    OriginSigner,
    OriginVerifier,
    SealingCodec,
)
from tests.support.collect import Collector, eventually

MAX = 1024 * 1024
K1 = generate_key()
K2 = generate_key()
ORIGIN_KEY = os.urandom(32)
OTHER_KEY = os.urandom(32)
posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def full_envelope(**changes: Any) -> Envelope:
    env = Envelope(
        id=new_id(), type="ioc.enrichment.request", queue="ioc-processing",
        payload={"ioc": "198.51.100.7", "kind": "ipv4", "tags": ["c2", "apt"], "score": 0.93,
                 "note": "caf\u00e9 \U0001f512"},
        priority=MessagePriority.HIGH, schema_version="2.1", created_at_ms=1_700_000_000_000,
        expires_at_ms=1_700_000_060_000, attempt=1,
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        correlation_id="corr-1", causation_id="cause-1", origin="analyst-notebook",
        tlp="AMBER", headers={"source": "misp", "tenant": "soc-eu"})
    return env.replace(**changes)


def ring(active: str = "k1") -> KeyRing:
    return KeyRing.from_base64({"k1": K1, "k2": K2}, active=active)


def reason_of(codec: SealingCodec, raw: bytes) -> str:
    with pytest.raises(DecodeError) as info:
        codec.open(raw)
    assert info.value.raw == raw  # kept for the DLQ
    return info.value.reason


def reframed(raw: bytes, **changes: Any) -> bytes:
    """``raw`` with header fields changed (None deletes) and the body kept."""
    _, header, body = unframe(raw)
    for name, value in changes.items():
        if value is None:
            header.pop(name, None)
        else:
            header[name] = value
    return frame(header, body)


def body_span(raw: bytes) -> int:
    length: int = struct.unpack_from(">I", raw, 1)[0]
    return 5 + length


def signing(verify: dict[str, Any] | None = None, ring_: KeyRing | None = None,
            key: Any = ORIGIN_KEY) -> SealingCodec:
    verifier = OriginVerifier(verify if verify is not None else {"analyst-notebook": key})
    return SealingCodec(ring_, OriginSigner("analyst-notebook", key), verifier)


# -- round trip and layout ------------------------------------------------------------------


def test_a_sealed_envelope_opens_to_the_same_envelope_with_its_key_id() -> None:
    codec = SealingCodec(ring())
    env = full_envelope()
    assert codec.open(codec.seal(env, MAX)) == env.replace(key_id="k1")


def test_sealing_codec_satisfies_the_codec_protocol() -> None:
    codec: Codec = SealingCodec(ring())
    assert codec.open(codec.seal(full_envelope(), MAX)).payload["ioc"] == "198.51.100.7"


def test_the_payload_is_unreadable_but_the_header_stays_readable() -> None:
    raw = SealingCodec(ring()).seal(full_envelope(), MAX)
    assert b"198.51.100.7" not in raw
    header = peek_header(raw)
    assert (header["t"], header["q"], header["k"]) == ("ioc.enrichment.request",
                                                      "ioc-processing", "k1")


def test_the_body_is_nonce_ciphertext_tag_with_every_byte_before_it_as_aad() -> None:
    env = full_envelope()
    raw = SealingCodec(ring()).seal(env, MAX)
    end = body_span(raw)
    nonce, sealed = raw[end:end + 12], raw[end + 12:]
    plain = orjson.dumps(env.payload, option=orjson.OPT_NON_STR_KEYS)
    assert len(sealed) == len(plain) + 16
    assert AESGCM(base64.b64decode(K1)).decrypt(nonce, sealed, raw[:end]) == plain


def test_an_oversized_payload_raises_payload_error() -> None:
    with pytest.raises(PayloadError):
        SealingCodec(ring()).seal(full_envelope(payload="x" * 100), 50)


def test_a_nonce_is_unique_across_10k_seals() -> None:
    codec, env = SealingCodec(ring()), full_envelope()
    nonces = set()
    for _ in range(10_000):
        raw = codec.seal(env, MAX)
        end = body_span(raw)
        nonces.add(raw[end:end + 12])
    assert len(nonces) == 10_000


# -- tampering ------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["nonce", "ciphertext", "tag"])
def test_flipping_one_body_byte_fails_decryption(where: str) -> None:
    codec = SealingCodec(ring())
    raw = codec.seal(full_envelope(), MAX)
    end = body_span(raw)
    offset = {"nonce": end + 5, "ciphertext": end + 12 + 3, "tag": len(raw) - 1}[where]
    flipped = raw[:offset] + bytes([raw[offset] ^ 0x01]) + raw[offset + 1:]
    assert reason_of(codec, flipped) == "decrypt_failed"


HEADER_CHANGES: dict[str, Any] = {
    "id": new_id(), "t": "ioc.enrichment.result", "q": "other-queue", "p": 0, "v": "9.9",
    "c": 1, "x": 2, "a": 7, "tp": "00-" + "1" * 32 + "-" + "2" * 16 + "-01",
    "co": "corr-2", "ca": "cause-2", "o": "misp-feed", "tlp": "CLEAR",
    "h": {"source": "otx", "tenant": "soc-eu"}, "extra": "added field",
}


@pytest.mark.parametrize("field", sorted(HEADER_CHANGES))
def test_changing_any_header_field_fails_authentication(field: str) -> None:
    codec = SealingCodec(ring())
    raw = codec.seal(full_envelope(), MAX)
    assert reason_of(codec, reframed(raw, **{field: HEADER_CHANGES[field]})) == "decrypt_failed"


@pytest.mark.parametrize("field", ["id", "o", "x", "co", "h", "tlp"])
def test_removing_a_header_field_fails_authentication(field: str) -> None:
    codec = SealingCodec(ring())
    raw = codec.seal(full_envelope(), MAX)
    assert reason_of(codec, reframed(raw, **{field: None})) == "decrypt_failed"


def test_relabelling_the_key_id_to_another_known_key_fails_authentication() -> None:
    codec = SealingCodec(ring())
    assert reason_of(codec, reframed(codec.seal(full_envelope(), MAX), k="k2")) == \
        "decrypt_failed"


def test_a_key_id_missing_from_the_ring_is_unknown_key() -> None:
    sealed = SealingCodec(ring()).seal(full_envelope(), MAX)
    only_k3 = SealingCodec(KeyRing.from_base64({"k3": generate_key()}))
    assert reason_of(only_k3, sealed) == "unknown_key"
    assert reason_of(SealingCodec(ring()), reframed(sealed, k="nope")) == "unknown_key"


def test_the_right_key_id_with_the_wrong_key_material_fails_decryption() -> None:
    sealed = SealingCodec(ring()).seal(full_envelope(), MAX)
    impostor = SealingCodec(KeyRing.from_base64({"k1": generate_key()}))
    assert reason_of(impostor, sealed) == "decrypt_failed"


@pytest.mark.parametrize("bad", [0, "", ["k1"], {"k": 1}, True])
def test_a_key_id_that_is_not_a_non_empty_string_is_decode_failed(bad: Any) -> None:
    codec = SealingCodec(ring())
    assert reason_of(codec, reframed(codec.seal(full_envelope(), MAX), k=bad)) == \
        "decode_failed"


def test_a_changed_wire_version_is_decode_failed() -> None:
    codec = SealingCodec(ring())
    raw = codec.seal(full_envelope(), MAX)
    assert reason_of(codec, b"\x02" + raw[1:]) == "decode_failed"


def test_every_truncation_is_a_decode_error_decode_failed_inside_the_header() -> None:
    codec = SealingCodec(ring())
    raw = codec.seal(full_envelope(), MAX)
    end = body_span(raw)
    for cut in range(len(raw)):
        reason = reason_of(codec, raw[:cut])
        if cut < end + 28:
            assert reason == "decode_failed", cut
        else:
            assert reason == "decrypt_failed", cut


def test_a_plaintext_envelope_is_rejected_when_encryption_is_required() -> None:
    plain = PlainCodec().seal(full_envelope(), MAX)
    assert reason_of(SealingCodec(ring()), plain) == "unencrypted_rejected"
    lenient = SealingCodec(ring(), require_encryption=False)
    assert lenient.open(plain) == full_envelope().replace(id=lenient.open(plain).id)


def test_stripping_the_key_id_does_not_downgrade_to_plaintext() -> None:
    codec = SealingCodec(ring())
    assert reason_of(codec, reframed(codec.seal(full_envelope(), MAX), k=None)) == \
        "unencrypted_rejected"


def test_a_sealed_envelope_at_a_codec_without_a_ring_is_unknown_key() -> None:
    sealed = SealingCodec(ring()).seal(full_envelope(), MAX)
    assert reason_of(SealingCodec(None), sealed) == "unknown_key"


def test_requiring_encryption_without_a_ring_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="require_encryption"):
        SealingCodec(None, require_encryption=True)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
HEADER_KEYS = st.sampled_from(["id", "t", "q", "p", "v", "c", "x", "a", "tp", "co", "ca",
                               "o", "tlp", "k", "h"])
SEALED = SealingCodec(ring()).seal(full_envelope(), MAX)
CODECS = [SealingCodec(ring()), SealingCodec(ring(), require_encryption=False),
          signing(), signing(ring_=ring())]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=300), which=st.integers(0, len(CODECS) - 1))
def test_open_on_arbitrary_bytes_only_ever_raises_decode_error(raw: bytes, which: int) -> None:
    with pytest.raises(DecodeError):
        CODECS[which].open(raw)


@settings(max_examples=300)
@given(header=st.dictionaries(HEADER_KEYS, JSON, max_size=15), body=st.binary(max_size=60),
       which=st.integers(0, len(CODECS) - 1))
def test_open_on_any_json_header_only_raises_decode_error(header: dict[str, Any], body: bytes,
                                                           which: int) -> None:
    try:
        CODECS[which].open(frame(header, body))
    except DecodeError:
        pass


@settings(max_examples=500)
@given(edits=st.lists(st.tuples(st.sampled_from(["set", "insert", "delete"]),
                                st.integers(0, len(SEALED) - 1), st.integers(0, 255)),
                      min_size=1, max_size=4),
       cut=st.integers(0, len(SEALED)))
def test_any_mutation_of_a_sealed_envelope_raises_only_decode_error(
        edits: list[tuple[str, int, int]], cut: int) -> None:
    data = bytearray(SEALED[:cut] if cut < len(SEALED) // 2 else SEALED)
    for op, pos, value in edits:
        pos = min(pos, max(len(data) - 1, 0))
        if op == "set" and data:
            data[pos] = value
        elif op == "insert":
            data.insert(pos, value)
        elif data:
            del data[pos]
    mutated = bytes(data)
    assume(mutated != SEALED)
    with pytest.raises(DecodeError):
        CODECS[0].open(mutated)


# -- key rotation ---------------------------------------------------------------------------


def test_rotation_keeps_old_messages_readable_and_seals_new_ones_with_the_new_key() -> None:
    old_ring = KeyRing.from_base64({"k1": K1})
    old = SealingCodec(old_ring).seal(full_envelope(), MAX)
    new_ring = old_ring.rotate("k2")
    codec = SealingCodec(new_ring)
    assert (new_ring.active_id, new_ring.ids) == ("k2", ("k2", "k1"))
    assert codec.open(old).key_id == "k1"
    assert peek_header(codec.seal(full_envelope(), MAX))["k"] == "k2"


def test_reseal_moves_a_message_from_the_old_key_to_the_active_one() -> None:
    old = SealingCodec(ring("k1")).seal(full_envelope(), MAX)
    codec = SealingCodec(ring("k2"))
    assert codec.needs_reseal(old)
    moved = codec.reseal(old)
    assert not codec.needs_reseal(moved)
    only_k2 = SealingCodec(ring("k2").drop("k1"))
    assert only_k2.open(moved) == codec.open(old).replace(key_id="k2")
    h_old, h_new = peek_header(old), peek_header(moved)
    assert {**h_old, "k": "k2"} == h_new
    assert old[body_span(old):][:12] != moved[body_span(moved):][:12]


def test_reseal_refuses_a_tampered_message_instead_of_laundering_it() -> None:
    old = SealingCodec(ring("k1")).seal(full_envelope(), MAX)
    with pytest.raises(DecodeError) as info:
        SealingCodec(ring("k2")).reseal(reframed(old, o="misp-feed"))
    assert info.value.reason == "decrypt_failed"


def test_reseal_encrypts_plaintext_only_when_plaintext_is_accepted() -> None:
    plain = PlainCodec().seal(full_envelope(), MAX)
    with pytest.raises(DecodeError, match="unencrypted_rejected"):
        SealingCodec(ring()).reseal(plain)
    moved = SealingCodec(ring(), require_encryption=False).reseal(plain)
    assert SealingCodec(ring()).open(moved).payload == full_envelope().payload


def test_reseal_with_an_envelope_takes_its_header_and_keeps_the_stored_payload() -> None:
    codec = SealingCodec(ring())
    raw = codec.seal(full_envelope(), MAX)
    env = codec.open(raw).replace(attempt=4, payload="ignored")
    assert codec.open(codec.reseal(raw, env)) == env.replace(payload=full_envelope().payload)


def test_dropping_the_active_key_or_rotating_to_an_existing_id_is_refused() -> None:
    with pytest.raises(ConfigError, match="active key"):
        ring("k1").drop("k1")
    with pytest.raises(ConfigError, match="already"):
        ring().rotate("k2")


# -- key ring configuration -----------------------------------------------------------------


@pytest.mark.parametrize(("spec", "active", "says"), [
    ("k1:" + K1 + ",k1:" + K2, None, "listed twice"),
    ("k1:" + K1, "k9", "not one of the keys"),
    ("k1:" + K1[:-4], None, "decodes to"),
    ("k1:" + base64.b64encode(os.urandom(31)).decode(), None, "decodes to 31 bytes"),
    ("k1:" + K1[:-2] + "!!", None, "not valid base64"),
    (K1 + ":k1", None, "key id is not usable"),
    ("k1" + K1, None, "entry 1"),
    ("", None, "empty"),
])
def test_an_invalid_key_spec_is_a_config_error_that_never_echoes_key_material(
        spec: str, active: str | None, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as info:
        KeyRing.parse(spec, active)
    for secret in (K1, K2, K1[:-4], K1[:20]):
        assert secret not in str(info.value)


def test_the_environment_names_the_keys_the_active_key_and_a_key_file(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    KeyRing.from_base64({"f1": generate_key()}).write_key_file(path)
    got = KeyRing.from_env({"PHANTOM_KEYS": f"k2:{K2}, k1:{K1}", "PHANTOM_KEY_FILE": str(path),
                            "PHANTOM_ACTIVE_KEY": "k1"})
    assert got is not None and (got.active_id, got.ids) == ("k1", ("k2", "k1", "f1"))
    only_env = KeyRing.from_env({"PHANTOM_KEYS": f"k2:{K2},k1:{K1}"})
    assert only_env is not None and only_env.active_id == "k2"
    assert KeyRing.from_env({}) is None
    with pytest.raises(ConfigError, match="PHANTOM_ACTIVE_KEY"):
        KeyRing.from_env({"PHANTOM_ACTIVE_KEY": "k1"})


@posix_only
def test_a_written_key_file_is_owner_only_and_loads_back_identically(tmp_path: Path) -> None:
    original = ring("k2")
    path = tmp_path / "keys"
    original.write_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = KeyRing.from_file(path)
    assert (loaded.active_id, loaded.ids) == ("k2", ("k1", "k2"))
    assert all(loaded.key(i) == original.key(i) for i in original.ids)


@posix_only
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_a_key_file_readable_by_group_or_others_is_refused_unless_insecure_ok(
        tmp_path: Path, mode: int) -> None:
    path = tmp_path / "keys"
    ring().write_key_file(path)
    path.chmod(mode)
    with pytest.raises(ConfigError, match="group or others"):
        KeyRing.from_file(path)
    with pytest.raises(ConfigError, match="group or others"):
        KeyRing.from_env({"PHANTOM_KEY_FILE": str(path)})
    assert KeyRing.from_file(path, insecure_ok=True).ids == ("k1", "k2")


def test_a_malformed_key_file_line_is_named_without_echoing_it(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# keys\nk1 {K1}\nk2 {K2} trailing\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="line 3") as info:
        KeyRing.from_file(path)
    assert K2 not in str(info.value)


def test_a_missing_key_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be opened"):
        KeyRing.from_file(tmp_path / "absent")


def test_generated_keys_are_distinct_32_byte_base64() -> None:
    a, b = generate_key(), generate_key()
    assert a != b and len(base64.b64decode(a)) == 32


# -- no key material in reprs -----------------------------------------------------------------


def forms_of(material: bytes) -> list[str]:
    return [base64.b64encode(material).decode(), base64.urlsafe_b64encode(material).decode(),
            base64.b64encode(material).decode().rstrip("="), material.hex(),
            material.hex().upper(), repr(material)[2:-1]]


def test_reprs_and_strs_never_contain_key_material() -> None:
    ed = Ed25519PrivateKey.generate()
    codec = SealingCodec(ring(), OriginSigner("analyst-notebook", ORIGIN_KEY),
                         OriginVerifier({"analyst-notebook": [ORIGIN_KEY, OTHER_KEY],
                                         "misp-feed": ed.public_key()}))
    secret = ring().key("k1")
    shown = [repr(x) + str(x) + f"{x}" for x in (ring(), secret, codec, codec.signer,
                                                  codec.verifier)]
    assert repr(secret) == "SecretKey(id='k1', ***)"
    assert repr(ring()) == "KeyRing(active='k1', ids=['k1', 'k2'])"
    for material in (base64.b64decode(K1), base64.b64decode(K2), ORIGIN_KEY, OTHER_KEY):
        for form in forms_of(material):
            assert all(form not in text for text in shown)


def test_keys_and_key_rings_refuse_to_be_pickled() -> None:
    for thing in (ring(), ring().key("k1")):
        with pytest.raises(TypeError, match="pickled"):
            pickle.dumps(thing)


# -- origin signatures ----------------------------------------------------------------------


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "sealed"])
def test_a_message_signed_by_its_origin_is_accepted(encrypted: bool) -> None:
    codec = signing(ring_=ring() if encrypted else None)
    env = codec.open(codec.seal(full_envelope(), MAX))
    assert env.origin == "analyst-notebook" and SIGNATURE_HEADER in env.headers


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "sealed"])
def test_an_unsigned_message_is_origin_rejected(encrypted: bool) -> None:
    raw = SealingCodec(ring() if encrypted else None).seal(full_envelope(), MAX)
    assert reason_of(signing(ring_=ring() if encrypted else None), raw) == "origin_rejected"


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "sealed"])
def test_a_message_signed_with_another_key_is_origin_rejected(encrypted: bool) -> None:
    ring_ = ring() if encrypted else None
    forged = signing(ring_=ring_, key=OTHER_KEY).seal(full_envelope(), MAX)
    assert reason_of(signing(ring_=ring_), forged) == "origin_rejected"


def test_an_origin_changed_after_signing_is_rejected() -> None:
    codec = signing({"analyst-notebook": ORIGIN_KEY, "misp-feed": OTHER_KEY})
    raw = codec.seal(full_envelope(), MAX)
    assert reason_of(codec, reframed(raw, o="misp-feed")) == "origin_rejected"
    sealed = signing(ring_=ring()).seal(full_envelope(), MAX)
    assert reason_of(signing(ring_=ring()), reframed(sealed, o="misp-feed")) == "decrypt_failed"


def test_a_consumer_holding_the_encryption_key_cannot_relabel_the_origin() -> None:
    verify = {"analyst-notebook": ORIGIN_KEY, "misp-feed": OTHER_KEY}
    raw = signing(verify, ring_=ring()).seal(full_envelope(), MAX)
    insider = SealingCodec(ring())
    relabelled = insider.seal(insider.open(raw).replace(origin="misp-feed"), MAX)
    assert reason_of(signing(verify, ring_=ring()), relabelled) == "origin_rejected"


@pytest.mark.parametrize("change", [{"t": "other.type"}, {"q": "elsewhere"}, {"p": 0},
                                    {"tlp": "RED"}, {"h": {"source": "otx"}}])
def test_a_signed_plain_header_changed_after_signing_is_rejected(change: dict[str, Any]) -> None:
    codec = signing()
    raw = codec.seal(full_envelope(), MAX)
    if "h" in change:
        signature = unframe(raw)[1]["h"][SIGNATURE_HEADER]
        change = {"h": {**change["h"], SIGNATURE_HEADER: signature}}
    assert reason_of(codec, reframed(raw, **change)) == "origin_rejected"


def test_a_signed_plain_payload_changed_after_signing_is_rejected() -> None:
    codec = signing()
    raw = codec.seal(full_envelope(), MAX)
    assert reason_of(codec, raw.replace(b"198.51.100.7", b"198.51.100.8")) == "origin_rejected"


@pytest.mark.parametrize("signature", ["", "!!notbase64", "caf\u00e9", "QUJD", 7,
                                       base64.urlsafe_b64encode(os.urandom(64)).decode()])
def test_a_garbled_signature_is_origin_rejected(signature: Any) -> None:
    codec = signing()
    raw = codec.seal(full_envelope(), MAX)
    garbled = reframed(raw, h={**full_envelope().headers, SIGNATURE_HEADER: signature})
    assert reason_of(codec, garbled) in {"origin_rejected", "decode_failed"}
    if isinstance(signature, str):
        assert reason_of(codec, garbled) == "origin_rejected"


def test_an_untrusted_or_missing_origin_is_rejected() -> None:
    raw = signing().seal(full_envelope(), MAX)
    assert reason_of(signing({"misp-feed": ORIGIN_KEY}), raw) == "origin_rejected"
    assert reason_of(signing(), reframed(raw, o=None)) == "origin_rejected"


def test_a_retried_message_keeps_its_origin_signature_at_a_worker_without_the_key() -> None:
    raw = signing(ring_=ring()).seal(full_envelope(), MAX)
    worker = SealingCodec(ring(), verifier=OriginVerifier({"analyst-notebook": ORIGIN_KEY}))
    env = worker.open(raw)
    retry = env.replace(attempt=2, headers={**env.headers, "pn-last-error": "boom"})
    assert worker.open(worker.seal(retry, MAX)).attempt == 2


def test_an_unsigned_retry_is_never_signed_on_the_origins_behalf() -> None:
    unsigned = full_envelope(attempt=2)
    assert reason_of(signing(), signing().seal(unsigned, MAX)) == "origin_rejected"


def test_rotation_reseal_keeps_the_origin_signature() -> None:
    raw = signing(ring_=ring("k1")).seal(full_envelope(), MAX)
    assert signing(ring_=ring("k2")).open(SealingCodec(ring("k2")).reseal(raw)).key_id == "k2"


def test_a_new_message_of_another_origin_than_the_signer_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="origin"):
        signing().seal(full_envelope(origin="misp-feed"), MAX)
    assert signing().open(signing().seal(full_envelope(origin=None), MAX)).origin == \
        "analyst-notebook"


def test_ed25519_origins_verify_with_the_public_key_only() -> None:
    private = Ed25519PrivateKey.generate()
    codec = SealingCodec(ring(), OriginSigner("analyst-notebook", private),
                         OriginVerifier({"analyst-notebook": private.public_key()}))
    raw = codec.seal(full_envelope(), MAX)
    assert codec.open(raw).origin == "analyst-notebook"
    other = OriginVerifier({"analyst-notebook": Ed25519PrivateKey.generate().public_key()})
    assert reason_of(SealingCodec(ring(), verifier=other), raw) == "origin_rejected"
    with pytest.raises(ConfigError, match="public key"):
        OriginVerifier({"analyst-notebook": private})  # type: ignore[dict-item]


def test_an_origin_with_two_keys_accepts_both_during_its_rotation() -> None:
    verify = OriginVerifier.parse(f"analyst-notebook:{base64.b64encode(ORIGIN_KEY).decode()},"
                                  f"analyst-notebook:{base64.b64encode(OTHER_KEY).decode()}")
    for key in (ORIGIN_KEY, OTHER_KEY):
        raw = SealingCodec(None, OriginSigner("analyst-notebook", key)).seal(full_envelope(),
                                                                             MAX)
        assert SealingCodec(None, verifier=verify).open(raw).origin == "analyst-notebook"


@settings(max_examples=100)
@given(payload=JSON)
def test_any_json_payload_keeps_its_signature_through_a_retry(payload: Any) -> None:
    codec = signing(ring_=ring())
    env = codec.open(codec.seal(full_envelope(payload=payload), MAX))
    assert codec.open(codec.seal(env.replace(attempt=2), MAX)).payload == env.payload


# -- through a real worker --------------------------------------------------------------------


def test_a_worker_retries_a_sealed_signed_message_and_dead_letters_a_forged_one(
        prefix: str) -> None:
    trusted = OriginVerifier({"analyst-notebook": ORIGIN_KEY})
    producer = pn.connect(None, key_prefix=prefix, settings=pn.Settings(),
                          origin="analyst-notebook")
    producer.codec = SealingCodec(ring(), OriginSigner("analyst-notebook", ORIGIN_KEY))
    forger = pn.connect(None, key_prefix=prefix, settings=pn.Settings(),
                        origin="analyst-notebook")
    forger.codec = SealingCodec(ring(), OriginSigner("analyst-notebook", OTHER_KEY))
    consumer = pn.connect(None, key_prefix=prefix, settings=pn.Settings())
    consumer.codec = SealingCodec(ring(), verifier=trusted)

    seen: list[tuple[str, int]] = []

    def fail_first(message: Envelope, context: pn.MessageContext) -> None:
        seen.append((message.payload["ioc"], context.attempt))
        if context.attempt == 1:
            raise pn.Retry(delay_s=0)

    got = Collector(fail_first)  # records only the attempts that did not raise
    producer.publish("sealed", "ioc.raw", {"ioc": "evil.example"})
    forger.publish("sealed", "ioc.raw", {"ioc": "forged.example"})
    consumer.subscribe("sealed", "*", got)
    with consumer.worker():
        assert got.wait_for(1)
        assert eventually(lambda: consumer.stats(["sealed"])[0].dead == 1)
    assert seen == [("evil.example", 1), ("evil.example", 2)]
    dead = [f for _, f in consumer.client.xrange(consumer.queue_keys("sealed").dlq)]
    assert dead[0][b"reason"] == b"origin_rejected"
