"""The operations dashboard, headless: its numbers, its cost per refresh, paging, and gates."""

from __future__ import annotations

import math
import re

import pytest

import phantom_notebook as pn
from phantom_notebook.core.errors import PermissionDeniedError, ValidationError
from phantom_notebook.notebook.dashboard import (
    Dashboard,
    DashboardModel,
    DeadLetterPager,
    render,
    svg,
)
from tests.notebook.conftest import Workload, run_flows, run_workload
from tests.support.redis_server import RedisServer


def test_the_tiles_and_the_queue_table_add_up_to_the_queue_statistics(
        mq: pn.MessageQueue, workload: Workload) -> None:
    mq.declare("backlog")
    mq.publish_batch("backlog", [("ioc.enrichment.request", {"n": i}) for i in range(30)])
    mq.publish("backlog", "ioc.enrichment.request", {"n": "later"}, delay=600)
    snapshot = DashboardModel(mq).refresh()
    stats = {s.queue: s for s in mq.stats()}
    rows = {r.queue: r for r in snapshot.queues}
    assert set(rows) == set(stats)
    for name, s in stats.items():
        assert (rows[name].ready, rows[name].in_flight, rows[name].delayed, rows[name].dead) \
            == (s.ready, s.in_flight, s.delayed, s.dead)
    tiles = snapshot.tiles
    assert tiles.queues == len(stats)
    assert tiles.waiting == sum(s.depth for s in stats.values()) == 31
    assert tiles.dead_total == workload.dead
    assert tiles.dead_in_window == workload.dead
    assert tiles.oldest_queue == "backlog"
    assert 0 <= tiles.oldest_age_s < 60
    assert math.isinf(tiles.drain_s)  # nothing is being acked: the backlog never drains
    assert tiles.health == mq.health(list(stats), window_s=300).status


def test_a_queue_with_messages_and_no_live_worker_is_flagged_loudly(
        mq: pn.MessageQueue) -> None:
    mq.declare("orphan")
    mq.publish("orphan", "ioc.enrichment.request", {"n": 1})
    snapshot = DashboardModel(mq).refresh()
    (row,) = [r for r in snapshot.queues if r.queue == "orphan"]
    assert row.no_consumer and row.consumers == 0
    table = render.queue_table(snapshot.queues)
    assert "NO CONSUMER" in table and "class='alarm' data-queue='orphan'" in table


def test_rates_and_latency_come_from_the_stored_metrics(
        mq: pn.MessageQueue, workload: Workload) -> None:
    snapshot = DashboardModel(mq).refresh()
    (row,) = [r for r in snapshot.queues if r.queue == workload.queue]
    assert row.acked_per_s > 0 and row.published_per_s > 0
    assert row.p95_ms is not None and row.p99_ms is not None and row.p99_ms >= row.p95_ms
    assert row.error_rate == pytest.approx((workload.retried + workload.dead)
                                           / workload.delivered, rel=0.01)
    assert row.dead_in_window == workload.dead
    points = snapshot.series[workload.queue]
    assert sum(p[2] for p in points) > 0  # the throughput chart has something to draw


def test_a_running_worker_shows_online_with_what_it_handled(mq: pn.MessageQueue) -> None:
    mq.subscribe("busy", "*", lambda message, context: None)
    mq.publish_batch("busy", [("ioc.enrichment.request", {"n": i}) for i in range(5)])
    with mq.worker() as worker:
        assert pn.core.queues.wait_until(lambda: worker.stats.handled == 5, 10)
        worker._heartbeat(alive=True)  # the keeper beats every few seconds: beat now
        snapshot = DashboardModel(mq).refresh()
    (beat,) = [w for w in snapshot.workers if w.name == worker.consumer]
    assert beat.online and beat.handled == 5 and beat.queues == ("busy",)
    assert snapshot.tiles.workers_online >= 1
    assert [r.consumers for r in snapshot.queues if r.queue == "busy"] == [1]


