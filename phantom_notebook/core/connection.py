"""Redis connections: the embedded in-process default, or one pool to a real server."""

from __future__ import annotations

import os
import threading
from typing import Any

import redis

from .errors import ConfigError
from .settings import RedisSettings

_EMBEDDED_LOCK = threading.Lock()
_EMBEDDED_SERVER: Any = None


def embedded_server() -> Any:
    """The process-wide fakeredis server every embedded connection shares."""
    global _EMBEDDED_SERVER
    with _EMBEDDED_LOCK:
        if _EMBEDDED_SERVER is None:
            import fakeredis

            _EMBEDDED_SERVER = fakeredis.FakeServer(version=(7, 0))
        return _EMBEDDED_SERVER


def resolve_url(url: str | None) -> str | None:
    """The URL to use: ``url``, else ``$PHANTOM_REDIS_URL``, else None (embedded)."""
    return url or os.environ.get("PHANTOM_REDIS_URL") or None


def open_client(settings: RedisSettings) -> redis.Redis:
    """Open a client for ``settings``: embedded when ``settings.url`` is None.

    Real servers get one blocking connection pool (``max_connections``); the socket
    timeout covers the longest blocking read plus ``command_timeout_s`` so a silently
    dead connection is noticed instead of hanging a worker.
    """
    if settings.url is None:
        import fakeredis

        return fakeredis.FakeRedis(server=embedded_server())  # type: ignore[no-any-return,unused-ignore]
    kwargs: dict[str, Any] = {
        "max_connections": settings.max_connections,
        "timeout": settings.command_timeout_s,
        "socket_timeout": settings.command_timeout_s + settings.block_ms / 1000,
        "socket_connect_timeout": settings.connect_timeout_s,
        "socket_keepalive": True,
        "health_check_interval": 30,
    }
    if settings.url.startswith("rediss://"):
        kwargs.update(ssl_ca_certs=settings.ssl_ca_certs, ssl_certfile=settings.ssl_certfile,
                      ssl_keyfile=settings.ssl_keyfile)
    try:
        pool = redis.BlockingConnectionPool.from_url(settings.url, **kwargs)
    except ValueError as exc:
        raise ConfigError("redis.url", str(exc), "redis://, rediss://, unix://") from None
    return redis.Redis(connection_pool=pool)
