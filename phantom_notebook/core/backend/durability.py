"""Durable publishes: the publish function and ``WAIT`` / ``WAITAOF`` in one round trip.

``durability="replicated"``: after the function, ``WAIT <replicas> <timeout>`` on the same
connection (WAIT counts the replicas that acknowledged every write *this connection*
made), both in one pipeline. Fewer acknowledgements than ``durability_replicas`` within
``durability_timeout_s`` raise ``PublishError``: the message is on the master but may not
survive a failover. ``durability="fsync"``: ``WAITAOF 1 <replicas> <timeout>`` (the master
and the replicas fsynced their AOF); needs Redis >= 7.2 and ``appendonly yes``.
"""

from __future__ import annotations

import threading
from typing import Any

import redis

from ..config.settings import QueueSettings
from ..errors import ConfigError, PublishError
from .cluster import is_cluster, node_client, refresh_topology

_VERSIONS: dict[int, tuple[int, ...]] = {}
_LOCK = threading.Lock()


def server_version(client: Any) -> tuple[int, ...]:
    """The ``redis_version`` of the server behind ``client`` (cached per connection pool)."""
    pool = id(getattr(client, "connection_pool", client))
    with _LOCK:
        known = _VERSIONS.get(pool)
    if known is None:
        text = str(client.info("server").get("redis_version", "0"))
        known = tuple(int(x) for x in text.split(".")[:3] if x.isdigit())
        with _LOCK:
            _VERSIONS[pool] = known
    return known


def check_fsync_supported(client: Any, queue: str) -> None:
    """Raise ``ConfigError`` when the server cannot do ``WAITAOF`` (Redis < 7.2)."""
    version = server_version(client)
    if version < (7, 2):
        shown = ".".join(map(str, version))
        raise ConfigError(f"queues.{queue}.durability",
                          f"'fsync' needs WAITAOF, which Redis {shown} does not have "
                          "(Redis >= 7.2 required)", "none, replicated")


def wait_command(qs: QueueSettings) -> tuple[Any, ...] | None:
    """The follow-up of a publish to a queue with ``durability`` set (None for "none")."""
    if qs.durability == "none":
        return None
    timeout_ms = int(qs.durability_timeout_s * 1000)
    if qs.durability == "fsync":
        return ("WAITAOF", 1, qs.durability_replicas, timeout_ms)
    return ("WAIT", qs.durability_replicas, timeout_ms)


def check_waited(after: Any, qs: QueueSettings, queue: str) -> None:
    """Raise ``PublishError`` unless the ``WAIT``/``WAITAOF`` reply confirms the write."""
    command = wait_command(qs)
    assert command is not None
    name, need, timeout_ms = command[0], qs.durability_replicas, command[-1]
    if isinstance(after, BaseException):
        raise PublishError(f"publish to {queue!r} was written but {name} failed: {after}"
                           ) from after
    fsync = name == "WAITAOF"
    local_ok, replicas = (int(after[0]) >= 1, int(after[1])) if fsync else (True, int(after))
    if not local_ok or replicas < need:
        what = "fsynced by" if fsync else "acknowledged by"
        raise PublishError(
            f"publish to {queue!r} is on the master but was {what} {replicas} of "
            f"{need} replica(s) within {timeout_ms} ms: it may be lost if the master fails "
            "now (publish again with a dedup_key to be sure)")


def durable_node(client: Any, qs: QueueSettings, queue: str, key: str) -> Any:
    """The client a durable publish touching ``key``'s slot goes through: the node owning
    it on a cluster (WAIT must follow the write on its connection), else None (any)."""
    if qs.durability == "fsync":
        check_fsync_supported(node_client(client, key), queue)
    return node_client(client, key) if is_cluster(client) else None


def call_with_topology_retry(client: Any, action: Any) -> Any:
    """Run ``action()``; on MOVED (a cluster resharded or failed over) refresh and retry."""
    try:
        return action()
    except (redis.exceptions.MovedError, redis.exceptions.AskError):
        refresh_topology(client)
        return action()
