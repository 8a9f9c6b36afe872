"""Roles and permissions, checked twice: here before a call, and by Redis ACLs on the server.

A ``Role`` holds ``Grant`` s: an action (``publish``, ``consume``, ``manage``, ``stats``,
``read_audit``) on a queue-name glob. ``AccessPolicy.check`` raises ``PermissionDeniedError``
before anything reaches Redis; ``render_acl`` turns the same role into ``ACL SETUSER`` rules
(Redis >= 7.0 selectors) so a role's own credentials cannot reach another queue's keys even
with raw commands. Facts the rules rely on, checked on redis-server 7.0:

- Braces are literal in Redis globs, so ``~pn:{ioc-*}:*`` matches every key of every
  ``ioc-`` queue. A ``*`` may only end a queue pattern: in ``{*-feed}`` it could run past
  the hash tag into a caller-chosen dedup key (``pn:{alerts}:dedup:x-feed}:y``).
- FCALL needs read *and* write on every key it is given; the commands a function runs
  are checked one by one against the caller's ACL, so the selectors below list exactly
  the commands our functions run, each on the keys it needs. No role holds SCRIPT, EVAL
  or FUNCTION: none can run code of its own (an infinite loop freezes Redis).
- XADD, XTRIM, ZADD, SADD, HSET, HDEL, EXPIRE need write only (``%W~``): producers append
  to streams and to the audit trail without being able to read them back. XLEN, ZCARD and
  EXISTS accept either permission. HINCRBY and ``SET ... GET`` need both.
- PSUBSCRIBE patterns are compared literally with the ACL's channel patterns.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal, get_args

import redis

from ..backend.keyspace import check_queue_name
from ..errors import ConfigError, PermissionDeniedError, ValidationError

Action = Literal["publish", "consume", "manage", "stats", "read_audit"]
ACTIONS: tuple[str, ...] = get_args(Action)
QUEUE_ACTIONS = ("publish", "consume", "manage", "stats")

_PATTERN = re.compile(r"^(\*|[A-Za-z0-9?][A-Za-z0-9._\-?]{0,127}\*?)$")
_ROLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@\-]{0,63}$")
_VERBS = {"publish": "publish to", "consume": "consume", "manage": "manage",
          "stats": "read the statistics of"}


def check_queue_pattern(pattern: str) -> str:
    """Return ``pattern`` if it is a usable queue glob, else raise ``ValidationError``."""
    if not isinstance(pattern, str) or not _PATTERN.fullmatch(pattern):
        raise ValidationError(
            f"invalid queue pattern {pattern!r}: use queue-name characters and '?', with '*' "
            "only at the end (e.g. 'ioc-*', 'alerts', '*'); a '*' elsewhere would let the "
            "Redis ACL match keys of other queues")
    return pattern


@dataclass(frozen=True)
class Grant:
    """Permission to do ``action`` on the queues whose name matches ``queue_pattern``."""

    action: Action
    queue_pattern: str = "*"

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValidationError(
                f"unknown action {self.action!r}: use one of {', '.join(ACTIONS)}")
        check_queue_pattern(self.queue_pattern)

    def covers(self, action: str, queue: str) -> bool:
        """True when this grant allows ``action`` on ``queue``.

        Publishing, consuming and managing a queue include reading its statistics; the
        partitions ``<queue>#<i>`` of a queue follow the queue's grants.
        """
        if action == "read_audit":
            return self.action == "read_audit"
        same = self.action == action or (action == "stats" and self.action in QUEUE_ACTIONS)
        return same and fnmatchcase(queue.split("#", 1)[0], self.queue_pattern)


@dataclass(frozen=True)
class Role:
    """A named set of grants."""

    name: str
    grants: tuple[Grant, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _ROLE_NAME.fullmatch(self.name):
            raise ValidationError(f"invalid role name {self.name!r}: use letters, digits, _ -")
        object.__setattr__(self, "grants", tuple(self.grants))

    def allows(self, action: str, queue: str = "*") -> bool:
        """True when some grant of this role covers ``action`` on ``queue``."""
        return any(g.covers(action, queue) for g in self.grants)

    def patterns(self, action: str) -> tuple[str, ...]:
        """The queue patterns granted for ``action`` (publish/consume/manage imply stats)."""
        wanted = QUEUE_ACTIONS if action == "stats" else (action,)
        return tuple(dict.fromkeys(g.queue_pattern for g in self.grants if g.action in wanted))

    @property
    def reads_audit(self) -> bool:
        """True when this role may read the audit trail."""
        return self.allows("read_audit")

    def describe(self) -> str:
        """The grants as text, e.g. ``publish ioc-*, threat-*; read_audit``."""
        parts = []
        for action in ACTIONS:
            own = [g.queue_pattern for g in self.grants if g.action == action]
            if own:
                parts.append(action if action == "read_audit" else f"{action} {', '.join(own)}")
        return "; ".join(parts) or "none"

    @classmethod
    def from_table(cls, name: str, table: Mapping[str, Any]) -> Role:
        """Build a role from its settings table: ``publish = ["ioc-*"]``, ``read_audit = true``."""
        if not isinstance(table, Mapping):
            raise ConfigError(f"roles.{name}", f"expected a table, got {type(table).__name__}")
        unknown = set(table) - set(ACTIONS)
        if unknown:
            raise ConfigError(f"roles.{name}.{sorted(unknown)[0]}", "unknown field",
                              ", ".join(ACTIONS))
        grants: list[Grant] = []
        for action in QUEUE_ACTIONS:
            patterns = table.get(action, [])
            if isinstance(patterns, str) or not isinstance(patterns, Sequence):
                raise ConfigError(f"roles.{name}.{action}", f"{patterns!r} is not a list",
                                  'a list of queue patterns, e.g. ["ioc-*"]')
            for pattern in patterns:
                try:
                    grants.append(Grant(action, pattern))  # type: ignore[arg-type]
                except ValidationError as exc:
                    raise ConfigError(f"roles.{name}.{action}", str(exc)) from None
        audit = table.get("read_audit", False)
        if not isinstance(audit, bool):
            raise ConfigError(f"roles.{name}.read_audit", f"{audit!r} is not a boolean",
                              "true, false")
        if audit:
            grants.append(Grant("read_audit"))
        try:
            return cls(name, tuple(grants))
        except ValidationError as exc:
            raise ConfigError(f"roles.{name}", str(exc)) from None


def _role(name: str, **actions: Any) -> Role:
    return Role.from_table(name, actions)


BUILTIN_ROLES: Mapping[str, Role] = {r.name: r for r in (
    _role("analyst", publish=["ioc-*", "threat-*"], consume=["ioc-*", "threat-*"]),
    _role("enricher", consume=["ioc-*"], publish=["ioc-*", "threat-*"]),
    _role("responder", consume=["alerts*"], publish=["alerts*"]),
    _role("auditor", stats=["*"], read_audit=True),
    _role("admin", publish=["*"], consume=["*"], manage=["*"], read_audit=True),
)}


@dataclass(frozen=True)
class AccessPolicy:
    """The roles of a deployment; ``check`` is the client-side gate."""

    roles: Mapping[str, Role] = field(default_factory=lambda: dict(BUILTIN_ROLES))

    @classmethod
    def from_dict(cls, roles: Mapping[str, Any], *, builtin: bool = True) -> AccessPolicy:
        """Build from the ``[roles.<name>]`` tables; these replace built-ins of the same name."""
        if not isinstance(roles, Mapping):
            raise ConfigError("roles", f"expected a table, got {type(roles).__name__}")
        table: dict[str, Role] = dict(BUILTIN_ROLES) if builtin else {}
        for name, spec in roles.items():
            table[name] = Role.from_table(name, spec)
        return cls(table)

    def role(self, name: str) -> Role:
        """The role called ``name``; ``ConfigError`` naming the known roles otherwise."""
        try:
            return self.roles[name]
        except KeyError:
            raise ConfigError("role", f"unknown role {name!r}",
                              ", ".join(sorted(self.roles))) from None

    def allows(self, role: str, action: str, queue: str = "*") -> bool:
        """True when ``role`` may do ``action`` on ``queue``."""
        return self.role(role).allows(action, queue)

    def check(self, role: str, action: str, queue: str = "*") -> None:
        """Raise ``PermissionDeniedError`` unless ``role`` may do ``action`` on ``queue``."""
        if action not in ACTIONS:
            raise ValidationError(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
        granted = self.role(role)
        if granted.allows(action, queue):
            return
        what = ("read the audit trail" if action == "read_audit"
                else f"{_VERBS[action]} {queue!r}")
        error = PermissionDeniedError(
            f"role {role!r} may not {what} (grants: {granted.describe()})")
        error.role, error.action, error.queue = role, action, queue  # type: ignore[attr-defined]
        raise error


# -- Redis ACL rules ---------------------------------------------------------------------------
#
# Rows: (scope, commands, key/channel templates, what needs them). Scope "all" applies to
# every role; a queue scope is expanded once per granted pattern: {q} = "<prefix>:{<pattern>}"
# (and "<prefix>:{<pattern>#*}" for the partitions of an exact name), {n} = pattern,
# {p} = the prefix, {u} = the ACL user (its own audit streams and heartbeats). Rows with
# the same commands are merged into one selector. Application roles - admin included -
# hold FCALL and never SCRIPT, EVAL*, FUNCTION, CONFIG, FLUSH*, DEBUG, SHUTDOWN or MODULE:
# only the operator who runs ``phantom-notebook deploy`` loads code. FCALL needs read and
# write on every key it is given, and every command a function runs is checked against
# the caller's ACL again, so each role also holds exactly the commands its functions run.

_AUDITS = "%W~{p}:{{{n}}}:audit:{u}"  # its own audit stream of each granted queue
_ROWS: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("all", "+fcall_ro", (), "connect: FCALL_RO pn1_version (the library build check)"),
    ("all", "+acl|whoami", (), "connect: the user name that names its audit streams"),
    ("all", "+smembers +sismember +scard", ("%R~{p}:queues",), "queue discovery"),
    ("all", "+xadd", ("%W~{p}:audit:{u}",), "audit: its own global stream (denials, changes)"),
    ("all", "+hgetall", ("%R~{p}:backup:last",), "health: the age of the last good backup"),
    ("read_audit", "+xrange +xrevrange +xread +xlen +xinfo|stream",
     ("%R~{p}:audit:*", "%R~{p}:{{*}}:audit:*"), "verify_audit, audit anchor"),
    ("read_audit", "+scan", (), "finding every audit stream"),
    ("audit_maintain", "+fcall", ("~{p}:audit:*", "~{p}:{{*}}:audit:*"),
     "audit checkpoint (pn1_audit_append)"),
    ("audit_maintain", "+xadd +xrevrange +xtrim", ("~{p}:audit:*", "~{p}:{{*}}:audit:*"),
     "audit checkpoint and retention"),
    ("stats", "+hget +hgetall +xlen +zcard +xinfo|groups", ("%R~{q}:*",), "stats, health"),
    ("stats", "+xrange +xrevrange", ("%R~{q}:trace", "%R~{q}:dlq"),
     "traces; dead letters read-only (the dashboard; payloads stay sealed)"),
    ("stats", "+smembers +hgetall", ("%R~{p}:hb-users", "%R~{p}:hb:*"), "workers' heartbeats"),
    ("publish", "+fcall", ("~{q}:*",), "pn1_publish (keys of its queues)"),
    ("publish", "+xadd +xlen", ("%W~{q}:s:*",), "pn1_publish: new messages, the depth check"),
    ("publish", "+xadd", ("%W~{q}:trace",), "pn1_publish: published events"),
    ("publish", "+zadd +zcard +zrem", ("%W~{q}:delayed",),
     "pn1_publish: delayed messages; pn1_join: a decided group's deadline message"),
    ("publish", "+hgetall +hget +hmget", ("%R~{q}:res:*",),
     "the results and progress of its requests"),
    ("publish", "+blmove", ("~{q}:res:*:w",), "waiting for a request's result"),
    ("publish", "+exists +hget +hmget +hset +hsetnx +hincrby +pexpire", ("~{q}:join:*",),
     "pn1_join: groups whose callback goes here (created, and members recorded by the "
     "members' workers, which enqueue the callback)"),
    ("publish", "+hget +hmget +hset +hsetnx +pexpire", ("~{q}:dedup:*",),
     "pn1_publish: dedup windows"),
    ("publish", "+hincrby +expire", ("~{q}:m:*",), "pn1_publish: metrics"),
    ("publish", "+xadd", (_AUDITS,), "pn1_publish: its audit entries"),
    ("publish", "+publish", ("&{p}:ps:{n}:*",), "pub/sub queues"),
    ("consume", "+fcall", ("~{q}:*",), "pn1_fetch, pn1_settle (keys of its queues)"),
    ("consume", "+xreadgroup +xautoclaim +xclaim +xpending +xack +xdel +xadd +xlen "
                "+xinfo|groups +exists", ("~{q}:s:*",),
     "pn1_fetch (read, reclaim, promote), pn1_settle (ack, retry), leases"),
    ("consume", "+zrangebyscore +zrange +zrem +zadd", ("~{q}:delayed",),
     "pn1_fetch: promotion; pn1_settle: retries"),
    ("consume", "+xadd", ("%W~{q}:dlq",), "pn1_fetch, pn1_settle: dead letters"),
    ("consume", "+xadd", ("%W~{q}:trace",), "pn1_fetch, pn1_settle: lifecycle events"),
    ("consume", "+hincrby +expire", ("~{q}:m:*",), "pn1_fetch, pn1_settle: metrics"),
    ("consume", "+hset", ("%W~{q}:breakers",), "circuit-breaker state"),
    ("consume", "+hget", ("%R~{q}:meta",), "pn1_fetch: paused queues and groups"),
    ("consume", "+hmget", ("%R~{q}:cancel",), "running handlers learn of cancels"),
    ("consume", "+hget +hset", ("~{q}:limits",), "pn1_fetch: rate limits (GCRA state)"),
    ("consume", "+zadd +zrem +zremrangebyscore +zcard", ("~{q}:running:*",),
     "pn1_fetch, pn1_settle, lease renewal: global concurrency"),
    ("consume", "+exists +set", ("~{q}:done:*",), "idempotent() handlers"),
    ("consume", "+set +pttl", ("~{q}:reclaim:*",),
     "one reclaim of stale deliveries per queue and group per visibility timeout / 4"),
    ("consume", "+hset +pexpire +del +rpush", ("%W~{q}:res:*",),
     "pn1_settle: requests' results (and their wake-up lists); handlers' progress"),
    ("consume", "+hgetall +hget +hmget +hsetnx +hset +hincrby", ("~{q}:join:*",),
     "a callback reads its group's results; pn1_join: a group's deadline"),
    ("consume", "+hmget +hset +hdel +pexpire", ("~{q}:seen:*",),
     "pn1_claim, pn1_settle: replay refusal (publishers hold no grant: they cannot erase)"),
    ("consume", "+xadd", (_AUDITS,), "pn1_settle: its audit entries"),
    ("consume", "+hset +hdel +expire", ("%W~{p}:hb:{u}",), "its own workers' heartbeats"),
    ("consume", "+sadd", ("%W~{p}:hb-users",), "naming its heartbeat hash for readers"),
    ("subscribe", "+psubscribe +subscribe +unsubscribe +punsubscribe", ("&{p}:ps:{n}:*",),
     "pub/sub queues"),
    ("manage", "+fcall", ("~{q}:*",),
     "pn1_replay, pn1_reseal, pn1_trim_broadcast, pn1_fire (a schedule's tick)"),
    ("manage", "+hget +hset +hdel +hgetall", ("~{q}:sched", "~{q}:fired"),
     "schedules: their specs; pn1_fire claims a tick (HGET + HSET of the last fired)"),
    ("manage", "+xrange +xrevrange +xread +xlen +xadd +xdel +xtrim +xsetid +xinfo|stream "
               "+xinfo|groups +xinfo|consumers +xgroup|create +xgroup|destroy +xgroup|setid "
               "+xgroup|delconsumer +xpending +xack +xclaim +xautoclaim +xreadgroup "
               "+hget +hgetall +hset +hsetnx +hdel +hincrby +hlen "
               "+zrange +zrangebyscore +zcard +zadd +zrem +zscore +zscan +get +set +incr "
               "+exists +type +del +unlink +expire +pexpire +persist +ttl +pttl +copy +hscan "
               "+hmget", ("~{q}:*",),
     "declare, consumer groups, DLQ replay/purge, rotation, repair, retention, backup "
     "(pn1_snapshot copies), restore (pn1_restore)"),
    ("manage", "+hset +hincrby", ("~{p}:backup:last",), "backup: recording the last good one"),
    ("manage", "+sadd +srem", ("%W~{p}:queues",), "declaring queues (the registry)"),
    ("manage", "+smembers +srem +hgetall +hdel +del", ("~{p}:hb:*", "~{p}:hb-users"),
     "removing stale heartbeats"),
)

# every role: connection handshake (AUTH, HELLO, SELECT, PING, CLIENT SETNAME ...) but no
# CLIENT KILL/LIST/PAUSE (@admin/@dangerous) and no key-name leaks through client tracking
_BASE = ("-@all", "+@connection", "-@admin", "-@dangerous", "-client|tracking",
         "-client|caching", "+time")
#: what no application role may ever hold (tests check every rendered role)
FORBIDDEN = ("script", "eval", "evalsha", "eval_ro", "evalsha_ro", "function", "config",
             "flushall", "flushdb", "debug", "shutdown", "module", "acl|setuser", "keys")


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def _scopes(role: Role, queues: Iterable[str]) -> dict[str, tuple[str, ...]]:
    scopes = {action: role.patterns(action) for action in QUEUE_ACTIONS}
    consumed = scopes["consume"]
    known = [q for q in queues if any(fnmatchcase(q, p) for p in consumed)]
    scopes["subscribe"] = tuple(dict.fromkeys([*consumed, *known]))
    scopes["read_audit"] = ("*",) if role.reads_audit else ()
    # checkpoints and retention of every user's trail: for auditors who manage everything
    scopes["audit_maintain"] = ("*",) if role.reads_audit and "*" in scopes["manage"] else ()
    scopes["all"] = ("*",)
    return scopes


def grants_of(policy: AccessPolicy, role: str, username: str, *, prefix: str = "pn",
              queues: Iterable[str] = ()) -> list[tuple[str, tuple[str, ...], str]]:
    """What ``username`` with ``role`` holds: (commands, key/channel patterns, why) rows."""
    granted = policy.role(role)
    p, u = _glob_escape(prefix), _glob_escape(username)
    scopes = _scopes(granted, [check_queue_name(q) for q in queues])
    out: list[tuple[str, tuple[str, ...], str]] = []
    for scope, commands, templates, why in _ROWS:
        for pattern in scopes[scope]:
            tags = [pattern] if pattern.endswith("*") else [pattern, f"{pattern}#*"]
            targets: list[str] = []
            for template in templates:
                for tag in tags if ("{q}" in template or "{n}}}" in template) else tags[:1]:
                    target = template.format(p=p, q=f"{p}:{{{tag}}}", n=tag, u=u)
                    if target not in targets:
                        targets.append(target)
            row = (commands, tuple(targets), why)
            if row not in out:
                out.append(row)
    return out


def render_acl(policy: AccessPolicy, role: str, username: str, password: str | None = None,
               *, prefix: str = "pn", queues: Iterable[str] = (),
               allow_nopass: bool = False,
               redis_version: tuple[int, ...] = (7, 0)) -> list[str]:
    """The ``ACL SETUSER <username>`` rules that let ``username`` do what ``role`` grants.

    The password is written as ``#<sha256>`` so rendered rules never contain it;
    ``nopass`` only with ``allow_nopass=True``. ``queues`` are known queue names: PSUBSCRIBE
    patterns match ACL channels literally, so live subscribers of those queues get
    ``&<prefix>:ps:<queue>:*`` besides the granted patterns. Needs Redis >= 7.0.
    """
    if not isinstance(username, str) or not _USERNAME.fullmatch(username):
        raise ValidationError(f"invalid ACL username {username!r}: use letters, digits, . _ @ -")
    if password is None and not allow_nopass:
        raise ValidationError(f"user {username!r} needs a password (or allow_nopass=True)")
    if password is not None and not password:
        raise ValidationError(f"user {username!r}: the password must not be empty")
    secret = "nopass" if password is None else "#" + hashlib.sha256(password.encode()).hexdigest()
    rows = grants_of(policy, role, username, prefix=prefix, queues=queues)
    plain: list[str] = []
    selectors: dict[str, list[str]] = {}
    for commands, targets, _ in rows:
        if not targets:  # commands without keys (FCALL_RO of the version, WHOAMI, SCAN)
            plain += [c for c in commands.split() if c not in plain]
            continue
        merged = selectors.setdefault(commands, [])
        merged += [t for t in targets if t not in merged]
    scopes = _scopes(policy.role(role), queues)
    rules = ["reset", "on", secret, "resetkeys", "resetchannels", *_BASE, *plain]
    if scopes["publish"]:  # durability: FCALL then WAIT (WAITAOF: Redis >= 7.2) on one connection
        rules += ["+wait", "+waitaof"] if redis_version >= (7, 2) else ["+wait"]
    rules += [f"({commands} {' '.join(targets)})" for commands, targets in selectors.items()]
    return rules


def describe_acl(policy: AccessPolicy, role: str, username: str, *, prefix: str = "pn",
                 queues: Iterable[str] = ()) -> str:
    """A readable table of what ``username`` holds and which function needs each grant."""
    lines = [f"# {username} (role {role}): {policy.role(role).describe()}"]
    for commands, targets, why in grants_of(policy, role, username, prefix=prefix,
                                            queues=queues):
        lines.append(f"#   {commands:<54} {' '.join(targets) or '(no keys)':<40} {why}")
    return "\n".join(lines)


def render_all(policy: AccessPolicy, users: Mapping[str, tuple[str, str | None]], *,
               prefix: str = "pn", queues: Iterable[str] = (), allow_nopass: bool = False,
               redis_version: tuple[int, ...] = (7, 0)) -> dict[str, list[str]]:
    """Rules for every ``{username: (role, password)}``, keyed by username."""
    known = list(queues)
    return {name: render_acl(policy, role, name, password, prefix=prefix, queues=known,
                             allow_nopass=allow_nopass, redis_version=redis_version)
            for name, (role, password) in users.items()}


def format_setuser(username: str, rules: Sequence[str]) -> str:
    """One ``ACL SETUSER`` line, quoted so it can be pasted into ``redis-cli``."""
    return " ".join(["ACL", "SETUSER", username, *(shlex.quote(r) for r in rules)])


@dataclass(frozen=True)
class AclApplied:
    """What ``apply_acl`` did: the users set, and whether ``ACL SAVE`` persisted them."""

    users: tuple[str, ...]
    saved: bool
    save_error: str | None = None


def apply_acl(client: redis.Redis, rules: Mapping[str, Sequence[str]], *,
              save: bool = False) -> AclApplied:
    """Install ``{username: rules}`` with ``ACL SETUSER`` (each user atomically).

    With ``save=True`` also runs ``ACL SAVE``; a server without an ``aclfile`` refuses it,
    which is reported in ``save_error`` rather than raised (the users are live either way,
    until the server restarts).
    """
    conn: Any = client  # redis-py leaves execute_command untyped
    done: list[str] = []
    for username, user_rules in rules.items():
        try:
            conn.execute_command("ACL", "SETUSER", username, *user_rules)
        except redis.ResponseError as exc:
            raise ConfigError(f"acl.{username}", f"Redis refused the rules: {exc}") from exc
        done.append(username)
    if not save:
        return AclApplied(tuple(done), saved=False)
    try:
        conn.execute_command("ACL", "SAVE")
    except redis.ResponseError as exc:
        return AclApplied(tuple(done), saved=False, save_error=str(exc))
    return AclApplied(tuple(done), saved=True)


__all__ = [
    "ACTIONS",
    "BUILTIN_ROLES",
    "AccessPolicy",
    "AclApplied",
    "Action",
    "Grant",
    "Role",
    "FORBIDDEN",
    "apply_acl",
    "check_queue_pattern",
    "describe_acl",
    "grants_of",
    "format_setuser",
    "render_acl",
    "render_all",
]
