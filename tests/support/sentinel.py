"""Throwaway Sentinel deployment on loopback: one master, replicas, three sentinels."""

from __future__ import annotations

import redis

from tests.support.cluster import FAST_REPLICATION
from tests.support.collect import eventually
from tests.support.redis_server import RedisServer, free_port


class SentinelNode(RedisServer):
    """A redis-server in sentinel mode: its whole configuration is in its conf file."""

    def launch_args(self) -> list[str]:
        """``redis-server <sentinel.conf> --sentinel``."""
        return [self.binary, *self.extra]

SERVICE = "mymaster"


class SentinelDeployment:
    """A master, ``replicas`` replicas and three sentinels with fast failover timings."""

    def __init__(self, replicas: int = 2, down_after_ms: int = 1000,
                 failover_timeout_ms: int = 3000) -> None:
        self.master = RedisServer(*FAST_REPLICATION)
        self.replicas = [RedisServer("--replicaof", "127.0.0.1", str(self.master.port),
                                     *FAST_REPLICATION) for _ in range(replicas)]
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.sentinels: list[RedisServer] = []

    @property
    def url(self) -> str:
        """``redis+sentinel://`` URL of the three sentinels."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/0?service={SERVICE}"

    def start(self, timeout_s: float = 30.0) -> SentinelDeployment:
        """Start everything and wait until every sentinel sees the master and its replicas."""
        self.master.start()
        for r in self.replicas:
            r.start()
        for _ in range(3):
            port = free_port()
            node = SentinelNode(port=port)
            conf = node.dir / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {node.dir}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
                f"sentinel failover-timeout {SERVICE} {self.failover_timeout_ms}\n"
                f"sentinel parallel-syncs {SERVICE} {len(self.replicas)}\n")
            node.extra = [str(conf), "--sentinel"]
            self.sentinels.append(node)
        for s in self.sentinels:
            s.start()
        if not eventually(self.ready, timeout_s=timeout_s, interval_s=0.05):
            raise RuntimeError("sentinels did not discover the replicas")
        return self

    def ready(self) -> bool:
        """Every sentinel knows the replicas and the other sentinels; replicas are in sync."""
        for s in self.sentinels:
            c = redis.Redis(port=s.port, socket_timeout=1)
            try:
                info = c.sentinel_master(SERVICE)
            except redis.RedisError:
                return False
            finally:
                c.close()
            if int(info.get("num-slaves", 0)) < len(self.replicas) or \
                    int(info.get("num-other-sentinels", 0)) < 2:
                return False
        for r in self.replicas:
            c = r.client(socket_timeout=1)
            try:
                if c.info("replication").get("master_link_status") != "up":
                    return False
            finally:
                c.close()
        return True

    def master_port(self) -> int:
        """The port the sentinels currently name as master."""
        c = redis.Redis(port=self.sentinels[0].port, socket_timeout=1)
        try:
            return int(c.sentinel_get_master_addr_by_name(SERVICE)[1])
        finally:
            c.close()

    def close(self) -> None:
        """Stop everything."""
        for node in [*self.sentinels, *self.replicas, self.master]:
            node.close()
