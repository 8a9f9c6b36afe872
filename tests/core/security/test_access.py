"""Roles are enforced twice: by ``AccessPolicy.check`` and by Redis ACLs on a real server."""

from __future__ import annotations

import base64
import tomllib

import pytest
import redis

import phantom_notebook as pn
from phantom_notebook.core.backend.connection import open_client
from phantom_notebook.core.observe.metrics import metrics_key
from phantom_notebook.core.security.access import (
    AccessPolicy,
    Grant,
    format_setuser,
    render_acl,
)
from tests.core.security.conftest import Connect, denials, raw_as
from tests.support.collect import Collector, eventually
from tests.support.redis_server import RedisServer, free_port

POLICY = AccessPolicy()

# -- the client-side check -----------------------------------------------------------------


@pytest.mark.parametrize(("role", "action", "queue", "allowed"), [
    ("analyst", "publish", "ioc-feed", True), ("analyst", "consume", "threat-apt", True),
    ("analyst", "consume", "alerts", False), ("analyst", "manage", "ioc-feed", False),
    ("analyst", "read_audit", "*", False), ("enricher", "consume", "ioc-feed", True),
    ("enricher", "publish", "threat-apt", True), ("enricher", "consume", "threat-apt", False),
    ("responder", "consume", "alerts-high", True), ("responder", "publish", "ioc-feed", False),
    ("auditor", "read_audit", "*", True), ("auditor", "stats", "alerts", True),
    ("auditor", "consume", "ioc-feed", False), ("admin", "manage", "anything", True),
])
def test_builtin_roles_grant_only_their_queues(role: str, action: str, queue: str,
                                               allowed: bool) -> None:
    assert POLICY.allows(role, action, queue) is allowed


def test_denial_names_the_role_the_action_the_queue_and_the_grants() -> None:
    with pytest.raises(pn.PermissionDeniedError) as denied:
        POLICY.check("analyst", "consume", "alerts")
    assert str(denied.value) == ("role 'analyst' may not consume 'alerts' (grants: publish "
                                 "ioc-*, threat-*; consume ioc-*, threat-*)")
    with pytest.raises(pn.PermissionDeniedError, match="may not read the audit trail"):
        POLICY.check("responder", "read_audit")


def test_roles_load_from_the_settings_file_shape() -> None:
    data = tomllib.loads("""
        [roles.hunter]
        publish = ["hunt-?"]
        consume = ["hunt-*", "ioc-feed"]
        read_audit = true
        [roles.analyst]
        consume = ["ioc-*"]
    """)
    policy = AccessPolicy.from_dict(data["roles"])
    assert policy.allows("hunter", "publish", "hunt-1")
    assert not policy.allows("hunter", "publish", "hunt-12")
    assert policy.allows("hunter", "read_audit") and policy.allows("hunter", "stats", "ioc-feed")
    assert not policy.allows("analyst", "publish", "ioc-feed")  # the file replaces the built-in
    assert policy.allows("auditor", "read_audit")  # built-ins stay unless replaced


@pytest.mark.parametrize(("table", "field"), [
    ({"publish": ["*-feed"]}, "roles.bad.publish"),
    ({"publish": "ioc-*"}, "roles.bad.publish"),
    ({"subscribe": ["ioc-*"]}, "roles.bad.subscribe"),
    ({"read_audit": "yes"}, "roles.bad.read_audit"),
])
def test_a_bad_role_table_names_the_field(table: dict[str, object], field: str) -> None:
    with pytest.raises(pn.ConfigError) as bad:
        AccessPolicy.from_dict({"bad": table})
    assert bad.value.field == field


def test_unknown_role_and_unknown_action_are_refused() -> None:
    with pytest.raises(pn.ConfigError, match="unknown role 'intern'"):
        POLICY.check("intern", "publish", "ioc-feed")
    with pytest.raises(pn.ValidationError, match="unknown action"):
        Grant("delete", "*")  # type: ignore[arg-type]


def test_denied_call_raises_before_any_command_reaches_redis(prefix: str) -> None:
    settings = pn.Settings.from_dict({
        "redis": {"url": f"redis://127.0.0.1:{free_port()}/0", "key_prefix": prefix},
        "security": {"role": "analyst"}})
    mq = pn.MessageQueue(open_client(settings.redis), settings)  # nobody listens there
    with pytest.raises(pn.PermissionDeniedError):  # a ConnectionLostError if Redis were reached
        mq.publish("alerts", "ioc.ip", {"value": "198.51.100.7"})
    mq.client.close()


# -- rendering --------------------------------------------------------------------------------


