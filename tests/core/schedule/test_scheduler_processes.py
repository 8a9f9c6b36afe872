"""Scheduler processes against a real redis-server: three of them fire an every-second
schedule once per tick for 30 s while one is SIGKILLed; a stopped scheduler catches up
after a 10 s outage as each schedule's catch_up policy says."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import phantom_notebook as pn
from phantom_notebook.core.model.envelope import now_ms
from tests.core.schedule.conftest import ticks
from tests.support.collect import eventually

ROOT = Path(__file__).resolve().parents[3]
_FIRED = re.compile(r"^fired (\S+) tick (\d+) ", re.M)


class SchedulerProcess:
    """``phantom-notebook scheduler`` in a subprocess."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "phantom_notebook.cli", "scheduler", "--redis-url",
             redis_url, "--key-prefix", prefix, "--refresh", "1"],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, stdout=self._log,
            stderr=subprocess.STDOUT)

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    @property
    def running(self) -> bool:
        return "scheduler running" in self.output()

    def fired(self, name: str) -> list[int]:
        """The ticks of ``name`` this process says it fired."""
        return [int(t) for n, t in _FIRED.findall(self.output()) if n == name]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self._log.close()


@pytest.fixture
def schedulers() -> Iterator[list[SchedulerProcess]]:
    started: list[SchedulerProcess] = []
    yield started
    for p in started:
        p.close()


def _newest(mq: pn.MessageQueue, queue: str) -> int:
    got = ticks(mq, queue)
    return got[-1] if got else 0


def test_three_scheduler_processes_fire_each_tick_once_and_a_sigkill_loses_none(
        real_mq: pn.MessageQueue, redis_url: str, prefix: str,
        schedulers: list[SchedulerProcess]) -> None:
    mq = real_mq
    mq.schedule("poll", "feed-poll", "feed.poll", {"feed": "abuse.ch"}, every="1s")
    schedulers += [SchedulerProcess(redis_url, prefix) for _ in range(3)]
    assert eventually(lambda: all(p.running for p in schedulers), 30), \
        [p.output() for p in schedulers]
    start = now_ms()

    assert eventually(lambda: _newest(mq, "feed-poll") >= start + 15_000, 30)
    schedulers[0].kill()
    killed = now_ms()
    assert eventually(lambda: _newest(mq, "feed-poll") >= start + 30_000, 30)
    stopped = now_ms()
    codes = [p.terminate() for p in schedulers[1:]]

    got = ticks(mq, "feed-poll")
    in_window = [t for t in got if start < t <= start + 30_000]
    after_kill = [t for t in got if t > killed]
    by_process = [len(p.fired("poll")) for p in schedulers]
    print(f"\n{len(got)} messages in {(stopped - start) / 1000:.1f} s of three schedulers, "
          f"{len(in_window)} ticks in the 30 s window, {len(after_kill)} after the SIGKILL; "
          f"fired per process {by_process}")
    assert len(got) == len(set(got)), "a tick fired twice"
    assert 29 <= len(in_window) <= 31
    assert got == list(range(got[0], got[-1] + 1000, 1000)), "a tick was skipped"
    assert set(after_kill) <= set(schedulers[1].fired("poll") + schedulers[2].fired("poll"))
    assert len(after_kill) >= 13 and sum(by_process) == len(got)
    assert codes == [0, 0]
    assert "scheduler stopped" in schedulers[1].output()


def test_a_scheduler_back_after_a_ten_second_outage_catches_up_by_policy(
        real_mq: pn.MessageQueue, redis_url: str, prefix: str,
        schedulers: list[SchedulerProcess]) -> None:
    mq = real_mq
    for policy in ("none", "last", "all"):
        mq.schedule(f"poll-{policy}", f"q-{policy}", "feed.poll", {}, every="1s",
                    catch_up=policy)
    schedulers.append(SchedulerProcess(redis_url, prefix))
    queues = ("q-none", "q-last", "q-all")
    assert eventually(lambda: all(len(ticks(mq, q)) >= 2 for q in queues), 30), \
        schedulers[0].output()
    assert schedulers[0].terminate() == 0
    before = {q: _newest(mq, q) for q in queues}

    # the outage: nothing fires for ten ticks
    assert eventually(lambda: now_ms() >= max(before.values()) + 10_300, 15)
    assert {q: _newest(mq, q) for q in queues} == before
    back = now_ms() // 1000 * 1000  # the newest tick when the scheduler comes back
    schedulers.append(SchedulerProcess(redis_url, prefix))
    assert eventually(lambda: all(_newest(mq, q) > back for q in queues), 30), \
        schedulers[1].output()
    assert schedulers[1].terminate() == 0

    missed = {q: [t for t in ticks(mq, q) if before[q] < t <= back] for q in queues}
    assert missed["q-all"] == list(range(before["q-all"] + 1000, back + 1000, 1000))
    assert len(missed["q-all"]) >= 10
    for q in ("q-none", "q-last"):  # only the tick current at the restart, if any
        assert [t for t in missed[q] if t < back] == []
    for q in queues:
        got = ticks(mq, q)
        assert len(got) == len(set(got))
        resumed = [t for t in got if t > before[q]]
        assert resumed == list(range(resumed[0], resumed[-1] + 1000, 1000))
