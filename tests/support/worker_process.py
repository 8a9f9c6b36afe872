"""``phantom-notebook worker`` subprocesses for tests: start, SIGKILL, SIGTERM, read output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import phantom_notebook as pn

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """``phantom-notebook worker`` in a subprocess, recording into the test's Redis."""

    def __init__(self, redis_url: str, prefix: str, queue: str, *, concurrency: int,
                 prefetch: int, visibility_timeout_s: float = 30.0, grace_s: float = 30,
                 handler: str = "record", extra_env: dict[str, str] | None = None) -> None:
        self._log = tempfile.TemporaryFile()
        env = {**os.environ, "PN_TEST_RECORD_URL": redis_url, "PN_TEST_RECORD_KEY": prefix,
               "PHANTOM_QUEUE_VISIBILITY_TIMEOUT_S": str(visibility_timeout_s),
               "PYTHONPATH": str(ROOT), **(extra_env or {})}
        module = "tests.support.handlers" if handler in ("record", "concurrent", "member") \
            else "tests.support.chaos_handlers"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "phantom_notebook.cli", "worker",
             f"{module}:{handler}", "--queue", queue, "--redis-url", redis_url,
             "--key-prefix", prefix, "--concurrency", str(concurrency),
             "--prefetch", str(prefetch), "--grace", str(grace_s)],
            env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self._log.close()


def recorded(mq: pn.MessageQueue, prefix: str, which: str) -> list[str]:
    return [t.decode() for t in mq.client.lrange(f"{prefix}:{which}", 0, -1)]