def test_rendered_rules_never_contain_the_password() -> None:
    rules = render_acl(POLICY, "analyst", "ana", "hunter2-secret")
    assert not any("hunter2" in rule for rule in rules)
    assert rules[:3] == ["reset", "on",
                         "#" + __import__("hashlib").sha256(b"hunter2-secret").hexdigest()]
    assert "(+publish &pn:ps:ioc-*:* &pn:ps:threat-*:*)" in rules
    assert "(+fcall ~pn:{ioc-*}:* ~pn:{threat-*}:*)" in rules
    assert format_setuser("ana", rules).startswith("ACL SETUSER ana reset on '#")


def test_nopass_only_when_explicitly_allowed() -> None:
    with pytest.raises(pn.ValidationError, match="needs a password"):
        render_acl(POLICY, "analyst", "ana")
    assert "nopass" in render_acl(POLICY, "analyst", "ana", allow_nopass=True)


def test_glob_characters_of_the_prefix_are_escaped() -> None:
    rules = render_acl(POLICY, "auditor", "aud", "pw", prefix="team*a")
    assert "(+xadd %W~team\\*a:audit:aud)" in rules


# -- enforced by Redis ---------------------------------------------------------------------------


def test_analyst_publishes_and_consumes_its_queues_through_every_function(
        connect_as: Connect, admin: redis.Redis) -> None:
    mq = connect_as("ana")
    mq.declare("ioc-feed", visibility_timeout_s=0.3, max_deliveries=1, enable_deduplication=True)
    mq.publish_batch("ioc-feed", [pn.Message("ioc.ip", i, "HIGH") for i in range(5)])
    mq.publish("ioc-feed", "ioc.ip", 0)  # a duplicate: the dedup window answers the first id
    mq.publish("ioc-feed", "ioc.url", "later", delay=0.05)  # ZADD, promoted by pn1_fetch

    def judge(env: pn.Envelope, ctx: pn.MessageContext) -> None:
        if env.payload == 3 and ctx.attempt == 1:
            raise pn.Retry("once more", delay_s=0.01)
        if env.payload == 4:
            raise pn.Reject("not an indicator")

    got = Collector(judge)
    mq.subscribe("ioc-feed", "*", got)
    with mq.worker(name="ana-worker"):
        assert got.wait_for(5), got.payloads  # 0-2, the retried 3 and "later"; 4 rejected
        assert eventually(lambda: admin.hexists(mq.keys.heartbeats("ana"), "ana-worker"))
    assert mq.stats(["ioc-feed"])[0].dead == 1
    assert denials(admin, "ana") == []


def test_reclaim_and_dead_letter_run_under_the_analyst_trimming_does_not(
        connect_as: Connect, admin: redis.Redis) -> None:
    mq = connect_as("ana")
    keys = mq.queue_keys("threat-apt")
    for group in ("a", "b"):
        mq.ensure_group("threat-apt", group)  # created by the admin: only looked up here
    mq.publish("threat-apt", "actor", "APT-X")
    fetch = dict(now_ms=0, max_deliveries=1, levels="0123", metrics_ttl_s=60, delete=False,
                 trace_cap=100)
    first = mq.functions.fetch(keys, metrics_key(keys, 0), group="a", consumer="c1",
                             count=10, reclaim_idle_ms=0, **fetch)  # type: ignore[arg-type]
    assert len(first.deliveries) == 1

    def reclaimed_into_dlq() -> bool:
        again = mq.functions.fetch(keys, metrics_key(keys, 0), group="a", consumer="c2",
                                 count=10, reclaim_idle_ms=1, **fetch)  # type: ignore[arg-type]
        return again.dead_lettered == 1

    assert eventually(reclaimed_into_dlq)
    mq.functions.fetch(keys, metrics_key(keys, 0), group="b", consumer="c3", count=10,
                     reclaim_idle_ms=0, **fetch)  # type: ignore[arg-type]
    assert denials(admin, "ana") == []
    with pytest.raises(redis.ResponseError, match="can't run this command"):
        mq.functions.trim_broadcast(keys)  # XTRIM is the operator's (a consumer could empty it)


def seed_alerts(admin: redis.Redis, prefix: str) -> str:
    """An 'alerts' queue the analyst has no grant on, with one message in it."""
    mq = pn.connect(f"redis://127.0.0.1:{admin.connection_pool.connection_kwargs['port']}/0",
                    key_prefix=prefix, settings=pn.Settings())
    mq.publish("alerts", "alert.critical", {"host": "db-01"})
    stream = mq.queue_keys("alerts").stream(2)
    mq.client.close()
    return stream


