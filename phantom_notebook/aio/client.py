"""The asyncio Redis client of ``phantom_notebook.aio``: the same server, user and TLS
settings as the synchronous client of the same ``connect``.

Standalone servers (``redis://``, ``rediss://``, ``unix://``) and the embedded Redis get a
``redis.asyncio`` client (the embedded one is ``fakeredis.FakeAsyncRedis`` on the process's
shared ``FakeServer``, so sync and async code of one process see one Redis). A Cluster or a
Sentinel URL has no async client here: its calls run the synchronous engine in a thread
(``native`` is False), so the event loop is never blocked either way.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aredis

from ..core.backend.connection import connection_options, embedded_server, for_url
from ..core.config.settings import RedisSettings
from ..core.errors import ConfigError


def native(settings: RedisSettings) -> bool:
    """True when ``settings`` reach a server the asyncio client serves (not a Cluster or a
    Sentinel-managed master)."""
    return settings.url is None or not settings.url.split("://", 1)[0].endswith(
        ("+cluster", "+sentinel"))


def open_async_client(settings: RedisSettings) -> Any:
    """A ``redis.asyncio`` client for ``settings`` (see the module docstring).

    The pool is not bounded by ``max_connections``: a coroutine waiting for a result holds
    one connection in a blocking read, and a service may await thousands at once.
    """
    if settings.url is None:
        import fakeredis

        return fakeredis.FakeAsyncRedis(server=embedded_server())
    kwargs = for_url(settings, connection_options(settings))
    try:
        pool = aredis.ConnectionPool.from_url(settings.url, **kwargs)
    except ValueError as exc:
        raise ConfigError("redis.url", str(exc), "redis://, rediss://, unix://") from None
    pool.connection_class = _with_hiredis_packing(pool.connection_class)
    return aredis.Redis(connection_pool=pool)


def _with_hiredis_packing(cls: type[Any]) -> type[Any]:
    """``cls`` packing commands with hiredis (C) when it is installed, as the synchronous
    client does: redis.asyncio packs in Python, ~1.5 us per argument, which was most of an
    async single publish's own cost (an FCALL publish has ~20 arguments)."""
    try:
        import hiredis
    except ImportError:  # pragma: no cover - hiredis comes with redis[hiredis]
        return cls
    pack = hiredis.pack_command

    def pack_command(self: Any, *args: Any) -> list[bytes]:
        if isinstance(args[0], str) and " " in args[0]:
            args = (*args[0].split(), *args[1:])
        try:
            return [pack(args)]
        except TypeError:  # an argument hiredis does not take: redis-py's own packing
            return list(cls.pack_command(self, *args))

    packed = type(f"Hiredis{cls.__name__}", (cls,), {"pack_command": pack_command})
    return packed


__all__ = ["native", "open_async_client"]
