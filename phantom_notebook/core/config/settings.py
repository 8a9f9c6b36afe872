"""Settings as frozen dataclasses, loadable from a TOML file and environment variables.

Every invalid value raises ``ConfigError`` naming the field and the allowed values.
Secrets (passwords inside URLs) never appear in a ``repr``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError

QueueKind = Literal["fifo", "priority", "delayed", "pubsub", "broadcast"]
QUEUE_KINDS: tuple[str, ...] = get_args(QueueKind)
BackoffStrategy = Literal["fixed", "linear", "exponential"]
Durability = Literal["none", "replicated", "fsync"]
ExpiredAction = Literal["dead_letter", "drop"]
DeployPolicy = Literal["missing", "always", "never"]
AuditFailure = Literal["fail", "degrade"]


_SECRET_PARAMS = {"password", "pass", "secret", "token", "ssl_password"}


def mask_url(url: str | None) -> str | None:
    """Return ``url`` with any password replaced by ``***``."""
    if not url:
        return url
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user = parts.username or ""
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        netloc = f"{user}:***@{host}{port}"
    query = "&".join(
        f"{k}=***" if k.lower() in _SECRET_PARAMS else (f"{k}={v}" if v or "=" in pair else k)
        for pair in parts.query.split("&") if pair
        for k, _, v in [pair.partition("=")])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


@dataclass(frozen=True)
class RedisSettings:
    """How to reach Redis. ``url=None`` means the embedded in-process Redis."""

    url: str | None = None
    key_prefix: str = "pn"
    max_connections: int = 50
    command_timeout_s: float = 5.0
    connect_timeout_s: float = 5.0
    block_ms: int = 1000
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    #: load the server-side functions when missing ("missing"), also replace another
    #: build ("always"), or never ("never": the operator runs `phantom-notebook deploy`)
    deploy_functions: DeployPolicy = "missing"

    def __post_init__(self) -> None:
        _choice("redis.deploy_functions", self.deploy_functions, DeployPolicy)
        _positive("redis.max_connections", self.max_connections)
        _positive("redis.command_timeout_s", self.command_timeout_s)
        _positive("redis.connect_timeout_s", self.connect_timeout_s)
        _positive("redis.block_ms", self.block_ms)
        if not self.key_prefix or any(c in self.key_prefix for c in "{} "):
            raise ConfigError("redis.key_prefix", f"{self.key_prefix!r} is not usable",
                              "a non-empty string without braces or spaces")
        if self.url is not None:
            scheme = urlsplit(self.url).scheme
            allowed = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster",
                       "redis+sentinel", "rediss+sentinel")
            if scheme not in allowed:
                raise ConfigError("redis.url", f"unsupported scheme {scheme!r}",
                                  ", ".join(f"{s}://" for s in allowed))
            path = urlsplit(self.url).path.strip("/")
            if scheme in ("redis", "rediss") and path and not path.isdigit():
                raise ConfigError("redis.url", f"database {path[:20]!r} is not a number",
                                  "redis://host:port/<database index, e.g. 0>")

    def __repr__(self) -> str:
        return (f"RedisSettings(url={mask_url(self.url)!r}, key_prefix={self.key_prefix!r}, "
                f"max_connections={self.max_connections}, "
                f"command_timeout_s={self.command_timeout_s})")


@dataclass(frozen=True)
class RetrySettings:
    """Retry policy: how often and how long to wait before a failed message is retried."""

    max_retries: int = 3
    backoff_strategy: BackoffStrategy = "exponential"
    initial_delay_s: float = 1.0
    max_delay_s: float = 60.0
    multiplier: float = 2.0
    jitter: float = 0.1  # +/- fraction of the delay

    def __post_init__(self) -> None:
        _choice("retry.backoff_strategy", self.backoff_strategy, BackoffStrategy)
        _non_negative("retry.max_retries", self.max_retries)
        _non_negative("retry.initial_delay_s", self.initial_delay_s)
        _non_negative("retry.max_delay_s", self.max_delay_s)
        if isinstance(self.multiplier, bool) or not 1 <= self.multiplier < float("inf"):
            raise ConfigError("retry.multiplier", f"{self.multiplier!r} is not >= 1",
                              "a finite number >= 1")
        if not 0 <= self.jitter <= 1:
            raise ConfigError("retry.jitter", f"{self.jitter} out of range", "0.0 .. 1.0")


@dataclass(frozen=True)
class BreakerSettings:
    """Circuit breaker of a subscription: off unless enabled (see ``consume/breaker.py``).

    Opens when, within ``monitoring_period_s``, at least ``minimum_calls`` fresh messages
    were handled, at least ``failure_threshold`` failed, and the failure rate reached
    ``failure_rate_threshold``; probes again after ``recovery_timeout_s``.
    """

    enabled: bool = False
    failure_threshold: int = 5
    failure_rate_threshold: float = 0.5
    minimum_calls: int = 20
    recovery_timeout_s: float = 30.0
    monitoring_period_s: float = 60.0
    half_open_max_calls: int = 3

    def __post_init__(self) -> None:
        _positive("circuit_breaker.failure_threshold", self.failure_threshold)
        _positive("circuit_breaker.minimum_calls", self.minimum_calls)
        _positive("circuit_breaker.recovery_timeout_s", self.recovery_timeout_s)
        _positive("circuit_breaker.monitoring_period_s", self.monitoring_period_s)
        _positive("circuit_breaker.half_open_max_calls", self.half_open_max_calls)
        rate = self.failure_rate_threshold
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1:
            raise ConfigError("circuit_breaker.failure_rate_threshold", f"{rate!r} out of range",
                              "a fraction > 0 and <= 1")


@dataclass(frozen=True)
class QueueSettings:
    """Per-queue behaviour. Defaults follow the spec's production configuration."""

    kind: QueueKind = "priority"
    max_queue_size: int | None = 100_000
    message_ttl_s: float | None = None
    expired_action: ExpiredAction = "dead_letter"
    enable_dead_letter: bool = True
    dead_letter_ttl_s: float = 7 * 24 * 3600.0
    enable_deduplication: bool = False
    deduplication_window_s: float = 300.0
    #: a consumer refuses (dead-letters as "replayed") a copy of a message it was handed
    #: within this window from another stream entry; 0 turns the check off. None (the
    #: default): 300 s where envelopes are authenticated (encryption or origin signing),
    #: off where they are not — there a role that can add an entry can forge any message,
    #: so refusing copies protects nothing. Costs one function call per fetched batch and
    #: ~60 bytes per message for two windows.
    replay_window_s: float | None = None
    retry: RetrySettings = field(default_factory=RetrySettings)
    circuit_breaker: BreakerSettings = field(default_factory=BreakerSettings)
    max_deliveries: int = 5
    visibility_timeout_s: float = 30.0
    max_payload_bytes: int = 1024 * 1024
    enable_encryption: bool = False
    enable_tracing: bool = True
    #: a blind tag of each message's indicator on its published trace item, so the
    #: dashboard's search finds messages by indicator (~1.25 us per message on publish,
    #: 16 bytes in the trace); off: found by message or trace id only
    index_indicators: bool = True
    enable_metrics: bool = True
    durability: Durability = "none"
    durability_replicas: int = 1  # replicas that must acknowledge ("replicated" / "fsync")
    durability_timeout_s: float = 1.0  # WAIT / WAITAOF timeout; unconfirmed -> PublishError
    partitions: int = 1  # sub-queues spread over the cluster (core/partitions.py)
    #: deliveries per period across every worker ("600/min", "10/s"; model/limits.py);
    #: over the limit a message waits where it is, holding no worker
    rate_limit: str | None = None
    rate_limit_burst: int | None = None  # default: one second's worth (at least 1)
    #: most deliveries in flight at once across every worker process and machine
    max_in_flight_global: int | None = None

    def __post_init__(self) -> None:
        _choice("queue.kind", self.kind, QueueKind)
        _positive("queue.durability_replicas", self.durability_replicas)
        _positive("queue.durability_timeout_s", self.durability_timeout_s)
        _positive("queue.partitions", self.partitions)
        _choice("queue.expired_action", self.expired_action, ExpiredAction)
        _choice("queue.durability", self.durability, Durability)
        if not isinstance(self.retry, RetrySettings):
            raise ConfigError("queue.retry", f"{self.retry!r} is not a RetrySettings")
        if self.max_queue_size is not None:
            _positive("queue.max_queue_size", self.max_queue_size)
        if self.message_ttl_s is not None:
            _positive("queue.message_ttl_s", self.message_ttl_s)
        _positive("queue.dead_letter_ttl_s", self.dead_letter_ttl_s)
        _positive("queue.deduplication_window_s", self.deduplication_window_s)
        if self.replay_window_s is not None:
            _non_negative("queue.replay_window_s", self.replay_window_s)
        _positive("queue.max_deliveries", self.max_deliveries)
        _positive("queue.visibility_timeout_s", self.visibility_timeout_s)
        _positive("queue.max_payload_bytes", self.max_payload_bytes)
        if self.rate_limit is not None:
            from .rates import parse_rate

            try:
                parse_rate(self.rate_limit)
            except ValueError as exc:
                raise ConfigError("queue.rate_limit", str(exc)) from None
        if self.rate_limit_burst is not None:
            _positive("queue.rate_limit_burst", self.rate_limit_burst)
        if self.max_in_flight_global is not None:
            _positive("queue.max_in_flight_global", self.max_in_flight_global)

    def replace(self, **changes: Any) -> QueueSettings:
        """Return a copy with ``changes`` applied (validated like the original)."""
        return _build(QueueSettings, {**_as_dict(self), **changes}, "queue")


