"""The envelope's small parts, value by value: ids and traceparents from pinned randomness,
trace ids, expiry, the header and its error messages, the entropy buffer, the plain codec.

test_envelope.py checks the properties (round trips, any bytes only raise DecodeError);
this file pins the exact values, so a changed slice, bound or message fails here.
"""

from __future__ import annotations

import math
import uuid
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from phantom_notebook import DecodeError, Envelope, MessagePriority, PayloadError
from phantom_notebook.core.errors import ValidationError
from phantom_notebook.core.model import envelope
from phantom_notebook.core.model.codec import PlainCodec, payload_json, peek_header
from phantom_notebook.core.model.envelope import (
    decode,
    encode,
    encode_payload,
    envelope_from_header,
    frame,
    new_header,
    new_id,
    new_ids,
    new_traceparent,
    now_ms,
    trace_id_of,
    unframe,
)

TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
MS = 0x0190_A1B2_C3D4  # 1_721_236_210_644


class Counting:
    """A stand-in for ``os.urandom``: bytes 0, 1, 2, ... (mod 256), counting its calls."""

    def __init__(self) -> None:
        self.next = 0
        self.calls: list[int] = []

    def urandom(self, n: int) -> bytes:
        self.calls.append(n)
        out = bytes((self.next + i) % 256 for i in range(n))
        self.next += n
        return out


@pytest.fixture
def urandom(monkeypatch: pytest.MonkeyPatch) -> Counting:
    source = Counting()
    monkeypatch.setattr(envelope, "os", SimpleNamespace(urandom=source.urandom,
                                                        register_at_fork=lambda **k: None))
    return source


# -- ids and traceparents --------------------------------------------------------------------

def test_an_id_is_the_millisecond_time_then_version_7_then_random_bits(urandom: Counting
                                                                       ) -> None:
    mid = new_id(MS)
    assert mid == "0190a1b2-c3d4-7001-8203-040506070809"
    parsed = uuid.UUID(mid)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert parsed.int >> 80 == MS and urandom.calls == [10]


@pytest.mark.parametrize(("nibble", "variant"), [("0", "8"), ("5", "9"), ("a", "a"), ("f", "b")])
def test_the_variant_nibble_keeps_two_random_bits(monkeypatch: pytest.MonkeyPatch, nibble: str,
                                                  variant: str) -> None:
    rand = bytes.fromhex(f"0000{nibble}0" + "00" * 7)
    monkeypatch.setattr(envelope, "os", SimpleNamespace(urandom=lambda n: rand))
    assert new_id(MS).split("-")[3][0] == variant


def test_the_time_of_an_id_defaults_to_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envelope, "time", SimpleNamespace(time=lambda: MS / 1000))
    assert new_id().startswith("0190a1b2-c3d4-7") and now_ms() == MS


def test_now_is_whole_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(envelope, "time", SimpleNamespace(time=lambda: 1234.5678))
    assert now_ms() == 1_234_567


def test_a_traceparent_has_a_fresh_span_and_keeps_a_given_trace_id(urandom: Counting) -> None:
    assert new_traceparent() == \
        "00-000102030405060708090a0b0c0d0e0f-1011121314151617-01"
    assert new_traceparent("4bf92f3577b34da6a3ce929d0e0e4736") == \
        "00-4bf92f3577b34da6a3ce929d0e0e4736-18191a1b1c1d1e1f-01"
    assert urandom.calls == [24, 8]