def test_an_open_breaker_is_counted_on_its_queue_and_in_the_tiles(mq: pn.MessageQueue) -> None:
    mq.declare("flaky-provider")
    mq.client.hset(mq.queue_keys("flaky-provider").breakers, "workers:c1",
                   b'{"state": "open", "opened_at": 1}')
    mq.client.hset(mq.queue_keys("flaky-provider").breakers, "workers:c2",
                   b'{"state": "half_open", "opened_at": 1}')
    snapshot = DashboardModel(mq).refresh()
    assert [r.open_breakers for r in snapshot.queues if r.queue == "flaky-provider"] == [1]
    assert snapshot.tiles.open_breakers == 1


def test_a_new_publish_shows_in_the_next_refresh(mq: pn.MessageQueue) -> None:
    mq.declare("live")
    model = DashboardModel(mq)
    before = model.refresh().tiles.waiting
    mq.publish("live", "ioc.enrichment.request", {"n": 1})
    assert model.refresh().tiles.waiting == before + 1
    assert len(model.snapshot.depth_history) == 2 if model.snapshot else False


def _commands(server: RedisServer) -> dict[str, int]:
    stats = server.client().info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def _refresh_cost(mq: pn.MessageQueue, server: RedisServer) -> dict[str, int]:
    model = DashboardModel(mq, health_every_s=3600)
    model.refresh()  # the first refresh reads the whole chart window and the health
    before = _commands(server)
    model.refresh()
    after = _commands(server)
    return {k: n - before.get(k, 0) for k, n in after.items()
            if n - before.get(k, 0) and k not in ("info", "hello")}


def test_a_refresh_costs_the_same_commands_for_10_or_20000_waiting_messages(
        own_server: RedisServer) -> None:
    mq = pn.connect(own_server.url, settings=pn.Settings())
    for q in ("small", "large"):
        mq.declare(q)
    mq.publish_batch("small", [("ioc.enrichment.request", {"n": i}) for i in range(10)])
    small = _refresh_cost(mq, own_server)
    for start in range(0, 20_000, 1000):
        mq.publish_batch("large", [("ioc.enrichment.request", {"n": i})
                                   for i in range(start, start + 1000)])
    large = _refresh_cost(mq, own_server)
    assert small == large
    assert sum(small.values()) <= 2 * 25  # 2 queues: ~20 commands each, nothing per message
    assert not {"xrevrange", "lrange", "zrange", "xreadgroup", "scan", "keys"} & set(small)
    assert small["xrange"] == 2 * 4  # the oldest entry (COUNT 1) of each level stream
    mq.close()


def _dead_letters(mq: pn.MessageQueue, queue: str, n: int) -> None:
    """``n`` dead letters: one real one (a Rejected message), copied with raw XADDs."""
    def reject(message: pn.Envelope, context: pn.MessageContext) -> None:
        raise pn.Reject("schema_invalid")

    mq.subscribe(queue, "*", reject)
    mq.publish(queue, "ioc.enrichment.request", {"ioc": {"value": "203.0.113.9"}})
    with mq.worker():
        assert pn.core.queues.wait_until(lambda: len(mq.dlq(queue)) == 1, 10)
    key = mq.queue_keys(queue).dlq
    ((_, fields),) = mq.client.xrange(key)
    for start in range(1, n, 5000):
        pipe = mq.client.pipeline(transaction=False)
        for _ in range(start, min(start + 5000, n)):
            pipe.xadd(key, fields)
        pipe.execute()


def test_100000_dead_letters_are_paged_a_page_at_a_time(
        own_server: RedisServer) -> None:
    mq = pn.connect(own_server.url, settings=pn.Settings())
    _dead_letters(mq, "poisoned", 100_000)
    pager = DeadLetterPager(mq, page_size=25)
    before = _commands(own_server)
    first = pager.choose("poisoned")
    read = _commands(own_server)["xrevrange"] - before.get("xrevrange", 0)
    assert read == 1 and first.total == 100_000 and len(first.letters) == 25
    second = pager.older()
    assert second.number == 2 and len(second.letters) == 25
    assert min(d.dlq_id for d in first.letters) > max(d.dlq_id for d in second.letters) \
        or _order(first.letters[-1].dlq_id) > _order(second.letters[0].dlq_id)
    assert not {d.dlq_id for d in first.letters} & {d.dlq_id for d in second.letters}
    assert pager.newer().letters == first.letters
    mq.close()


