"""Schedules through the API on both backends: each tick once, catch-up policies, pause,
resume, removal, listing, full and partitioned queues, sealed templates, the audit trail."""

from __future__ import annotations

import base64
import threading
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

import phantom_notebook as pn
from phantom_notebook.core.observe.tracing import TraceLog
from phantom_notebook.core.schedule import CATCH_UP_MAX, store
from phantom_notebook.core.schedule.runner import Scheduler
from tests.core.schedule.conftest import Clock, ticks

KEY = base64.b64encode(bytes(range(7, 39))).decode()
AUDIT_KEY = base64.b64encode(bytes(range(50, 82))).decode()


def _again(mq: pn.MessageQueue, **security: object) -> pn.MessageQueue:
    """Another connection to the same deployment (another process, as far as Redis sees)."""
    settings = pn.Settings.from_dict({"security": security}) if security else pn.Settings()
    return pn.connect(None if mq.embedded else mq.settings.redis.url,
                      key_prefix=mq.keys.prefix, settings=settings)


def test_a_tick_fires_once_carrying_the_schedule_name_and_tick_in_its_headers(
        mq: pn.MessageQueue, clock: Clock) -> None:
    mq.declare("feed-poll", kind="priority")
    mq.schedule("abuse-poll", "feed-poll", "feed.poll", {"feed": "abuse.ch"},
                every=timedelta(seconds=1), priority="HIGH", tlp="AMBER",
                headers={"team": "cti"})
    scheduler = mq.scheduler()

    first = scheduler.run_once(clock.at(1.2))
    again = scheduler.run_once(clock.at(1.9))

    assert [(f.name, f.tick) for f in first] == [("abuse-poll", clock.tick(1))] and again == []
    [raw] = [f[b"m"] for _, f in mq.client.xrange(mq.queue_keys("feed-poll").stream(1))]
    env = mq.codec.open(raw)
    assert (env.type, env.payload, env.tlp, env.id) == \
        ("feed.poll", {"feed": "abuse.ch"}, "AMBER", first[0].message_id)
    assert env.headers == {"team": "cti", "pn-schedule": "abuse-poll",
                           "pn-tick": str(clock.tick(1))}
    [event] = TraceLog(mq).events(message_id=env.id)
    assert (event.event, event.detail) == ("published", f"schedule abuse-poll tick {clock.tick(1)}")