def test_a_batch_of_ids_is_what_new_id_and_new_traceparent_would_make(
        monkeypatch: pytest.MonkeyPatch) -> None:
    source = Counting()
    monkeypatch.setattr(envelope, "random_bytes", source.urandom)
    ids, trace_ids, traceparents = new_ids(MS, 3)
    assert source.calls == [34 * 3]
    stream = bytes(range(102))
    for i in range(3):
        part = stream[34 * i:34 * (i + 1)]
        single = Counting()
        single.next = 34 * i
        monkeypatch.setattr(envelope, "os", SimpleNamespace(urandom=single.urandom))
        assert ids[i] == new_id(MS)
        assert trace_ids[i] == part[10:26].hex()
        assert traceparents[i] == f"00-{part[10:26].hex()}-{part[26:34].hex()}-01"
    assert ids[0] == "0190a1b2-c3d4-7001-8203-040506070809"
    assert traceparents[2] == "00-4e4f505152535455565758595a5b5c5d-5e5f606162636465-01"


@pytest.mark.parametrize(("traceparent", "trace_id"), [
    (TP, "0af7651916cd43dd8448eb211c80319c"),
    ("00-abc-def-01", "abc"),  # not the canonical length: the second of four parts
    ("0" * 35 + "-1-2-3", "1"),  # a dash at 35 alone is not the canonical form
    ("x" * 55, ""),
    ("00-" + "a" * 15 + "-" + "a" * 16 + "-" + "b" * 16 + "-01", "a" * 15 + "-" + "a" * 16),
    ("00-" + "a" * 32 + "-b-c-d", ""),  # five parts
    ("00-a-b", ""), ("", "")])
def test_the_trace_id_is_read_from_a_traceparent(traceparent: str, trace_id: str) -> None:
    assert trace_id_of(traceparent) == trace_id
    assert Envelope("m", "t", "q", None, traceparent=traceparent).trace_id == trace_id


# -- the envelope ----------------------------------------------------------------------------

def _env(**fields: Any) -> Envelope:
    return Envelope("m1", "ioc", "intel", {"ioc": "x", "n": 1}, **fields)


def test_a_message_expires_at_its_expiry_time_not_before() -> None:
    assert not _env().is_expired(10**15)
    assert _env(expires_at_ms=1000).is_expired(1000)
    assert _env(expires_at_ms=1000).is_expired(1001)
    assert not _env(expires_at_ms=1000).is_expired(999)


def test_replace_changes_a_copy_only() -> None:
    original = _env()
    changed = original.replace(tlp="RED", attempt=2)
    assert (changed.tlp, changed.attempt, changed.payload) == ("RED", 2, original.payload)
    assert (original.tlp, original.attempt) == ("CLEAR", 1)
    assert original.replace() == original


def test_the_repr_shows_the_payload_s_shape_never_its_content() -> None:
    assert repr(_env(origin="feed")) == (
        "Envelope(id='m1', type='ioc', queue='intel', priority=NORMAL, tlp=CLEAR, attempt=1, "
        "origin='feed', payload=<dict, 2 keys>)")
    assert repr(Envelope("m1", "t", "q", ["secret"])).endswith("payload=<list>)")
    assert "secret" not in repr(Envelope("m1", "t", "q", "secret"))


def test_to_dict_names_every_field_with_a_readable_priority() -> None:
    env = _env(priority=MessagePriority.HIGH, headers={"a": "b"}, key_id="k1")
    assert env.to_dict() == {
        "id": "m1", "type": "ioc", "queue": "intel", "payload": {"ioc": "x", "n": 1},
        "priority": "HIGH", "schema_version": "1.0", "created_at_ms": 0, "expires_at_ms": None,
        "attempt": 1, "traceparent": "", "correlation_id": None, "causation_id": None,
        "origin": None, "tlp": "CLEAR", "key_id": "k1", "headers": {"a": "b"}}
    assert type(env.to_dict()["headers"]) is dict


