"""Envelopes get sortable unique ids, survive the wire intact, refuse payloads they cannot
carry, and turn any undecodable bytes into a DecodeError that keeps the bytes for the DLQ."""

from __future__ import annotations

import os
import re
import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import phantom_notebook as pn
from phantom_notebook import DecodeError, Envelope, MessagePriority, PayloadError
from phantom_notebook.core.backend.keyspace import check_queue_name
from phantom_notebook.core.model.envelope import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    decode,
    encode,
    encode_payload,
    frame,
    new_id,
)

UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def full_envelope(**changes: Any) -> Envelope:
    env = Envelope(
        id=new_id(), type="ioc.enrichment.request", queue="ioc-processing",
        payload={"ioc": "198.51.100.7", "kind": "ipv4", "tags": ["c2", "apt"], "score": 0.93,
                 "seen": None, "note": "caf\u00e9 \u2603 \U0001f512"},
        priority=MessagePriority.HIGH, schema_version="2.1", created_at_ms=1_700_000_000_000,
        expires_at_ms=1_700_000_060_000, attempt=3,
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        correlation_id="corr-1", causation_id="cause-1", origin="analyst-notebook",
        tlp="AMBER", headers={"source": "misp", "tenant": "soc-eu"})
    return env.replace(**changes)


# -- ids --------------------------------------------------------------------------------------


def test_an_id_is_a_uuid_version_7() -> None:
    mid = new_id()
    assert UUID7.match(mid)
    assert uuid.UUID(mid).version == 7 and uuid.UUID(mid).variant == uuid.RFC_4122


def test_ids_sort_in_the_order_of_their_timestamps() -> None:
    times = [0, 1, 999, 1_000, 1_700_000_000_000, 1_700_000_000_001, 2**48 - 1]
    ids = [new_id(t) for t in times]
    assert sorted(ids) == ids
    assert all(UUID7.match(i) for i in ids)


def test_ids_made_a_millisecond_apart_sort_by_time_whatever_their_random_part() -> None:
    for _ in range(200):
        assert new_id(1_700_000_000_000) < new_id(1_700_000_000_001)


def test_ten_thousand_ids_are_all_different() -> None:
    assert len({new_id() for _ in range(10_000)}) == 10_000


def test_ten_thousand_ids_in_the_same_millisecond_are_all_different() -> None:
    assert len({new_id(1_700_000_000_000) for _ in range(10_000)}) == 10_000


# -- round trip -------------------------------------------------------------------------------


def test_encode_then_decode_gives_back_every_field() -> None:
    env = full_envelope()
    back = decode(encode(env))
    assert back == env
    for name in Envelope.__dataclass_fields__:
        assert getattr(back, name) == getattr(env, name), name
    assert back.priority is MessagePriority.HIGH


def test_an_envelope_with_only_the_required_fields_round_trips() -> None:
    env = Envelope(id=new_id(), type="t", queue="q", payload=None)
    assert decode(encode(env)) == env


def test_the_header_travels_in_clear_and_in_canonical_order() -> None:
    raw = encode(full_envelope())
    assert raw[0] == 1
    head_len = int.from_bytes(raw[1:5], "big")
    head = orjson.loads(raw[5:5 + head_len])
    assert list(head) == sorted(head)
    assert head["t"] == "ioc.enrichment.request"


json_leaf = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
             | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
