"""Flow control enforced in Redis: pause and resume within one fetch cycle, rate limits
shared by every worker process, and a global concurrency limit across processes."""

from __future__ import annotations

import pytest

import phantom_notebook as pn
from phantom_notebook.core.consume.lane import Lane
from phantom_notebook.core.errors import ValidationError
from phantom_notebook.core.model.limits import flow_control, parse_rate
from tests.support.collect import Collector, eventually
from tests.support.worker_process import WorkerProcess


def lanes(worker: pn.core.Worker) -> list[Lane]:
    return [x for x in worker.lanes if isinstance(x, Lane)]


def test_pausing_stops_consumers_within_one_fetch_cycle_and_resuming_loses_nothing(
        mq: pn.MessageQueue) -> None:
    mq.declare("ioc-feed", kind="fifo")
    got = Collector()
    mq.subscribe("ioc-feed", "*", got, prefetch_count=10)
    with mq.worker() as worker:
        mq.publish_batch("ioc-feed", [("ioc.raw", {"i": i}) for i in range(20)])
        assert got.wait_for(20)

        mq.pause("ioc-feed")
        [lane] = lanes(worker)
        assert eventually(lambda: lane.throttled == 1)
        mq.publish_batch("ioc-feed", [("ioc.raw", {"i": 20 + i}) for i in range(30)])
        cycles = lane.fetch_cycles
        assert eventually(lambda: lane.fetch_cycles >= cycles + 2)  # it looked, twice
        assert len(got.envelopes) == 20  # producers kept publishing, nobody consumed
        assert mq.stats("ioc-feed")[0].paused and mq.stats("ioc-feed")[0].ready == 30
        paused = {c.name: c for c in mq.health(["ioc-feed"]).checks}["paused"]
        assert paused.status == "warn" and "30 waiting" in paused.message  # a growing backlog

        mq.resume("ioc-feed")
        assert got.wait_for(50)

    assert sorted(e.payload["i"] for e in got.envelopes) == list(range(50))
    assert not mq.stats("ioc-feed")[0].paused
    assert "paused" not in {c.name for c in mq.health(["ioc-feed"]).checks}


def test_pausing_one_group_of_a_broadcast_queue_leaves_the_other_group_running(
        mq: pn.MessageQueue) -> None:
    mq.declare("alerts-fan", kind="broadcast")
    siem, soar = Collector(), Collector()
    mq.subscribe("alerts-fan", "*", siem, group="siem")
    mq.subscribe("alerts-fan", "*", soar, group="soar")
    mq.ensure_group("alerts-fan", "siem")
    mq.ensure_group("alerts-fan", "soar")
    mq.pause("alerts-fan", group="soar")

    with mq.worker():
        mq.publish_batch("alerts-fan", [("alert.raw", {"i": i}) for i in range(10)])
        assert siem.wait_for(10)
        assert soar.envelopes == []
        assert mq.stats("alerts-fan")[0].paused_groups == ("soar",)
        mq.resume("alerts-fan", group="soar")
        assert soar.wait_for(10)


def test_a_role_that_may_not_manage_cannot_pause(mq: pn.MessageQueue, prefix: str) -> None:
    mq.declare("ioc-feed", kind="fifo")
    url = None if mq.embedded else mq.settings.redis.url
    analyst = pn.connect(url, key_prefix=prefix,
                         settings=pn.Settings.from_dict({"security": {"role": "analyst"}}))

    with pytest.raises(pn.PermissionDeniedError, match="may not manage"):
        analyst.pause("ioc-feed")
    assert not mq.stats("ioc-feed")[0].paused


def test_rates_parse_and_bad_ones_name_the_form() -> None:
    assert parse_rate("600/min") == (600, 60)
    assert parse_rate("5/10s") == (5, 10)
    assert parse_rate("1000 / hour") == (1000, 3600)
    flow = flow_control("600/min", None, None, group="workers", lease_ms=1000, partitions=2)
    assert flow is not None and flow.interval_us == 200_000  # each of 2 partitions: 5/s
    for bad in ("600", "0/s", "ten/s", "5/0s", "5/fortnight"):
        with pytest.raises(ValidationError, match="use <count>/<unit>"):
            parse_rate(bad)
    with pytest.raises(pn.ConfigError, match="rate_limit"):
        pn.QueueSettings(rate_limit="lots")


