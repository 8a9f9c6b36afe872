"""Worker processes: SIGKILL loses nothing, SIGTERM drains and exits 0."""

from __future__ import annotations

import phantom_notebook as pn
from tests.support.collect import eventually
from tests.support.worker_process import WorkerProcess, recorded


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
    assert eventually(lambda: len(recorded(real_mq, prefix, "done")) >= 30, timeout_s=30)
    first.kill()  # mid-batch: it holds unacked messages right now
    started_by_first = {t.split(":")[0] for t in recorded(real_mq, prefix, "started")}
    done_by_first = {t.split(":")[0] for t in recorded(real_mq, prefix, "done")}
    in_flight_at_kill = started_by_first - done_by_first
    assert in_flight_at_kill, "the worker was killed while handling messages"

    second = WorkerProcess(redis_url, prefix, queue, concurrency=4, prefetch=20,
                           visibility_timeout_s=1.0)
    workers.append(second)

    def everything_handled() -> bool:
        return {t.split(":")[0] for t in recorded(real_mq, prefix, "done")} >= set(ids)

    assert eventually(everything_handled, timeout_s=60)
    assert eventually(lambda: real_mq.stats([queue])[0].depth == 0, timeout_s=10)
    redelivered = [t for t in recorded(real_mq, prefix, "done") if not t.endswith(":1")]
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
    assert eventually(lambda: len(recorded(real_mq, prefix, "started")) >= 4, timeout_s=30)
    assert worker.terminate() == 0, worker.output()
    started = set(recorded(real_mq, prefix, "started"))
    done = set(recorded(real_mq, prefix, "done"))
    assert started == done, "every message a handler started was finished before exit"
    stats = real_mq.stats([queue])[0]
    assert stats.in_flight == 0, "finished work was acked before exit"
    assert stats.ready == 20 - len(done), "nothing else was taken or lost"
