"""The search box finds a message by its id, its trace id or an indicator it carried."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

import phantom_notebook as pn
from phantom_notebook.core.admin.rotation import activate_new_key, reseal_all
from phantom_notebook.core.model.envelope import new_id, now_ms
from phantom_notebook.core.observe.indicators import IndicatorTagger, normalise, tagger_of
from phantom_notebook.core.observe.search import CLOCK_SKEW_MS, Found, classify, find_messages
from phantom_notebook.core.observe.tracing import TraceLog
from phantom_notebook.core.security.keyring import KeyRing, generate_key
from tests.support.collect import eventually


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _connect(mq: pn.MessageQueue, **config: Any) -> pn.MessageQueue:
    """Another connection to ``mq``'s deployment (same server and prefix), configured."""
    return pn.connect(None if mq.embedded else mq.settings.redis.url,
                      key_prefix=mq.keys.prefix, settings=pn.Settings.from_dict(config))


def _trace_bytes(mq: pn.MessageQueue, queue: str) -> bytes:
    return b";".join(f[b"m"] for _, f in mq.client.xrange(mq.queue_keys(queue).trace))


def _ids(found: list[Found]) -> list[str]:
    return [f.message_id for f in found]


# -- by indicator ---------------------------------------------------------------------------

def test_a_message_is_found_by_the_indicator_it_carried(mq: pn.MessageQueue) -> None:
    mid = mq.publish("ioc-feed", "ioc.enrichment.request",
                     {"ioc": {"type": "domain", "value": "evil.example"}})
    mq.publish("ioc-feed", "ioc.enrichment.request", {"ioc": {"value": "other.example"}})
    found = find_messages(mq, "evil.example")
    assert [(f.kind, f.queue, f.message_id, f.event) for f in found] == [
        ("indicator", "ioc-feed", mid, "published")]
    assert found[0].trace_id == TraceLog(mq).events(message_id=mid)[0].trace_id


def test_defanged_and_fanged_spellings_of_one_indicator_find_each_other(
        mq: pn.MessageQueue) -> None:
    defanged = mq.publish("ioc-feed", "t", {"ioc": "evil[.]example"})
    url = mq.publish("ioc-feed", "t", {"ioc": {"type": "url", "value": "hxxp://bad[.]example/x"}})
    assert _ids(find_messages(mq, "evil.example")) == [defanged]
    assert _ids(find_messages(mq, "  EVIL(.)Example ")) == [defanged]
    assert _ids(find_messages(mq, "http://bad.example/x")) == [url]
    assert _ids(find_messages(mq, "hxxp://bad[.]example/x")) == [url]


def test_every_indicator_of_an_iocs_list_is_searchable(mq: pn.MessageQueue) -> None:
    mid = mq.publish("campaigns", "threat.campaign.discovery",
                     {"name": "c", "iocs": [{"type": "ipv4", "value": "203.0.113.7"},
                                            "c2[.]example"]})
    assert _ids(find_messages(mq, "203.0.113.7")) == [mid]
    assert _ids(find_messages(mq, "c2.example")) == [mid]


def test_batch_and_delayed_messages_are_tagged_each_with_its_own_indicator(
        mq: pn.MessageQueue) -> None:
    ids = mq.publish_batch("ioc-feed", [
        pn.Message("t", {"ioc": "a.example"}), pn.Message("t", {"no": "indicator"}),
        pn.Message("t", {"ioc": "b.example"}, delay=60)])
    assert _ids(find_messages(mq, "a.example")) == [ids[0]]
    assert _ids(find_messages(mq, "b.example")) == [ids[2]]
    delayed = TraceLog(mq).events(message_id=ids[2])[0]
    assert delayed.detail.startswith("due ") and " " not in delayed.detail[4:]
    assert delayed.tags and not TraceLog(mq).events(message_id=ids[1])[0].tags


def test_a_32_hex_query_finds_an_md5_indicator_too(mq: pn.MessageQueue) -> None:
    md5 = hashlib.md5(b"dropper").hexdigest()
    mid = mq.publish("ioc-feed", "t", {"ioc": {"type": "md5", "value": md5.upper()}})
    assert classify(md5) == "trace_id"
    assert [(f.kind, f.message_id) for f in find_messages(mq, md5)] == [("indicator", mid)]


def test_the_newest_matches_come_first_and_limit_stops_the_search(mq: pn.MessageQueue) -> None:
    ids = [mq.publish("ioc-feed", "t", {"ioc": "repeat.example", "n": i}) for i in range(5)]
    assert _ids(find_messages(mq, "repeat.example", limit=3)) == ids[::-1][:3]


