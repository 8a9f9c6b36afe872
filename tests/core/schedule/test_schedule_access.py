"""Schedules under roles and ACLs: only roles that manage a queue change its schedules or
fire them; a lower role is refused by the library and, holding raw redis-py with its own
credentials, by Redis itself - it cannot FCALL pn1_fire into the queue nor plant a spec."""

from __future__ import annotations

import base64

import pytest
import redis

import phantom_notebook as pn
from phantom_notebook.core.backend import library
from phantom_notebook.core.schedule.runner import Scheduler
from tests.core.schedule.conftest import Clock, ticks
from tests.core.security.conftest import Connect, raw_as
from tests.support.redis_server import RedisServer

DENIED = "can't run this command|can't access|no permissions"
AUDIT_KEY = base64.b64encode(bytes(range(90, 122))).decode()


def test_an_admin_user_schedules_and_fires_under_its_own_acl(connect_as: Connect,
                                                             clock: Clock) -> None:
    adm = connect_as("adm", role="admin")
    adm.schedule("poll", "ioc-feed", "feed.poll", {"feed": "x"}, every="1s")

    done = Scheduler(adm).run_once(clock.at(1.1))

    assert [f.tick for f in done] == [clock.tick(1)] == ticks(adm, "ioc-feed")
    assert adm.pause_schedule("poll").paused and adm.unschedule("poll")


@pytest.mark.parametrize(("user", "role"), [("ana", "analyst"), ("enr", "enricher"),
                                            ("aud", "auditor")])
def test_roles_without_manage_may_list_but_not_change_or_fire_schedules(
        server: RedisServer, connect_as: Connect, clock: Clock, user: str, role: str) -> None:
    adm = connect_as("adm", role="admin")
    adm.schedule("poll", "ioc-feed", "feed.poll", {}, every="1s")
    gated = connect_as(user, role=role)
    ungated = connect_as(user, audit_key=AUDIT_KEY)  # no role named: only Redis stands guard

    assert [s.name for s in gated.schedules()] == ["poll"]  # reading needs stats only
    for change in (lambda: gated.schedule("mine", "ioc-feed", "feed.poll", {}, every="1s"),
                   lambda: gated.pause_schedule("poll"), lambda: gated.resume_schedule("poll"),
                   lambda: gated.unschedule("poll")):
        with pytest.raises(pn.PermissionDeniedError, match="may not manage 'ioc-feed'"):
            change()
    with pytest.raises(pn.PermissionDeniedError, match="Redis refused"):
        ungated.pause_schedule("poll")
    assert Scheduler(gated).run_once(clock.at(1.1)) == []  # not its queue to fire into
    ungated_run = Scheduler(ungated)
    assert ungated_run.run_once(clock.at(1.2)) == [] and ungated_run.errors == 1
    assert ticks(adm, "ioc-feed") == [] and not adm.schedules()[0].paused
    # the refused fire wrote nothing, not even its audit entry
    trail = server.client().xrange(adm.queue_keys("ioc-feed").audit(user))
    assert [f for _, f in trail if f.get(b"action") == b"schedule_fire"] == []


def test_an_analyst_with_raw_redis_cannot_fire_into_a_queue_or_plant_a_schedule(
        server: RedisServer, connect_as: Connect, clock: Clock) -> None:
    adm = connect_as("adm", role="admin")
    adm.schedule("poll", "ioc-feed", "feed.poll", {}, every="1s")
    keys = adm.queue_keys("ioc-feed")
    raw = raw_as(server, "ana")
    fire_keys = [*keys.streams, keys.delayed, keys.fired, keys.metrics(0), keys.trace]

    with pytest.raises(redis.exceptions.ResponseError, match=DENIED):
        raw.fcall(library.name("fire"), len(fire_keys), *fire_keys, "poll", clock.tick(1), 0,
                  0, 0, 0, "ana", 0, "x|y|1|", b"forged envelope", 0)
    with pytest.raises(redis.exceptions.ResponseError, match=DENIED):
        raw.fcall(library.name("fire"), len(fire_keys), *fire_keys, "poll", 9 * 10**12, 0,
                  0, 0, 0, "ana", 0, "x|y|1|", b"silence the schedule", 0)
    with pytest.raises(redis.exceptions.NoPermissionError):
        raw.hset(keys.schedules, "planted", b"{}")
    with pytest.raises(redis.exceptions.NoPermissionError):
        raw.hset(keys.fired, "poll", 9 * 10**12)

    admin = server.client()
    assert sum(admin.xlen(s) for s in keys.streams) == 0
    assert not admin.exists(keys.fired) and admin.hkeys(keys.schedules) == [b"poll"]
    assert [f.tick for f in Scheduler(adm).run_once(clock.at(1.1))] == [clock.tick(1)]
    raw.close()
