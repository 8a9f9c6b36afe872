"""Throwaway Redis Cluster (3 masters + 3 replicas) on loopback, built with redis-cli."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess

import redis

from tests.support.collect import eventually
from tests.support.redis_server import RedisServer

FAST_REPLICATION = ("--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
                    "--repl-diskless-load", "on-empty-db")


def free_cluster_port() -> int:
    """A free port below 55536 whose cluster bus port (+10000) is free too."""
    while True:
        port = random.randint(20000, 45000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port


class RedisClusterFixture:
    """Six ``redis-server --cluster-enabled yes`` processes joined by ``redis-cli --cluster``."""

    def __init__(self, masters: int = 3, replicas: int = 1, node_timeout_ms: int = 1000) -> None:
        if shutil.which("redis-cli") is None:
            raise RuntimeError("redis-cli is not installed (apt-get install redis-tools)")
        self.masters = masters
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.nodes: list[RedisServer] = []

    @property
    def url(self) -> str:
        """The ``redis+cluster://`` URL listing every node as a startup node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self, timeout_s: float = 30.0) -> RedisClusterFixture:
        """Start the nodes, create the cluster and wait until every node reports it ok."""
        total = self.masters * (1 + self.replicas)
        for _ in range(total):
            port = free_cluster_port()
            node = RedisServer(
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(self.node_timeout_ms),
                "--cluster-replica-validity-factor", "0",
                "--cluster-require-full-coverage", "no", *FAST_REPLICATION, port=port)
            self.nodes.append(node.start())
        args = ["redis-cli", "--cluster", "create",
                *(f"127.0.0.1:{n.port}" for n in self.nodes),
                "--cluster-replicas", str(self.replicas), "--cluster-yes"]
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}")
        if not eventually(self.healthy, timeout_s=timeout_s, interval_s=0.05):
            raise RuntimeError("the cluster did not become ok")
        return self

    def healthy(self) -> bool:
        """Every live node says cluster_state:ok and every replica's link is up."""
        for node in self.live():
            try:
                c = node.client(socket_timeout=1)
                info = c.cluster("info")
                repl = c.info("replication")
                c.close()
            except redis.RedisError:
                return False
            if info.get("cluster_state") != "ok":
                return False
            if repl.get("role") == "slave" and repl.get("master_link_status") != "up":
                return False
        return True

    def live(self) -> list[RedisServer]:
        """Nodes whose process is running."""
        return [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def role(self, node: RedisServer) -> str:
        """``master`` or ``slave``."""
        c = node.client(socket_timeout=1)
        try:
            return str(c.info("replication")["role"])
        finally:
            c.close()

    def master_on(self, port: int) -> RedisServer:
        """The node listening on ``port``."""
        return next(n for n in self.nodes if n.port == port)

    def replica_of(self, master: RedisServer) -> RedisServer:
        """A replica currently replicating ``master``."""
        return self.replicas_of(master)[0]

    def replicas_of(self, master: RedisServer) -> list[RedisServer]:
        """Every replica currently replicating ``master``."""
        found = []
        for node in self.live():
            if node is master:
                continue
            c = node.client(socket_timeout=1)
            try:
                repl = c.info("replication")
            finally:
                c.close()
            if repl.get("role") == "slave" and int(repl.get("master_port", 0)) == master.port:
                found.append(node)
        if not found:
            raise LookupError(f"no replica of {master.port}")
        return found

    def close(self) -> None:
        """Stop every node and remove their directories."""
        for node in self.nodes:
            node.close()
