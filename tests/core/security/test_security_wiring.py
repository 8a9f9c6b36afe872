"""Security wired end to end: sealed queues, tampering, origins, TLP, cross-queue copies."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

import phantom_notebook as pn
from phantom_notebook.core.model.envelope import frame, unframe
from phantom_notebook.core.security.keyring import generate_key
from tests.support.collect import Collector, eventually

KEY = generate_key()
ORIGIN_KEY = generate_key()


def _connect(mq: pn.MessageQueue, **security: object) -> pn.MessageQueue:
    settings = pn.Settings.from_dict({"security": security})
    return pn.connect(None if mq.embedded else mq.settings.redis.url,
                      key_prefix=mq.keys.prefix, settings=settings)


def _dead_reasons(mq: pn.MessageQueue, queue: str) -> list[bytes]:
    return [e[1][b"reason"] for e in mq.client.xrange(mq.queue_keys(queue).dlq)]


def test_a_key_ring_seals_every_payload_and_workers_open_them(mq: pn.MessageQueue) -> None:
    sealed = _connect(mq, keys=f"k1:{KEY}")
    sealed.publish("intel", "ioc.enrichment.request", {"ioc": "203.0.113.66", "source": "HUMINT"})
    raw = sealed.client.xrange(sealed.queue_keys("intel").stream(2))[0][1][b"m"]
    assert b"203.0.113.66" not in raw and b"HUMINT" not in raw
    assert unframe(raw)[1]["k"] == "k1"
    got = Collector()
    sealed.subscribe("intel", "*", got)
    with sealed.worker():
        assert got.wait_for(1)
    assert got.payloads == [{"ioc": "203.0.113.66", "source": "HUMINT"}]


def _flip_body(raw: bytes) -> bytes:
    return raw[:-3] + bytes([raw[-3] ^ 1]) + raw[-2:]


def _change_header(field: str, value: object) -> Callable[[bytes], bytes]:
    def tamper(raw: bytes) -> bytes:
        _, header, body = unframe(raw)
        return frame({**header, field: value}, body)
    return tamper


@pytest.mark.parametrize(("tamper", "reason"), [
    (_flip_body, b"decrypt_failed"),
    (_change_header("p", 0), b"decrypt_failed"),
    (_change_header("t", "alert.threat.notification"), b"decrypt_failed"),
    (_change_header("tlp", "CLEAR"), b"decrypt_failed"),
    (_change_header("k", "k9"), b"unknown_key"),
    (lambda raw: raw[:20], b"decode_failed"),
    (lambda raw: b"\x00" * 40, b"decode_failed"),
    (lambda raw: orjson.dumps({"not": "an envelope"}), b"decode_failed"),
])
def test_tampered_stored_messages_are_dead_lettered_and_the_worker_keeps_going(
        mq: pn.MessageQueue, tamper: Callable[[bytes], bytes], reason: bytes) -> None:
    sealed = _connect(mq, keys=f"k1:{KEY}")
    sealed.publish("tamper", "ioc.enrichment.request", {"n": 1}, tlp="AMBER")
    stream = sealed.queue_keys("tamper").stream(2)
    [(sid, fields)] = sealed.client.xrange(stream)
    sealed.client.xdel(stream, sid)
    sealed.client.xadd(stream, {"m": tamper(fields[b"m"])})
    sealed.publish("tamper", "ioc.enrichment.request", {"n": 2})
    got = Collector()
    sealed.subscribe("tamper", "*", got)
    with sealed.worker() as worker:
        assert got.wait_for(1)
        assert eventually(lambda: sealed.stats(["tamper"])[0].dead == 1)
        assert worker.running
    assert got.payloads == [{"n": 2}]
    assert _dead_reasons(sealed, "tamper") == [reason]


def test_a_message_claiming_a_trusted_origin_without_its_key_is_rejected(
        mq: pn.MessageQueue) -> None:
    trusted = f"soc-sensor:{ORIGIN_KEY}"
    real = _connect(mq, keys=f"k1:{KEY}", origin="soc-sensor", origin_key=ORIGIN_KEY)
    forger = _connect(mq, keys=f"k1:{KEY}", origin="soc-sensor", origin_key=generate_key())
    consumer = _connect(mq, keys=f"k1:{KEY}", trusted_origins=trusted)
    real.publish("alerts", "alert.threat.notification", {"isolate": "host-1"})
    forger.publish("alerts", "alert.threat.notification", {"isolate": "dc-01"})
    got = Collector()
    consumer.subscribe("alerts", "*", got)
    with consumer.worker():
        assert got.wait_for(1)
        assert eventually(lambda: consumer.stats(["alerts"])[0].dead == 1)
    assert got.payloads == [{"isolate": "host-1"}]
    assert _dead_reasons(consumer, "alerts") == [b"origin_rejected"]


def test_a_message_above_the_subscriptions_tlp_goes_to_the_dlq(mq: pn.MessageQueue) -> None:
    got = Collector()
    mq.subscribe("shared", "*", got, max_tlp="GREEN")
    mq.publish("shared", "t", "green", tlp="GREEN")
    mq.publish("shared", "t", "red", tlp="TLP:RED")
    with mq.worker():
        assert got.wait_for(1)
        assert eventually(lambda: mq.stats(["shared"])[0].dead == 1)
    assert got.payloads == ["green"]
    assert _dead_reasons(mq, "shared") == [b"tlp_denied"]


def test_an_invalid_tlp_is_refused_at_publish(mq: pn.MessageQueue) -> None:
    with pytest.raises(pn.ValidationError, match="invalid TLP 'PURPLE'"):
        mq.publish("q", "t", 1, tlp="PURPLE")


def test_an_envelope_copied_into_another_queue_is_refused(mq: pn.MessageQueue) -> None:
    sealed = _connect(mq, keys=f"k1:{KEY}")
    sealed.publish("low-trust", "alert.threat.notification", {"isolate": "host-9"})
    raw = sealed.client.xrange(sealed.queue_keys("low-trust").stream(2))[0][1][b"m"]
    sealed.client.xadd(sealed.queue_keys("automation").stream(2), {"m": raw})
    sealed.declare("automation")
    got = Collector()
    sealed.subscribe("automation", "*", got)
    with sealed.worker():
        assert eventually(lambda: sealed.stats(["automation"])[0].dead == 1)
    assert got.payloads == []
    assert _dead_reasons(sealed, "automation") == [b"queue_mismatch"]


def test_a_queue_that_requires_encryption_refuses_to_run_without_keys(
        mq: pn.MessageQueue) -> None:
    with pytest.raises(pn.ConfigError, match="requires encryption but no key ring"):
        mq.declare("secret", enable_encryption=True)


def test_secrets_never_appear_in_reprs() -> None:
    settings = pn.Settings.from_dict({"security": {
        "keys": f"k1:{KEY}", "origin": "o", "origin_key": ORIGIN_KEY,
        "trusted_origins": f"o:{ORIGIN_KEY}"}})
    mq = pn.connect(None, settings=settings)
    for text in (repr(settings), str(settings), repr(mq), repr(mq.codec), repr(mq.settings)):
        assert KEY not in text and ORIGIN_KEY not in text