def _order(sid: str) -> tuple[int, int]:
    ms, seq = sid.split("-")
    return int(ms), int(seq)


def test_paging_back_walks_every_dead_letter_once_across_queues(mq: pn.MessageQueue) -> None:
    for q, n in (("a-feed", 7), ("b-feed", 5)):
        _dead_letters(mq, q, n)
    pager = DeadLetterPager(mq, page_size=4)
    seen = [d.dlq_id + d.queue for d in pager.choose().letters]
    while pager.page is not None and pager.page.has_older:
        seen += [d.dlq_id + d.queue for d in pager.older().letters]
    assert len(seen) == len(set(seen)) == 12
    assert pager.page is not None and pager.page.number == 3


def test_a_read_only_role_sees_amber_payloads_withheld_and_green_ones_masked(
        mq: pn.MessageQueue) -> None:
    def reject(message: pn.Envelope, context: pn.MessageContext) -> None:
        raise pn.Reject("schema_invalid")

    mq.subscribe("ioc-triage", "*", reject)
    amber = mq.publish("ioc-triage", "ioc.enrichment.request",
                       {"ioc": {"value": "evil.example.com"}, "source": "partner-isac"},
                       tlp="AMBER")
    green = mq.publish("ioc-triage", "ioc.enrichment.request",
                       {"ioc": {"value": "203.0.113.7"}, "source": "partner-isac"}, tlp="GREEN")
    with mq.worker():
        assert pn.core.queues.wait_until(lambda: len(mq.dlq("ioc-triage")) == 2, 10)
    analyst = DeadLetterPager(mq, role="analyst")
    shown = analyst.inspect("ioc-triage", amber)
    assert shown["payload_redacted"] == "tlp" and "evil" not in str(shown["payload"])
    assert "TLP:AMBER payload withheld" in shown["payload"]
    assert shown["traceback"].startswith("[withheld")
    visible = analyst.inspect("ioc-triage", green)
    assert visible["payload"]["source"] == "[redacted]"
    assert visible["payload"]["ioc"]["value"] == "203[.]0[.]113[.]7"  # defanged on screen
    operator = DeadLetterPager(mq, role="admin").inspect("ioc-triage", amber)
    assert operator["payload"]["source"] == "partner-isac" and operator["may_manage"]


def test_a_role_without_manage_cannot_replay_and_the_refusal_is_raised_by_the_core(
        real_mq: pn.MessageQueue) -> None:
    mq = real_mq
    _dead_letters(mq, "alerts-feed", 1)
    letter = mq.dlq("alerts-feed").list()[0]
    restricted = pn.connect(mq.settings.redis.url, key_prefix=mq.keys.prefix,
                            settings=pn.Settings.from_dict({"security": {"role": "auditor"}}))
    pager = DeadLetterPager(restricted)
    assert not pager.may_manage("alerts-feed")
    assert pager.choose("alerts-feed").letters[0].dlq_id == letter.dlq_id  # reading is fine
    with pytest.raises(PermissionDeniedError, match="may not manage 'alerts-feed'"):
        pager.replay([("alerts-feed", letter.dlq_id)])
    with pytest.raises(PermissionDeniedError):
        pager.purge([("alerts-feed", letter.dlq_id)])
    assert len(mq.dlq("alerts-feed")) == 1
    restricted.close()


def test_the_dashboard_replays_only_after_confirmation(mq: pn.MessageQueue) -> None:
    _dead_letters(mq, "replayable", 3)
    board = Dashboard(mq, user="oncall@example")
    board.refresh()
    board.dlq_queue.value = "replayable"
    assert len(board.selection.options) == 3
    board.selection.value = tuple(v for _, v in board.selection.options[:2])
    board.replay_button.click()
    assert board.confirm_box.layout.display == "flex" and len(mq.dlq("replayable")) == 3
    assert "fail again" in board.confirm_text.value  # schema_invalid comes back
    board.confirm_button.click()
    assert len(mq.dlq("replayable")) == 1
    assert "data-done='replay'" in board.dlq_status.value
    assert [a["outcome"] for a in board.actions] == ["ok"]


