"""Worker processes: SIGKILL loses nothing, SIGTERM drains and exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import phantom_notebook as pn
from tests.support.collect import eventually

ROOT = Path(__file__).resolve().parents[1]


class WorkerProcess:
    """``phantom-notebook worker`` in a subprocess, recording into the test's Redis."""

    def __init__(self, redis_url: str, prefix: str, queue: str, *, concurrency: int,
                 prefetch: int, visibility_timeout_s: float = 30.0, grace_s: float = 30,
                 handler: str = "record", extra_env: dict[str, str] | None = None) -> None:
        self._log = tempfile.TemporaryFile()
        env = {**os.environ, "PN_TEST_RECORD_URL": redis_url, "PN_TEST_RECORD_KEY": prefix,
               "PHANTOM_QUEUE_VISIBILITY_TIMEOUT_S": str(visibility_timeout_s),
               "PYTHONPATH": str(ROOT), **(extra_env or {})}
        module = "tests.support.handlers" if handler == "record" else "tests.support.chaos_handlers"
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


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        w.close()


def _tags(mq: pn.MessageQueue, prefix: str, which: str) -> list[str]:
    return [t.decode() for t in mq.client.lrange(f"{prefix}:{which}", 0, -1)]


def test_killed_worker_messages_are_redelivered_to_another_worker(
        real_mq: pn.MessageQueue, redis_url: str, prefix: str,
        workers: list[WorkerProcess]) -> None:
    queue = "enrich"
    real_mq.declare(queue, kind="priority")
    ids = real_mq.publish_batch(queue, [("ioc.enrichment.request", {"n": i, "work_ms": 20})
                                        for i in range(200)])
    first = WorkerProcess(redis_url, prefix, queue, concurrency=4, prefetch=20,
                          visibility_timeout_s=1.0)
    workers.append(first)
    assert eventually(lambda: len(_tags(real_mq, prefix, "done")) >= 30, timeout_s=30)
    first.kill()  # mid-batch: it holds unacked messages right now
    started_by_first = {t.split(":")[0] for t in _tags(real_mq, prefix, "started")}
    done_by_first = {t.split(":")[0] for t in _tags(real_mq, prefix, "done")}
    in_flight_at_kill = started_by_first - done_by_first
    assert in_flight_at_kill, "the worker was killed while handling messages"

    second = WorkerProcess(redis_url, prefix, queue, concurrency=4, prefetch=20,
                           visibility_timeout_s=1.0)
    workers.append(second)

    def everything_handled() -> bool:
        return {t.split(":")[0] for t in _tags(real_mq, prefix, "done")} >= set(ids)

    assert eventually(everything_handled, timeout_s=60)
    assert eventually(lambda: real_mq.stats([queue])[0].depth == 0, timeout_s=10)
    redelivered = [t for t in _tags(real_mq, prefix, "done") if not t.endswith(":1")]
    assert {t.split(":")[0] for t in redelivered} >= in_flight_at_kill
    assert second.terminate() == 0


def test_sigterm_drains_in_flight_work_acks_it_and_exits_zero(
        real_mq: pn.MessageQueue, redis_url: str, prefix: str,
        workers: list[WorkerProcess]) -> None:
    queue = "drain"
    real_mq.declare(queue, kind="fifo")
    real_mq.publish_batch(queue, [("t", {"n": i, "work_ms": 300}) for i in range(20)])
    worker = WorkerProcess(redis_url, prefix, queue, concurrency=4, prefetch=4)
    workers.append(worker)
    assert eventually(lambda: len(_tags(real_mq, prefix, "started")) >= 4, timeout_s=30)
    assert worker.terminate() == 0, worker.output()
    started = set(_tags(real_mq, prefix, "started"))
    done = set(_tags(real_mq, prefix, "done"))
    assert started == done, "every message a handler started was finished before exit"
    stats = real_mq.stats([queue])[0]
    assert stats.in_flight == 0, "finished work was acked before exit"
    assert stats.ready == 20 - len(done), "nothing else was taken or lost"
