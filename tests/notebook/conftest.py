"""A known workload for the notebook tests: publish N, fail M once, dead-letter K + 1."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

import phantom_notebook as pn
from phantom_notebook.core.observe.metrics import MetricsStore
from phantom_notebook.core.testing import wait_until
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


@dataclass(frozen=True)
class Flows:
    """A group of 3 members and a callback, then a chain of 3 steps, all settled."""

    group_id: str
    member_ids: tuple[str, ...]
    callback_id: str
    chain_last_id: str


MEMBER_QUEUES = ("ioc-vt", "ioc-otx", "ioc-whois")
CHAIN_QUEUES = ("ioc-vt", "threat-score", "threat-report")


def _settled(mq: pn.MessageQueue, message_id: str, queue: str) -> bool:
    from phantom_notebook.notebook.frames import trace_df

    return "acked" in set(trace_df(mq, message_id, queues=[queue])["event"].astype(str))


def run_flows(mq: pn.MessageQueue) -> Flows:
    """Run a group (3 enrichments, then a score) and a chain (enrich -> score -> report)
    with a worker; return once every message's ``acked`` is in the trace."""
    for q in MEMBER_QUEUES:
        mq.subscribe(q, "*", lambda m, c: {"verdict": "clean"})
    mq.subscribe("threat-score", "*", lambda m, c: 1)
    mq.subscribe("threat-report", "*", lambda m, c: c.previous)
    with mq.worker():
        g = mq.group([pn.Task(q, "ioc.enrichment.request", {"ioc": "198.51.100.7"})
                      for q in MEMBER_QUEUES],
                     then=pn.Task("threat-score", "threat.analysis.request", {}))
        g.result(20)
        last = mq.chain([pn.Task(q, f"step.{i}", {}) for i, q in enumerate(CHAIN_QUEUES)])
        last.result(20)
        # the result is stored before the settle's trace event: wait for the acks too
        assert wait_until(lambda: _settled(mq, g.callback.id, "threat-score") and
                          _settled(mq, last.id, "threat-report"), 20)
    return Flows(g.id, tuple(m.id for m in g.members), g.callback.id, last.id)


def flow_trace(mq: pn.MessageQueue, message_id: str, queue: str) -> pd.DataFrame:
    """The whole trace the message ``message_id`` of ``queue`` belongs to."""
    from phantom_notebook.notebook.frames import trace_df

    tid = str(trace_df(mq, message_id, queues=[queue])["trace_id"].iloc[0])
    return trace_df(mq, trace_id=tid)
