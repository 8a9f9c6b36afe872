"""The dashboard under real Redis ACL users: what each role sees and may do, and the trail.

The roles log in with their own ACL users (``tests/core/security/conftest.py``), so the
gates are checked three times: by the dashboard (greyed buttons), by the core
(``PermissionDeniedError``, audited) and by Redis itself (raw commands refused).
"""

from __future__ import annotations

import base64

import pytest
import redis

import phantom_notebook as pn
from phantom_notebook.core.audit.log import AuditLog
from phantom_notebook.notebook.dashboard import Dashboard, connect_dashboard
from tests.core.security.conftest import (  # noqa: F401 - fixtures
    PASSWORDS,
    Connect,
    admin,
    connect_as,
    raw_as,
    server,
    users,
)
from tests.support.redis_server import RedisServer

AUDIT_KEY = base64.b64encode(bytes(range(32))).decode()


def _dashboard_as(server: RedisServer, user: str, role: str, prefix: str,  # noqa: F811
                  who: str) -> Dashboard:
    url = f"redis://{user}:{PASSWORDS[user]}@127.0.0.1:{server.port}/0"
    settings = pn.Settings.from_dict({"security": {"audit_key": AUDIT_KEY}})
    mq = connect_dashboard(url, role=role, user=who, settings=settings, key_prefix=prefix)
    board = Dashboard(mq, user=who)
    board.refresh()
    return board


def _one_dead_letter(connect_as: Connect) -> str:  # noqa: F811 - the fixture, passed in
    operator = connect_as("adm")

    def reject(message: pn.Envelope, context: pn.MessageContext) -> None:
        raise pn.Reject("schema_invalid")

    operator.subscribe("ioc-feed", "*", reject)
    message_id = operator.publish("ioc-feed", "ioc.enrichment.request",
                                  {"ioc": {"value": "198.51.100.4"}}, tlp="AMBER")
    with operator.worker():
        assert pn.core.queues.wait_until(lambda: len(operator.dlq("ioc-feed")) == 1, 10)
    return message_id


def test_an_analyst_sees_its_queues_read_only_and_a_replay_click_is_refused_and_audited(
        server: RedisServer, connect_as: Connect, admin: redis.Redis,  # noqa: F811
        prefix: str) -> None:
    _one_dead_letter(connect_as)
    board = _dashboard_as(server, "ana", "analyst", prefix, "mallory@soc")
    snapshot = board.model.snapshot
    assert snapshot is not None  # ioc-* and threat-*, not alerts-live
    assert {r.queue for r in snapshot.queues} == {"ioc-feed", "threat-apt"}
    assert board.replay_button.icon == "lock" and "read-only" in board.replay_button.tooltip
    assert "read-only" in board.header.value
    board.selection.value = (board.selection.options[0][1],)
    board.replay_button.click()
    assert "data-refused='replay'" in board.dlq_status.value
    assert len(connect_as("adm").dlq("ioc-feed")) == 1
    board.inspect()
    assert "TLP:AMBER payload withheld" in board.detail.value
    assert "198.51.100.4" not in board.detail.value
    key = pn.core.audit.verify.audit_key_from_env({"PHANTOM_AUDIT_KEY": AUDIT_KEY})
    auditor = AuditLog(connect_as("aud"), key, actor="aud", role="auditor", user="aud")
    denied = [e for e in auditor.entries() if e.action == "permission_denied"]
    assert [(e.actor, e.role) for e in denied] == [("dashboard:mallory@soc", "analyst")]
    raw = raw_as(server, "ana")  # and Redis itself refuses the raw command
    with pytest.raises(redis.exceptions.NoPermissionError):
        raw.xtrim(f"{prefix}:{{ioc-feed}}:dlq", maxlen=0)
    raw.close()


def test_an_operator_replays_from_the_dashboard_and_the_trail_names_the_dashboard_user(
        server: RedisServer, connect_as: Connect, prefix: str) -> None:  # noqa: F811
    message_id = _one_dead_letter(connect_as)
    board = _dashboard_as(server, "adm", "admin", prefix, "alice@soc")
    assert board.replay_button.icon == "redo"
    board.dlq_queue.value = "ioc-feed"
    board.selection.value = (board.selection.options[0][1],)
    board.replay_button.click()
    board.confirm_button.click()
    assert "data-done='replay'" in board.dlq_status.value
    assert len(connect_as("adm").dlq("ioc-feed")) == 0
    key = pn.core.audit.verify.audit_key_from_env({"PHANTOM_AUDIT_KEY": AUDIT_KEY})
    auditor = AuditLog(connect_as("aud"), key, actor="aud", role="auditor", user="aud")
    replays = [e for e in auditor.entries() if e.action == "replay"]
    assert [(e.actor, e.role, e.target) for e in replays] == [
        ("dashboard:alice@soc", "admin", "ioc-feed")]
    assert replays[0].authentic and replays[0].message_count == 1
    assert message_id not in board.detail.value  # nothing was inspected
