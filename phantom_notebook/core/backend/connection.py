"""Redis connections: the embedded in-process default, or one pool to a real server."""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import urlsplit

import redis

from ..config.settings import RedisSettings, mask_url
from ..errors import ConfigError, ConnectionLostError

#: Errors a failover, a resharding or a restarting node produce: retried, never fatal.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionLostError, redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError,
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
    kwargs: dict[str, Any] = {"max_connections": settings.max_connections,
                              "timeout": settings.command_timeout_s,
                              **connection_options(settings)}
    scheme = settings.url.split("://", 1)[0]
    if scheme.endswith(("+cluster", "+sentinel")):
        from .cluster import open_distributed

        client: redis.Redis = open_distributed(settings, kwargs)
        return client
    kwargs = for_url(settings, kwargs)
    try:
        pool = redis.BlockingConnectionPool.from_url(settings.url, **kwargs)
    except ValueError as exc:
        raise ConfigError("redis.url", str(exc), "redis://, rediss://, unix://") from None
    client = redis.Redis(connection_pool=pool)
    if settings.url.startswith("rediss://"):
        check_tls(client, settings)
    return client


def connection_options(settings: RedisSettings) -> dict[str, Any]:
    """What every connection to ``settings``' server gets (sync and asyncio clients alike):
    a socket timeout covering the longest blocking read, keepalive, health checks."""
    return {"socket_timeout": settings.command_timeout_s + settings.block_ms / 1000,
            "socket_connect_timeout": settings.connect_timeout_s,
            "socket_keepalive": True, "health_check_interval": 30}


def for_url(settings: RedisSettings, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` for a plain URL: no TCP keepalive on a unix socket (redis-py's
    UnixDomainSocketConnection refuses the argument on every connect), the certificates of
    a ``rediss://`` URL."""
    url = settings.url or ""
    out = dict(kwargs)
    if url.startswith("unix://"):
        out.pop("socket_keepalive", None)
    if url.startswith("rediss://"):
        out.update(ssl_ca_certs=settings.ssl_ca_certs, ssl_certfile=settings.ssl_certfile,
                   ssl_keyfile=settings.ssl_keyfile)
    return out


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
    except redis.TimeoutError as exc:
        raise ConnectionLostError(
            f"cannot reach {mask_url(settings.url)}: no TLS handshake within "
            f"{settings.connect_timeout_s:g}s; is that port a TLS port? (rediss:// to a "
            "plaintext port waits like this) — use redis:// for a plaintext server") from exc
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


def prepare(client: Any, settings: RedisSettings, *, restricted: bool) -> str:
    """Check the server now, not at first use; returns the ACL user this client is.

    Asks every master for this client's functions build (``deploy.ensure_deployed``: the
    first round trip, so an unreachable server, a refused login or a missing database
    surface here with a clear error). ``restricted`` connections (a role is configured)
    never try to load functions: application roles may not.
    """
    from .boundary import translate
    from .deploy import ensure_deployed

    where = mask_url(settings.url) or "the embedded Redis"
    policy = "never" if restricted else settings.deploy_functions
    try:
        ensure_deployed(client, policy, embedded=settings.url is None)
        return whoami(client, settings)
    except redis.ResponseError as exc:
        if "DB index is out of range" in str(exc):
            raise ConfigError("redis.url", f"{where} has no database "
                              f"{getattr(client, 'connection_pool', None) and _db(client)}",
                              "a database index the server has (databases setting)") from None
        raise translate(exc, client) from exc
    except (redis.RedisError, OSError) as exc:
        error = translate(exc, client)
        if isinstance(error, ConnectionLostError):
            text = str(error)
            reason = text.split(": ", 1)[1] if text.startswith("cannot reach ") else text
            raise ConnectionLostError(f"cannot reach {where}: {reason}") from exc
        raise error from exc


def whoami(client: Any, settings: RedisSettings) -> str:
    """The ACL user of ``client`` (``ACL WHOAMI``; the URL's user or "default" if refused)."""
    try:
        name = client.acl_whoami()
    except redis.ResponseError:
        name = None
    if isinstance(name, bytes):
        name = name.decode()
    if isinstance(name, str) and name:
        return name
    user = urlsplit(settings.url).username if settings.url else None
    return user or "default"


def _db(client: Any) -> Any:
    return client.connection_pool.connection_kwargs.get("db", "?")