def test_a_rate_limit_holds_its_rate_after_the_burst(mq: pn.MessageQueue) -> None:
    """30/s with the default burst (one second's worth): 30 at once, then 30 per second."""
    mq.declare("ioc-enrich", kind="fifo", rate_limit="30/s")
    mq.publish_batch("ioc-enrich", [("ioc.raw", {"i": i}) for i in range(200)])
    got = Collector()
    mq.subscribe("ioc-enrich", "*", got, prefetch_count=50)

    with mq.worker():
        assert got.wait_for(30, timeout_s=5)
        assert got.wait_for(150, timeout_s=15)
    times = sorted(got.received_ms)
    steady = [t for t in times if t >= times[40]]  # after the burst
    span_s = (steady[-1] - steady[0]) / 1000
    rate = (len(steady) - 1) / span_s
    print(f"\nrate after the burst: {rate:.1f}/s over {span_s:.1f} s")
    assert 27 <= rate <= 33  # +-10 % of 30/s
    assert len([t for t in times if t < times[0] + 500]) <= 30 + 16  # burst + 0.5 s


def test_a_message_over_the_limit_is_neither_failed_nor_retried(mq: pn.MessageQueue) -> None:
    mq.declare("ioc-slow", kind="fifo", rate_limit="2/s", rate_limit_burst=1)
    mq.publish_batch("ioc-slow", [("ioc.raw", {"i": i}) for i in range(4)])
    got = Collector()
    mq.subscribe("ioc-slow", "*", got)

    with mq.worker():
        assert got.wait_for(4, timeout_s=10)

    assert got.delivery_counts == [1, 1, 1, 1] and [e.attempt for e in got.envelopes] == [1] * 4
    gaps = [b - a for a, b in zip(got.received_ms, got.received_ms[1:], strict=False)]
    assert min(gaps) >= 400  # 500 ms apart (2/s), a scheduling margin below
    assert mq.stats("ioc-slow")[0].dead == 0


@pytest.mark.slow
def test_three_worker_processes_share_one_600_per_minute_limit(
        redis_url: str, prefix: str, workers: list[WorkerProcess]) -> None:
    mq = pn.connect(redis_url, key_prefix=prefix)
    mq.declare("ioc-vt", kind="fifo", max_queue_size=None)
    mq.publish_batch("ioc-vt", [("ioc.raw", {"i": i}) for i in range(2000)])
    env = {"PHANTOM_QUEUE_RATE_LIMIT": "600/min"}
    for _ in range(3):
        workers.append(WorkerProcess(redis_url, prefix, "ioc-vt", concurrency=4, prefetch=20,
                                     handler="concurrent", extra_env=env))

    assert eventually(lambda: mq.client.llen(f"{prefix}:done") >= 620, timeout_s=90)
    for w in workers:
        w.terminate()
    done = [x.decode() for x in mq.client.lrange(f"{prefix}:done", 0, -1)]
    times = sorted(int(x.rsplit(":", 1)[1]) for x in done)
    # the 60 s after the burst (the first second's worth arrives at once)
    window = [t for t in times if times[10] <= t < times[10] + 60_000]
    rate = len(window) / 60
    print(f"\n3 processes, 600/min: {rate:.2f}/s over 60 s ({len(done)} handled in all)")
    assert 9.5 <= rate <= 10.5


def test_global_concurrency_5_across_3_processes_is_never_exceeded(
        redis_url: str, prefix: str, workers: list[WorkerProcess]) -> None:
    mq = pn.connect(redis_url, key_prefix=prefix)
    mq.declare("ioc-sandbox", kind="fifo", max_queue_size=None)
    mq.publish_batch("ioc-sandbox", [("ioc.raw", {"i": i, "work_ms": 40}) for i in range(150)])
    env = {"PHANTOM_QUEUE_MAX_IN_FLIGHT_GLOBAL": "5"}
    for _ in range(3):
        workers.append(WorkerProcess(redis_url, prefix, "ioc-sandbox", concurrency=4,
                                     prefetch=8, handler="concurrent", extra_env=env))

    assert eventually(lambda: mq.client.llen(f"{prefix}:done") >= 150, timeout_s=60)
    most = int(mq.client.zscore(f"{prefix}:most", "most") or 0)
    print(f"\nmost handlers at once across 3 processes (limit 5, 12 slots): {most}")
    assert 3 <= most <= 5
    running = mq.client.zcard(mq.queue_keys("ioc-sandbox").running("workers"))
    assert running == 0  # every lease left the running set with its settle



