"""Attacks by each built-in role with its own credentials and raw redis-py, on a real
redis-server 7.0 with the rendered ACLs: each is denied, contained to the role's own keys,
or detected by health and repaired with nothing lost."""

from __future__ import annotations

import base64
import os
import time

import pytest
import redis

import phantom_notebook as pn
from phantom_notebook.core.admin.repair import repair
from phantom_notebook.core.security.access import FORBIDDEN
from tests.core.security.conftest import USERS, Connect, raw_as
from tests.support.collect import Collector, eventually
from tests.support.redis_server import RedisServer

MAX_ID = "18446744073709551615-18446744073709551615"
AUDIT_KEY = base64.b64encode(os.urandom(32)).decode()
LOOP = "#!lua name=evil\nredis.register_function('evil', function() while true do end end)"
CODE = [("SCRIPT", "LOAD", "while true do end"), ("EVAL", "while true do end", "0"),
        ("EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"),
        ("EVAL_RO", "return 1", "0"), ("FUNCTION", "LOAD", LOOP), ("FUNCTION", "FLUSH"),
        ("FUNCTION", "DELETE", "phantom_1"), ("FUNCTION", "RESTORE", "x"),
        ("CONFIG", "SET", "maxmemory", "1"), ("FLUSHALL",), ("FLUSHDB",), ("KEYS", "*"),
        ("SHUTDOWN", "NOSAVE"), ("MODULE", "LOAD", "/tmp/evil.so"), ("DEBUG", "SLEEP", "0")]


@pytest.mark.parametrize("user", list(USERS))
def test_no_role_admin_included_can_load_or_run_code_of_its_own(
        server: RedisServer, users: None, admin: redis.Redis, user: str) -> None:
    attacker = raw_as(server, user)
    for command in CODE:
        # DEBUG and MODULE are refused before the ACL looks (enable-*-command no)
        expected = redis.ResponseError if command[0] in ("DEBUG", "MODULE") else \
            redis.exceptions.NoPermissionError
        with pytest.raises(expected):
            attacker.execute_command(*command)
    started = time.monotonic()
    assert admin.ping() and time.monotonic() - started < 1  # nothing is spinning in Redis
    rules = " ".join(str(r) for r in admin.acl_getuser(user)["selectors"]) + " " + \
        str(admin.acl_getuser(user)["commands"])
    for name in FORBIDDEN:
        assert f"+{name} " not in rules + " " and f"+{name}|" not in rules, name
    attacker.close()


NON_ADMIN = [u for u, role in USERS.items() if role != "admin"]


@pytest.mark.parametrize("user", NON_ADMIN)
def test_non_admin_roles_cannot_trim_declare_or_write_what_is_not_theirs(
        server: RedisServer, users: None, prefix: str, user: str) -> None:
    attacker = raw_as(server, user)
    q = f"{prefix}:{{ioc-feed}}"
    for command in [
            ("XADD", f"{q}:audit:adm", "*", "action", "forged"),    # another writer's trail
            ("XADD", f"{prefix}:audit:adm", "*", "action", "forged"),
            ("XTRIM", f"{q}:s:2", "MAXLEN", "0"), ("XTRIM", f"{q}:dlq", "MAXLEN", "0"),
            ("SADD", f"{prefix}:queues", "junk\n"),                  # the registry
            ("HSET", f"{prefix}:hb:adm", "adm-worker", "{}"),         # another's heartbeat
            ("XGROUP", "CREATE", f"{q}:s:2", "mine", "0"),           # read everything
            ("HSET", f"{q}:meta", "kind", "fifo"), ("DEL", f"{q}:s:2"),
            ("XSETID", f"{q}:s:2", "0-1"), ("XADD", "{alerts}:s:2", "*", "m", "x")]:
        with pytest.raises(redis.exceptions.NoPermissionError):
            attacker.execute_command(*command)
    attacker.close()


SEAL_KEY = base64.b64encode(bytes(range(32))).decode()


def test_a_future_last_id_on_a_stream_the_analyst_writes_is_named_by_health_and_repaired(
        server: RedisServer, connect_as: Connect, prefix: str) -> None:
    analyst = connect_as("ana")
    ids = analyst.publish_batch("ioc-feed", [("ioc.ip", i) for i in range(5)])
    stream = analyst.queue_keys("ioc-feed").stream(2)
    attacker = raw_as(server, "ana")  # XADD is its to use: its functions need it
    attacker.execute_command("XADD", stream, MAX_ID, "junk", "1")
    with pytest.raises(pn.ServerError, match="phantom-notebook repair"):
        analyst.publish("ioc-feed", "ioc.ip", 5)
    operator = connect_as("adm")
    report = operator.health(["ioc-feed"])
    [damage] = [c for c in report.checks if c.name == "stream integrity"]
    assert (damage.status, damage.target, damage.value) == ("critical", stream, MAX_ID)
    assert report.status == "critical"
    assert repair(operator, ["ioc-feed"]).repaired == {stream: (1, 0)}
    assert not [c for c in operator.health(["ioc-feed"]).checks
                if c.name == "stream integrity" and c.status != "ok"]
    late = analyst.publish("ioc-feed", "ioc.ip", 5)
    got = Collector()
    analyst.subscribe("ioc-feed", "*", got)
    with analyst.worker():
        assert got.wait_for(6)  # every message, the one before and after the attack
        assert eventually(lambda: operator.stats(["ioc-feed"])[0].dead == 1)
    assert sorted(e.id for e in got.envelopes) == sorted([*ids, late])
    [letter] = operator.dlq("ioc-feed").list()
    assert letter.reason == "decode_failed" and b"junk" in letter.raw  # the raw entry, kept
    attacker.close()


