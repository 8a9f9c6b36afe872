"""Durable publishes: the publish script and ``WAIT`` / ``WAITAOF`` in one round trip.

``durability="replicated"``: after the script, ``WAIT <replicas> <timeout>`` on the same
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
from .cluster import node_client, refresh_topology

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


class WaitingClient:
    """Stands in for the client of a registered script: EVALSHA then WAIT, one round trip."""

    def __init__(self, node: Any, qs: QueueSettings, queue: str) -> None:
        self.node = node
        self.queue = queue
        self.need = qs.durability_replicas
        timeout_ms = int(qs.durability_timeout_s * 1000)
        self.fsync = qs.durability == "fsync"
        self.command: tuple[Any, ...] = (
            ("WAITAOF", 1, self.need, timeout_ms) if self.fsync else
            ("WAIT", self.need, timeout_ms))

    def evalsha(self, sha: str, numkeys: int, *args: Any) -> Any:
        """Run the script and the wait in one pipeline; raise unless confirmed."""
        pipe = self.node.pipeline(transaction=False)
        pipe.evalsha(sha, numkeys, *args)
        pipe.execute_command(*self.command)
        out, acked = pipe.execute(raise_on_error=False)
        if isinstance(out, BaseException):
            raise out
        if isinstance(acked, BaseException):
            raise PublishError(f"publish to {self.queue!r} was written but {self.command[0]} "
                               f"failed: {acked}") from acked
        local_ok, replicas = (int(acked[0]) >= 1, int(acked[1])) if self.fsync else \
            (True, int(acked))
        if not local_ok or replicas < self.need:
            what = "fsynced by" if self.fsync else "acknowledged by"
            raise PublishError(
                f"publish to {self.queue!r} is on the master but was {what} {replicas} of "
                f"{self.need} replica(s) within {self.command[-1]} ms: it may be lost if the "
                "master fails now (publish again with a dedup_key to be sure)")
        return out

    def script_load(self, script: Any) -> Any:
        """Load a script on the node (after NOSCRIPT)."""
        return self.node.script_load(script)


def durable_client(client: Any, qs: QueueSettings, queue: str, key: str) -> WaitingClient:
    """The ``WaitingClient`` for a publish touching ``key``'s slot."""
    node = node_client(client, key)
    if qs.durability == "fsync":
        check_fsync_supported(node, queue)
    return WaitingClient(node, qs, queue)


def call_with_topology_retry(client: Any, action: Any) -> Any:
    """Run ``action()``; on MOVED (a cluster resharded or failed over) refresh and retry."""
    try:
        return action()
    except (redis.exceptions.MovedError, redis.exceptions.AskError):
        refresh_topology(client)
        return action()