def test_eight_schedulers_racing_for_every_tick_write_one_message_per_tick(
        mq: pn.MessageQueue, clock: Clock) -> None:
    mq.schedule("race", "raced", "feed.poll", {}, every="1s", catch_up="all")
    connections = [_again(mq) for _ in range(8)]
    schedulers = [Scheduler(c) for c in connections]
    start = threading.Barrier(len(schedulers))
    won: list[int] = []
    lock = threading.Lock()

    def race(scheduler: Scheduler) -> None:
        for second in range(1, 11):
            start.wait()
            got = scheduler.run_once(clock.at(second + 0.1))
            with lock:
                won.extend(f.tick for f in got)

    threads = [threading.Thread(target=race, args=(s,)) for s in schedulers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    expected = [clock.tick(s) for s in range(1, 11)]
    assert sorted(won) == expected == ticks(mq, "raced")
    for c in connections:
        c.close()


def test_of_eight_calls_firing_one_tick_at_once_exactly_one_writes_a_message(
        mq: pn.MessageQueue, clock: Clock) -> None:
    mq.schedule("race", "raced", "feed.poll", {}, every="1s")
    connections = [_again(mq) for _ in range(8)]
    [spec] = store.find(mq, "race").values()
    start = threading.Barrier(len(connections))
    results: list[store.FireResult] = []

    def call(c: pn.MessageQueue) -> None:
        start.wait()
        results.append(store.fire(c, spec, clock.tick(1), spec.since_ms))

    threads = [threading.Thread(target=call, args=(c,)) for c in connections]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert sorted(r.fired for r in results) == [False] * 7 + [True]
    assert {r.last_ms for r in results} == {clock.tick(1)}
    assert ticks(mq, "raced") == [clock.tick(1)]
    assert store.fire(mq, spec, clock.tick(1) - 1000, spec.since_ms).fired is False  # older
    for c in connections:
        c.close()


@pytest.mark.parametrize(("policy", "expected"), [
    ("all", list(range(2, 12))),   # each missed tick, oldest first
    ("last", [11]),                # the newest missed tick, once
    ("none", [11]),                # the current tick only: it fell due 0.5 s ago (<= grace)
])
def test_catch_up_after_a_ten_second_stop(mq: pn.MessageQueue, clock: Clock, policy: str,
                                          expected: list[int]) -> None:
    mq.schedule("poll", "feed-poll", "feed.poll", {}, every="1s", catch_up=policy)
    scheduler = mq.scheduler()
    assert [f.tick for f in scheduler.run_once(clock.at(1.1))] == [clock.tick(1)]

    # no scheduler ran from 1.1 s to 11.5 s: ticks 2 .. 11 fell due meanwhile
    caught_up = scheduler.run_once(clock.at(11.5))

    assert [f.tick for f in caught_up] == [clock.tick(s) for s in expected]
    assert ticks(mq, "feed-poll") == [clock.tick(1)] + [clock.tick(s) for s in expected]
    assert scheduler.run_once(clock.at(11.9)) == []
    assert [f.tick for f in scheduler.run_once(clock.at(12.0))] == [clock.tick(12)]


def test_none_skips_a_tick_missed_by_more_than_its_grace_and_waits_for_the_next(
        mq: pn.MessageQueue, clock: Clock) -> None:
    mq.schedule("hourly", "reports", "report.hourly", {}, cron="0 * * * *", catch_up="none")
    hour = (clock.zero // 3_600_000 + 1) * 3_600_000
    scheduler = mq.scheduler()

    late = scheduler.run_once((hour + 30 * 60_000) / 1000)  # back 30 min after the hour
    on_time = scheduler.run_once((hour + 3_600_000 + 5_000) / 1000)

    assert late == [] and [f.tick for f in on_time] == [hour + 3_600_000]
    assert ticks(mq, "reports") == [hour + 3_600_000]


def test_none_with_a_short_grace_fires_zero_ticks_after_a_stop(mq: pn.MessageQueue,
                                                               clock: Clock) -> None:
    mq.schedule("tight", "feed-poll", "feed.poll", {}, every="1s", grace="200ms")
    scheduler = mq.scheduler()

    stale = scheduler.run_once(clock.at(3.5))  # tick 3 fell due 0.5 s ago: past its grace
    fresh = scheduler.run_once(clock.at(4.1))

    assert stale == [] and [f.tick for f in fresh] == [clock.tick(4)]


def test_all_catches_up_at_most_1000_ticks_the_newest_ones(mq: pn.MessageQueue,
                                                          clock: Clock) -> None:
    mq.schedule("flood", "floody", "feed.poll", {}, every="1s", catch_up="all")

    got = mq.scheduler().run_once(clock.at(1500.2))

    assert len(got) == CATCH_UP_MAX
    assert [f.tick for f in got] == [clock.tick(s) for s in range(501, 1501)]
    assert mq.stats("floody")[0].ready == CATCH_UP_MAX


def test_ticks_while_paused_never_fire_even_with_catch_up_all(mq: pn.MessageQueue,
                                                             clock: Clock) -> None:
    mq.schedule("poll", "feed-poll", "feed.poll", {}, every="1s", catch_up="all")
    scheduler = mq.scheduler()
    scheduler.run_once(clock.at(1.1))

    paused = mq.pause_schedule("poll")
    during = scheduler.run_once(clock.at(5.1))
    clock.ms = clock.tick(6.5)
    resumed = mq.resume_schedule("poll")
    after = scheduler.run_once(clock.at(8.1))

    assert paused.paused and paused.next_fires == () and during == []
    assert not resumed.paused and resumed.next_fire is not None
    assert [f.tick for f in after] == [clock.tick(7), clock.tick(8)]  # not 2 .. 6


def test_the_listing_shows_spec_state_last_and_next_fire_times(mq: pn.MessageQueue,
                                                              clock: Clock) -> None:
    mq.schedule("morning", "reports", "report.daily", {"kind": "brief"},
                cron="0 9 * * 1-5", tz="Europe/Berlin", catch_up="last")
    mq.schedule("poll", "feed-poll", "feed.poll", {}, every="15m", jitter="30s",
                catch_up="last")
    mq.scheduler(queues="feed-poll").run_once(clock.at(900 * 4))

    listed = {s.name: s for s in mq.schedules()}

    morning, poll = listed["morning"], listed["poll"]
    assert (morning.queue, morning.type, morning.spec, morning.catch_up, morning.paused) == \
        ("reports", "report.daily", "cron 0 9 * * 1-5 (Europe/Berlin)", "last", False)
    assert morning.last_fired is None and len(morning.next_fires) == 3
    assert all(d.astimezone(ZoneInfo("Europe/Berlin")).hour == 9 for d in morning.next_fires)
    assert poll.spec == "every 15m, jitter 30s" and poll.last_fired is not None
    assert all(0 < (b - a).total_seconds() < 900 + 30 for a, b in
               zip(poll.next_fires, poll.next_fires[1:], strict=False))
    assert "next" in str(morning) and [s.name for s in mq.schedules("reports")] == ["morning"]


def test_removing_a_schedule_stops_it_and_forgets_its_fire_state(mq: pn.MessageQueue,
                                                                clock: Clock) -> None:
    mq.schedule("poll", "feed-poll", "feed.poll", {}, every="1s")
    scheduler = mq.scheduler()
    scheduler.run_once(clock.at(1.1))

    assert mq.unschedule("poll") is True
    assert mq.unschedule("poll") is False
    assert scheduler.run_once(clock.at(2.1)) == [] and mq.schedules() == []
    assert not mq.client.exists(mq.queue_keys("feed-poll").fired)
    with pytest.raises(pn.ValidationError, match="no schedule named 'poll'"):
        mq.pause_schedule("poll")


def test_adding_a_name_again_replaces_its_spec_and_keeps_what_it_fired(
        mq: pn.MessageQueue, clock: Clock) -> None:
    mq.schedule("poll", "feed-poll", "feed.poll", {"v": 1}, every="1s")
    scheduler = mq.scheduler()
    scheduler.run_once(clock.at(1.1))
    mq.pause_schedule("poll")

    mq.schedule("poll", "feed-poll", "feed.poll", {"v": 2}, every="1s")

    [listed] = mq.schedules()
    assert listed.paused and listed.last_fired is not None  # a pause survives a re-declare
    with pytest.raises(pn.ValidationError, match="already fires into 'feed-poll'"):
        mq.schedule("poll", "other-queue", "feed.poll", {}, every="1s")
    clock.ms = clock.tick(1.5)
    mq.resume_schedule("poll")
    assert [f.tick for f in scheduler.run_once(clock.at(2.1))] == [clock.tick(2)]
    assert [mq.codec.open(f[b"m"]).payload for _, f in
            mq.client.xrange(mq.queue_keys("feed-poll").stream(2))] == [{"v": 1}, {"v": 2}]


def test_a_full_queue_holds_the_tick_back_until_there_is_room(mq: pn.MessageQueue,
                                                             clock: Clock) -> None:
    mq.declare("small", max_queue_size=1)
    mq.publish("small", "filler", {})
    mq.schedule("poll", "small", "feed.poll", {}, every="1s", catch_up="last")
    scheduler = mq.scheduler()

    held = scheduler.run_once(clock.at(1.1))
    mq.client.delete(*mq.queue_keys("small").streams)  # a consumer made room
    later = scheduler.run_once(clock.at(1.6))

    assert held == [] and [f.tick for f in later] == [clock.tick(1)]


def test_a_partitioned_queue_gets_each_tick_once_across_a_repartition(
        mq: pn.MessageQueue, clock: Clock) -> None:
    mq.declare("ioc-parts", partitions=4)
    mq.ensure_group("ioc-parts")  # the workers' group: what repartition moves messages for
    mq.schedule("poll", "ioc-parts", "feed.poll", {}, every="1s", catch_up="last")
    scheduler = mq.scheduler()
    scheduler.run_once(clock.at(1.1))

    mq.repartition("ioc-parts", 3)
    again = scheduler.run_once(clock.at(1.5))   # tick 1 fired already, in the old layout
    nxt = scheduler.run_once(clock.at(2.1))

    assert again == [] and [f.tick for f in nxt] == [clock.tick(2)]
    assert ticks(mq, "ioc-parts") == [clock.tick(1), clock.tick(2)]


def test_templates_are_sealed_and_only_a_scheduler_with_the_key_can_fire_them(
        mq: pn.MessageQueue, clock: Clock) -> None:
    sealed = _again(mq, keys=f"k1:{KEY}")
    sealed.schedule("secret", "ioc-sealed", "feed.poll", {"token": "s3cr3t-feed-token"},
                    every="1s")
    stored = sealed.client.hget(sealed.queue_keys("ioc-sealed").schedules, "secret")
    keyless = Scheduler(_again(mq))

    assert b"s3cr3t" not in stored and b"s3cr3t" not in base64.b64decode(
        stored.split(b'"template":"')[1].split(b'"')[0])
    assert keyless.run_once(clock.at(1.1)) == [] and keyless.errors == 1
    assert [f.name for f in Scheduler(sealed).run_once(clock.at(1.2))] == ["secret"]
    [(_, fields)] = sealed.client.xrange(sealed.queue_keys("ioc-sealed").stream(2))
    assert sealed.codec.open(fields[b"m"]).payload == {"token": "s3cr3t-feed-token"}
    sealed.close()


def test_every_change_and_every_fired_tick_is_audited(mq: pn.MessageQueue,
                                                      clock: Clock) -> None:
    audited = _again(mq, audit_key=AUDIT_KEY, origin="cti-scheduler")
    audited.schedule("poll", "feed-poll", "feed.poll", {}, every="1s")
    audited.pause_schedule("poll")
    audited.resume_schedule("poll")
    [done] = Scheduler(audited).run_once(clock.at(1.1))
    audited.unschedule("poll")

    assert audited.audit is not None
    entries = audited.audit.entries(limit=100)
    assert {(e.action, e.target) for e in entries} >= {
        ("schedule_add", "feed-poll"), ("schedule_pause", "feed-poll"),
        ("schedule_resume", "feed-poll"), ("schedule_fire", "feed-poll"),
        ("schedule_remove", "feed-poll")}
    fire = next(e for e in entries if e.action == "schedule_fire")
    assert fire.covers([done.message_id]) and fire.actor == "cti-scheduler"
    audited.close()


def test_bad_schedules_are_refused_before_anything_is_stored(mq: pn.MessageQueue) -> None:
    with pytest.raises(pn.ValidationError, match="catch_up must be one of"):
        mq.schedule("x", "q1", "t", {}, every="1s", catch_up="some")
    with pytest.raises(pn.ValidationError, match="invalid schedule name"):
        mq.schedule("bad name", "q1", "t", {}, every="1s")
    with pytest.raises(pn.ValidationError, match="pub/sub queue"):
        mq.declare("live", kind="pubsub")
        mq.schedule("x", "live", "t", {}, every="1s")
    with pytest.raises(pn.ValidationError, match="pn-\\* headers are reserved"):
        mq.schedule("x", "q1", "t", {}, every="1s", headers={"pn-tick": "1"})
    assert mq.schedules() == []