def test_the_dashboard_purge_can_be_cancelled(mq: pn.MessageQueue) -> None:
    _dead_letters(mq, "purgeable", 2)
    board = Dashboard(mq)
    board.refresh()
    board.selection.value = (board.selection.options[0][1],)
    board.purge_button.click()
    board.cancel_button.click()
    assert len(mq.dlq("purgeable")) == 2 and board.confirm_box.layout.display == "none"


def test_searching_by_message_id_opens_its_trace_timeline(mq: pn.MessageQueue) -> None:
    work = run_workload(mq, queue="searched", ok=2, flaky=0, rejected=0)
    board = Dashboard(mq)
    found = board.search(work.doomed_id)
    assert found and found[0].message_id == work.doomed_id
    assert f"data-trace='{work.doomed_id}'" in board.trace_view.value
    assert "data-event='dead_lettered'" in board.trace_view.value
    assert "data-tree=" not in board.trace_view.value  # one message: lanes per queue


def test_the_trace_of_a_group_or_a_chain_opens_as_a_tree(mq: pn.MessageQueue) -> None:
    flows = run_flows(mq)
    board = Dashboard(mq)
    board._open(flows.callback_id)
    view = board.trace_view.value
    assert "data-tree='5'" in view and "data-trace-tree='5'" in view
    lanes = re.findall(r"data-lane='([^']+)' data-level='(\d)'", view)
    assert lanes[0] == (flows.group_id, "0") and lanes[-1] == (flows.callback_id, "1")
    assert {k for k, _ in lanes[1:4]} == set(flows.member_ids)
    assert view.count("data-link='1'") == 4 and "data-release" not in view
    assert {"group_created", "group_succeeded", "published", "acked"} <= set(
        re.findall(r"data-event='([a-z_]+)'", view))

    board._open(flows.chain_last_id)
    view = board.trace_view.value
    levels = [int(level) for _, level in re.findall(r"data-lane='([^']+)' data-level='(\d)'",
                                                       view)]
    assert levels == [0, 1, 2, 3] and view.count("data-release='1'") == 2
    assert "└─ threat-report" in view.replace("\u00a0", " ")


def test_a_search_that_finds_nothing_says_so(mq: pn.MessageQueue) -> None:
    mq.declare("quiet")
    board = Dashboard(mq)
    assert board.search("no-such-indicator.example") == []
    assert "data-found='0'" in board.search_status.value


def test_the_refresh_interval_must_be_positive(mq: pn.MessageQueue) -> None:
    with pytest.raises(ValidationError, match="refresh_s"):
        Dashboard(mq, refresh_s=0)


def test_the_header_never_shows_the_password_of_the_url(redis_url: str, prefix: str) -> None:
    scheme, rest = redis_url.split("://", 1)
    mq = pn.connect(f"{scheme}://default:hunter2secret@{rest}", key_prefix=prefix)
    board = Dashboard(mq)
    board.refresh()
    assert "hunter2secret" not in board.header.value and "hunter2secret" not in board.where
    mq.close()


def test_charts_are_never_blank() -> None:
    empty = svg.line_chart("Throughput", [], 0, 900, empty="no messages settled")
    assert "data-empty='1'" in empty and "no messages settled" in empty
    one = svg.line_chart("Depth", [svg.Series("q", [(450.0, 3.0)])], 0, 900)
    assert one.count("<circle") == 1  # a single point still shows as a marker
    assert re.search(r"<text[^>]*>3</text>", one)  # the y axis reaches the value


@pytest.mark.parametrize(("high", "ticks"), [(0.0, [0.0, 1.0]), (7.0, [0, 2, 4, 6, 8]),
                                              (950.0, [0, 250, 500, 750, 1000])])
def test_axis_ticks_are_round_numbers_reaching_the_highest_value(
        high: float, ticks: list[float]) -> None:
    assert svg.nice_ticks(high) == ticks
