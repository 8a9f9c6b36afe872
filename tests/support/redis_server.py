"""Start, kill and restart throwaway redis-server processes on free loopback ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server we own: we may flush, kill and restart it."""

    def __init__(self, *extra: str, port: int | None = None, appendonly: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pn-redis-"))
        self.extra = list(extra)
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The redis:// URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def launch_args(self) -> list[str]:
        """The command line that starts this server (subclasses change it)."""
        return [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.dir), "--save", "", "--daemonize", "no",
                "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "always" if self.appendonly else "everysec",
                "--logfile", str(self.dir / "redis.log"), *self.extra]

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING (through ``self.client``)."""
        self.proc = subprocess.Popen(self.launch_args(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        client = self.client(socket_connect_timeout=0.2, retry_on_error=[])
        while True:
            try:
                if client.ping():
                    break
            except redis.RedisError as exc:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log_file = self.dir / "redis.log"
                    log = log_file.read_text(errors="replace")[-2000:] \
                        if log_file.exists() else ""
                    raise RuntimeError(f"{self.url} did not start:\n{log}") from exc
                time.sleep(0.02)  # polling a starting process (bounded by the deadline)
        client.close()
        return self

    def client(self, **kwargs: object) -> redis.Redis:
        """A plain redis-py client to this server."""
        return redis.Redis(port=self.port, **kwargs)  # type: ignore[arg-type]

    def kill(self) -> None:
        """SIGKILL the server (nothing is flushed)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop the server politely."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        """Stop and start again on the same port and data directory."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def external_url() -> str | None:
    """``$PHANTOM_TEST_REDIS_URL`` when tests should use a server someone else runs."""
    return os.environ.get("PHANTOM_TEST_REDIS_URL") or None
