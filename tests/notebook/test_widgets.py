"""The widgets, driven as a person would (``.value`` and ``.click()``), and their models."""

from __future__ import annotations

import re

import pytest

import phantom_notebook as pn
from phantom_notebook.core.errors import ValidationError
from phantom_notebook.core.queues import wait_until
from phantom_notebook.notebook.frames import messages_df
from phantom_notebook.notebook.widgets import (
    DLQBrowser,
    DLQBrowserModel,
    IOCPublisher,
    QueueMonitor,
    QueueMonitorModel,
    TraceExplorer,
    TraceExplorerModel,
)
from tests.notebook.conftest import Workload, run_flows

REPORT = ("Beacon to 198.51.100[.]23 and hxxp://203.0.113[.]45/bins/mozi.m, phish from "
          "billing[@]invoices-example[.]com; the config also says 999.1.1[.]1 (a typo).")


def test_the_publisher_lists_extracted_iocs_defanged_and_flags_invalid_ones(
        mq: pn.MessageQueue) -> None:
    publisher = IOCPublisher(mq)
    publisher.text.value = REPORT
    publisher.extract_button.click()
    table = publisher.model.iocs_df()
    assert list(table["type"]) == ["ipv4", "url", "email", "ipv4"]
    assert list(table["value"]) == ["198[.]51[.]100[.]23", "hxxp://203[.]0[.]113[.]45/bins/mozi.m",
                                    "billing[@]invoices-example[.]com", "999[.]1[.]1[.]1"]
    assert list(table["valid"]) == [True, True, True, False]
    assert table["problem"].iloc[3] == "octet 999 > 255"
    assert "198.51.100.23" not in publisher.table.value  # never shown live
    assert publisher.publish_button.description == "Publish 3"


def test_publishing_sends_one_request_per_valid_ioc_with_the_chosen_priority_and_tlp(
        mq: pn.MessageQueue) -> None:
    mq.declare("ioc-processing")
    publisher = IOCPublisher(mq, text=REPORT)
    publisher.priority.value = "CRITICAL"
    publisher.tlp.value = "RED"
    publisher.publish_button.click()
    published = publisher.model.published_df()
    assert len(published) == 3 and set(published["tlp"]) == {"RED"}
    waiting = messages_df(mq, "ioc-processing", columns="all")
    assert set(waiting["id"]) == set(published["message_id"])
    assert set(waiting["priority"].astype(str)) == {"CRITICAL"}
    assert set(waiting["tlp"].astype(str)) == {"RED"}
    assert "published 3 request(s)" in publisher.status.value


def test_publishing_nothing_valid_says_so_instead_of_raising(mq: pn.MessageQueue) -> None:
    publisher = IOCPublisher(mq, text="nothing to see, only 999.1.1[.]1")
    assert publisher.publish_button.disabled
    publisher.publish()
    assert "no valid indicator" in publisher.status.value
    with pytest.raises(ValidationError):
        publisher.model.publish()


def test_open_trace_loads_the_chosen_message_into_the_trace_explorer(
        mq: pn.MessageQueue) -> None:
    explorer = TraceExplorer(mq)
    mq.declare("ioc-processing")
    publisher = IOCPublisher(mq, text=REPORT).connect(explorer)
    publisher.publish_button.click()
    publisher.trace_choice.value = publisher.model.published[0].message_id
    publisher.trace_button.click()
    assert explorer.key.value == publisher.model.published[0].message_id
    assert list(explorer.model.hops["event"].astype(str)) == ["published"]
    assert len(explorer.chart.outputs) == 1


def test_the_trace_explorer_shows_every_hop_of_a_retried_dead_letter(
        mq: pn.MessageQueue, workload: Workload) -> None:
    explorer = TraceExplorer(mq)
    explorer.key.value = workload.doomed_id
    explorer.load_button.click()
    events = list(explorer.model.hops_df()["event"].astype(str))
    assert events == ["published", "delivered", "retried", "delivered", "retried", "delivered",
                      "dead_lettered"]
    assert "dead_lettered" in explorer.summary()
    assert "application/vnd.plotly.v1+json" in explorer.chart.outputs[0]["data"]
    assert workload.doomed_id in explorer.table.value
    # one message, no parent: a one-line description and no tree
    assert explorer.model.tree() == [] and "\n" not in explorer.model.describe()
    assert explorer.tree.value == ""


