"""Whatever bytes land in a stream, the worker dead-letters them with a reason and keeps going."""

from __future__ import annotations

import uuid

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import phantom_notebook as pn
from phantom_notebook.core.model.envelope import frame, unframe
from phantom_notebook.core.security.keyring import generate_key
from tests.support.collect import Collector, eventually

KEYS = f"k1:{generate_key()}"
HEADER_FIELDS = ["id", "t", "q", "p", "v", "c", "a", "tp", "tlp", "x", "co", "ca", "o", "k", "h"]
JUNK = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1),
                 st.floats(allow_nan=False),
                 st.text(max_size=8), st.lists(st.integers(-9, 9), max_size=2),
                 st.dictionaries(st.text(max_size=3), st.integers(-9, 9), max_size=2))


def _sealed_sample(mq: pn.MessageQueue) -> bytes:
    mq.publish("props", "ioc.enrichment.request", {"ioc": "203.0.113.4"}, tlp="AMBER")
    stream = mq.queue_keys("props").stream(2)
    [(sid, fields)] = mq.client.xrange(stream)
    mq.client.xdel(stream, sid)
    return bytes(fields[b"m"])


@st.composite
def broken_envelopes(draw: st.DrawFn, sample: bytes) -> bytes:
    kind = draw(st.sampled_from(["random", "truncated", "flipped", "header"]))
    if kind == "random":
        return draw(st.binary(max_size=300))
    if kind == "truncated":
        return sample[:draw(st.integers(0, len(sample) - 1))]
    if kind == "flipped":
        at = draw(st.integers(0, len(sample) - 1))
        return sample[:at] + bytes([sample[at] ^ draw(st.integers(1, 255))]) + sample[at + 1:]
    _, header, body = unframe(sample)
    header[draw(st.sampled_from(HEADER_FIELDS))] = draw(JUNK)
    return frame(header, body)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(data=st.data())
def test_broken_envelopes_always_end_in_the_dlq_with_a_reason(data: st.DataObject) -> None:
    mq = pn.connect(None, key_prefix=f"prop{uuid.uuid4().hex}",  # fresh keys per example
                    settings=pn.Settings.from_dict({"security": {"keys": KEYS}}))
    sample = _sealed_sample(mq)
    broken = data.draw(st.lists(broken_envelopes(sample), min_size=1, max_size=8))
    stream = mq.queue_keys("props").stream(2)
    for raw in broken:
        mq.client.xadd(stream, {"m": raw})
    mq.publish("props", "ioc.enrichment.request", {"ioc": "good"})
    got = Collector()
    mq.subscribe("props", "*", got)
    with mq.worker() as worker:
        assert got.wait_for(1)
        assert eventually(lambda: mq.stats(["props"])[0].depth == 0)
        assert worker.running
    dead = mq.client.xrange(mq.queue_keys("props").dlq)
    assert len(dead) + len(got.envelopes) == len(broken) + 1, "nothing lost"
    assert all(fields[b"reason"] for _, fields in dead)
    assert {"ioc": "good"} in got.payloads


def test_a_header_that_is_not_json_is_a_decode_failure(prefix: str) -> None:
    # a prefix of its own: the embedded Redis lives as long as the process, which may run
    # this test more than once (mutation testing does)
    mq = pn.connect(None, key_prefix=prefix, settings=pn.Settings())
    mq.declare("props")
    mq.client.xadd(mq.queue_keys("props").stream(2),
                   {"m": b"\x01\x00\x00\x00\x03abc" + orjson.dumps({})})
    mq.subscribe("props", "*", Collector())
    with mq.worker():
        assert eventually(lambda: mq.stats(["props"])[0].dead == 1)
    assert mq.client.xrange(mq.queue_keys("props").dlq)[0][1][b"reason"] == b"decode_failed"
