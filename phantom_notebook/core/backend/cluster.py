"""Redis Cluster and Redis Sentinel clients, and routing a call to the node owning a key.

``redis+cluster://host:port,host:port`` opens redis-py's ``RedisCluster``; every script
of a queue touches one hash slot (the ``{<queue>}`` tag), EVALSHA is routed by its first
key and SCRIPT LOAD goes to every primary, so the engine runs unchanged.
``redis+sentinel://host:port,host:port/0?service=mymaster`` opens ``Sentinel.master_for``:
each new connection asks the sentinels for the current master, so after a failover the
next reconnect lands on the promoted replica without operator action.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

from ..config.settings import RedisSettings
from ..errors import ConfigError

# redis-py's cluster and sentinel constructors are untyped: call them as Any
_ClusterNode: Any = ClusterNode
_Sentinel: Any = Sentinel


def parse_hosts(netloc: str, default_port: int) -> list[tuple[str, int]]:
    """``"a:1,b:2"`` (credentials already removed) -> ``[("a", 1), ("b", 2)]``."""
    hosts = []
    for part in netloc.split(","):
        part = part.strip()
        if not part:
            continue
        host, _, port = part.rpartition(":") if ":" in part else (part, "", "")
        try:
            hosts.append((host.strip("[]") or "127.0.0.1", int(port) if port else default_port))
        except ValueError:
            raise ConfigError("redis.url", f"bad host:port {part!r}") from None
    if not hosts:
        raise ConfigError("redis.url", "no host given", "scheme://host:port[,host:port...]")
    return hosts


def _split(url: str) -> tuple[str, str | None, str | None, list[tuple[str, int]], str,
                              dict[str, list[str]]]:
    parts = urlsplit(url)
    netloc = parts.netloc
    username = password = None
    if "@" in netloc:
        creds, netloc = netloc.rsplit("@", 1)
        user, _, pw = creds.partition(":")
        username, password = unquote(user) or None, unquote(pw) or None
    default_port = 26379 if "sentinel" in parts.scheme else 6379
    return (parts.scheme, username, password, parse_hosts(netloc, default_port),
            parts.path.strip("/"), parse_qs(parts.query))


def open_distributed(settings: RedisSettings, base: dict[str, Any]) -> Any:
    """A ``RedisCluster`` or a Sentinel-managed ``Redis`` for ``settings.url``."""
    assert settings.url is not None
    scheme, username, password, hosts, path, query = _split(settings.url)
    kwargs = {k: v for k, v in base.items() if k not in ("timeout",)}
    kwargs.update(username=username, password=password)
    if scheme.startswith("rediss"):
        kwargs.update(ssl=True, ssl_ca_certs=settings.ssl_ca_certs,
                      ssl_certfile=settings.ssl_certfile, ssl_keyfile=settings.ssl_keyfile)
    if scheme.endswith("+cluster"):
        return RedisCluster(startup_nodes=[_ClusterNode(h, p) for h, p in hosts],
                            require_full_coverage=False,
                            **kwargs)
    service = (query.get("service") or query.get("service_name") or [""])[0]
    if not service:
        raise ConfigError("redis.url", "a sentinel URL needs ?service=<master name>",
                          "redis+sentinel://host:port,host:port/0?service=mymaster")
    db = int(path) if path.isdigit() else 0
    sentinel_kwargs: dict[str, Any] = {"socket_timeout": settings.connect_timeout_s,
                       "socket_connect_timeout": settings.connect_timeout_s}
    if "sentinel_password" in query:
        sentinel_kwargs["password"] = query["sentinel_password"][0]
    sentinel = _Sentinel(hosts, sentinel_kwargs=sentinel_kwargs)
    kwargs.pop("health_check_interval", None)
    return sentinel.master_for(service, db=db, **kwargs)


def is_cluster(client: Any) -> bool:
    """True for a ``RedisCluster`` client."""
    return isinstance(client, RedisCluster)


def node_client(client: Any, key: str) -> Any:
    """A plain client on the connection pool of the primary that owns ``key``.

    Commands that must share one connection with a script call (``WAIT`` acknowledges
    the writes of *this* connection) go through it; on anything but a cluster it is
    ``client`` itself.
    """
    if not is_cluster(client):
        return client
    node = client.get_node_from_key(key)
    return client.get_redis_connection(node)


def refresh_topology(client: Any) -> None:
    """Re-read the slot map of a cluster client (after MOVED or a dead node)."""
    if is_cluster(client):
        try:
            client.nodes_manager.initialize()
        except (redis.RedisError, redis.exceptions.RedisClusterException):
            pass


def primary_of(client: Any, key: str) -> str:
    """``host:port`` of the primary owning ``key`` (the client's own address otherwise)."""
    if is_cluster(client):
        return str(client.get_node_from_key(key).name)
    kw = client.connection_pool.connection_kwargs
    return f"{kw.get('host', '?')}:{kw.get('port', '?')}"