json_value = st.recursive(
    json_leaf, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(payload=json_value, priority=st.sampled_from(list(MessagePriority)),
       attempt=st.integers(1, 1000), headers=st.dictionaries(st.text(), st.text(), max_size=3),
       tlp=st.sampled_from(["CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED"]),
       expires=st.none() | st.integers(0, 2**53))
def test_any_json_payload_and_header_round_trip(payload: Any, priority: MessagePriority,
                                                attempt: int, headers: dict[str, str],
                                                tlp: str, expires: int | None) -> None:
    env = full_envelope(payload=payload, priority=priority, attempt=attempt,
                        headers=headers, tlp=tlp, expires_at_ms=expires)
    assert decode(encode(env)) == env


# -- payloads it cannot carry -----------------------------------------------------------------


def test_the_default_payload_limit_is_one_mebibyte_inclusive() -> None:
    assert DEFAULT_MAX_PAYLOAD_BYTES == 1024 * 1024
    exactly = "x" * (1024 * 1024 - 2)  # plus two quotes = 1 MiB of JSON
    assert len(encode_payload(exactly)) == 1024 * 1024


def test_a_payload_one_byte_over_the_limit_is_refused_with_both_byte_counts() -> None:
    with pytest.raises(PayloadError) as info:
        encode_payload("x" * (1024 * 1024 - 1))
    assert "1,048,577 bytes" in str(info.value)
    assert "1,048,576 bytes" in str(info.value)


def test_a_payload_error_is_a_validation_error() -> None:
    with pytest.raises(pn.ValidationError):
        encode_payload({1, 2, 3})


@pytest.mark.parametrize("payload", [
    pytest.param({"1.2.3.4", "5.6.7.8"}, id="set"),
    pytest.param(object(), id="object"),
    pytest.param({"nested": [b"bytes"]}, id="bytes"),
    pytest.param({"big": 2**70}, id="integer over 64 bits"),
])
def test_an_unserializable_payload_is_refused(payload: Any) -> None:
    with pytest.raises(PayloadError, match="not serializable"):
        encode_payload(payload)


@pytest.mark.parametrize("payload", [
    pytest.param({"1.2.3.4", "5.6.7.8"}, id="set"),
    pytest.param(object(), id="object"),
    pytest.param("x" * (1024 * 1024), id="oversize"),
])
def test_publishing_a_payload_it_cannot_carry_writes_nothing(mq: pn.MessageQueue,
                                                             payload: Any) -> None:
    with pytest.raises(PayloadError):
        mq.publish("ioc", "ioc.raw", payload)
    assert mq.stats(["ioc"])[0].depth == 0
    assert mq.client.exists(*mq.queue_keys("ioc").streams) == 0


def test_a_queue_with_a_smaller_payload_limit_refuses_bigger_payloads(
        mq: pn.MessageQueue) -> None:
    mq.declare("small", max_payload_bytes=100)
    with pytest.raises(PayloadError, match="over the limit of 100 bytes"):
        mq.publish("small", "t", "x" * 200)
    mq.publish("small", "t", "x" * 50)
    assert mq.stats(["small"])[0].depth == 1


def test_one_bad_payload_in_a_batch_writes_none_of_the_batch(mq: pn.MessageQueue) -> None:
    batch = [pn.Message("t", i) for i in range(5)] + [pn.Message("t", {1, 2})]
    with pytest.raises(PayloadError):
        mq.publish_batch("batch", batch)
    assert mq.stats(["batch"])[0].depth == 0


# -- bytes that are not an envelope -----------------------------------------------------------


def decode_error(raw: bytes) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        decode(raw)
    return info.value


def test_every_truncation_of_an_envelope_is_a_decode_error_that_keeps_the_bytes() -> None:
    raw = encode(full_envelope())
    for cut in range(len(raw)):
        error = decode_error(raw[:cut])
        assert error.reason == "decode_failed", cut
        assert error.raw == raw[:cut]


@pytest.mark.parametrize("raw", [
    pytest.param(b"", id="empty"),
    pytest.param(b"\x01", id="version only"),
    pytest.param(b"hello world", id="text"),
    pytest.param(b'{"id": "x"}', id="bare json"),
    pytest.param(b"\x02\x00\x00\x00\x02{}", id="unknown wire version"),
    pytest.param(b"\x01\xff\xff\xff\xff{}", id="header length past the end"),
    pytest.param(b"\x01\x00\x00\x00\x03{x}null", id="header not json"),
    pytest.param(b"\x01\x00\x00\x00\x02[]null", id="header not an object"),
    pytest.param(os.urandom(64), id="random"),
])
def test_bytes_that_are_not_an_envelope_are_a_decode_error_that_keeps_them(raw: bytes) -> None:
    error = decode_error(raw)
    assert error.reason == "decode_failed"
    assert error.raw == raw


GOOD_HEADER = full_envelope().header()


@pytest.mark.parametrize("change", [
    pytest.param({"id": 5}, id="numeric id"),
    pytest.param({"t": None}, id="null type"),
    pytest.param({"q": ["q"]}, id="list queue"),
    pytest.param({"p": "HIGH"}, id="priority name"),
    pytest.param({"p": 9}, id="priority out of range"),
    pytest.param({"p": True}, id="boolean priority"),
    pytest.param({"a": 1.5}, id="fractional attempt"),
    pytest.param({"c": "yesterday"}, id="text created time"),
    pytest.param({"x": "soon"}, id="text expiry"),
    pytest.param({"h": {"k": 1}}, id="non-string header value"),
    pytest.param({"h": ["k"]}, id="headers not a map"),
    pytest.param({"co": 7}, id="numeric correlation id"),
])
def test_a_header_field_of_the_wrong_type_is_a_decode_error_that_keeps_the_bytes(
        change: dict[str, Any]) -> None:
    raw = frame({**GOOD_HEADER, **change}, b"{}")
    error = decode_error(raw)
    assert error.reason == "decode_failed"
    assert error.raw == raw


@pytest.mark.parametrize("missing", ["id", "t", "q", "p"])
def test_a_header_missing_a_required_field_is_a_decode_error(missing: str) -> None:
    header = {k: v for k, v in GOOD_HEADER.items() if k != missing}
    raw = frame(header, b"{}")
    error = decode_error(raw)
    assert error.reason == "decode_failed"
    assert error.raw == raw


def test_a_body_that_is_not_json_is_a_decode_error() -> None:
    raw = frame(GOOD_HEADER, b"\xff\xfe not json")
    error = decode_error(raw)
    assert (error.reason, error.raw) == ("decode_failed", raw)


def test_an_encrypted_envelope_without_a_key_ring_is_a_decrypt_error() -> None:
    raw = frame({**GOOD_HEADER, "k": "key-2024"}, b"\x00sealed")
    error = decode_error(raw)
    assert (error.reason, error.raw) == ("decrypt_failed", raw)


@settings(max_examples=500, deadline=None)
@given(raw=st.binary(max_size=512))
def test_decoding_arbitrary_bytes_raises_nothing_but_decode_error(raw: bytes) -> None:
    try:
        decode(raw)
    except DecodeError as exc:
        assert exc.raw == raw


header_value = json_value | st.integers() | st.sampled_from(["", "x", 0, 1, 3, -1, True])


@settings(max_examples=500, deadline=None)
@given(header=st.dictionaries(
           st.sampled_from(["id", "t", "q", "p", "v", "c", "a", "x", "tp", "tlp", "co", "ca",
                            "o", "k", "h", "zz"]), header_value, max_size=16),
       body=st.binary(max_size=64) | json_value.map(orjson.dumps))
def test_decoding_any_well_framed_header_raises_nothing_but_decode_error(
        header: dict[str, Any], body: bytes) -> None:
    try:
        raw = frame(header, body)
    except TypeError:  # orjson cannot frame it (e.g. an integer over 64 bits): not our case
        return
    try:
        decode(raw)
    except DecodeError as exc:
        assert exc.raw == raw


# -- priorities and queue names ---------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    (MessagePriority.LOW, MessagePriority.LOW),
    ("CRITICAL", MessagePriority.CRITICAL),
    ("high", MessagePriority.HIGH),
    ("  Normal ", MessagePriority.NORMAL),
    (0, MessagePriority.CRITICAL),
    (3, MessagePriority.LOW),
])
def test_a_priority_is_parsed_from_its_name_or_its_number(value: Any,
                                                          expected: MessagePriority) -> None:
    assert MessagePriority.parse(value) is expected


