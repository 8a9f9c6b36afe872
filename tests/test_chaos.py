"""The chaos run, at a CI-sized scale: killed workers and a Redis restart lose nothing."""

from __future__ import annotations

import pytest

from tests.chaos import run_chaos


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_no_message_is_lost_while_workers_are_killed_and_redis_restarts() -> None:
    report = run_chaos(messages=3000, workers=3, kill_every_s=0.5, timeout_s=200)
    print(report)
    assert report.published == 3000
    assert report.worker_kills >= 3 and report.redis_restarts == 1
    assert report.lost == 0
    assert report.handled + report.dead_lettered >= report.published