def test_the_header_names_every_set_field_and_the_key_id_when_sealed() -> None:
    env = _env(priority=MessagePriority.LOW, created_at_ms=5, expires_at_ms=9, attempt=2,
               traceparent=TP, correlation_id="co", causation_id="ca", origin="o",
               tlp="AMBER", headers={"x": "y"}, schema_version="2.0")
    assert env.header() == {"id": "m1", "t": "ioc", "q": "intel", "p": 3, "v": "2.0", "c": 5,
                            "a": 2, "tp": TP, "tlp": "AMBER", "x": 9, "co": "co", "ca": "ca",
                            "o": "o", "h": {"x": "y"}}
    assert env.replace(key_id="k7").header()["k"] == "k7"
    assert new_header("m", "t", "q", 2, 0, "", "CLEAR") == {
        "id": "m", "t": "t", "q": "q", "p": 2, "v": "1.0", "c": 0, "a": 1, "tp": "",
        "tlp": "CLEAR"}


# -- header errors ---------------------------------------------------------------------------

GOOD = {"id": "m1", "t": "t", "q": "q", "p": 2}


@pytest.mark.parametrize(("changes", "problem"), [
    ({"id": 1}, "id"), ({"t": None}, "t"), ({"q": b"q"}, "q"),
    ({"id": 1, "t": 2}, "id, t"),
    ({"co": 1}, "co"), ({"ca": []}, "ca"), ({"o": 2}, "o"), ({"k": 3}, "k"),
    ({"p": "2"}, "p/c/a"), ({"p": True}, "p/c/a"), ({"c": 1.5}, "p/c/a"), ({"a": "1"}, "p/c/a"),
    ({"v": 1}, "v/tp/tlp"), ({"tp": None}, "v/tp/tlp"), ({"tlp": 4}, "v/tp/tlp"),
    ({"x": "soon"}, "x"), ({"h": []}, "h"), ({"h": {"a": 1}}, "h"),
    ({"id": 1, "c": "x", "tlp": 0, "x": 1.5, "h": None}, "id, p/c/a, v/tp/tlp, x, h"),
    # the well-typed fields next to a wrong one are not named
    ({"id": 1, "co": "c", "ca": "a", "o": "o", "k": "k"}, "id"),
    ({"id": 1, "x": 5, "c": 3, "a": 2, "v": "1.0", "tp": "", "tlp": "RED"}, "id"),
    ({"id": 1, "h": {"a": "b"}}, "id"),
    ({"x": "soon", "p": 0}, "x"), ({"x": "soon", "p": 3}, "x")])
def test_each_wrong_header_field_is_named_in_the_decode_error(changes: dict[str, Any],
                                                             problem: str) -> None:
    with pytest.raises(DecodeError) as caught:
        envelope_from_header({**GOOD, **changes}, None)
    assert caught.value.reason == "decode_failed"
    assert caught.value.detail == ("bad header field: TypeError('wrong type in header "
                                   f"field(s) {problem}')")


@pytest.mark.parametrize("priority", [-1, 4, 17])
def test_a_priority_out_of_range_is_named_in_the_decode_error(priority: int) -> None:
    with pytest.raises(DecodeError) as caught:
        envelope_from_header({**GOOD, "p": priority}, None)
    assert caught.value.detail == (f"bad header field: ValueError('{priority} is not a valid "
                                   "MessagePriority')")


@pytest.mark.parametrize("priority", [0, 1, 2, 3])
def test_every_priority_in_range_and_the_defaults_decode(priority: int) -> None:
    env = envelope_from_header({**GOOD, "p": priority}, {"x": 1})
    assert env.priority == MessagePriority(priority) and env.payload == {"x": 1}
    assert (env.created_at_ms, env.attempt, env.schema_version, env.traceparent, env.tlp,
            env.expires_at_ms, env.key_id, dict(env.headers)) == (0, 1, "1.0", "", "CLEAR",
                                                                  None, None, {})


def test_a_sealed_header_decodes_with_its_key_id() -> None:
    assert envelope_from_header({**GOOD, "k": "k1"}, None).key_id == "k1"


def test_a_missing_required_field_is_named() -> None:
    with pytest.raises(DecodeError, match=r"bad header field: KeyError\('q'\)"):
        envelope_from_header({"id": "m", "t": "t", "p": 1}, None)


