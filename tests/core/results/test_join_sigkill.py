"""The join survives SIGKILL: a 3-member group whose member worker is killed mid-handling
fires its callback exactly once, with all three results, every time (20 rounds)."""

from __future__ import annotations

import random
import threading
from collections import Counter
from typing import Any

import pytest

import phantom_notebook as pn
from phantom_notebook.core.testing import wait_until
from tests.support.worker_process import WorkerProcess, recorded

ROUNDS = 20
VT_S = 0.6  # the members' visibility timeout: a killed worker's delivery is reclaimed


@pytest.mark.slow
def test_a_group_whose_member_worker_is_sigkilled_fires_its_callback_exactly_once(
        redis_url: str, prefix: str, workers: list[WorkerProcess]) -> None:
    mq = pn.connect(redis_url, key_prefix=prefix)
    mq.declare("ioc-members", visibility_timeout_s=VT_S)
    fired: Counter[str] = Counter()
    results: dict[str, list[Any]] = {}
    lock = threading.Lock()

    def score(message: Any, context: pn.MessageContext) -> int:
        assert context.join is not None
        with lock:
            fired[context.join.group_id] += 1
            results[context.join.group_id] = [m.value for m in context.join.members]
        return len(context.join.values)

    mq.subscribe("threat-score", "*", score)

    def start() -> WorkerProcess:
        w = WorkerProcess(redis_url, prefix, "ioc-members", concurrency=3, prefetch=3,
                          visibility_timeout_s=VT_S, handler="member")
        workers.append(w)
        return w

    live = [start(), start()]
    rng = random.Random(21)
    killed_mid_handling = 0
    with mq.worker():
        for round_ in range(ROUNDS):
            work = [rng.randint(50, 400) for _ in range(3)]
            g = mq.group([pn.Task("ioc-members", "ioc.enrichment.request",
                                  {"member": i, "work_ms": w}) for i, w in enumerate(work)],
                         then=pn.Task("threat-score", "threat.analysis.request", {}))
            ids = {m.id for m in g.members}
            # kill the worker that started one of this group's members, mid-handling
            victim_pid = _first_starter(mq, prefix, ids, timeout_s=15)
            threading.Event().wait(rng.uniform(0, 0.04))  # a random point of its work
            victim = next(w for w in live if w.proc.pid == victim_pid)
            victim.kill()
            killed_mid_handling += 1
            live.remove(victim)
            live.append(start())
            assert g.result(timeout=30) == 3, f"round {round_}"
            gid = g.id
            assert wait_until(lambda: fired[gid] >= 1, timeout_s=5)  # noqa: B023
    # every callback was enqueued once and ran once, with all three members' values
    assert killed_mid_handling == ROUNDS
    assert len(fired) == ROUNDS and set(fired.values()) == {1}
    assert all([v["member"] for v in vals] == [0, 1, 2] for vals in results.values())
    redelivered = [t for t in recorded(mq, prefix, "started") if not t.endswith(":1")]
    assert redelivered, "no member was ever redelivered: the kills missed the handlers"
    assert mq.stats("threat-score")[0].dead == 0
    mq.close()


def _first_starter(mq: pn.MessageQueue, prefix: str, ids: set[str], timeout_s: float) -> int:
    found: list[int] = []

    def started() -> bool:
        for entry in recorded(mq, prefix, "started"):
            mid, pid, _ = entry.rsplit(":", 2)
            if mid in ids:
                found.append(int(pid))
                return True
        return False

    assert wait_until(started, timeout_s=timeout_s)
    return found[0]
