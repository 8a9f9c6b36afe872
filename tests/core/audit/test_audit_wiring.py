"""Security-relevant actions land in the audit trail, in the same round trip as the action."""

from __future__ import annotations

import base64
import os

import pytest

import phantom_notebook as pn
from phantom_notebook.core.audit.verify import audit_streams, verify_audit
from phantom_notebook.core.security.keyring import SecretKey, generate_key
from tests.support.collect import Collector, eventually

AUDIT_KEY = base64.b64encode(os.urandom(32)).decode()


def _audited(mq: pn.MessageQueue, **security: object) -> pn.MessageQueue:
    settings = pn.Settings.from_dict({
        "security": {"audit_key": AUDIT_KEY, **security},
        "roles": {"feeder": {"publish": ["ioc-*"]}}})
    return pn.connect(None if mq.embedded else mq.settings.redis.url,
                      key_prefix=mq.keys.prefix, settings=settings)


def _actions(mq: pn.MessageQueue) -> list[tuple[str, str, str]]:
    assert mq.audit is not None
    return [(e.action, e.target, e.outcome) for e in mq.audit.entries(limit=1000)]


def test_publish_ack_and_dead_letter_are_audited_with_their_ids(mq: pn.MessageQueue) -> None:
    audited = _audited(mq, origin="sensor-1")
    ids = audited.publish_batch("ioc-feed", [("t", i) for i in range(10)])
    audited.subscribe("ioc-feed", "*", lambda m, c: c.reject("bad") if m.payload == 3 else None)
    with audited.worker():
        assert eventually(lambda: audited.stats(["ioc-feed"])[0].depth == 0)
        assert eventually(lambda: ("dead_letter", "ioc-feed", "failed") in _actions(audited))
    actions = _actions(audited)
    assert ("publish", "ioc-feed", "ok") in actions and ("ack", "ioc-feed", "ok") in actions
    assert audited.audit is not None
    publish = next(e for e in audited.audit.entries(limit=100) if e.action == "publish")
    assert publish.covers(ids) and publish.actor == "sensor-1"
    assert verify_audit(audited, _key()).status == "unanchored"


def _key() -> SecretKey:
    return SecretKey.from_base64("audit", AUDIT_KEY)


def test_forged_origins_and_permission_denials_are_audited(mq: pn.MessageQueue) -> None:
    origin_key = generate_key()
    forger = _audited(mq, keys=f"k1:{generate_key()}", origin="soc", origin_key=generate_key())
    consumer = _audited(mq, trusted_origins=f"soc:{origin_key}")
    forger.publish("alerts", "alert.threat.notification", {"isolate": "dc-01"})
    consumer.subscribe("alerts", "*", Collector())
    with consumer.worker():
        assert eventually(lambda: ("origin_rejected", "alerts", "denied") in _actions(consumer)
                          or ("decrypt_failed", "alerts", "failed") in _actions(consumer))
    feeder = _audited(mq, role="feeder")
    with pytest.raises(pn.PermissionDeniedError):
        feeder.publish("alerts", "alert.threat.notification", {})
    assert ("permission_denied", "alerts", "denied") in _actions(feeder)
    assert verify_audit(feeder, _key()).status == "unanchored"


def test_the_audit_trail_is_off_without_a_key(mq: pn.MessageQueue) -> None:
    assert mq.audit is None
    mq.publish("q", "t", 1)
    assert audit_streams(mq.client, mq.keys.audit_patterns) == []