def _tree_lines(text: str) -> list[tuple[str, str]]:
    """(tree label, note) of each line of ``describe()`` after its summary line."""
    out = []
    for line in text.splitlines()[1:]:
        found = re.match(r"^(\s*\S.*?)\s{2,}(\S.*)$", line)
        assert found, line
        out.append((found[1], found[2]))
    return out


def _short(message_id: str) -> str:
    return message_id.rsplit("-", 1)[-1]


def test_the_trace_explorer_lists_a_group_and_a_chain_as_indented_trees(
        mq: pn.MessageQueue) -> None:
    flows = run_flows(mq)
    explorer = TraceExplorer(mq, key=flows.callback_id)  # a message id: its whole trace
    text = explorer.model.describe()
    assert text.splitlines()[0].startswith("4 message(s), 13 events")
    lines = _tree_lines(text)
    assert [label for label, _ in lines][0] == f"group {_short(flows.group_id)}"
    assert lines[0][1].startswith("4 messages in ")
    assert [label[:3] for label, _ in lines[1:]] == ["├─ ", "├─ ", "├─ ", "└─ "]
    assert {label.split(" · ")[1] for label, _ in lines[1:4]} == {
        _short(m) for m in flows.member_ids}
    assert lines[4][0] == f"└─ threat-score · {_short(flows.callback_id)} (callback)"
    assert all(note.startswith("acked · 3 events in ") for _, note in lines[1:4])
    assert lines[4][1].startswith("acked · 4 events in ")
    assert "data-trace-tree='5'" in explorer.tree.value
    assert "(callback)" in explorer.tree.value and "\n" not in explorer.status.value
    assert "application/vnd.plotly.v1+json" in explorer.chart.outputs[0]["data"]
    assert explorer.summary().startswith("TraceExplorer: 4 message(s)")

    explorer.show(flows.chain_last_id)
    chain = _tree_lines(explorer.model.describe())
    assert [label.split(" · ")[0] for label, _ in chain] == [
        chain[0][0].split(" · ")[0], "└─ ioc-vt", "   └─ threat-score", "      └─ threat-report"]
    assert chain[0][0].startswith("chain ") and chain[3][0].endswith("(step 3)")
    assert [lane.level for lane in explorer.model.tree()] == [0, 1, 2, 3]


def test_an_unknown_id_gives_an_empty_trace_and_a_message(mq: pn.MessageQueue) -> None:
    model = TraceExplorerModel(mq)
    assert model.load("no-such-message").empty
    assert "no trace events" in model.describe()
    explorer = TraceExplorer(mq, model=model)
    explorer.key.value = "  "
    explorer.load_button.click()
    assert "give a message id" in explorer.status.value


def test_the_queue_monitor_refreshes_headless_and_counts_what_happened(
        mq: pn.MessageQueue, workload: Workload) -> None:
    monitor = QueueMonitor(mq, [workload.queue])
    monitor.refresh_button.click()
    row = monitor.model.summary_df().iloc[0]
    assert (row["queue"], row["depth"], row["dead"]) == (workload.queue, 0, workload.dead)
    assert row["acked_per_s"] == pytest.approx(workload.acked / 60)
    assert 0 < row["error_rate"] < 1
    assert len(monitor.charts["throughput"].outputs) == 1
    assert "1 refreshes" in monitor.summary()


def test_the_queue_monitor_refreshes_in_the_background_until_stopped(
        mq: pn.MessageQueue) -> None:
    mq.declare("watched")
    model = QueueMonitorModel(mq, ["watched"], interval_s=0.01)
    monitor = QueueMonitor(model=model)
    monitor.start_button.click()
    try:
        assert model.running and monitor.stop_button.disabled is False
        assert model.wait_for_refreshes(3)
    finally:
        monitor.stop_button.click()
    assert not model.running and monitor.start_button.disabled is False
    done = model.refreshes
    assert not model.wait_for_refreshes(done + 1, timeout_s=0.05)
    assert len(model.history_df()) == done


