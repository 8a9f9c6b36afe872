"""The one error boundary: every redis-py, socket or TLS error becomes a ``PhantomError``.

``translate(exc)`` maps a lower-level error to the matching class of the tree drawn in
``core/errors.py`` (the cause stays attached as ``__cause__``); ``public`` applies it to
every public method of a class, ``guarded`` to one function. Inside the engine the raw
redis-py errors keep flowing (a lane tells a lost connection from a deleted group by
them); only what crosses the public API is translated, once, here.
"""

from __future__ import annotations

import functools
import inspect
import socket
import ssl
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis import exceptions as rx

from ..errors import (
    AuditError,
    CapacityError,
    ConfigError,
    ConnectionLostError,
    NotDeployedError,
    PermissionDeniedError,
    PhantomError,
    QueueFullError,
    ServerError,
    ValidationError,
)

DEPLOY_COMMAND = "phantom-notebook deploy --redis-url <url>"

_TRANSIENT = (rx.ReadOnlyError, rx.MasterDownError, rx.ClusterDownError, rx.TryAgainError,
              rx.BusyLoadingError)


def translate(exc: BaseException, client: Any = None,  # noqa: C901 - a table
              queue: str | None = None) -> PhantomError:
    """The ``PhantomError`` describing ``exc`` (``exc`` itself when it already is one).

    ``client`` (optional) lets an out-of-memory error say how full Redis is; ``queue``
    names the queue a full-queue error is about.
    """
    if isinstance(exc, PhantomError):
        return exc
    text = str(exc)
    if isinstance(exc, rx.NoPermissionError) or text.startswith("NOPERM") \
            or "The user executing the script can't" in text:
        return PermissionDeniedError(f"Redis refused the command for this user: {text}")
    if isinstance(exc, rx.AuthenticationError | rx.AuthenticationWrongNumberOfArgsError) \
            or text.startswith(("WRONGPASS", "NOAUTH")) or "invalid password" in text:
        return ConfigError("redis.url", f"Redis refused the login: {text}",
                           "the username and password of an ACL user")
    if isinstance(exc, rx.OutOfMemoryError) or text.startswith("OOM"):
        return CapacityError(f"Redis is out of memory{_memory(client)}: nothing more can be "
                             "stored until consumers drain it or maxmemory grows")
    if text.startswith("QUEUE_FULL"):
        depth, limit = (text.split("QUEUE_FULL", 1)[1].split() + ["?", "?"])[:2]
        which = f"queue {queue!r}" if queue else "the queue"
        return QueueFullError(f"{which} is full: {depth} messages queued, "
                              f"max_queue_size is {limit}")
    if text.startswith("AUDIT_FAILED"):
        return AuditError(f"the action was refused because its audit entry could not be "
                          f"written ({text[13:]}); `phantom-notebook repair` restores the "
                          "audit stream")
    if "exhausted the last possible ID" in text:
        return ServerError(
            f"a stream{f' of queue {queue!r}' if queue else ''} refuses new entries: its last "
            "id was pushed to the maximum (a raw XADD with an explicit id); an operator "
            "restores it with `phantom-notebook repair`, losing nothing")
    if "Function not found" in text or "Library not found" in text:
        return NotDeployedError("Redis does not have phantom_notebook's functions loaded",
                                DEPLOY_COMMAND)
    if isinstance(exc, _TRANSIENT):
        return ConnectionLostError(f"Redis is failing over or loading ({text}); retry shortly")
    if isinstance(exc, rx.ConnectionError | rx.TimeoutError | ssl.SSLError | OSError):
        return ConnectionLostError(f"cannot reach {_where(client)}: {_reason(exc)}")
    if isinstance(exc, rx.DataError):
        return ValidationError(f"Redis cannot take this value: {text}")
    if isinstance(exc, rx.RedisClusterException):
        return ConnectionLostError(f"the Redis Cluster cannot serve the call: {text}")
    if isinstance(exc, redis.RedisError):
        return ServerError(f"Redis replied with an error: {text}")
    raise exc  # not ours to translate (a bug): let it surface as it is


def _reason(exc: BaseException) -> str:
    """The innermost useful description of a connection failure."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return f"TLS failed ({cause})"
        if isinstance(cause, ConnectionRefusedError):
            return f"connection refused ({exc})"
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__


def _memory(client: Any) -> str:
    if client is None:
        return ""
    try:
        info = client.info("memory")
        used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    except Exception:  # noqa: BLE001 - a best-effort detail (INFO may be refused by ACL)
        return ""
    return f" (used {used / 2**20:.1f} MiB of maxmemory {limit / 2**20:.1f} MiB)" if limit else ""


_LOWER = (redis.RedisError, ConnectionError, TimeoutError, socket.gaierror, ssl.SSLError)
F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)


def guarded(func: F) -> F:
    """``func`` with lower-level errors translated (``raise ... from`` the original)."""
    if inspect.iscoroutinefunction(func):
        @functools.wraps(func)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await func(*args, **kwargs)
            except PhantomError:
                raise
            except _LOWER as exc:
                raise translate(exc, _client_of(args)) from exc

        return run_async  # type: ignore[return-value]

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PhantomError:
            raise
        except _LOWER as exc:
            raise translate(exc, _client_of(args)) from exc

    return run  # type: ignore[return-value]


def _client_of(args: tuple[Any, ...]) -> Any:
    owner = args[0] if args else None
    client = getattr(owner, "client", None)
    if client is None:
        client = getattr(getattr(owner, "mq", None), "client", None)
    return client


def public(cls: C) -> C:
    """Class decorator: every public method (and property) of ``cls`` is ``guarded``."""
    for attr, value in list(vars(cls).items()):
        if attr.startswith("_"):
            continue
        if isinstance(value, property):
            setattr(cls, attr, property(
                guarded(value.fget) if value.fget else None, value.fset, value.fdel,
                value.__doc__))
        elif inspect.isfunction(value):
            setattr(cls, attr, guarded(value))
    return cls


__all__ = ["DEPLOY_COMMAND", "guarded", "public", "translate"]


def _where(client: Any) -> str:
    """``redis://host:port/db`` of ``client`` (never a password), else "Redis"."""
    try:
        kw = client.connection_pool.connection_kwargs
    except AttributeError:
        return "Redis"
    if kw.get("path"):
        return f"unix://{kw['path']}"
    if kw.get("host"):
        return f"redis://{kw['host']}:{kw.get('port', 6379)}/{kw.get('db', 0)}"
    return "Redis"
