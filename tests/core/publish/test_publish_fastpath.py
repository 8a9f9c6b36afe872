"""The publish fast path makes exactly the bytes the general path makes: codecs' batch
sealers against ``seal``, publish headers against ``Envelope.header()``, and the batched
dedup of publish.lua against the per-message semantics (both backends)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import phantom_notebook as pn
from phantom_notebook import Envelope, MessagePriority
from phantom_notebook.core.model.codec import PlainCodec
from phantom_notebook.core.model.envelope import encode_payload, new_id, unframe
from phantom_notebook.core.model.routing import PARTITION_KEY_HEADER
from phantom_notebook.core.observe.metrics import metrics_key
from phantom_notebook.core.publish.batch import build_columns, new_envelope
from phantom_notebook.core.security.keyring import KeyRing, generate_key
from phantom_notebook.core.security.sealing import (
    SIGNATURE_HEADER,
    OriginSigner,
    OriginVerifier,
    SealingCodec,
)

MAX = 1 << 20
RING = KeyRing.from_base64({"k1": generate_key()}, active="k1")
HMAC_KEY = os.urandom(32)
ED_KEY = Ed25519PrivateKey.generate()


def envelope(**changes: Any) -> Envelope:
    env = Envelope(
        id=new_id(), type="ioc.enrichment.request", queue="ioc-processing",
        payload={"ioc": "198.51.100.7", "tags": ["c2"], "note": "caf\u00e9"},
        priority=MessagePriority.HIGH, created_at_ms=1_700_000_000_000,
        expires_at_ms=1_700_000_060_000,
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        correlation_id="corr-1", causation_id="cause-1", origin="analyst", tlp="AMBER")
    return env.replace(**changes)


CODECS = {
    "plain": lambda: PlainCodec(),
    "encrypt": lambda: SealingCodec(RING),
    "sign hmac": lambda: SealingCodec(None, OriginSigner("analyst", HMAC_KEY)),
    "encrypt + sign hmac": lambda: SealingCodec(RING, OriginSigner("analyst", HMAC_KEY)),
    "encrypt + sign ed25519": lambda: SealingCodec(RING, OriginSigner("analyst", ED_KEY)),
}
HEADERS: dict[str, dict[str, str]] = {
    "none": {},
    "user": {"source": "misp", "tenant": "soc-eu"},
    "bookkeeping": {"source": "misp", PARTITION_KEY_HEADER: "00ff"},
    "only bookkeeping": {PARTITION_KEY_HEADER: "00ff"},
    "signed already": {SIGNATURE_HEADER: "c2ln"},
}


@pytest.mark.parametrize("headers", HEADERS.values(), ids=HEADERS.keys())
@pytest.mark.parametrize("origin", ["analyst", None])
@pytest.mark.parametrize("make", CODECS.values(), ids=CODECS.keys())
def test_the_batch_sealer_makes_what_seal_makes(make: Any, origin: str | None,
                                                headers: dict[str, str]) -> None:
    codec = make()
    env = envelope(origin=origin, headers=headers)
    sealer = codec.new_sealer(1)
    fast = sealer(env.header(), encode_payload(env.payload, MAX))
    slow = codec.seal(env, MAX)
    if isinstance(codec, PlainCodec) or codec.keyring is None:
        assert fast == slow  # no random nonce: byte for byte
    else:
        assert unframe(fast)[1] == unframe(slow)[1]  # header, key id and signature
        assert codec.open(fast) == codec.open(slow)


def test_a_batch_sealer_verifies_and_never_repeats_a_nonce() -> None:
    codec = SealingCodec(RING, OriginSigner("analyst", HMAC_KEY),
                         OriginVerifier({"analyst": HMAC_KEY}))
    sealer = codec.new_sealer(3)
    raws = [sealer(envelope(payload=i).header(), encode_payload(i, MAX)) for i in range(5)]
    assert [codec.open(raw).payload for raw in raws] == list(range(5))  # 2 past the batch size
    nonces = {raw[5 + len(unframe(raw)[0]):][:12] for raw in raws}
    assert len(nonces) == 5


def test_the_batch_sealer_rejects_a_foreign_origin_like_seal() -> None:
    codec = SealingCodec(None, OriginSigner("analyst", HMAC_KEY))
    env = envelope(origin="misp-feed")
    with pytest.raises(pn.ConfigError):
        codec.new_sealer(1)(env.header(), encode_payload(env.payload, MAX))
    with pytest.raises(pn.ConfigError):
        codec.seal(env, MAX)


MESSAGES = [
    pn.Message("t", {"n": 1}),
    pn.Message("t", [1, 2], "low", headers={"a": "b"}, correlation_id="c", causation_id="d",
               tlp="tlp:amber+strict", ttl_s=1.5),
    pn.Message("t", "x", 0, deliver_at=datetime.now(UTC) + timedelta(seconds=30), ttl_s=10),
    pn.Message("t", None, MessagePriority.HIGH,
               traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
]


@pytest.mark.parametrize("origin", ["analyst", None])
def test_publish_headers_are_the_envelope_headers(mq: pn.MessageQueue,
                                                  origin: str | None) -> None:
    mq.origin = origin
    qs = mq.declare("fast", message_ttl_s=60)
    now = int(time.time() * 1000)
    batch, routes = build_columns(mq, "fast", qs, MESSAGES, now, None)
    assert routes is None
    for i, (m, raw) in enumerate(zip(MESSAGES, batch.envelopes, strict=True)):
        header = unframe(raw)[1]
        env, due = new_envelope(mq.origin, "fast", qs, m, now)
        expected = env.replace(id=batch.ids[i], traceparent=header["tp"]).header()
        assert header == expected
        assert batch.trace_ids[i] == header["tp"][3:35]
        assert batch.levels[i] == int(env.priority)
        assert (batch.dues[i] > now) == (due > now)


def test_batched_dedup_matches_one_by_one_semantics(mq: pn.MessageQueue) -> None:
    mq.declare("dd")
    first = mq.publish_batch("dd", [pn.Message("t", i, dedup_key=f"k{i}") for i in range(3)])
    later = time.time() + 60
    # >500 keys (chunked HMGET/HSET); repeats inside the batch, across chunks and of the
    # previous batch; delayed messages before and after duplicates
    keys = [f"k{i % 700}" for i in range(1200)]
    batch = [pn.Message("t", i, dedup_key=k, delay=30 if i % 3 == 0 else None)
             for i, k in enumerate(keys)]
    ids = mq.publish_batch("dd", batch)
    firsts: dict[str, str] = {f"k{i}": first[i] for i in range(3)}
    for k, mid in zip(keys, ids, strict=True):
        assert mid == firsts.setdefault(k, mid)
    assert len(set(ids)) == 700
    stored = mq.stats(["dd"])[0]
    assert stored.ready + stored.delayed == 3 + 697
    delayed = mq.client.zrange(mq.queue_keys("dd").delayed, 0, -1, withscores=True)
    assert len(delayed) == len([i for i in range(3, 700) if i % 3 == 0])
    assert all(score > later * 1000 - 31_000 for _, score in delayed)
    assert all(member.startswith(b"2") for member, _ in delayed)


def test_a_batch_with_one_dedup_key_and_a_single_publish_agree_on_the_first_id(
        mq: pn.MessageQueue) -> None:
    mq.declare("dd1")
    started_ms = time.time_ns() // 10**6
    # one keyed message among unkeyed ones: new, then a duplicate of itself
    new = mq.publish_batch("dd1", [pn.Message("t", 0), pn.Message("t", 1, dedup_key="x"),
                                   pn.Message("t", 2)])
    again = mq.publish_batch("dd1", [pn.Message("t", 3), pn.Message("t", 4, dedup_key="x")])
    single = mq.publish("dd1", "t", 5, dedup_key="x")
    delayed_single = mq.publish("dd1", "t", 6, dedup_key="y", delay=30)
    single_dup = mq.publish("dd1", "t", 7, dedup_key="y")
    assert again[1] == single == new[1]
    assert single_dup == delayed_single
    stats = mq.stats(["dd1"])[0]
    assert (stats.ready, stats.delayed) == (4, 1)
    # the metric buckets of the test's span (two if it crossed a bucket boundary), each
    # with a TTL although only the write creating a field sets one
    buckets = {metrics_key(mq.queue_keys("dd1"), at)
               for at in (started_ms, time.time_ns() // 10**6)}
    totals = {b"published": 0, b"deduplicated": 0}
    for key in buckets:
        for field, value in mq.client.hgetall(key).items():
            if field in totals:
                totals[field] += int(value)
        assert mq.client.ttl(key) > 0
    assert totals == {b"published": 5, b"deduplicated": 3}


def test_random_bytes_are_never_handed_out_twice_nor_shared_with_a_forked_child() -> None:
    from phantom_notebook.core.model.envelope import random_bytes

    seen = [random_bytes(46) for _ in range(500)] + [random_bytes(300)]
    assert len(set(seen)) == len(seen) and all(len(b) == 46 for b in seen[:-1])
    if not hasattr(os, "fork"):
        return
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next bytes go to the parent
        os.write(write, random_bytes(46))
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 46)
    os.close(read)
    os.close(write)
    assert child != random_bytes(46)


def test_a_retried_call_without_dedup_keys_writes_none_of_its_messages_again(
        mq: pn.MessageQueue) -> None:
    qs = mq.declare("twice")
    keys = mq.queue_keys("twice")
    now = int(time.time() * 1000)
    args = dict(max_size=None, dedup_window_ms=60_000, now_ms=now, metrics_ttl_s=0)
    for size in (1, 3):
        batch, _ = build_columns(mq, "twice", qs, [pn.Message("t", {"n": i})
                                                   for i in range(size)], now, None)
        assert mq.functions.publish(keys, metrics_key(keys, now), batch, **args) == []
        # a client retrying a call it could not confirm sends the same envelopes again
        again = mq.functions.publish(keys, metrics_key(keys, now), batch, **args)
        expected: list[object] = []
        for i, mid in enumerate(batch.ids, start=1):
            expected += [i, mid]
        assert [x.decode() if isinstance(x, bytes) else x for x in again] == expected
    assert mq.stats(["twice"])[0].ready == 4
    fresh, _ = build_columns(mq, "twice", qs, [pn.Message("t", {"n": 9})], now, None)
    assert mq.functions.publish(keys, metrics_key(keys, now), fresh, **args) == []
    assert mq.stats(["twice"])[0].ready == 5
