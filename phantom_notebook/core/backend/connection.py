"""Redis connections: the embedded in-process default, or one pool to a real server."""

from __future__ import annotations

import os
import threading
from typing import Any

import redis

from ..config.settings import RedisSettings
from ..errors import ConfigError

#: Errors a failover, a resharding or a restarting node produce: retried, never fatal.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError,
    redis.exceptions.ClusterError, redis.exceptions.TryAgainError,
    redis.exceptions.MasterDownError, redis.exceptions.RedisClusterException)

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
    scheme = settings.url.split("://", 1)[0]
    if scheme.endswith(("+cluster", "+sentinel")):
        from .cluster import open_distributed

        client: redis.Redis = open_distributed(settings, kwargs)
        return client
    if settings.url.startswith("rediss://"):
        kwargs.update(ssl_ca_certs=settings.ssl_ca_certs, ssl_certfile=settings.ssl_certfile,
                      ssl_keyfile=settings.ssl_keyfile)
    try:
        pool = redis.BlockingConnectionPool.from_url(settings.url, **kwargs)
    except ValueError as exc:
        raise ConfigError("redis.url", str(exc), "redis://, rediss://, unix://") from None
    client = redis.Redis(connection_pool=pool)
    if settings.url.startswith("rediss://"):
        check_tls(client, settings)
    return client


def check_tls(client: redis.Redis, settings: RedisSettings) -> None:
    """Open one TLS connection now so certificate problems surface as clear errors.

    A CA that does not trust the server is a ``ConfigError`` naming ``ssl_ca_certs``; a
    server that closes the handshake (it wants a client certificate we did not present, or
    one its CA did not sign) is a ``ConnectionLostError`` saying so. Anything else (server
    down) is left to the usual reconnect logic.
    """
    import ssl

    from ..errors import ConnectionLostError

    try:
        client.ping()
    except redis.ConnectionError as exc:
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, ssl.SSLError):
            cause = cause.__cause__ or cause.__context__
        text = str(exc)
        if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
            ca = settings.ssl_ca_certs or "the system CA store"
            raise ConfigError(
                "redis.ssl_ca_certs",
                f"the server's certificate is not trusted by {ca}: {cause or exc}",
                "the CA file that signed the server certificate") from exc
        if isinstance(cause, ssl.SSLError) or "EOF occurred in violation" in text:
            raise ConnectionLostError(
                "the server closed the TLS handshake: it probably requires a client "
                "certificate (ssl_certfile / ssl_keyfile) signed by its tls-ca-cert-file "
                f"({cause or exc})") from exc