# -- payloads --------------------------------------------------------------------------------

@pytest.mark.parametrize(("payload", "where"), [
    (math.nan, "payload"), ({"a": [1, {"b": math.inf}]}, "payload['a'][1]['b']"),
    ([0.5, -math.inf], "payload[1]"), ((1, (2, math.nan)), "payload[1][1]"),
    ({"ok": None, "bad": {"deep": [math.nan]}}, "payload['bad']['deep'][0]")])
def test_a_non_finite_number_is_refused_with_its_path(payload: Any, where: str) -> None:
    with pytest.raises(PayloadError) as caught:
        encode_payload(payload)
    assert str(caught.value) == (f"{where} is not a finite number (JSON has no NaN or "
                                 "Infinity; it would arrive as null)")


def test_encode_applies_its_payload_limit() -> None:
    assert encode(_env(), 17) == frame(_env().header(), b'{"ioc":"x","n":1}')
    with pytest.raises(PayloadError, match="payload is 17 bytes, over the limit of 16 bytes"):
        encode(_env(), 16)


def test_a_null_that_is_really_null_is_fine() -> None:
    assert encode_payload({"a": None, "b": [None, 1.5]}) == b'{"a":null,"b":[null,1.5]}'
    assert encode_payload({"null": "null"}) == b'{"null":"null"}'


# -- framing ---------------------------------------------------------------------------------

def test_the_wire_format_is_version_length_header_body() -> None:
    raw = frame({"b": 1, "a": 2}, b"BODY")
    assert raw == b'\x01\x00\x00\x00\x0d{"a":2,"b":1}BODY'
    assert unframe(raw) == (b'{"a":2,"b":1}', {"a": 2, "b": 1}, b"BODY")


@pytest.mark.parametrize(("raw", "detail"), [
    (b"\x01\x00\x00", "envelope truncated (3 bytes)"),
    (b"\x02\x00\x00\x00\x02{}", "unknown wire version 2"),
    (b"\x01\x00\x00\x00\x09{}", "header length runs past the end"),
    (b"\x01\x00\x00\x00\x02[]", "header is not an object"),
    (b"\x01\x00\x00\x00\x00", "header is not JSON: "),  # five bytes: framed, empty header
    (b"\x01\x00\x00\x00\x02{x", "header is not JSON: ")])
def test_each_framing_error_says_what_is_wrong_and_keeps_the_bytes(raw: bytes,
                                                                   detail: str) -> None:
    with pytest.raises(DecodeError) as caught:
        unframe(raw)
    assert (caught.value.reason, caught.value.raw) == ("decode_failed", raw)
    if detail.endswith(": "):
        assert caught.value.detail.startswith(detail) and len(caught.value.detail) > len(detail)
    else:
        assert caught.value.detail == detail


def test_a_header_exactly_filling_the_bytes_is_not_past_the_end() -> None:
    assert unframe(b"\x01\x00\x00\x00\x02{}") == (b"{}", {}, b"")


def test_decode_refuses_a_sealed_envelope_and_keeps_the_bytes_of_a_bad_header() -> None:
    sealed = frame({**GOOD, "k": "k1"}, b"\x00" * 30)
    with pytest.raises(DecodeError) as caught:
        decode(sealed)
    assert (caught.value.reason, caught.value.detail, caught.value.raw) == (
        "decrypt_failed", "envelope is encrypted but no key ring is set", sealed)
    not_json = frame(GOOD, b"{payload")
    with pytest.raises(DecodeError) as caught:
        decode(not_json)
    assert caught.value.detail.startswith("payload is not JSON: ")
    assert (caught.value.reason, caught.value.raw) == ("decode_failed", not_json)
    bad = frame({**GOOD, "p": "high"}, b"{}")
    with pytest.raises(DecodeError) as caught:
        decode(bad)
    assert caught.value.raw == bad and "p/c/a" in caught.value.detail
    assert decode(frame({**GOOD, "k": ""}, b"1")).payload == 1  # an empty key id: plain