def test_an_old_match_behind_more_than_a_page_of_entries_is_found(mq: pn.MessageQueue) -> None:
    first = mq.publish("ioc-feed", "t", {"ioc": "old.example"})
    for i in range(250):  # one trace entry each: the match is pages deep
        mq.publish("ioc-feed", "t", {"ioc": f"noise-{i}.example"})
    assert _ids(find_messages(mq, "old.example")) == [first]


def test_a_query_that_matches_nothing_returns_nothing(mq: pn.MessageQueue) -> None:
    mq.publish("ioc-feed", "t", {"ioc": "evil.example"})
    assert find_messages(mq, "never-seen.example") == []
    assert find_messages(mq, "01900000-0000-7000-8000-000000000000") == []
    assert find_messages(mq, "0" * 32) == []


def test_an_empty_query_is_refused_with_a_clear_error(mq: pn.MessageQueue) -> None:
    for query in ("", "   "):
        with pytest.raises(pn.ValidationError, match="message id, a trace id or an indicator"):
            find_messages(mq, query)
    with pytest.raises(pn.ValidationError, match="limit"):
        find_messages(mq, "evil.example", limit=0)


def test_a_queue_without_tracing_writes_no_tag_and_is_not_found(mq: pn.MessageQueue) -> None:
    mq.declare("quiet", enable_tracing=False)
    mq.publish("quiet", "t", {"ioc": "evil.example"})
    assert find_messages(mq, "evil.example") == []


def test_a_queue_that_does_not_index_indicators_is_searched_by_id_only(
        mq: pn.MessageQueue) -> None:
    mq.declare("unindexed", index_indicators=False)
    mid = mq.publish("unindexed", "t", {"ioc": "evil.example"})
    assert find_messages(mq, "evil.example") == []
    assert _ids(find_messages(mq, mid)) == [mid]
    ((_, fields),) = mq.client.xrange(mq.queue_keys("unindexed").trace)
    assert b"ioc=" not in fields[b"m"]


def test_messages_of_a_partitioned_queue_are_found_in_their_partition(
        mq: pn.MessageQueue) -> None:
    mq.declare("sharded", kind="fifo", partitions=2)
    mid = mq.publish("sharded", "t", {"ioc": "evil.example"})
    found = find_messages(mq, "evil.example")
    assert _ids(found) == [mid] and found[0].queue.startswith("sharded#")


# -- by message id and trace id ------------------------------------------------------------

def test_a_message_id_finds_the_lifecycle_of_that_message_newest_first(
        mq: pn.MessageQueue) -> None:
    mid = mq.publish("work", "t", {"ioc": "evil.example"})
    mq.publish("work", "t", {"other": True})
    mq.subscribe("work", "*", lambda m, c: None)
    with mq.worker():
        assert eventually(lambda: any(f.event == "acked" for f in find_messages(mq, mid)))
    found = find_messages(mq, mid.upper())
    assert {f.kind for f in found} == {"message_id"} and set(_ids(found)) == {mid}
    assert [f.event for f in found] == ["acked", "delivered", "published"]
    assert [f.at_ms for f in found] == sorted((f.at_ms for f in found), reverse=True)


def test_a_message_id_search_reads_only_from_shortly_before_the_id_was_made(
        mq: pn.MessageQueue) -> None:
    mq.declare("work")
    now = now_ms()
    mid, trace_id = new_id(now), "ab" * 16
    item = {"ev": "published", "c": "", "m": f"{mid}|{trace_id}|1|"}
    key = mq.queue_keys("work").trace
    too_old = now - CLOCK_SKEW_MS - 60_000
    mq.client.xadd(key, item, id=f"{too_old}-0")  # an event before the id existed: not read
    recent = int(mq.client.xadd(key, item).decode().split("-")[0])
    assert [f.at_ms for f in find_messages(mq, mid)] == [recent]
    assert [f.at_ms for f in find_messages(mq, trace_id)] == [recent, too_old]


def test_a_trace_id_finds_every_message_of_the_trace_across_queues(mq: pn.MessageQueue) -> None:
    def enrich(message: pn.Envelope, context: pn.MessageContext) -> None:
        context.publish("results", "ioc.enrichment.result", {"ok": True})

    request = mq.publish("requests", "ioc.enrichment.request", {"ioc": "evil.example"})
    trace_id = TraceLog(mq).events(message_id=request)[0].trace_id
    mq.subscribe("requests", "*", enrich)
    mq.subscribe("results", "*", lambda m, c: None)
    with mq.worker():
        assert eventually(lambda: any(f.queue == "results" and f.event == "acked"
                                  for f in find_messages(mq, trace_id, limit=100)))
    found = find_messages(mq, trace_id, limit=100)
    assert {f.kind for f in found} == {"trace_id"} and {f.trace_id for f in found} == {trace_id}
    assert {f.queue for f in found} == {"requests", "results"}
    assert len(set(_ids(found))) == 2
    assert {f.queue for f in find_messages(mq, trace_id, queues=["results"])} == {"results"}


