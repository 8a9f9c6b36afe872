"""Progress: a handler's ``context.progress`` is visible to the requester (another
process or connection) within one refresh, in the trace, and throttled."""

from __future__ import annotations

import threading
from typing import Any

import phantom_notebook as pn
from phantom_notebook.core.testing import wait_until
from phantom_notebook.notebook import trace_df
from tests.support.redis_server import RedisServer


def test_progress_is_visible_to_another_connection_while_the_handler_runs(
        mq: pn.MessageQueue, redis_url: str, prefix: str) -> None:
    halfway, finish = threading.Event(), threading.Event()

    def slow(message: Any, context: pn.MessageContext) -> str:
        context.progress(0.5, "whois looked up")
        halfway.set()
        finish.wait(10)  # the test decides when the handler may end
        return "done"

    mq.subscribe("ioc-enrich", "*", slow)
    with mq.worker():
        pending = mq.request("ioc-enrich", "ioc.enrichment.request", {"ioc": "x"})
        assert halfway.wait(10)
        # the worker writes progress twice a second: one refresh of a watching widget
        assert wait_until(lambda: pending.progress is not None, timeout_s=1.5)
        assert pending.progress is not None
        assert (pending.progress.fraction, pending.progress.note) == (0.5, "whois looked up")
        assert not pending.done
        finish.set()
        assert pending.result(timeout=10) == "done"
    assert pending.progress is not None and pending.progress.fraction == 1.0


def test_progress_is_a_trace_event_of_the_message(mq: pn.MessageQueue) -> None:
    def steps(message: Any, context: pn.MessageContext) -> None:
        context.progress(0.25, "resolved")
        # end only once the worker wrote it (twice a second), so the trace has it
        wait_until(lambda: mq.client.hget(mq.queue_keys("ioc-enrich").result(message.id),
                                          "p") is not None, timeout_s=5)

    mq.subscribe("ioc-enrich", "*", steps)
    with mq.worker():
        pending = mq.request("ioc-enrich", "t", {})
        pending.result(timeout=10)
    frame = trace_df(mq, pending.id, queues=["ioc-enrich"])
    rows = frame[frame["event"] == "progress"]
    assert len(rows) == 1 and "25% resolved" in rows.iloc[0]["detail"]
    assert list(frame["event"]).index("progress") < list(frame["event"]).index("acked")


def test_progress_writes_are_throttled_whatever_the_handler_reports(
        own_server: RedisServer, prefix: str) -> None:
    mq = pn.connect(own_server.url, key_prefix=prefix)
    reports = 0

    def chatty(message: Any, context: pn.MessageContext) -> str:
        nonlocal reports
        stop = threading.Event()
        threading.Timer(1.2, stop.set).start()
        while not stop.is_set():  # reports as fast as it can for 1.2 s
            reports += 1
            context.progress(min(reports / 1e6, 1.0), f"item {reports}")
        return "ok"

    mq.subscribe("ioc-enrich", "*", chatty)
    with mq.worker():
        before = _calls(own_server, "hset")
        assert mq.request("ioc-enrich", "t", {}).result(timeout=10) == "ok"
    writes = _calls(own_server, "hset") - before
    # twice a second for 1.2 s: 2-3 progress writes, + 1 result write in pn1_settle
    print(f"progress reports {reports:,}, HSET calls {writes}")
    assert reports > 10_000
    assert 1 <= writes <= 5, (writes, reports)
    mq.close()


def _calls(server: RedisServer, command: str) -> int:
    stats = server.client().info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def test_progress_outside_zero_to_one_is_refused(mq: pn.MessageQueue) -> None:
    errors: list[BaseException] = []

    def wrong(message: Any, context: pn.MessageContext) -> None:
        try:
            context.progress(1.5)
        except pn.ValidationError as exc:
            errors.append(exc)

    mq.subscribe("ioc-enrich", "*", wrong)
    with mq.worker():
        mq.request("ioc-enrich", "t", {}).result(timeout=10)
    assert len(errors) == 1 and "0.0 to 1.0" in str(errors[0])