def test_the_queue_monitor_follows_the_queue_selection(mq: pn.MessageQueue) -> None:
    for name in ("one", "two"):
        mq.declare(name)
    mq.publish("two", "x", {})
    monitor = QueueMonitor(mq, ["one"])
    monitor.queues.value = ("two",)
    assert monitor.model.queues == ["two"]
    assert int(monitor.model.summary_df()["depth"].iloc[0]) == 1


def test_the_dlq_browser_filters_and_redacts_payloads_for_an_ordinary_role(
        mq: pn.MessageQueue, workload: Workload) -> None:
    browser = DLQBrowser(mq)
    assert len(browser.selection.options) == workload.dead
    browser.reason.value = "schema_invalid"
    assert len(browser.selection.options) == workload.rejected
    browser.reason.value = ""
    browser.since.value = "15min"
    assert len(browser.selection.options) == workload.dead
    browser.selection.value = (browser.selection.options[0][1],)
    browser.inspect_button.click()
    assert "payload redacted for this role" in browser.detail.value
    letter = DLQBrowserModel(mq).inspect(workload.queue, workload.doomed_id)
    assert letter["payload_redacted"] and letter["traceback"] in ("", "[redacted]")


def test_the_dlq_payload_is_shown_to_a_permitted_role_with_sources_only_then(
        mq: pn.MessageQueue) -> None:
    mq.declare("intake", retry=pn.RetrySettings(max_retries=0))

    def reject(message: pn.Envelope, context: pn.MessageContext) -> None:
        raise pn.Reject("bad_feed")

    mq.subscribe("intake", "*", reject)
    mid = mq.publish("intake", "ioc.enrichment.request",
                     {"ioc": {"value": "evil.example.com"}, "source": "partner-x"})
    with mq.worker():
        assert wait_until(lambda: mq.stats(["intake"])[0].dead == 1, 10)
    hidden = DLQBrowserModel(mq, role=None).inspect("intake", mid)
    shown = DLQBrowserModel(mq, role="admin").inspect("intake", mid)
    assert hidden["payload"]["source"] == "[redacted]"
    assert shown["payload"]["source"] == "partner-x"
    assert shown["payload"]["ioc"]["value"] == "evil[.]example[.]com"  # defanged for both


def test_purging_asks_for_confirmation_and_cancel_deletes_nothing(
        mq: pn.MessageQueue, workload: Workload) -> None:
    browser = DLQBrowser(mq)
    browser.selection.value = tuple(key for _, key in browser.selection.options[:2])
    browser.purge_button.click()
    assert browser.confirm_box.layout.display == "flex"
    assert "purge 2 dead letter(s)" in browser.confirm_text.value
    browser.cancel_button.click()
    assert mq.stats([workload.queue])[0].dead == workload.dead
    browser.purge_button.click()
    browser.confirm_button.click()
    assert mq.stats([workload.queue])[0].dead == workload.dead - 2
    assert len(browser.selection.options) == workload.dead - 2
    with pytest.raises(ValidationError):
        browser.model.purge(((workload.queue, "1-0"),))  # type: ignore[arg-type]


def test_replaying_selected_dead_letters_publishes_them_again(
        mq: pn.MessageQueue, workload: Workload) -> None:
    browser = DLQBrowser(mq)
    browser.selection.value = (browser.selection.options[0][1],)
    browser.replay_button.click()
    assert "replayed 1" in browser.status.value
    stats = mq.stats([workload.queue])[0]
    assert (stats.dead, stats.ready) == (workload.dead - 1, 1)


def test_dlq_filters_show_labels_and_never_offer_a_none_value(
        mq: pn.MessageQueue, workload: Workload) -> None:
    browser = DLQBrowser(mq)
    for dropdown, label in ((browser.queue, "all queues"), (browser.reason, "any reason"),
                            (browser.since, "any time")):
        assert all(isinstance(value, str) for _, value in dropdown.options), dropdown.options
        assert dropdown.label == label and dropdown.value == ""
    browser.queue.value = workload.queue
    browser.reason.value = "schema_invalid"
    assert browser.reason.label == "schema_invalid"
    assert len(browser.selection.options) == workload.rejected