@pytest.mark.parametrize("command", [
    ("XRANGE", "{s}", "-", "+"), ("XREVRANGE", "{s}", "+", "-"),
    ("HGETALL", "{b}:meta"), ("XADD", "{s}", "*", "m", "forged"), ("DEL", "{s}"),
    ("XREADGROUP", "GROUP", "g", "c", "STREAMS", "{s}", ">"), ("SET", "{b}:dedup:x", "1"),
])
def test_analyst_cannot_touch_another_queues_keys_with_raw_commands(
        connect_as: Connect, admin: redis.Redis, prefix: str, command: tuple[str, ...]) -> None:
    stream = seed_alerts(admin, prefix)
    base = stream.rsplit(":s:", 1)[0]
    raw = connect_as("ana").client
    with pytest.raises(redis.exceptions.NoPermissionError):
        raw.execute_command(*(c.format(s=stream, b=base) for c in command))
    assert admin.xlen(stream) == 1
    assert denials(admin, "ana")  # the server logged the refusal


def test_functions_cannot_smuggle_a_foreign_key_past_the_acl(
        connect_as: Connect, admin: redis.Redis, prefix: str) -> None:
    stream = seed_alerts(admin, prefix)
    mq = connect_as("ana")
    alerts = mq.queue_keys("alerts")
    with pytest.raises(redis.exceptions.NoPermissionError):  # a foreign key in KEYS
        mq.client.fcall("pn1_trim_broadcast", 4, *alerts.streams, 0)
    own = mq.queue_keys("ioc-feed")
    keys = [*own.streams[:2], stream, own.streams[3], own.delayed, metrics_key(own, 0),
            own.trace, own.dedup_bucket(0), own.dedup_bucket(-1)]
    with pytest.raises(redis.exceptions.NoPermissionError):  # one foreign key among its own
        mq.client.fcall("pn1_publish", len(keys), *keys, 0, 1, 0, 0, 0, "", 1, "2", "",
                        "x|y|1|", b"forged", 0)
    with pytest.raises(pn.PermissionDeniedError):
        mq.publish("alerts", "alert.critical", "forged")  # declare's HGET is refused
    assert admin.xlen(stream) == 1


