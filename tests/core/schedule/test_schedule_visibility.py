"""Schedules are visible where operators look: health WARNs on a late tick (no scheduler
running), the CLI's stats list them, and the Prometheus exporter exports their times."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from datetime import timedelta
from pathlib import Path

import phantom_notebook as pn
from phantom_notebook.core.model.envelope import now_ms
from phantom_notebook.core.observe.health import HealthThresholds
from phantom_notebook.core.schedule.health import LATE_MS, late_schedules
from phantom_notebook.notebook.prometheus import serve

ROOT = Path(__file__).resolve().parents[3]


def test_a_tick_nobody_fired_is_a_health_warning_until_a_scheduler_fires(
        mq: pn.MessageQueue) -> None:
    mq.declare("feeds", kind="fifo")
    mq.schedule("abuse-poll", "feeds", "feed.poll", {"feed": "abuse.ch"},
                every=timedelta(minutes=1))
    later = now_ms() + 10 * 60_000  # ten minutes on, no scheduler ran

    [on_time] = late_schedules(mq, ["feeds"], HealthThresholds())
    [late] = late_schedules(mq, ["feeds"], HealthThresholds(), at_ms=later)
    mq.scheduler().run_once(later / 1000)
    [caught_up] = late_schedules(mq, ["feeds"], HealthThresholds(), at_ms=later)

    assert on_time.status == "ok" and on_time.target == "feeds/abuse-poll"
    assert late.status == "warn" and "scheduler" in late.message
    assert int(late.value.split()[0].replace(",", "")) * 1000 >= LATE_MS
    assert caught_up.status == "ok"
    assert "schedule" in {c.name for c in mq.health(["feeds"]).checks}


def test_stats_list_schedules_and_the_exporter_exports_their_times(
        redis_url: str, prefix: str) -> None:
    mq = pn.connect(redis_url, key_prefix=prefix)
    mq.declare("feeds", kind="fifo")
    mq.schedule("abuse-poll", "feeds", "feed.poll", {}, every=timedelta(minutes=15))
    mq.schedule("brief", "feeds", "report.daily", {}, cron="0 9 * * *")
    mq.pause_schedule("brief")
    stats = subprocess.run([sys.executable, "-m", "phantom_notebook.cli", "stats",
                            "--redis-url", redis_url, "--key-prefix", prefix],
                           capture_output=True, text=True, timeout=60, cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    server = serve(mq, port=0, addr="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()

    assert stats.returncode == 0, stats.stderr
    assert "schedule abuse-poll:" in stats.stdout and "next " in stats.stdout
    assert "schedule brief" in stats.stdout and "paused" in stats.stdout
    assert 'phantom_schedule_paused{queue="feeds",schedule="brief"} 1.0' in text
    assert 'phantom_schedule_paused{queue="feeds",schedule="abuse-poll"} 0.0' in text
    nxt = [line for line in text.splitlines()
           if line.startswith('phantom_schedule_next_fire_timestamp_seconds{queue="feeds",'
                              'schedule="abuse-poll"}')]
    assert nxt and float(nxt[0].split()[-1]) * 1000 > now_ms()
