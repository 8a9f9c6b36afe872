"""Alert sinks deliver or say why not, and unacknowledged critical alerts escalate."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import phantom_notebook as pn
from phantom_notebook.intel.consumers import (
    AlertDeliveryError,
    AlertDistributionConsumer,
    JsonlFileSink,
    RedisChannelSink,
    WebhookSink,
)
from phantom_notebook.intel.producers import AlertProducer
from tests.support.collect import eventually


class Hook:
    """A local webhook receiver: answers with the scripted statuses, then 200."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.bodies: list[dict[str, Any]] = []
        self.hang = threading.Event()  # set = hold every request until released
        self.release = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.bodies.append(json.loads(body))
                if hook.hang.is_set():
                    hook.release.wait(10)
                status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    server.thread.start()
    yield server
    server.close()


ALERT = {"alert_id": "a1", "severity": "critical", "title": "APT"}


def test_the_webhook_sink_posts_the_alert_as_json(hook: Hook) -> None:
    WebhookSink(hook.url).send(ALERT)
    assert hook.bodies == [ALERT]


def test_the_webhook_sink_retries_a_server_error_with_backoff_then_succeeds(hook: Hook) -> None:
    hook.statuses = [500, 503]
    waits: list[float] = []
    WebhookSink(hook.url, attempts=3, backoff_s=0.25, sleep=waits.append).send(ALERT)
    assert len(hook.bodies) == 3 and waits == [0.25, 0.5]


def test_the_webhook_sink_raises_a_retryable_error_when_attempts_run_out(hook: Hook) -> None:
    hook.statuses = [500, 500]
    with pytest.raises(AlertDeliveryError, match="failed after 2 attempt.*HTTP 500") as caught:
        WebhookSink(hook.url, attempts=2, sleep=lambda _: None).send(ALERT)
    assert caught.value.retryable


def test_the_webhook_sink_times_out_a_server_that_does_not_answer(hook: Hook) -> None:
    hook.hang.set()
    with pytest.raises(AlertDeliveryError, match="timed out") as caught:
        WebhookSink(hook.url, timeout_s=0.2, attempts=2, sleep=lambda _: None).send(ALERT)
    assert caught.value.retryable and len(hook.bodies) == 2


def test_the_webhook_sink_does_not_repeat_a_request_the_server_refuses(hook: Hook) -> None:
    hook.statuses = [400]
    with pytest.raises(AlertDeliveryError, match="refused: HTTP 400") as caught:
        WebhookSink(hook.url, sleep=lambda _: None).send(ALERT)
    assert not caught.value.retryable and len(hook.bodies) == 1


def test_a_webhook_needs_an_http_url() -> None:
    with pytest.raises(pn.ValidationError, match="http"):
        WebhookSink("file:///etc/passwd")


def test_the_jsonl_sink_appends_one_line_per_alert(tmp_path: Path) -> None:
    sink = JsonlFileSink(tmp_path / "out" / "alerts.jsonl")
    sink.send(ALERT)
    sink.send({**ALERT, "alert_id": "a2"})
    lines = (tmp_path / "out" / "alerts.jsonl").read_text().splitlines()
    assert [json.loads(line)["alert_id"] for line in lines] == ["a1", "a2"]


def test_the_redis_channel_sink_publishes_to_subscribers(mq: pn.MessageQueue) -> None:
    channel = mq.keys.channel("alerts")
    listener = mq.client.pubsub()
    listener.subscribe(channel)
    assert listener.get_message(timeout=5)["type"] == "subscribe"
    RedisChannelSink(mq.client, channel).send(ALERT)
    message = listener.get_message(timeout=5)
    listener.close()
    assert json.loads(message["data"]) == ALERT