# -- the entropy buffer ----------------------------------------------------------------------

def test_a_fresh_buffer_holds_nothing_and_registers_its_fork_hook() -> None:
    pool = envelope._Entropy()  # the real os: register_at_fork refuses a missing hook
    assert (pool._buf, pool._at) == (b"", 0)
    assert len(pool.take(4)) == 4 and len(pool._buf) == pool.REFILL


def test_small_requests_are_served_from_one_refill_and_large_ones_directly(
        urandom: Counting) -> None:
    first = envelope._Entropy()
    assert first.take(4) == bytes(range(4)) and urandom.calls == [4096]  # not a stale buffer
    urandom.calls.clear()
    urandom.next = 0
    pool = envelope._Entropy()
    assert pool.take(10) == bytes(range(10)) and urandom.calls == [4096]
    assert pool.take(6) == bytes(range(10, 16))
    for _ in range(254):
        pool.take(16)  # 16 + 254 * 16 = 4080: 16 bytes left
    assert pool.take(16) == bytes(x % 256 for x in range(4080, 4096)) and urandom.calls == [4096]
    assert len(pool.take(1)) == 1 and urandom.calls == [4096, 4096]
    assert pool.take(256) == bytes(x % 256 for x in range(4097, 4353))  # still buffered
    assert pool.take(257) == bytes(x % 256 for x in range(8192, 8449))
    assert urandom.calls == [4096, 4096, 257]


def test_a_forked_child_forgets_the_parent_s_buffer(urandom: Counting) -> None:
    pool = envelope._Entropy()
    pool.take(8)
    pool._forget()
    assert (pool._buf, pool._at) == (b"", 0)
    pool.take(8)
    assert urandom.calls == [4096, 4096]  # a refill of its own, not the parent's bytes


# -- the plain codec -------------------------------------------------------------------------

def test_the_plain_codec_seals_opens_and_reseals_in_clear() -> None:
    codec, env = PlainCodec(), _env(traceparent=TP)
    raw = codec.seal(env, 1000)
    assert raw == encode(env) and codec.open(raw) == env
    moved = env.replace(attempt=3, headers={"pn-retry": "1"})
    resealed = codec.reseal(raw, moved)
    assert unframe(resealed)[2] == unframe(raw)[2] and codec.open(resealed) == moved
    assert codec.new_sealer(5)(env.header(), b"[1]") == frame(env.header(), b"[1]")
    with pytest.raises(PayloadError, match="over the limit of 10 bytes"):
        codec.seal(env, 10)


def test_peek_header_reads_the_clear_header_or_nothing() -> None:
    raw = encode(_env())
    assert peek_header(raw) == _env().header()
    assert peek_header(b"junk") == {} and peek_header(b"") == {}


def test_payload_json_is_the_payload_as_json_bytes() -> None:
    assert payload_json(_env()) == b'{"ioc":"x","n":1}'
    assert orjson.loads(payload_json(Envelope("m", "t", "q", [1, "a"]))) == [1, "a"]


# -- priorities ------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    (MessagePriority.LOW, MessagePriority.LOW), (0, MessagePriority.CRITICAL),
    ("high", MessagePriority.HIGH), ("  Normal ", MessagePriority.NORMAL)])
def test_a_priority_parses_from_itself_its_number_or_its_name(value: Any,
                                                              expected: MessagePriority) -> None:
    assert MessagePriority.parse(value) is expected


@pytest.mark.parametrize("value", [True, 4, -1, "urgent", 1.0, None])
def test_anything_else_is_refused_naming_the_priorities(value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        MessagePriority.parse(value)
    assert str(caught.value) == (f"invalid priority {value!r}: use one of CRITICAL, HIGH, "
                                 "NORMAL, LOW")
