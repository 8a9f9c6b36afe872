"""A known workload for the notebook tests: publish N, fail M once, dead-letter K + 1."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import phantom_notebook as pn
from phantom_notebook.core.observe.metrics import MetricsStore
from tests.support.collect import eventually

NO_WAIT = pn.RetrySettings(max_retries=2, initial_delay_s=0.0, jitter=0.0)


@dataclass(frozen=True)
class Workload:
    """What ``run_workload`` did, in numbers a frame must reproduce."""

    queue: str
    ok: int
    flaky: int
    rejected: int
    doomed_id: str

    @property
    def published(self) -> int:
        return self.ok + self.flaky + self.rejected + 1

    @property
    def retried(self) -> int:
        return self.flaky + 2  # each flaky once, the doomed one twice

    @property
    def delivered(self) -> int:
        return self.published + self.retried

    @property
    def acked(self) -> int:
        return self.ok + self.flaky

    @property
    def dead(self) -> int:
        return self.rejected + 1


def run_workload(mq: pn.MessageQueue, queue: str = "counted", ok: int = 40, flaky: int = 7,
                 rejected: int = 3) -> Workload:
    """Publish the plan, run a worker until everything is settled, stop it."""

    def handler(message: pn.Envelope, context: pn.MessageContext) -> None:
        kind = message.payload["kind"]
        if kind == "reject":
            raise pn.Reject("schema_invalid")
        if kind == "doomed":
            raise ValueError("feed unreadable")
        if kind == "flaky" and context.attempt == 1:
            raise RuntimeError("transient")

    mq.subscribe(queue, "*", handler, retry=NO_WAIT, breaker=pn.BreakerSettings(enabled=False))
    plan = ["ok"] * ok + ["flaky"] * flaky + ["reject"] * rejected
    mq.publish_batch(queue, [("ioc.enrichment.request", {"kind": k}) for k in plan])
    doomed = mq.publish(queue, "data.ingestion.request", {"kind": "doomed"})
    work = Workload(queue, ok, flaky, rejected, doomed)
    store = MetricsStore(mq)
    with mq.worker():
        assert eventually(lambda: store.window(queue, 600).count("acked") == work.acked)
        assert eventually(lambda: mq.stats([queue])[0].dead == work.dead)
    return work


@pytest.fixture
def workload(mq: pn.MessageQueue) -> Workload:
    """The known workload, run on ``mq`` (both backends)."""
    return run_workload(mq)