@pytest.mark.parametrize("value", ["urgent", "", 4, -1, 1.5, None, "2", True])
def test_anything_else_is_not_a_priority(value: Any) -> None:
    with pytest.raises(pn.ValidationError, match="CRITICAL, HIGH, NORMAL, LOW"):
        MessagePriority.parse(value)


def test_publishing_with_a_bad_priority_writes_nothing(mq: pn.MessageQueue) -> None:
    with pytest.raises(pn.ValidationError, match="invalid priority"):
        mq.publish("ioc", "t", {}, priority="urgent")
    assert mq.stats(["ioc"])[0].depth == 0


BAD_QUEUE_NAMES = ["", " ", "has space", "{tagged}", "a:b", "-leading-dash", ".hidden",
                   "x" * 129, "caf\u00e9", "new\nline", None, 5]


@pytest.mark.parametrize("name", BAD_QUEUE_NAMES)
def test_a_bad_queue_name_is_a_validation_error(name: Any) -> None:
    with pytest.raises(pn.ValidationError, match="invalid queue name"):
        check_queue_name(name)


@pytest.mark.parametrize("name", ["ioc-processing", "a", "Alerts.v2_eu", "9lives", "x" * 128])
def test_a_good_queue_name_is_accepted(name: str) -> None:
    assert check_queue_name(name) == name


@pytest.mark.parametrize("name", ["has space", "{tagged}", "x" * 129])
def test_publishing_or_declaring_a_bad_queue_name_is_refused(mq: pn.MessageQueue,
                                                            name: str) -> None:
    with pytest.raises(pn.ValidationError, match="invalid queue name"):
        mq.declare(name)
    with pytest.raises(pn.ValidationError, match="invalid queue name"):
        mq.publish(name, "t", {})
    assert mq.queues() == []