@dataclass(frozen=True)
class SecuritySettings:
    """Encryption keys, origin identity and trusted origins. Secrets never appear in a repr.

    ``keys``: ``"k2:<base64>,k1:<base64>"`` (or ``key_file``: lines ``<id> <base64>``, mode
    0600) with ``active_key`` encrypting; ``origin_key``: this producer's signing key
    (``<base64>`` HMAC or ``ed25519:<base64 seed>``); ``trusted_origins``:
    ``"origin:<base64>,feed:ed25519:<base64 public>"`` — consumers reject anything else.
    Unset fields fall back to ``PHANTOM_KEYS`` / ``PHANTOM_KEY_FILE`` / ``PHANTOM_ACTIVE_KEY``.
    """

    keys: str | None = None
    key_file: str | None = None
    active_key: str | None = None
    require_encryption: bool | None = None
    insecure_key_file_ok: bool = False
    origin: str | None = None
    origin_key: str | None = None
    trusted_origins: str | None = None
    role: str | None = None
    audit_key: str | None = None
    #: audit retention: entries older than this (and beyond audit_max_entries) are trimmed
    #: by `phantom-notebook retention --apply`, always at a signed checkpoint (None: keep all)
    audit_retention_s: float | None = None
    audit_max_entries: int | None = None
    #: the key backup archives are MACed with ("[<id>:]<base64>"; default: the audit key)
    backup_key: str | None = None
    #: an action whose audit entry cannot be written is refused ("fail") or goes on with a
    #: health CRITICAL and a counter ("degrade")
    audit_failure: AuditFailure = "fail"

    def __post_init__(self) -> None:
        _choice("security.audit_failure", self.audit_failure, AuditFailure)

    def __repr__(self) -> str:
        shown = {"keys": "***" if self.keys else None, "key_file": self.key_file,
                 "active_key": self.active_key, "origin": self.origin, "role": self.role,
                 "origin_key": "***" if self.origin_key else None,
                 "trusted_origins": "***" if self.trusted_origins else None,
                 "audit_key": "***" if self.audit_key else None,
                 "backup_key": "***" if self.backup_key else None,
                 "audit_failure": self.audit_failure}
        return "SecuritySettings(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"