def test_pause_and_resume_from_the_command_line(redis_url: str, prefix: str) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    mq = pn.connect(redis_url, key_prefix=prefix)
    mq.declare("ioc-feed", kind="fifo")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "phantom_notebook.cli", *args,
                               "--redis-url", redis_url, "--key-prefix", prefix],
                              capture_output=True, text=True, timeout=60, cwd=root,
                              env={**os.environ, "PYTHONPATH": str(root)})

    paused = cli("pause", "ioc-feed", "--group", "workers")
    stats = cli("stats")
    resumed = cli("resume", "ioc-feed", "--group", "workers")

    assert paused.returncode == 0 and "consumers stop within one fetch cycle" in paused.stdout
    assert "(workers paused)" in stats.stdout
    assert resumed.returncode == 0 and mq.stats("ioc-feed")[0].paused_groups == ()


def test_two_provider_keys_each_hold_their_own_rate_across_two_workers(
        mq: pn.MessageQueue) -> None:
    """One bucket per enrichment provider's API key: vt 5/s, shodan 2/s, both workers."""
    mq.declare("ioc-enrich", kind="fifo")
    mq.publish_batch("ioc-enrich", [
        pn.Message("ioc.raw", {"i": i}, headers={"provider": "vt" if i % 2 else "shodan"})
        for i in range(80)])
    got = Collector()
    options: dict[str, object] = {
        "rate_limit_key": lambda m: m.headers.get("provider"),
        "key_limits": {"vt": "5/s", "shodan": "2/s"}, "prefetch_count": 20}
    other = pn.connect(None if mq.embedded else mq.settings.redis.url,
                       key_prefix=mq.keys.prefix, settings=mq.settings) if not mq.embedded \
        else mq
    mq.subscribe("ioc-enrich", "*", got, **options)
    if other is not mq:
        other.subscribe("ioc-enrich", "*", got, **options)

    with mq.worker(), other.worker():
        assert eventually(lambda: sum(e.headers["provider"] == "shodan"
                                      for e in got.envelopes) >= 9, timeout_s=20)
    by_key: dict[str, list[float]] = {"vt": [], "shodan": []}
    for env, at in zip(got.envelopes, got.received_ms, strict=True):
        by_key[env.headers["provider"]].append(at)
    rates = {}
    for key, times in by_key.items():
        times.sort()
        rates[key] = (len(times) - 1) / ((times[-1] - times[0]) / 1000)
    print(f"\nper-key rates: {rates}")
    assert 4.0 <= rates["vt"] <= 5.6 and 1.6 <= rates["shodan"] <= 2.3
    assert all(e.attempt == 1 for e in got.envelopes)  # deferred, never retried
    assert mq.stats("ioc-enrich")[0].dead == 0


def test_a_draining_worker_stops_once_the_backlog_is_empty(mq: pn.MessageQueue) -> None:
    mq.declare("ioc-backfill", kind="fifo")
    mq.publish_batch("ioc-backfill", [("ioc.raw", {"i": i}) for i in range(300)])
    got = Collector()
    mq.subscribe("ioc-backfill", "*", got, prefetch_count=50)

    code = mq.worker(drain=True).run(install_signals=False, tune_process=False)

    assert code == 0 and len(got.envelopes) == 300
    assert mq.stats("ioc-backfill")[0].depth == 0


def test_health_shows_each_limited_lane_and_what_it_waits_for(mq: pn.MessageQueue) -> None:
    mq.declare("ioc-gated", kind="fifo", rate_limit="1/min")
    mq.publish_batch("ioc-gated", [("ioc.raw", {"i": i}) for i in range(3)])
    mq.subscribe("ioc-gated", "*", lambda m, c: None)

    with mq.worker() as worker:
        [lane] = lanes(worker)
        assert eventually(lambda: lane.throttled == 2)
        worker._heartbeat(alive=True)  # noqa: SLF001 - the keeper's next beat, now
        checks = [c for c in mq.health(["ioc-gated"]).checks if c.name == "flow control"]

    [check] = checks
    assert (check.status, check.target, check.value) == ("ok", "ioc-gated/workers",
                                                         "waiting for rate limit")
    assert "rate 1/min" in check.message
