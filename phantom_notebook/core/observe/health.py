"""Health checks with ok / warn / critical, using the spec's default thresholds.

``check_health(mq)`` reads Redis (INFO, depths, metric buckets, breaker states, heartbeats)
in a few pipelined round trips and returns a ``HealthReport`` that renders as HTML in
Jupyter and as text in a terminal. Overall status is the worst check's.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import redis

from ..backend import library
from ..backend.deploy import deployed_builds
from .consumers import read_heartbeats
from .depth import QueueStats
from .integrity import dlq_losses, find_damage, registry_junk
from .metrics import MetricsStore, merge

if TYPE_CHECKING:
    from ..ports import Deployment

OK, WARN, CRITICAL = "ok", "warn", "critical"
_RANK = {OK: 0, WARN: 1, CRITICAL: 2}


@dataclass(frozen=True)
class HealthThresholds:
    """When a check turns warn / critical (defaults: the spec's alert conditions)."""

    ping_warn_ms: float = 50.0
    memory_warn_ratio: float = 0.80
    memory_critical_ratio: float = 0.95
    depth_warn: int = 10_000
    depth_critical: int = 100_000
    error_rate_warn: float = 0.05
    error_rate_critical: float = 0.20
    latency_warn_ms: float = 5_000.0
    latency_critical_ms: float = 30_000.0
    dlq_growth_warn: int = 0
    dlq_growth_critical: int = 100
    stale_consumer_s: float = 30.0
    backlog_growth_ratio: float = 1.10
    #: the last good backup (``phantom-notebook backup``) older than this is a WARN
    backup_max_age_s: float = 26 * 3600.0


@dataclass(frozen=True)
class HealthCheck:
    """One check's verdict."""

    name: str
    status: str
    target: str
    value: str
    message: str


@dataclass
class HealthReport:
    """The verdicts of every check, at one moment."""

    checks: list[HealthCheck]
    checked_at: float = field(default_factory=time.time)
    window_s: float = 300.0

    @property
    def status(self) -> str:
        """The worst status of all checks."""
        return max((c.status for c in self.checks), key=_RANK.__getitem__, default=OK)

    @property
    def exit_code(self) -> int:
        """0 ok, 1 warn, 2 critical — for cron and CI."""
        return _RANK[self.status]

    def problems(self) -> list[HealthCheck]:
        """The checks that are not ok, worst first."""
        return sorted((c for c in self.checks if c.status != OK),
                      key=lambda c: -_RANK[c.status])

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-friendly)."""
        return {"status": self.status, "checked_at": self.checked_at,
                "window_s": self.window_s, "checks": [asdict(c) for c in self.checks]}

    def __str__(self) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.checked_at))
        lines = [f"health: {self.status.upper()} ({stamp}, window {self.window_s:.0f} s)"]
        for c in sorted(self.checks, key=lambda c: (-_RANK[c.status], c.name, c.target)):
            lines.append(f"  [{c.status:^8}] {c.name:<18} {c.target:<24} {c.value:>12}  "
                         f"{c.message}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colour = {OK: "#1a7f37", WARN: "#9a6700", CRITICAL: "#cf222e"}
        rows = "".join(
            f"<tr><td style='color:{colour[c.status]};font-weight:600'>{c.status.upper()}</td>"
            f"<td>{html.escape(c.name)}</td><td>{html.escape(c.target)}</td>"
            f"<td style='text-align:right'>{html.escape(c.value)}</td>"
            f"<td>{html.escape(c.message)}</td></tr>"
            for c in sorted(self.checks, key=lambda c: (-_RANK[c.status], c.name, c.target)))
        stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.checked_at))
        return (f"<div><h4 style='margin:0 0 6px 0'>Health: <span style='color:"
                f"{colour[self.status]}'>{self.status.upper()}</span> "
                f"<small style='color:#57606a'>{stamp}, window {self.window_s:.0f} s</small>"
                "</h4><table><thead><tr><th>status</th><th>check</th><th>target</th>"
                f"<th>value</th><th>detail</th></tr></thead><tbody>{rows}</tbody></table></div>")


def _grade(value: float, warn: float, critical: float) -> str:
    """Critical above ``critical``, warn above ``warn`` (the spec: "exceeds")."""
    return CRITICAL if value > critical else WARN if value > warn else OK


HealthRule = Callable[["Deployment", list[str], HealthThresholds], Iterable[HealthCheck]]
_RULES: dict[str, HealthRule] = {}


def health_rule(name: str) -> Callable[[HealthRule], HealthRule]:
    """Register ``rule(mq, queues, thresholds) -> checks`` with every later health check.

    The extension point for a team's own verdicts (a feed that has not published for an
    hour, a partner queue's backlog): ``@pn.health_rule("feed freshness")``. A rule that
    raises becomes one WARN check naming it, never a failed health run. Registering a name
    again replaces the rule.
    """
    def register(rule: HealthRule) -> HealthRule:
        _RULES[name] = rule
        return rule
    return register


def remove_health_rule(name: str) -> None:
    """Unregister the rule called ``name`` (no error when there is none)."""
    _RULES.pop(name, None)


def _custom(mq: Deployment, names: list[str], t: HealthThresholds) -> list[HealthCheck]:
    out: list[HealthCheck] = []
    for name, rule in list(_RULES.items()):
        try:
            out += list(rule(mq, names, t))
        except Exception as exc:  # noqa: BLE001 - a rule's bug is a finding, not a crash
            out.append(HealthCheck(name, WARN, "rule", "error",
                                   f"the health rule raised {type(exc).__name__}: {exc}"))
    return out


def check_health(mq: Deployment, queues: list[str] | None = None, window_s: float = 300.0,
                 thresholds: HealthThresholds | None = None) -> HealthReport:
    """Run every check against ``mq`` (all known queues unless ``queues`` is given), then
    the rules registered with :func:`health_rule`."""
    t = thresholds or HealthThresholds()
    checks: list[HealthCheck] = []
    started = time.perf_counter()
    try:
        mq.client.ping()
    except Exception as exc:  # noqa: BLE001 - unreachable is a verdict, not a crash
        return HealthReport([HealthCheck("redis", CRITICAL, "server", "down",
                                         f"Redis unreachable: {exc}")], window_s=window_s)
    ping_ms = (time.perf_counter() - started) * 1000
    checks.append(HealthCheck("redis ping", WARN if ping_ms > t.ping_warn_ms else OK, "server",
                              f"{ping_ms:.1f} ms", f"threshold {t.ping_warn_ms:.0f} ms"))
    checks.append(_memory(mq, t))
    names = queues if queues is not None else mq.queues()
    stats = {s.queue: s for s in mq.stats(names)}
    store = MetricsStore(mq)
    for name in names:
        checks += _queue_checks(mq, store, name, stats[name].depth, window_s, t)
        if stats[name].paused or stats[name].paused_groups:
            checks.append(_paused(mq, store, stats[name], window_s))
    checks += _consumers(mq, t)
    checks.append(_backup_age(mq, t))
    checks += _integrity(mq, names)
    checks += _custom(mq, names, t)
    return HealthReport(checks, window_s=window_s)


def _integrity(mq: Deployment, names: list[str]) -> list[HealthCheck]:
    """The library build, damaged streams, vanished dead letters and registry junk."""
    out = []
    builds = deployed_builds(mq.client)
    want = library.build()
    if any(b != want for b in builds):
        found = ", ".join(sorted({str(b) for b in builds}))
        out.append(HealthCheck("functions", CRITICAL, "server", found,
                               f"this client is build {want}: run `phantom-notebook deploy`"))
    try:
        damaged = find_damage(mq, names)
        lost = dlq_losses(mq, names)
    except redis.exceptions.NoPermissionError:
        damaged, lost = [], {}
        out.append(HealthCheck("stream integrity", OK, "server", "not checked",
                               "needs XINFO STREAM (an admin's or the operator's health run)"))
    for d in damaged:
        what = "refuses every new entry" if d.exhausted else "hands out future ids"
        out.append(HealthCheck("stream integrity", CRITICAL, d.key, d.last_id,
                               f"last id {d.ahead_s:,.0f} s in the future: it {what} "
                               "(a raw XADD with an explicit id); run `phantom-notebook "
                               "repair`"))
    for key, n in lost.items():
        out.append(HealthCheck("dead letters lost", CRITICAL, key, f"{n:,}",
                               "dead letters vanished outside replay, purge, retention and "
                               "repair (XADD MAXLEN / XTRIM by a role that writes the DLQ?)"))
    junk = registry_junk(mq.client, mq.keys.queues)
    if junk:
        shown = ", ".join(repr(j[:40]) for j in junk[:3])
        out.append(HealthCheck("queue registry", WARN, mq.keys.queues, f"{len(junk)} junk",
                               f"members that are not queue names are skipped: {shown}"))
    return out


def _paused(mq: Deployment, store: MetricsStore, stats: QueueStats,
            window_s: float) -> HealthCheck:
    """A paused queue (or group) is OK while nothing waits; WARN while its backlog grows."""
    m = merge((store.window(part, window_s) for part in mq.layout(stats.queue).all),
              stats.queue)
    published = m.count("published")
    who = "paused" if stats.paused else f"{', '.join(stats.paused_groups)} paused"
    growing = published > 0 and stats.depth > 0
    return HealthCheck("paused", WARN if growing else OK, stats.queue, who,
                       f"{stats.depth:,} waiting, {published:,} published in the last "
                       f"{window_s:.0f} s" + ("; resume with `phantom-notebook resume "
                                              f"{stats.queue}`" if growing else ""))


def _backup_age(mq: Deployment, t: HealthThresholds) -> HealthCheck:
    """The age of the last good backup (WARN past ``backup_max_age_s``; none is not a WARN:
    a deployment may be backed up by RDB/AOF alone, and health must not page for it)."""
    try:
        last = mq.client.hgetall(mq.keys.backup_last)
    except redis.exceptions.NoPermissionError:
        return HealthCheck("last backup", OK, "server", "not checked",
                           f"needs HGETALL on {mq.keys.backup_last}")
    if not last:
        return HealthCheck("last backup", OK, "server", "none recorded",
                           "no `phantom-notebook backup` has run against this prefix")
    taken = int(last.get(b"time_ms", 0))
    age_s = max(0.0, time.time() - taken / 1000)
    shown = (f"{age_s / 3600:.1f} h" if age_s >= 3600 else f"{age_s / 60:.0f} min")
    detail = (f"{int(last.get(b'messages', 0)):,} messages in "
              f"{last.get(b'path', b'?').decode(errors='replace')}; warn after "
              f"{t.backup_max_age_s / 3600:g} h")
    return HealthCheck("last backup", WARN if age_s > t.backup_max_age_s else OK, "server",
                       shown, detail)


def _memory(mq: Deployment, t: HealthThresholds) -> HealthCheck:
    try:
        info = mq.client.info("memory")
    except Exception as exc:  # noqa: BLE001 - embedded Redis has no INFO; ACLs may refuse it
        if mq.embedded:
            return HealthCheck("redis memory", OK, "server", "embedded",
                               "in-process Redis (fakeredis): memory is the kernel's")
        return HealthCheck("redis memory", OK, "server", "not permitted",
                           f"INFO refused for this user ({type(exc).__name__})")
    used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    if not limit:
        return HealthCheck("redis memory", OK, "server", f"{used / 2**20:.1f} MiB",
                           "no maxmemory set: set one (with noeviction) in production")
    ratio = used / limit
    return HealthCheck("redis memory", _grade(ratio, t.memory_warn_ratio, t.memory_critical_ratio),
                       "server", f"{ratio:.0%}",
                       f"{used / 2**20:.1f} of {limit / 2**20:.0f} MiB; warn at "
                       f"{t.memory_warn_ratio:.0%}")


def _queue_checks(mq: Deployment, store: MetricsStore, queue: str, depth: int,
                  window_s: float, t: HealthThresholds) -> list[HealthCheck]:
    # a partitioned queue's numbers live in its partitions: merge them
    m = merge((store.window(part, window_s) for part in mq.layout(queue).all), queue)
    out = [HealthCheck("queue depth", _grade(depth, t.depth_warn, t.depth_critical), queue,
                       f"{depth:,}", f"warn above {t.depth_warn:,}")]
    delivered = m.count("delivered")
    failures = m.count("retried") + m.count("dead_lettered")
    rate = failures / delivered if delivered else 0.0
    out.append(HealthCheck("error rate", _grade(rate, t.error_rate_warn, t.error_rate_critical),
                           queue, f"{rate:.1%}",
                           f"{failures:,} failed of {delivered:,} delivered in the window"))
    p99 = m.latency("proc", 99)
    if p99 is not None:
        out.append(HealthCheck("processing p99", _grade(p99, t.latency_warn_ms,
                                                        t.latency_critical_ms),
                               queue, f"{p99:,.1f} ms", f"warn above {t.latency_warn_ms:,.0f} ms"))
    unaudited = m.count("audit_failed")
    if unaudited:
        out.append(HealthCheck("audit trail", CRITICAL, queue, f"{unaudited:,} unaudited",
                               "actions went through without their audit entry "
                               "(audit_failure=degrade); `phantom-notebook repair` the stream"))
    dead = m.count("dead_lettered")
    out.append(HealthCheck("dead letters", _grade(dead, t.dlq_growth_warn, t.dlq_growth_critical),
                           queue, f"+{dead:,}", "dead-lettered in the window"))
    for lane, state in mq.breakers(queue).items():
        status = {"open": CRITICAL, "half_open": WARN}.get(str(state.get("state")), OK)
        out.append(HealthCheck("circuit breaker", status, queue, str(state.get("state")),
                               f"lane {lane}"))
    published, acked = m.count("published"), m.count("acked") + dead
    if published and published > max(acked, 1) * t.backlog_growth_ratio and depth > 0:
        out.append(HealthCheck(
            "capacity", WARN, queue, f"{published / window_s:,.1f}/s in",
            f"consumers handle {acked / window_s:,.1f}/s: the backlog grows"))
    return out


def _consumers(mq: Deployment, t: HealthThresholds) -> list[HealthCheck]:
    out = []
    now = time.time()
    for beat in read_heartbeats(mq):
        age = now - beat.last_seen
        status = WARN if age > t.stale_consumer_s else OK
        out.append(HealthCheck("consumer heartbeat", status, beat.consumer, f"{age:.0f} s ago",
                               f"queues {', '.join(beat.queues)}; user {beat.user}; stale "
                               f"after {t.stale_consumer_s:.0f} s"))
        limits = beat.extra.get("limits")
        for limit in limits if isinstance(limits, list) else []:
            if isinstance(limit, dict):  # a heartbeat is what its writer says: check shapes
                out.append(_limit_check(beat.consumer, limit))
    return out


def _limit_check(consumer: str, limit: dict[str, Any]) -> HealthCheck:
    """A limited lane (informational: waiting for a limit is the limit working)."""
    keys = limit.get("key_limits")
    parts = [f"rate {limit['rate_limit']}" if limit.get("rate_limit") else "",
             f"at most {limit['max_in_flight_global']} in flight"
             if limit.get("max_in_flight_global") else "",
             "per key " + ", ".join(f"{k} {v}" for k, v in list(keys.items())[:10])
             if isinstance(keys, dict) and keys else ""]
    waiting = str(limit.get("waiting") or "")[:40]
    return HealthCheck("flow control", OK, f"{limit.get('partition')}/{limit.get('group')}",
                       f"waiting for {waiting}" if waiting else "flowing",
                       f"{'; '.join(p for p in parts if p)} (consumer {consumer})")