@dataclass(frozen=True)
class Settings:
    """All settings: Redis connection, default queue settings and per-queue overrides."""

    redis: RedisSettings = field(default_factory=RedisSettings)
    queue_defaults: QueueSettings = field(default_factory=QueueSettings)
    queues: Mapping[str, QueueSettings] = field(default_factory=dict)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    roles: Mapping[str, Any] = field(default_factory=dict)
    acl: Mapping[str, Any] = field(default_factory=dict)

    def for_queue(self, name: str) -> QueueSettings:
        """The settings of one queue: its override, else the defaults."""
        return self.queues.get(name, self.queue_defaults)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None,
             env: Mapping[str, str] | None = None) -> Settings:
        """Load settings from a TOML file (``path`` or ``$PHANTOM_SETTINGS``) and the env.

        Environment variables win over the file: ``PHANTOM_REDIS_URL``,
        ``PHANTOM_REDIS_<FIELD>`` for any redis field and ``PHANTOM_QUEUE_<FIELD>``
        for any default queue field (e.g. ``PHANTOM_QUEUE_MAX_QUEUE_SIZE=5000``).
        """
        env = os.environ if env is None else env
        data: dict[str, Any] = {}
        path = path or env.get("PHANTOM_SETTINGS")
        if path:
            try:
                data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
            except FileNotFoundError as exc:
                raise ConfigError("settings file", f"{path} does not exist") from exc
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError("settings file", f"{path} is not valid TOML: {exc}") from exc
        return cls.from_dict(_apply_env(data, env))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Settings:
        """Build settings from a mapping shaped like the TOML file."""
        data = dict(data)
        sections = {"redis", "queue_defaults", "queues", "security", "roles", "acl"}
        unknown = set(data) - sections
        if unknown:
            raise ConfigError(sorted(unknown)[0], "unknown section", ", ".join(sorted(sections)))
        security = _build(SecuritySettings, data.get("security", {}), "security")
        roles = data.get("roles", {})
        if not isinstance(roles, Mapping):
            raise ConfigError("roles", f"expected a table, got {type(roles).__name__}")
        redis = _build(RedisSettings, data.get("redis", {}), "redis")
        defaults = _build(QueueSettings, data.get("queue_defaults", {}), "queue_defaults")
        queues: dict[str, QueueSettings] = {}
        overrides = data.get("queues", {})
        if not isinstance(overrides, Mapping):
            raise ConfigError("queues", f"expected a table, got {type(overrides).__name__}")
        for name, override in overrides.items():
            if not isinstance(override, Mapping):
                raise ConfigError(f"queues.{name}",
                                  f"expected a table, got {type(override).__name__}")
            merged: dict[str, Any] = {**_as_dict(defaults), **override}
            for nested in ("retry", "circuit_breaker"):
                if isinstance(override.get(nested), Mapping):
                    merged[nested] = {**_as_dict(getattr(defaults, nested)), **override[nested]}
            queues[name] = _build(QueueSettings, merged, f"queues.{name}")
        return cls(redis=redis, queue_defaults=defaults, queues=types.MappingProxyType(queues),
                   security=security, roles=types.MappingProxyType(dict(roles)),
                   acl=types.MappingProxyType(dict(data.get("acl", {}))))


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    sections = {"PHANTOM_REDIS_": ("redis", RedisSettings),
                "PHANTOM_QUEUE_": ("queue_defaults", QueueSettings),
                "PHANTOM_SECURITY_": ("security", SecuritySettings)}
    for prefix, (section, cls) in sections.items():
        names = {f.name for f in dataclasses.fields(cls)}
        for key, value in env.items():
            if key.startswith(prefix) and key[len(prefix):].lower() in names:
                out.setdefault(section, {})[key[len(prefix):].lower()] = value
    return out