def test_wait_all_reports_done_and_failed_counts(mq: pn.MessageQueue) -> None:
    def judge(message: Any, context: Any) -> int:
        if message.payload["i"] % 4 == 0:
            raise pn.Reject("unparseable")
        return int(message.payload["i"])

    mq.subscribe("ioc-enrich", "*", judge)
    seen: list[str] = []
    with mq.worker():
        pendings = mq.request_batch("ioc-enrich", [("t", {"i": i}) for i in range(10)])
        results = mq.wait_all(pendings, timeout=20, progress=lambda s: seen.append(s.describe()))
    assert [r.ok for r in results] == [i % 4 != 0 for i in range(10)]
    assert [r.value for r in results if r.ok] == [1, 2, 3, 5, 6, 7, 9]
    assert seen[-1] == "10/10 done, 3 failed"


def test_one_requests_progress_bar_follows_the_handler_to_done(
        mq: pn.MessageQueue, capsys: Any) -> None:
    def steps(message: Any, context: pn.MessageContext) -> str:
        for i, step in enumerate(("resolve", "whois")):
            context.progress(i / 2, step)
            key, note = mq.queue_keys("ioc-enrich").result(message.id), step.encode()
            wait_until(lambda k=key, n=note: mq.client.hget(k, "note") == n, timeout_s=5)
            threading.Event().wait(0.7)  # simulated work: 3 refreshes of the bar
        return "verdict"

    mq.subscribe("ioc-enrich", "*", steps)
    with mq.worker():
        assert mq.request("ioc-enrich", "t", {}).result(timeout=20, progress=True) == "verdict"
    shown = capsys.readouterr().err.replace("\r", "\n")
    assert ": resolve   0%" in shown and ": whois  50%" in shown and ": done 100%" in shown


def test_an_in_flight_requests_progress_is_a_column_of_messages_df(mq: pn.MessageQueue) -> None:
    from phantom_notebook.notebook import messages_df

    held = threading.Event()

    def long(message: Any, context: pn.MessageContext) -> None:
        context.progress(0.75, "passive dns")
        held.wait(10)  # until the test has looked

    mq.subscribe("ioc-enrich", "*", long)
    with mq.worker():
        pending = mq.request("ioc-enrich", "t", {})
        assert wait_until(lambda: pending.progress is not None, timeout_s=5)
        frame = messages_df(mq, "ioc-enrich", state="pending")
        held.set()
        pending.result(timeout=10)
    row = frame[frame["id"] == pending.id.rsplit("-", 1)[-1]].iloc[0]
    assert (row["progress"], row["progress_note"]) == (0.75, "passive dns")
    assert str(frame["progress"].dtype) == "float64"


def test_a_fast_handlers_progress_is_never_written_after_its_ack(mq: pn.MessageQueue) -> None:
    handled: list[str] = []

    def fast(message: Any, context: pn.MessageContext) -> None:  # a plain message: inline ack
        context.progress(0.5, "half way")
        handled.append(message.id)

    mq.subscribe("ioc-enrich", "*", fast)
    worker = mq.worker()
    with worker:
        mid = mq.publish("ioc-enrich", "t", {})
        assert wait_until(lambda: "acked" in _events(mq, mid), timeout_s=10)
        # nothing left for the keeper to write (without the fix it writes it, then forgets)
        assert wait_until(lambda: not any(getattr(lane, "settler", None) is not None
                                          and lane.settler.progress for lane in worker.lanes),
                          timeout_s=5)
    assert _events(mq, mid)[-1] == "acked"


def _events(mq: pn.MessageQueue, mid: str) -> list[str]:
    frame = trace_df(mq, mid, queues=["ioc-enrich"])
    return [str(e) for e in frame["event"]] if len(frame) else []