def test_a_poisoned_audit_stream_refuses_the_action_until_repaired(
        server: RedisServer, connect_as: Connect, prefix: str) -> None:
    analyst = connect_as("ana", audit_key=AUDIT_KEY)
    analyst.publish("ioc-feed", "ioc.ip", 1)
    keys = analyst.queue_keys("ioc-feed")
    own_trail = keys.audit("ana")
    raw_as(server, "ana").execute_command("XADD", own_trail, MAX_ID, "forged", "1")
    depth = analyst.stats(["ioc-feed"])[0].ready
    with pytest.raises(pn.AuditError, match="audit entry could not be written"):
        analyst.publish("ioc-feed", "ioc.ip", 2)
    assert analyst.stats(["ioc-feed"])[0].ready == depth  # refused: nothing written
    operator = connect_as("adm", audit_key=AUDIT_KEY)
    [damage] = [c for c in operator.health(["ioc-feed"]).checks
                if c.name == "stream integrity"]
    assert damage.target == own_trail and damage.status == "critical"
    assert repair(operator, ["ioc-feed"]).repaired == {own_trail: (1, 0)}
    quarantined = operator.client.xrange(own_trail.replace(":audit:", ":audit-quarantine:"))
    assert quarantined[0][1][b"pn-original-id"] == MAX_ID.encode()
    assert analyst.publish("ioc-feed", "ioc.ip", 3)  # the trail takes entries again


def test_degrade_mode_lets_the_action_through_and_health_turns_critical(
        server: RedisServer, connect_as: Connect, prefix: str) -> None:
    analyst = connect_as("ana", audit_key=AUDIT_KEY, audit_failure="degrade")
    analyst.publish("ioc-feed", "ioc.ip", 1)
    trail = analyst.queue_keys("ioc-feed").audit("ana")
    raw_as(server, "ana").execute_command("XADD", trail, MAX_ID, "forged", "1")
    assert analyst.publish("ioc-feed", "ioc.ip", 2)  # written, without its audit entry
    assert analyst.stats(["ioc-feed"])[0].ready == 2
    [unaudited] = [c for c in connect_as("adm").health(["ioc-feed"]).checks
                   if c.name == "audit trail"]
    assert unaudited.status == "critical" and unaudited.value == "1 unaudited"


def test_an_exact_copy_of_a_handled_entry_added_again_is_dead_lettered_as_replayed(
        server: RedisServer, connect_as: Connect, admin: redis.Redis, prefix: str) -> None:
    # sealed envelopes authenticate, so a copy is the only forgery left: refused by default
    analyst = connect_as("ana", keys=f"k1:{SEAL_KEY}")
    stream = analyst.queue_keys("ioc-feed").stream(2)
    first = analyst.publish("ioc-feed", "alert.isolate", {"host": "dc-01"})
    copy = admin.xrange(stream)[0][1]  # the sealed entry as stored (e.g. captured earlier)
    got = Collector()
    analyst.subscribe("ioc-feed", "*", got)
    with analyst.worker():
        assert got.wait_for(1)
        raw_as(server, "ana").xadd(stream, copy)  # replayed by a role that may XADD
        operator = connect_as("adm", keys=f"k1:{SEAL_KEY}")
        assert eventually(lambda: operator.stats(["ioc-feed"])[0].dead == 1)
    assert [e.id for e in got.envelopes] == [first]  # handled once
    [letter] = operator.dlq("ioc-feed").list()
    assert letter.reason == "replayed" and letter.message_id == first


def test_a_plain_deployment_leaves_the_replay_claim_off_and_an_explicit_window_turns_it_on(
        connect_as: Connect) -> None:
    from phantom_notebook.core.consume.settler import replay_window_ms

    plain, sealed = connect_as("ana"), connect_as("ana", keys=f"k1:{SEAL_KEY}")
    qs = plain.declare("ioc-feed")
    assert replay_window_ms(qs, plain.codec) == 0, "unauthenticated envelopes can be forged"
    assert replay_window_ms(qs, sealed.codec) == 300_000
    assert replay_window_ms(qs.replace(replay_window_s=60), plain.codec) == 60_000


def test_junk_in_the_registry_is_skipped_by_every_reader_and_health_warns(
        server: RedisServer, connect_as: Connect, admin: redis.Redis, prefix: str) -> None:
    admin.sadd(f"{prefix}:queues", "junk\nname", "x" * 300, "ioc-feed#3")
    analyst = connect_as("ana")
    assert "ioc-feed" in analyst.queues()
    assert [s.queue for s in connect_as("aud").stats()] == analyst.queues()
    [junk] = [c for c in connect_as("adm").health().checks if c.name == "queue registry"]
    assert junk.status == "warn" and junk.value == "3 junk"