@pytest.mark.parametrize("command", [
    ("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "*"), ("KEYS", "*"), ("SCAN", "0"),
    ("ACL", "LIST"), ("ACL", "SETUSER", "ana", "+@all"), ("CLIENT", "LIST"), ("INFO",),
    ("CLIENT", "KILL", "ID", "1"), ("SCRIPT", "FLUSH"), ("FUNCTION", "FLUSH"), ("SHUTDOWN",),
    ("EVAL", "return 1", "0"), ("CLIENT", "TRACKING", "on", "BCAST"),
    ("SCRIPT", "LOAD", "while true do end"), ("FUNCTION", "LOAD", "#!lua name=x\n"),
    ("DEBUG", "SLEEP", "0"), ("MODULE", "LIST"), ("SADD", "{p}:queues", "junk"),
])
def test_analyst_cannot_run_server_commands(connect_as: Connect, prefix: str,
                                            command: tuple[str, ...]) -> None:
    # refused by the ACL (NoPermissionError), DEBUG even before it (enable-debug-command)
    with pytest.raises(redis.exceptions.NoPermissionError if command[0] != "DEBUG"
                       else redis.ResponseError):
        connect_as("ana").client.execute_command(*(c.format(p=prefix) for c in command))


def test_auditor_reads_stats_and_the_audit_trail_but_no_payloads(
        connect_as: Connect, admin: redis.Redis, prefix: str) -> None:
    analyst = connect_as("ana")
    analyst.publish_batch("ioc-feed", [("ioc.ip", i) for i in range(3)])
    analyst.client.xadd(analyst.keys.audit("ana"), {"action": "publish", "actor": "ana"})
    auditor = connect_as("aud")
    stats = auditor.stats(["ioc-feed"])[0]
    assert (stats.kind, stats.ready) == ("priority", 3)
    assert len(auditor.client.xrange(auditor.keys.audit("ana"))) == 1
    stream = auditor.queue_keys("ioc-feed").stream(2)
    for command in (("XRANGE", stream, "-", "+"), ("XINFO", "STREAM", stream),
                    ("XREADGROUP", "GROUP", "workers", "x", "STREAMS", stream, ">"),
                    ("XADD", stream, "*", "m", "forged")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            auditor.client.execute_command(*command)
    with pytest.raises(redis.exceptions.NoPermissionError):
        analyst.client.xrange(analyst.keys.audit("ana"))  # writers append, auditors read


def test_live_channels_follow_the_role(connect_as: Connect, admin: redis.Redis) -> None:
    responder = connect_as("rex")
    got = Collector()
    responder.subscribe("alerts-live", "*", got)
    with responder.worker() as worker:
        assert worker.lanes[0].wait_ready()
        responder.publish("alerts-live", "alert.critical", {"host": "db-01"})
        assert got.wait_for(1)
    channel = responder.keys.channel("alerts-live:alert.critical")
    analyst = connect_as("ana").client
    with pytest.raises(redis.exceptions.NoPermissionError):
        analyst.publish(channel, b"forged")
    listener = analyst.pubsub()
    with pytest.raises(redis.exceptions.NoPermissionError):
        listener.psubscribe(responder.keys.channel("alerts-live:*"))
        listener.get_message(timeout=1)
    listener.close()
    assert denials(admin, "rex") == []


def test_readers_see_dead_letters_but_only_a_manager_replays_or_purges_them(
        connect_as: Connect, admin: redis.Redis, server: RedisServer) -> None:
    analyst = connect_as("ana")
    message_id = analyst.publish("ioc-feed", "ioc.ip", "192.0.2.1")

    def reject(env: pn.Envelope, ctx: pn.MessageContext) -> None:
        raise pn.Reject("needs a human")

    analyst.subscribe("ioc-feed", "*", reject)
    with analyst.worker():
        assert eventually(lambda: analyst.stats(["ioc-feed"])[0].dead == 1)
    seen = analyst.dlq("ioc-feed").list()  # read-only (the dashboard): envelopes stay sealed
    assert [d.message_id for d in seen] == [message_id]
    with pytest.raises(pn.PermissionDeniedError, match="replay needs the manage grant"):
        analyst.dlq("ioc-feed").replay(message_id)  # no role set here: the server refuses
    # ...before writing anything (a script is not rolled back: no replayed-and-kept letter)
    assert (analyst.stats(["ioc-feed"])[0].ready, len(analyst.dlq("ioc-feed"))) == (0, 1)
    with pytest.raises(pn.PermissionDeniedError):
        analyst.dlq("ioc-feed").purge(message_id)
    raw = raw_as(server, "ana")  # and the raw commands a replay or purge needs are refused
    for command in (lambda: raw.xdel(f"{analyst.keys.prefix}:{{ioc-feed}}:dlq", seen[0].dlq_id),
                    lambda: raw.xtrim(f"{analyst.keys.prefix}:{{ioc-feed}}:dlq", maxlen=0)):
        with pytest.raises(redis.exceptions.NoPermissionError):
            command()
    raw.close()
    manager = connect_as("adm")
    letters = manager.dlq("ioc-feed").list()
    assert [d.message_id for d in letters] == [message_id]
    assert len(manager.dlq("ioc-feed").replay(message_id)) == 1  # pn1_replay as the manager
    assert manager.stats(["ioc-feed"])[0].ready == 1
    assert denials(admin, "adm") == []


def test_writers_append_to_their_own_trail_auditors_read_all_admins_checkpoint_and_trim(
        connect_as: Connect, admin: redis.Redis) -> None:
    from phantom_notebook.core.audit.log import AuditLog
    from phantom_notebook.core.audit.maintain import checkpoint, trim
    from phantom_notebook.core.audit.verify import audit_key_from_env, verify_audit

    key = audit_key_from_env({"PHANTOM_AUDIT_KEY": base64.b64encode(bytes(32)).decode()})
    analyst = connect_as("ana")
    writer = AuditLog(analyst, key, actor="ana", role="analyst", user=analyst.user)
    assert writer.stream.endswith(":audit:ana")
    writer.record("publish", "ioc-feed", message_ids=["01J0"])
    with pytest.raises(pn.PermissionDeniedError):
        writer.entries()  # XADD only: an analyst cannot read the trail back
    with pytest.raises(redis.exceptions.NoPermissionError):  # nor write another's trail
        analyst.client.xadd(analyst.keys.audit("adm"), {"action": "forged"})
    auditor_mq = connect_as("aud")
    auditor = AuditLog(auditor_mq, key, actor="aud", role="auditor", user="aud")
    assert [e.action for e in auditor.entries()] == ["publish"]
    assert verify_audit(auditor_mq, key).status == "unanchored"
    with pytest.raises(pn.PermissionDeniedError):  # checkpoints write every user's trail
        checkpoint(auditor, writer.stream)
    with pytest.raises(redis.exceptions.NoPermissionError):
        auditor_mq.client.xtrim(writer.stream, maxlen=0)  # retention is for admins
    keeper = AuditLog(connect_as("adm"), key, actor="adm", role="admin", user="adm")
    assert checkpoint(keeper, writer.stream) is not None
    assert trim(keeper, writer.stream, max_entries=1) >= 0
    assert denials(admin, "adm") == []


def test_an_exact_grant_also_covers_the_partitions_of_that_queue() -> None:
    policy = AccessPolicy.from_dict({"pager": {"consume": ["alerts"]}})
    assert policy.allows("pager", "consume", "alerts#3")
    assert not policy.allows("pager", "consume", "alerts-archive")
    rules = render_acl(policy, "pager", "pager", "pw")
    assert "(+fcall ~pn:{alerts}:* ~pn:{alerts#*}:*)" in rules
