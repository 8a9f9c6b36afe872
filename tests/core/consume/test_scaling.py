"""Consumer scaling: the policy's hysteresis as a pure function, and one real scale-up."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import phantom_notebook as pn
from phantom_notebook.core.consume.scaling import ScalePolicy, Supervisor
from tests.support.collect import eventually

ROOT = Path(__file__).resolve().parents[3]


def policy() -> ScalePolicy:
    return ScalePolicy(min_processes=1, max_processes=3, up_depth_per_process=100,
                       up_after_s=10, down_depth_per_process=20, down_after_s=30)


def test_scale_up_needs_depth_above_the_threshold_for_the_whole_hold_time() -> None:
    p = policy()
    assert p.decide(0, 500, 0, 1) == 1  # hot, but not for long enough
    assert p.decide(9, 500, 0, 1) == 1
    assert p.decide(10, 500, 0, 1) == 2
    assert p.decide(11, 500, 0, 2) == 2  # the next step waits another hold time
    assert p.decide(19, 500, 0, 2) == 2
    assert p.decide(20, 500, 0, 2) == 3
    assert p.decide(40, 5000, 0, 3) == 3  # never above max


def test_a_dip_resets_the_hold_timer_and_the_gap_between_thresholds_prevents_flapping() -> None:
    p = policy()
    assert p.decide(0, 500, 0, 1) == 1
    assert p.decide(5, 50, 0, 1) == 1  # between thresholds: neither hot nor cold
    assert p.decide(12, 500, 0, 1) == 1  # hot again since 12 only
    assert p.decide(22, 500, 0, 1) == 2
    for t in range(23, 200):  # depth per process oscillating inside the gap
        assert p.decide(t, 40 if t % 2 else 190, 0, 2) == 2


def test_scale_down_needs_a_longer_quiet_period_and_stops_at_min() -> None:
    p = policy()
    assert p.decide(0, 0, 0, 3) == 3
    assert p.decide(29, 0, 0, 3) == 3
    assert p.decide(30, 0, 0, 3) == 2
    assert p.decide(59, 0, 0, 2) == 2
    assert p.decide(60, 0, 0, 2) == 1
    assert p.decide(500, 0, 0, 1) == 1


def test_lag_alone_can_scale_up() -> None:
    p = ScalePolicy(min_processes=1, max_processes=2, up_depth_per_process=1e9,
                    up_after_s=1, down_depth_per_process=0, down_after_s=1, up_lag_s=5)
    assert p.decide(0, 10, 6.0, 1) == 1
    assert p.decide(1, 10, 6.0, 1) == 2


def test_inconsistent_bounds_are_refused() -> None:
    with pytest.raises(pn.ConfigError):
        ScalePolicy(min_processes=3, max_processes=2)
    with pytest.raises(pn.ConfigError):
        ScalePolicy(up_depth_per_process=10, down_depth_per_process=20)


@pytest.mark.slow
def test_a_backlog_makes_the_supervisor_start_more_worker_processes(
        real_mq: pn.MessageQueue, redis_url: str, prefix: str) -> None:
    real_mq.declare("scale", kind="fifo")
    real_mq.publish_batch("scale", [("t", {"n": i, "work_ms": 20}) for i in range(1500)])
    command = [sys.executable, "-m", "phantom_notebook.cli", "worker",
               "tests.support.handlers:record", "--queue", "scale", "--redis-url", redis_url,
               "--key-prefix", prefix, "--prefetch", "10"]
    env = {**os.environ, "PN_TEST_RECORD_URL": redis_url, "PN_TEST_RECORD_KEY": prefix,
           "PYTHONPATH": str(ROOT)}
    sup = Supervisor(real_mq, ["scale"], command,
                     ScalePolicy(min_processes=1, max_processes=3, up_depth_per_process=200,
                                 up_after_s=0.5, down_depth_per_process=5, down_after_s=2),
                     interval_s=0.25, grace_s=10, env=env)
    try:
        def beats() -> int:
            return len(real_mq.client.hkeys(real_mq.keys.heartbeats(real_mq.user)))

        assert eventually(lambda: sup.step() >= 3 and beats() >= 3, timeout_s=40,
                          interval_s=0.25)
        print(f"\nscaled 1 -> 3 processes; history (n, depth): "
              f"{[(n, d) for _, n, d, _ in sup.history][::4]}")
        assert eventually(lambda: sup.step() == 1, timeout_s=60, interval_s=0.25), \
            "scaled back down once drained"
    finally:
        sup.close()
    assert real_mq.stats(["scale"])[0].depth == 0
