"""The access model's rules, pinned: grants, roles and the rendered ACL of every role.

test_access.py proves on a real redis-server that the rendered rules let each role do its
work and nothing more; this file pins the rules themselves (``acl_golden/*.txt``, one rule
per line), so any change to what a role holds shows up as a reviewed diff. Regenerate the
golden files after a deliberate change with ``PN_UPDATE_GOLDEN=1 pytest <this file>``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
import redis

from phantom_notebook import ConfigError, PermissionDeniedError, ValidationError
from phantom_notebook.core.security.access import (
    ACTIONS,
    BUILTIN_ROLES,
    AccessPolicy,
    AclApplied,
    Grant,
    Role,
    apply_acl,
    check_queue_pattern,
    describe_acl,
    format_setuser,
    grants_of,
    render_acl,
    render_all,
)
from tests.support.redis_server import RedisServer

GOLDEN = Path(__file__).with_name("acl_golden")
POLICY = AccessPolicy.from_dict({
    "pager": {"consume": ["alerts"], "stats": ["ioc-*"]},
    "keeper": {"manage": ["*"], "read_audit": True},
    "archivist": {"manage": ["intel"], "read_audit": True}})
QUEUES = ("ioc-feed", "alerts", "threat-intel")
CASES = [*BUILTIN_ROLES, "pager", "keeper", "archivist"]


def _golden(name: str, lines: list[str]) -> None:
    path = GOLDEN / f"{name}.txt"
    text = "\n".join(lines) + "\n"
    if os.environ.get("PN_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.read_text().splitlines() == lines, f"{path} differs (PN_UPDATE_GOLDEN=1)"


@pytest.mark.parametrize("role", CASES)
def test_the_rendered_rules_of_each_role_are_the_reviewed_ones(role: str) -> None:
    rules = render_acl(POLICY, role, f"u-{role}", "pw", prefix="pn", queues=QUEUES)
    assert rules[:3] == ["reset", "on", "#" + hashlib.sha256(b"pw").hexdigest()]
    _golden(f"render-{role}", rules[3:])


@pytest.mark.parametrize("role", CASES)
def test_the_described_rules_of_each_role_are_the_reviewed_ones(role: str) -> None:
    _golden(f"describe-{role}",
            describe_acl(POLICY, role, f"u-{role}", prefix="pn", queues=QUEUES).splitlines())


def test_publishers_wait_for_replicas_and_for_the_aof_only_where_redis_has_waitaof() -> None:
    old = render_acl(POLICY, "analyst", "ana", "pw", redis_version=(7, 0))
    new = render_acl(POLICY, "analyst", "ana", "pw", redis_version=(7, 2))
    assert "+wait" in old and "+waitaof" not in old
    assert new[new.index("+wait") + 1] == "+waitaof"
    assert render_acl(POLICY, "analyst", "ana", "pw", redis_version=(8, 0)).count("+waitaof") == 1
    auditor = render_acl(POLICY, "auditor", "aud", "pw", redis_version=(7, 2))
    assert "+wait" not in auditor and "+waitaof" not in auditor


def test_render_all_renders_each_user_with_the_same_options() -> None:
    rules = render_all(POLICY, {"ana": ("analyst", "pw1"), "aud": ("auditor", None)},
                       prefix="team", queues=["ioc-feed"], allow_nopass=True,
                       redis_version=(7, 2))
    assert rules == {
        "ana": render_acl(POLICY, "analyst", "ana", "pw1", prefix="team", queues=["ioc-feed"],
                          redis_version=(7, 2)),
        "aud": render_acl(POLICY, "auditor", "aud", None, prefix="team", queues=["ioc-feed"],
                          allow_nopass=True)}
    assert rules["aud"][2] == "nopass"
    with pytest.raises(ValidationError, match="needs a password"):
        render_all(POLICY, {"aud": ("auditor", None)})


@pytest.mark.parametrize(("username", "password", "message"), [
    ("bad user", "pw", "invalid ACL username 'bad user': use letters, digits, . _ @ -"),
    ("-x", "pw", "invalid ACL username '-x': use letters, digits, . _ @ -"),
    ("ana", None, "user 'ana' needs a password (or allow_nopass=True)"),
    ("ana", "", "user 'ana': the password must not be empty")])
def test_a_bad_user_or_password_is_refused(username: str, password: str | None,
                                           message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        render_acl(POLICY, "analyst", username, password)
    assert str(caught.value) == message


def test_grants_of_lists_every_row_once_with_its_reason() -> None:
    rows = grants_of(POLICY, "pager", "pg", prefix="p", queues=["alerts"])
    assert len(rows) == len(set(rows))
    assert ("+fcall", ("~p:{alerts}:*", "~p:{alerts#*}:*"),
            "pn1_fetch, pn1_settle (keys of its queues)") in rows
    assert ("+psubscribe +subscribe +unsubscribe +punsubscribe", ("&p:ps:alerts:*",),
            "pub/sub queues") in rows
    assert all(why for _, _, why in rows)
    with pytest.raises(ValidationError):
        grants_of(POLICY, "pager", "pg", queues=["bad name"])


def test_format_setuser_quotes_each_rule_for_redis_cli() -> None:
    assert format_setuser("ana", ["on", "(+get ~a:*)", "#ab"]) == \
        "ACL SETUSER ana on '(+get ~a:*)' '#ab'"


# -- grants and roles ------------------------------------------------------------------------

@pytest.mark.parametrize("pattern", ["*", "ioc-*", "alerts", "a?c", "a.b_c-d*", "x" * 128 + "*"])
def test_a_queue_pattern_may_end_in_a_star(pattern: str) -> None:
    assert check_queue_pattern(pattern) == pattern


@pytest.mark.parametrize("pattern", ["", "*-feed", "a*b", "**", "-x", "a b", "a{b}", "x" * 129,
                                     7])
def test_a_star_anywhere_but_the_end_is_refused(pattern: object) -> None:
    with pytest.raises(ValidationError) as caught:
        check_queue_pattern(pattern)  # type: ignore[arg-type]
    assert str(caught.value) == (f"invalid queue pattern {pattern!r}: use queue-name "
                                 "characters and '?', with '*' only at the end (e.g. 'ioc-*', "
                                 "'alerts', '*'); a '*' elsewhere would let the Redis ACL match "
                                 "keys of other queues")


def test_a_grant_covers_its_action_on_matching_queues_and_their_partitions() -> None:
    publish = Grant("publish", "ioc-*")
    assert publish.covers("publish", "ioc-feed") and publish.covers("publish", "ioc-feed#3.1")
    assert not publish.covers("publish", "threat-intel") and not publish.covers("consume",
                                                                                 "ioc-feed")
    assert publish.covers("stats", "ioc-feed") and not publish.covers("read_audit", "ioc-feed")
    assert not publish.covers("publish", "x#ioc-feed")
    exact = Grant("consume", "alerts")
    assert exact.covers("consume", "alerts#2") and not exact.covers("consume", "alerts2")
    assert Grant("stats", "*").covers("stats", "q") and not Grant("stats").covers("publish", "q")
    assert Grant("read_audit").covers("read_audit", "anything")
    assert Grant("read_audit", "ioc-*").covers("read_audit", "threat-x")  # not queue-bound
    assert not Grant("manage").covers("read_audit", "q")
    with pytest.raises(ValidationError) as caught:
        Grant("delete", "q")  # type: ignore[arg-type]
    assert str(caught.value) == ("unknown action 'delete': use one of publish, consume, manage, "
                                 "stats, read_audit")


def test_a_role_names_its_patterns_per_action_and_describes_itself() -> None:
    role = Role("hunter", (Grant("publish", "ioc-*"), Grant("consume", "ioc-*"),
                           Grant("consume", "alerts"), Grant("read_audit")))
    assert role.patterns("publish") == ("ioc-*",)
    assert role.patterns("consume") == ("ioc-*", "alerts")
    assert role.patterns("stats") == ("ioc-*", "alerts")  # implied, without repeats
    assert role.patterns("manage") == ()
    assert role.reads_audit and not Role("x").reads_audit
    assert role.describe() == "publish ioc-*; consume ioc-*, alerts; read_audit"
    assert Role("nobody").describe() == "none"
    assert role.allows("consume", "alerts") and not role.allows("manage", "alerts")
    assert type(Role("listed", [Grant("stats")]).grants) is tuple  # type: ignore[arg-type]


def test_without_a_queue_a_check_asks_about_the_queue_named_star() -> None:
    policy = AccessPolicy.from_dict({"one-letter": {"stats": ["?"]}}, builtin=False)
    assert policy.role("one-letter").allows("stats") and policy.allows("one-letter", "stats")
    policy.check("one-letter", "stats")  # "?" matches the one-character name "*"
    assert not policy.allows("one-letter", "stats", "ab")


def test_the_default_prefix_is_pn() -> None:
    assert grants_of(POLICY, "auditor", "aud") == grants_of(POLICY, "auditor", "aud",
                                                            prefix="pn")
    assert describe_acl(POLICY, "auditor", "aud") == describe_acl(POLICY, "auditor", "aud",
                                                                  prefix="pn")
    assert "%R~pn:queues" in describe_acl(POLICY, "auditor", "aud")
    assert "%R~team:queues" in describe_acl(POLICY, "auditor", "aud", prefix="team")
    assert render_all(POLICY, {"aud": ("auditor", "pw")}) == {
        "aud": render_acl(POLICY, "auditor", "aud", "pw", prefix="pn")}


@pytest.mark.parametrize("name", ["", "1role", "a b", "x" * 65, None])
def test_a_role_name_must_be_an_identifier(name: object) -> None:
    with pytest.raises(ValidationError, match="invalid role name"):
        Role(name)  # type: ignore[arg-type]


def test_a_role_table_becomes_grants_in_action_order() -> None:
    role = Role.from_table("r", {"read_audit": True, "stats": ["*"], "publish": ["a", "b*"]})
    assert [(g.action, g.queue_pattern) for g in role.grants] == [
        ("publish", "a"), ("publish", "b*"), ("stats", "*"), ("read_audit", "*")]
    assert Role.from_table("r", {"read_audit": False}).grants == ()
    assert Role.from_table("r", {"consume": ("q",)}).patterns("consume") == ("q",)


@pytest.mark.parametrize(("table", "message"), [
    (["publish"], "invalid setting 'roles.r': expected a table, got list"),
    ({"delete": ["q"]}, "invalid setting 'roles.r.delete': unknown field (allowed: publish, "
                        "consume, manage, stats, read_audit)"),
    ({"publish": "ioc-*"}, "invalid setting 'roles.r.publish': 'ioc-*' is not a list (allowed: "
                           "a list of queue patterns, e.g. [\"ioc-*\"])"),
    ({"consume": 3}, "invalid setting 'roles.r.consume': 3 is not a list (allowed: a list of "
                     "queue patterns, e.g. [\"ioc-*\"])"),
    ({"read_audit": "yes"}, "invalid setting 'roles.r.read_audit': 'yes' is not a boolean "
                            "(allowed: true, false)")])
def test_a_bad_role_table_names_the_field_and_the_allowed_values(table: object,
                                                                 message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Role.from_table("r", table)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_a_bad_pattern_or_role_name_in_a_table_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"'roles.r.stats': invalid queue pattern 'a\*b'"):
        Role.from_table("r", {"stats": ["a*b"]})
    with pytest.raises(ConfigError, match=r"'roles.1r': invalid role name '1r'"):
        Role.from_table("1r", {})


def test_a_policy_adds_its_roles_to_the_builtin_ones_or_replaces_them() -> None:
    policy = AccessPolicy.from_dict({"analyst": {"stats": ["*"]}, "pager": {}})
    assert set(policy.roles) == {*BUILTIN_ROLES, "pager"}
    assert policy.role("analyst").describe() == "stats *"
    assert set(AccessPolicy.from_dict({"pager": {}}, builtin=False).roles) == {"pager"}
    assert set(AccessPolicy().roles) == set(BUILTIN_ROLES)
    with pytest.raises(ConfigError) as caught:
        AccessPolicy.from_dict(["analyst"])  # type: ignore[arg-type]
    assert str(caught.value) == "invalid setting 'roles': expected a table, got list"
    with pytest.raises(ConfigError) as caught:
        policy.role("ghost")
    assert str(caught.value) == ("invalid setting 'role': unknown role 'ghost' (allowed: admin, "
                                 "analyst, auditor, enricher, pager, responder)")


@pytest.mark.parametrize(("action", "queue", "what"), [
    ("manage", "ioc-feed", "manage 'ioc-feed'"), ("stats", "alerts", "read the statistics of "
                                                                     "'alerts'"),
    ("publish", "alerts", "publish to 'alerts'"), ("consume", "alerts", "consume 'alerts'"),
    ("read_audit", "*", "read the audit trail")])
def test_a_denial_says_what_was_refused_and_what_the_role_holds(action: str, queue: str,
                                                                what: str) -> None:
    policy = AccessPolicy()
    with pytest.raises(PermissionDeniedError) as caught:
        policy.check("enricher", action, queue)
    assert str(caught.value) == (f"role 'enricher' may not {what} (grants: publish ioc-*, "
                                 "threat-*; consume ioc-*)")
    error: Any = caught.value
    assert (error.role, error.action, error.queue) == (
        "enricher", action, queue)
    policy.check("enricher", "consume", "ioc-feed")
    assert policy.allows("enricher", "stats", "ioc-feed")
    assert not policy.allows("enricher", "stats", "alerts")
    with pytest.raises(ValidationError) as caught_action:
        policy.check("enricher", "delete", "q")
    assert str(caught_action.value) == (f"unknown action 'delete': use one of "
                                        f"{', '.join(ACTIONS)}")


# -- applying the rules on Redis -------------------------------------------------------------

def test_apply_acl_sets_every_user_and_reports_whether_acl_save_worked(
        own_server: object) -> None:
    client = own_server.client()  # type: ignore[attr-defined]
    rules = render_all(POLICY, {"ana-x": ("analyst", "pw1"), "aud-x": ("auditor", "pw2")})
    assert apply_acl(client, rules) == AclApplied(("ana-x", "aud-x"), saved=False)
    assert {"ana-x", "aud-x"} <= {u.decode() if isinstance(u, bytes) else u
                                  for u in client.acl_users()}
    applied = apply_acl(client, rules, save=True)  # this server has no aclfile
    assert applied.users == ("ana-x", "aud-x") and applied.saved is False
    assert applied.save_error is not None and "acl file" in applied.save_error.lower()
    with pytest.raises(ConfigError) as caught:
        apply_acl(client, {"bad-x": ["on", "+nonsense-command"]})
    assert str(caught.value).startswith("invalid setting 'acl.bad-x': Redis refused the rules: ")
    assert isinstance(caught.value.__cause__, redis.ResponseError)
    client.close()


def test_apply_acl_saves_the_users_to_the_server_s_acl_file(tmp_path: Path) -> None:
    aclfile = tmp_path / "users.acl"
    aclfile.write_text("")
    server = RedisServer("--aclfile", str(aclfile)).start()
    try:
        client = server.client()
        applied = apply_acl(client, render_all(POLICY, {"ana-y": ("analyst", "pw")}), save=True)
        assert applied == AclApplied(("ana-y",), saved=True, save_error=None)
        assert "user ana-y on" in aclfile.read_text()
        client.close()
    finally:
        server.close()