def _as_dict(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


T = typing.TypeVar("T")


def _build(cls: type[T], data: Any, path: str) -> T:
    """Construct dataclass ``cls`` from ``data``, coercing and naming bad fields."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(path, f"expected a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - fields
    if unknown:
        raise ConfigError(f"{path}.{sorted(unknown)[0]}", "unknown field",
                          ", ".join(sorted(fields)))
    kwargs = {name: _coerce(hints[name], value, f"{path}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        if exc.field.split(".")[0] in {"queue", "redis", "retry", "circuit_breaker"}:
            leaf = exc.field.split(".", 1)[1]
            raise ConfigError(f"{path}.{leaf}", exc.problem, exc.allowed) from None
        raise


def _coerce(hint: Any, value: Any, path: str) -> Any:  # noqa: C901 - a flat type switch
    origin = get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("", "none", "null")):
            return None
        return _coerce(options[0], value, path)
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            raise ConfigError(path, f"{value!r} is not allowed", ", ".join(map(str, allowed)))
        return value
    if dataclasses.is_dataclass(hint):
        return _build(typing.cast(type, hint), value, path)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(path, f"{value!r} is not a boolean", "true, false")
    if hint in (int, float):
        if isinstance(value, bool) or (hint is int and isinstance(value, float)):
            raise ConfigError(path, f"{value!r} is not an {hint.__name__}", "a number")
        try:
            return hint(value)
        except (TypeError, ValueError):
            raise ConfigError(path, f"{value!r} is not a number", "a number") from None
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(path, f"{value!r} is not a string", "a string")
        return value
    if origin is not None and issubclass(origin, Mapping):
        return dict(value)
    return value


def _choice(name: str, value: object, hint: Any) -> None:
    allowed = get_args(hint)
    if value not in allowed:
        raise ConfigError(name, f"{value!r} is not allowed", ", ".join(allowed))


def _positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0 \
            or value == float("inf"):
        raise ConfigError(name, f"{value!r} must be > 0", "a positive number")


def _non_negative(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0 \
            or value == float("inf"):
        raise ConfigError(name, f"{value!r} must be >= 0", "a finite number >= 0")