def test_dlq_error_texts_wrap_and_carry_the_whole_text_as_a_tooltip(
        mq: pn.MessageQueue, workload: Workload) -> None:
    browser = DLQBrowser(mq)
    assert "white-space:normal" in browser.table.value
    error_cell = browser.table.value.split("feed unreadable")[0].rsplit("<div", 1)[1]
    assert "title='" in error_cell, "the whole error is the cell's tooltip"


def test_replaying_a_letter_that_will_fail_again_asks_first_then_shows_the_new_id(
        mq: pn.MessageQueue, workload: Workload) -> None:
    browser = DLQBrowser(mq)
    opened: list[str] = []
    browser.on_trace = opened.append
    browser.reason.value = "schema_invalid"
    key = browser.selection.options[0][1]
    browser.selection.value = (key,)
    browser.inspect_button.click()
    assert key[1] in browser.detail.value
    browser.replay_button.click()
    assert browser.replay_box.layout.display == "flex"
    assert "schema_invalid" in browser.replay_text.value
    assert "dead-lettered again" in browser.replay_text.value
    assert mq.stats([workload.queue])[0].dead == workload.dead, "nothing replayed yet"
    browser.replay_cancel_button.click()
    assert mq.stats([workload.queue])[0].dead == workload.dead
    browser.selection.value = (key,)
    browser.replay_button.click()
    browser.replay_confirm_button.click()
    stats = mq.stats([workload.queue])[0]
    assert (stats.dead, stats.ready) == (workload.dead - 1, 1)
    (old, new), = browser.replayed
    assert old == key and new in browser.detail.value, "the pane shows the new id, not stale"
    assert browser.trace_row.layout.display == "flex" and browser.trace_choice.value == new
    browser.trace_button.click()
    assert opened == [new]
    assert messages_df(mq, workload.queue, columns="all")["id"].tolist() == [new]


def test_replaying_a_transient_failure_needs_no_extra_confirmation(
        mq: pn.MessageQueue, workload: Workload) -> None:
    browser = DLQBrowser(mq)
    doomed = next(k for _, k in browser.selection.options if k[1] != "" and
                  browser.model.inspect(*k)["message_id"] == workload.doomed_id)
    assert browser.model.will_fail_again([doomed]) == {}
    browser.selection.value = (doomed,)
    browser.replay_button.click()
    assert browser.replay_box.layout.display == "none" and len(browser.replayed) == 1


def test_publishing_twice_in_a_row_publishes_once_until_the_text_changes(
        mq: pn.MessageQueue) -> None:
    mq.declare("ioc-processing")
    publisher = IOCPublisher(mq, text=REPORT)
    publisher.publish_button.click()
    assert publisher.publish_button.disabled, "disabled once published"
    publisher.publish()  # a double click reaching the kernel twice
    assert len(publisher.model.published) == 3
    assert mq.stats(["ioc-processing"])[0].ready == 3
    publisher.text.value = REPORT + " and 192.0.2.77"
    assert publisher.publish_button.disabled, "the new text must be extracted first"
    publisher.extract_button.click()
    assert not publisher.publish_button.disabled
    publisher.publish_button.click()
    assert len(publisher.model.published) == 7


def test_the_publisher_warns_when_the_queue_has_no_consumer_and_refuses_a_typo(
        mq: pn.MessageQueue) -> None:
    mq.declare("ioc-processing")
    publisher = IOCPublisher(mq, text=REPORT)
    assert "no live consumer on ioc-processing" in publisher.hint.value
    publisher.publish_button.click()
    assert "no consumer yet" in publisher.status.value
    mq.subscribe("ioc-processing", "*", lambda m, c: None)
    with mq.worker():
        assert wait_until(lambda: publisher.check_queue(), 10)
        assert publisher.hint.value == ""
    with pytest.raises(pn.UnknownQueueError, match="did you mean 'ioc-processing'"):
        publisher.model.publish(queue="ioc-procesing")
    assert "ioc-procesing" not in mq.queues()


