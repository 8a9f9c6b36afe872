"""Subscriptions: which handler gets which messages of a queue, and how."""

from __future__ import annotations

import fnmatch
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config.settings import BreakerSettings, QueueSettings, RetrySettings
from ..errors import ValidationError
from ..model.envelope import Envelope, MessagePriority

DEFAULT_GROUP = "workers"


@dataclass(frozen=True)
class Filter:
    """Accept only messages whose priority / headers match (all given conditions)."""

    priorities: Sequence[MessagePriority | int | str] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def accepts(self, env: Envelope) -> bool:
        """True when ``env`` passes every condition of this filter."""
        if self.priorities is not None:
            allowed = {MessagePriority.parse(p) for p in self.priorities}
            if env.priority not in allowed:
                return False
        return all(env.headers.get(k) == v for k, v in self.headers.items())


@dataclass
class Subscription:
    """A handler bound to a queue and a type pattern, with its delivery options."""

    queue: str
    type_pattern: str
    handler: Any
    settings: QueueSettings
    auto_ack: bool = True
    prefetch_count: int = 100
    max_concurrency: int = 1
    filter: Filter | None = None
    group: str = DEFAULT_GROUP
    retry: RetrySettings | None = None
    breaker: BreakerSettings | None = None
    max_tlp: str | None = None
    non_retryable: tuple[type[BaseException], ...] = ()
    #: a delivery whose handler runs longer is failed (retried, then dead-lettered as
    #: "handler_timeout"); async handlers are cancelled. None: no limit
    handler_timeout_s: float | None = 300.0
    #: flow control of this subscription's group (override the queue's settings)
    rate_limit: str | None = None
    rate_limit_burst: int | None = None
    max_in_flight_global: int | None = None
    #: per-key limits: ``rate_limit_key(envelope)`` names a bucket (e.g. the provider API
    #: key in a header); ``key_limits`` its rate, ``default_key_limit`` for other keys
    rate_limit_key: Callable[[Envelope], str | None] | None = None
    key_limits: Mapping[str, str] = field(default_factory=dict)
    default_key_limit: str | None = None
    #: policies of the application's own (``Middleware`` subclasses), run on this
    #: subscription's lane after the stock integrity and TTL checks and before the retry
    #: policy and breaker, in the order given
    middleware: tuple[Any, ...] = ()
    _call: Callable[..., Any] | None = None
    _is_async: bool = False
    _matcher: re.Pattern[str] | None = None

    @classmethod
    def create(cls, queue: str, type_pattern: str, handler: Any, settings: QueueSettings,
               **options: Any) -> Subscription:
        """Validate options and build a subscription (raises ``ValidationError``)."""
        allowed = {"auto_ack", "prefetch_count", "max_concurrency", "filter", "group", "retry",
                   "breaker", "max_tlp", "non_retryable", "handler_timeout_s", "middleware",
                   "rate_limit", "rate_limit_burst", "max_in_flight_global",
                   "rate_limit_key", "key_limits", "default_key_limit"}
        if not isinstance(type_pattern, str) or not type_pattern or len(type_pattern) > 200:
            raise ValidationError(f"type_pattern must be a glob of 1-200 characters such as "
                                  f"'ioc.*' or '*', got {type_pattern!r}")
        unknown = set(options) - allowed
        if unknown:
            raise ValidationError(f"unknown subscribe option {sorted(unknown)[0]!r}: "
                                  f"use {', '.join(sorted(allowed))}")
        if settings.kind == "broadcast" and "group" not in options:
            options["group"] = _handler_name(handler)
        if "middleware" in options:
            from .middleware import Middleware

            given = options["middleware"]
            given = (given,) if isinstance(given, Middleware) else tuple(given or ())
            bad = [m for m in given if not isinstance(m, Middleware)]
            if bad:
                raise ValidationError(f"middleware must be Middleware instances (subclass "
                                      f"phantom_notebook.Middleware), got {bad[0]!r}")
            options["middleware"] = given
        sub = cls(queue, type_pattern, handler, settings, **options)
        for name in ("prefetch_count", "max_concurrency"):
            value = getattr(sub, name)
            if not isinstance(value, int) or value < 1:
                raise ValidationError(f"{name} must be an integer >= 1, got {value!r}")
        timeout = sub.handler_timeout_s
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(
                timeout, int | float) or not 0 < timeout < float("inf")):
            raise ValidationError(f"handler_timeout_s must be a positive number of seconds "
                                  f"or None, got {timeout!r}")
        _check_limits(sub)
        if sub.max_concurrency > sub.prefetch_count:
            sub.prefetch_count = sub.max_concurrency
        if sub.max_tlp is not None:
            from ..model.tlp import parse_tlp

            sub.max_tlp = parse_tlp(sub.max_tlp)
        sub._call, sub._is_async = _adapt(handler)
        sub._matcher = re.compile(fnmatch.translate(type_pattern))
        return sub

    @property
    def retry_settings(self) -> RetrySettings:
        """The retry policy in force: the subscription's, else the queue's."""
        return self.retry or self.settings.retry

    def matches(self, env: Envelope) -> bool:
        """True when this subscription wants ``env`` (type pattern and filter)."""
        if self.type_pattern == "*" and self.filter is None:
            return True
        assert self._matcher is not None
        if not self._matcher.match(env.type):
            return False
        return self.filter is None or self.filter.accepts(env)

    @property
    def is_async(self) -> bool:
        """True when the handler is a coroutine function."""
        return self._is_async

    def call(self, env: Envelope, context: Any) -> Any:
        """Invoke the handler (returns a coroutine for async handlers)."""
        assert self._call is not None
        return self._call(env, context)


def _adapt(handler: Any) -> tuple[Callable[..., Any], bool]:
    target = handler.handle if hasattr(handler, "handle") else handler
    if not callable(target):
        raise ValidationError(
            f"handler {handler!r} is not callable and has no handle(message, context) method")
    is_async = inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
        type(target).__call__)
    try:
        params = [p for p in inspect.signature(target).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    if len(params) == 1:
        return (lambda env, ctx: target(env)), is_async
    return target, is_async


def _handler_name(handler: Any) -> str:
    name = getattr(handler, "__qualname__", None) or type(handler).__qualname__
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(name))[:64]


def _check_limits(sub: Subscription) -> None:
    """Validate a subscription's flow-control options (``ValidationError`` naming them)."""
    from ..config.rates import parse_rate
    from ..model.limits import flow_control

    if sub.rate_limit is not None or sub.max_in_flight_global is not None:
        flow_control(sub.rate_limit, sub.rate_limit_burst, sub.max_in_flight_global,
                     group=sub.group, lease_ms=1)
    if sub.rate_limit_key is not None and not callable(sub.rate_limit_key):
        raise ValidationError("rate_limit_key must be a function of the message (e.g. "
                              "lambda m: m.headers.get('provider'))")
    if (sub.key_limits or sub.default_key_limit) and sub.rate_limit_key is None:
        raise ValidationError("key_limits / default_key_limit need rate_limit_key")
    for rate in [*dict(sub.key_limits).values(), sub.default_key_limit]:
        if rate is not None:
            parse_rate(rate)
