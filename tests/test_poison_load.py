"""1 % poison under load: throughput holds, every poison message is dead-lettered, none lost.

A short version of ``python -m benchmarks.poison`` (4 producers, 3 worker processes,
retries max 2 with 0.2-1 s backoff, the circuit breaker on). The benchmark quotes the
figure; this test guards the collapse the issue saw (breakers cycling open on poison,
throughput down to a few percent) with a margin for a shared 2-core machine.
"""

from __future__ import annotations

import pytest

from benchmarks.poison import compare
from tests.support.redis_server import RedisServer


def measure() -> dict:
    server = RedisServer().start()
    try:
        return compare(server.url, seconds=3.0, producers=4, workers=3, backlog=450_000)
    finally:
        server.close()


def check(result: dict) -> None:
    """What must hold in every run, whatever its speed."""
    clean, poison = result["clean"], result["poison"]
    assert clean["lost"] == 0 and poison["lost"] == 0
    assert clean["dead_letters"] == 0
    assert poison["poisoned"] > 0 and poison["dead_letters"] == poison["poisoned"]
    assert poison["breaker_transitions"] == 0, "poison is the DLQ's business, not the breaker's"
    assert clean["backlog_left"] > 0 and poison["backlog_left"] > 0, "measured under load"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_one_percent_poison_neither_trips_the_breaker_nor_loses_a_message() -> None:
    result = measure()
    check(result)
    if result["ratio"] < 0.7:
        # a 3 s window on a shared 2-core machine: measure once more, as the benchmarks do
        # (best of alternating rounds); the collapse this guards against is low every time
        again = measure()
        check(again)
        result = max(result, again, key=lambda r: float(r["ratio"]))
    assert result["ratio"] >= 0.7, f"poison run at {result['ratio']:.2f}x of the clean run"