def test_the_queue_monitor_says_when_messages_wait_without_a_live_consumer(
        mq: pn.MessageQueue) -> None:
    mq.publish("orphaned", "t", {})
    monitor = QueueMonitor(mq, ["orphaned"])
    monitor.refresh_button.click()
    assert monitor.model.unconsumed() == {"orphaned": 1}
    assert "no live consumer" in monitor.hint.value and "orphaned (1 waiting)" in monitor.hint.value
    assert "mq.worker().start()" in monitor.hint.value
    assert monitor.model.summary_df()["consumers"].tolist() == [0]
    mq.subscribe("orphaned", "*", lambda m, c: None)
    with mq.worker():
        assert wait_until(lambda: monitor.model.refresh() is not None and
                          not monitor.model.unconsumed(), 10)
        assert monitor.hint.value == ""
        assert monitor.model.summary_df()["consumers"].tolist() == [1]
    monitor.close()


def test_breaker_warnings_go_to_the_monitor_of_their_queue_not_to_the_running_cell(
        mq: pn.MessageQueue, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from phantom_notebook.notebook.logs import BREAKER_LOGGER

    mq.declare("breaker-watched")
    older = QueueMonitor(mq, ["breaker-watched"])  # the cell run before: the newer one wins
    monitor = QueueMonitor(mq, ["breaker-watched"])
    logger = logging.getLogger(BREAKER_LOGGER)
    with caplog.at_level(logging.WARNING, logger=BREAKER_LOGGER):
        logger.warning("circuit breaker of %s/%s is now %s", "breaker-watched", "workers", "open")
        logger.warning("circuit breaker of %s/%s is now %s", "elsewhere", "workers", "open")
    assert "circuit breaker of breaker-watched/workers is now open" in monitor.alert.value
    assert [r.getMessage() for r in caplog.records] == [
        "circuit breaker of elsewhere/workers is now open"]
    assert older.alert.value == ""
    monitor.close()
    older.close()
    with caplog.at_level(logging.WARNING, logger=BREAKER_LOGGER):
        logger.warning("circuit breaker of %s/%s is now %s", "breaker-watched", "workers",
                       "closed")
    assert "closed" not in monitor.alert.value
    last = caplog.records[-1].getMessage()
    assert last.endswith("breaker-watched/workers is now closed")


@pytest.mark.embedded
def test_every_widget_renders_as_a_widget_view_with_a_text_summary() -> None:
    mq = pn.connect(None, key_prefix="render", settings=pn.Settings())
    mq.declare("q")
    for widget in (IOCPublisher(mq, text=REPORT), QueueMonitor(mq, ["q"]), TraceExplorer(mq),
                   DLQBrowser(mq)):
        bundle = widget._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in bundle
        assert bundle["text/plain"].startswith(type(widget).__name__)
        widget.close()


def test_the_queue_monitor_pauses_resumes_and_cancels_for_a_manager_only(
        mq: pn.MessageQueue, prefix: str) -> None:
    mq.declare("ioc-noisy", kind="fifo")
    ids = [mq.publish("ioc-noisy", "ioc.raw", {"i": i}) for i in range(3)]
    monitor = QueueMonitor(mq, ["ioc-noisy"])

    monitor.pause_button.click()
    assert mq.stats("ioc-noisy")[0].paused
    assert "consumers paused: ioc-noisy" in monitor.status.value
    monitor.cancel_id.value = ids[1]
    monitor.cancel_button.click()
    assert "ioc-noisy: cancelled" in monitor.control_status.value
    assert mq.stats("ioc-noisy")[0].ready == 2
    monitor.resume_button.click()
    assert not mq.stats("ioc-noisy")[0].paused

    url = None if mq.embedded else mq.settings.redis.url
    analyst = pn.connect(url, key_prefix=prefix,
                         settings=pn.Settings.from_dict({"security": {"role": "analyst"}}))
    theirs = QueueMonitor(analyst, ["ioc-noisy"])
    theirs.pause_button.click()
    assert "may not manage" in theirs.control_status.value
    assert not mq.stats("ioc-noisy")[0].paused