class Flaky:
    """A sink that fails its first ``failures`` sends."""

    def __init__(self, name: str, failures: int = 0, retryable: bool = True) -> None:
        self.name = name
        self.failures = failures
        self.retryable = retryable
        self.sent: list[dict[str, Any]] = []

    def send(self, alert: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise AlertDeliveryError(self.name, "down", retryable=self.retryable)
        self.sent.append(dict(alert))


def envelope(payload: dict[str, Any], id: str = "M1") -> pn.Envelope:
    return pn.Envelope(id=id, type="alert.threat.notification", queue="alerts", payload=payload)


def test_a_retry_after_a_partial_failure_only_repeats_the_sinks_that_failed(
        mq: pn.MessageQueue) -> None:
    good, bad = Flaky("good"), Flaky("bad", failures=1)
    consumer = AlertDistributionConsumer(mq, [good, bad])
    with pytest.raises(AlertDeliveryError):
        consumer.distribute(envelope(ALERT), ALERT)
    consumer.distribute(envelope(ALERT), ALERT)
    assert len(good.sent) == 1 and len(bad.sent) == 1
    assert good.sent[0]["message_id"] == "M1" and good.sent[0]["alert_id"] == "a1"


def test_a_refusing_sink_dead_letters_the_alert_instead_of_retrying(mq: pn.MessageQueue) -> None:
    consumer = AlertDistributionConsumer(mq, [Flaky("strict", failures=1, retryable=False)])
    with pytest.raises(pn.Reject) as caught:
        consumer.distribute(envelope(ALERT), ALERT)
    assert caught.value.reason == "alert_sink_refused"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_an_unacknowledged_critical_alert_escalates_until_acknowledged(
        mq: pn.MessageQueue, tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    consumer = AlertDistributionConsumer(mq, [JsonlFileSink(out)], ack_deadline_s=60,
                                         escalation_interval_s=60, max_level=3,
                                         escalate_to=["soc-lead"])
    consumer.subscribe()
    producer = AlertProducer(mq)
    message_id = producer.publish_threat_alert("critical", "APT", alert_id="A-1")
    producer.publish_threat_alert("medium", "noise", alert_id="A-2")
    with mq.worker():
        assert eventually(lambda: len(read_jsonl(out)) == 2)
        [(alert_id, deadline)] = consumer.open_alerts().items()
        assert alert_id == "A-1"
        assert consumer.escalate_unacknowledged(now=deadline / 1000 - 1) == []
        [escalation_id] = consumer.escalate_unacknowledged(now=deadline / 1000 + 1)
        assert eventually(lambda: len(read_jsonl(out)) == 3)
        escalation = read_jsonl(out)[2]
        assert (escalation["type"], escalation["level"]) == ("alert.escalation", 1)
        assert escalation["message_id"] == escalation_id
        assert escalation["correlation_id"] == message_id
        assert escalation["escalate_to"] == ["soc-lead"]
        assert consumer.open_alerts()["A-1"] == deadline + 1000 + 60_000
        producer.publish_acknowledgment("A-1", "ana", note="on it")
        assert eventually(lambda: consumer.open_alerts() == {})
    assert consumer.escalate_unacknowledged(now=deadline / 1000 + 3600) == []
    assert [line["type"] for line in read_jsonl(out)][-1] == "alert.acknowledgment"


def test_escalation_stops_at_the_last_level(mq: pn.MessageQueue) -> None:
    consumer = AlertDistributionConsumer(mq, [], ack_deadline_s=0, escalation_interval_s=10,
                                         max_level=2)
    consumer._track(pn_alert(), envelope({}))
    levels = []
    for step in range(1, 5):
        for mid in consumer.escalate_unacknowledged(now=10_000_000_000 + step * 100):
            levels.append(escalation_level(mq, mid))
    assert levels == [1, 2] and consumer.open_alerts() == {}


def pn_alert() -> Any:
    from phantom_notebook.intel.schemas import ThreatAlert

    return ThreatAlert(alert_id="A-9", severity="critical", title="t")


def escalation_level(mq: pn.MessageQueue, message_id: str) -> int:
    for stream in mq.queue_keys("alerts").streams:
        for _, fields in mq.client.xrange(stream):
            env = mq.codec.open(fields[b"m"])
            if env.id == message_id:
                return int(env.payload["level"])
    raise AssertionError(message_id)


def test_an_acknowledgment_arriving_before_its_alert_prevents_escalation(
        mq: pn.MessageQueue) -> None:
    consumer = AlertDistributionConsumer(mq, [], ack_deadline_s=0)
    assert consumer.acknowledge("A-9") is False
    consumer._track(pn_alert(), envelope({}))
    assert consumer.open_alerts() == {}
