"""examples/fastapi_webhook.py against a real redis-server: an alert posted to the webhook
is queued with its TLP and indicators; /healthz follows the queue's health."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

import phantom_notebook as pn
from examples.fastapi_webhook import create_app
from phantom_notebook.core.observe.health import HealthThresholds
from phantom_notebook.core.testing import wait_until


@pytest.fixture
def client(redis_url: str, prefix: str) -> Iterator[TestClient]:
    with TestClient(create_app(redis_url, key_prefix=prefix, settings=pn.Settings())) as c:
        yield c


def test_a_posted_alert_is_queued_with_its_tlp_and_the_indicators_of_its_text(
        client: TestClient, redis_url: str, prefix: str) -> None:
    reply = client.post("/webhook/alerts", json={
        "title": "Beacon to login-verify[.]top from 10.0.0.5",
        "description": "outbound to hxxp://login-verify[.]top/gate.php and 198.51.100.23",
        "severity": "high", "tlp": "AMBER+STRICT", "alert_id": "siem-1"})
    assert reply.status_code == 202
    body = reply.json()
    assert body["alert_id"] == "siem-1"
    assert {"login-verify.top", "198.51.100.23"} <= set(body["iocs"])

    mq = pn.connect(redis_url, key_prefix=prefix, settings=pn.Settings())
    seen: list[pn.Envelope] = []
    mq.subscribe("alerts", "alert.*", seen.append)
    with mq.worker():
        assert wait_until(lambda: len(seen) == 1, timeout_s=10)
    mq.close()
    alert = seen[0]
    assert (alert.id, alert.type, alert.tlp) == (body["id"], "alert.threat.notification",
                                                 "AMBER+STRICT")
    assert alert.priority == pn.MessagePriority.HIGH
    assert alert.payload["severity"] == "high"
    assert {i["value"] for i in alert.payload["related_iocs"]} >= {"login-verify.top",
                                                                     "198.51.100.23"}


def test_the_same_alert_posted_twice_is_queued_once(client: TestClient) -> None:
    alert = {"title": "dup", "severity": "low", "alert_id": "siem-dup"}
    first = client.post("/webhook/alerts", json=alert).json()
    second = client.post("/webhook/alerts", json=alert).json()
    assert first["id"] == second["id"]


def test_a_malformed_alert_is_refused_with_the_field_named(client: TestClient) -> None:
    reply = client.post("/webhook/alerts", json={"title": "x", "severity": "apocalyptic"})
    assert reply.status_code == 422
    assert "severity" in reply.text


def test_healthz_is_200_while_healthy_and_503_once_the_queue_is_critical(
        redis_url: str, prefix: str) -> None:
    thresholds = HealthThresholds(depth_warn=2, depth_critical=5)
    app = create_app(redis_url, thresholds=thresholds, key_prefix=prefix,
                     settings=pn.Settings())
    with TestClient(app) as client:
        healthy = client.get("/healthz")
        assert healthy.status_code == 200
        assert healthy.json()["status"] == "ok"
        for i in range(5):
            client.post("/webhook/alerts", json={"title": f"a{i}", "severity": "low"})
        at_limit = client.get("/healthz")  # 5 queued: critical starts past the limit
        assert (at_limit.status_code, at_limit.json()["status"]) == (200, "warn")
        client.post("/webhook/alerts", json={"title": "one more", "severity": "low"})
        critical = client.get("/healthz")
        assert critical.status_code == 503
        assert critical.json()["status"] == "critical"
        assert any(c["status"] == "critical" for c in critical.json()["checks"])
