"""A lane that cannot recover ends the worker with exit code 3, so its supervisor restarts it."""

from __future__ import annotations

import threading

import redis

from phantom_notebook.core.consume.worker import EXIT_LANE_FAILED
from tests.core.security.conftest import Connect
from tests.support.collect import Collector, eventually


def test_a_deleted_group_the_role_may_not_recreate_exits_the_worker_with_3(
        connect_as: Connect, admin: redis.Redis) -> None:
    enricher = connect_as("enr")
    got = Collector()
    enricher.subscribe("ioc-feed", "*", got)
    enricher.publish("ioc-feed", "ioc.enrichment.request", {"ioc": "198.51.100.7"})
    worker = enricher.worker()
    code: list[int] = []
    runner = threading.Thread(target=lambda: code.append(worker.run(install_signals=False,
                                                                    tune_process=False)))
    runner.start()
    try:
        assert got.wait_for(1)
        for stream in enricher.queue_keys("ioc-feed").streams:
            admin.xgroup_destroy(stream, "workers")  # an operator's mistake
        runner.join(timeout=30)
        assert not runner.is_alive(), "the worker noticed and stopped"
    finally:
        worker.stop()
        runner.join(timeout=10)
    assert code == [EXIT_LANE_FAILED]
    [why] = worker.failures()
    assert "ioc-feed/workers" in why and "phantom-notebook declare ioc-feed" in why


def test_a_running_worker_reports_no_failures(connect_as: Connect) -> None:
    enricher = connect_as("enr")
    enricher.subscribe("ioc-feed", "*", Collector())
    with enricher.worker() as worker:
        assert eventually(lambda: worker.running)
        assert worker.failures() == []