# -- keys -----------------------------------------------------------------------------------

def test_the_trace_holds_a_tag_not_the_indicator_and_the_tag_depends_on_the_audit_key(
        mq: pn.MessageQueue) -> None:
    one = _connect(mq, security={"audit_key": _key()})
    two = _connect(mq, security={"audit_key": _key()})
    one.publish("feed-one", "t", {"ioc": {"value": "Secret-Victim.example"}})
    two.publish("feed-two", "t", {"ioc": {"value": "Secret-Victim.example"}})
    mq.publish("feed-plain", "t", {"ioc": {"value": "Secret-Victim.example"}})
    raw = {q: _trace_bytes(mq, q) for q in ("feed-one", "feed-two", "feed-plain")}
    assert not any(b"victim" in r.lower() for r in raw.values())
    tags = {q: TraceLog(mq).recent(q)[0].tags for q in raw}
    assert all(len(t) == 1 for t in tags.values()) and len(set(tags.values())) == 3
    assert tagger_of(one).key_name == "audit:audit"
    # its own key, and unkeyed (the plaintext publisher); two publishes of one millisecond
    # have no newest-first order between them
    assert sorted(f.queue for f in find_messages(one, "secret-victim.example")) == \
        ["feed-one", "feed-plain"]
    assert [f.queue for f in find_messages(mq, "secret-victim.example")] == ["feed-plain"]


def test_a_sealing_deployment_without_an_audit_key_tags_with_its_envelope_key(
        mq: pn.MessageQueue) -> None:
    sealed = _connect(mq, security={"keys": f"k1:{generate_key()}"})
    sealed.publish("sealed-feed", "t", {"ioc": "evil.example"})
    assert tagger_of(sealed).key_name == "keyring:k1"
    assert b"evil" not in _trace_bytes(mq, "sealed-feed")
    assert len(find_messages(sealed, "evil.example")) == 1
    assert find_messages(mq, "evil.example") == []  # no key, no match


def test_search_finds_messages_published_before_a_key_rotation(
        mq: pn.MessageQueue, tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    KeyRing.from_base64({"k1": generate_key()}).write_key_file(key_file)
    before = _connect(mq, security={"key_file": str(key_file)})
    old = before.publish("sealed-feed", "t", {"ioc": "evil.example"})
    ring = activate_new_key(key_file)
    after = _connect(mq, security={"key_file": str(key_file)})
    reseal_all(after)
    new = after.publish("sealed-feed", "t", {"ioc": "evil.example"})
    assert tagger_of(after).key_name == f"keyring:{ring.active_id}" != "keyring:k1"
    assert _ids(find_messages(after, "evil.example")) == [new, old]


def test_the_tag_is_a_keyed_hash_of_the_normalised_value() -> None:
    assert normalise(" hXXps[://]Evil[.]Example/a ") == "https://evil.example/a"
    assert normalise("1.2.3[.]4") == "1.2.3.4" and normalise("a[@]b(.)c") == "a@b.c"
    k1, k2 = os.urandom(32), os.urandom(32)
    tag = IndicatorTagger([("k1", k1)]).tag("evil[.]example")
    assert tag == IndicatorTagger([("k1", k1)]).tag("EVIL.example")
    assert tag != IndicatorTagger([("k2", k2)]).tag("evil.example")
    assert tag in IndicatorTagger([("k2", k2), ("k1", k1)]).search_tags("evil.example")
    assert "k1" not in repr(IndicatorTagger([("k1", k1)])).replace("'k1'", "")


# -- access ---------------------------------------------------------------------------------

def test_a_role_without_stats_on_a_queue_does_not_search_it(mq: pn.MessageQueue) -> None:
    mq.publish("ioc-feed", "t", {"ioc": "evil.example"})
    mq.publish("alerts", "t", {"ioc": "evil.example"})
    viewer = _connect(mq, roles={"viewer": {"stats": ["ioc-*"]}},
                      security={"role": "viewer"})
    assert [f.queue for f in find_messages(viewer, "evil.example")] == ["ioc-feed"]
    assert find_messages(viewer, "evil.example", queues=["alerts"]) == []
    assert {f.queue for f in find_messages(mq, "evil.example")} == {"ioc-feed", "alerts"}
