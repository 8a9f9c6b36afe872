"""Retention in one place: every queue's policies listed, and applying them trims expired
dead letters and the audit trail (at a signed checkpoint, so it still verifies)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import pytest

import phantom_notebook as pn
from phantom_notebook.core.admin.retention import apply_retention, retention_policies
from phantom_notebook.core.audit.verify import verify_audit
from phantom_notebook.core.security.keyring import SecretKey

AUDIT = base64.b64encode(bytes(range(60, 92))).decode()


@pytest.fixture(params=["redis", "embedded"])
def kept(request: pytest.FixtureRequest) -> Iterator[pn.MessageQueue]:
    """A deployment whose audit trail keeps at most 5 entries and whose "ioc-short" queue
    keeps dead letters one hour."""
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    settings = pn.Settings.from_dict({
        "security": {"audit_key": f"audit-1:{AUDIT}", "audit_max_entries": 5},
        "queues": {"ioc-short": {"dead_letter_ttl_s": 3600, "message_ttl_s": 600}}})
    mq = pn.connect(url, key_prefix=f"r{uuid.uuid4().hex[:8]}", settings=settings)
    yield mq
    mq.close()


def test_every_queue_lists_its_message_dead_letter_trace_metric_and_audit_retention(
        kept: pn.MessageQueue) -> None:
    kept.declare("ioc-short", kind="fifo")
    kept.declare("ioc-long", kind="priority", enable_tracing=False)

    long_, short = retention_policies(kept)  # sorted by name

    assert (short.queue, short.message_ttl_s, short.dead_letter_ttl_s) == ("ioc-short", 600, 3600)
    assert (long_.queue, long_.message_ttl_s, long_.dead_letter_ttl_s) == (
        "ioc-long", None, 7 * 24 * 3600)
    assert short.trace_max_entries == 20_000 and long_.trace_max_entries == 0
    assert short.metrics_retention_s == 24 * 3600 and short.audit_max_entries == 5
    assert "messages 600 s (then dead_letter), dead letters 1 h" in short.describe()
    assert "traces newest 0 events (off)" in long_.describe()


def test_applying_retention_trims_old_dead_letters_and_the_audit_trail_which_still_verifies(
        kept: pn.MessageQueue) -> None:
    kept.declare("ioc-short", kind="fifo")
    dlq = kept.queue_keys("ioc-short").dlq
    kept.client.xadd(dlq, {"m": b"old", "reason": "expired"}, id="1000-0")  # 1970: expired
    kept.client.xadd(dlq, {"m": b"new", "reason": "expired"})
    assert kept.audit is not None
    for i in range(12):
        kept.audit.record("acl_change", "*", detail={"n": i})
    first = apply_retention(kept)  # signs a checkpoint: nothing before one to cut at yet
    for i in range(12):
        kept.audit.record("acl_change", "*", detail={"n": 12 + i})

    done = apply_retention(kept)  # the next run (cron) cuts at the first run's checkpoint

    assert first == {"dead_letters": 1, "audit": 0} and kept.client.xlen(dlq) == 1
    assert done == {"dead_letters": 0, "audit": 12}
    key = SecretKey.from_base64("audit-1", AUDIT)
    result = verify_audit(kept, key)
    assert result.status in ("ok", "unanchored") and result.trimmed
