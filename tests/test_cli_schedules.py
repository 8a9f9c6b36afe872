"""``phantom-notebook schedules list|add|remove|pause|resume`` and ``scheduler``, run as
subprocesses against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

import phantom_notebook as pn

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "phantom_notebook.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_schedules_are_added_listed_paused_resumed_and_removed_from_the_command_line(
        redis_url: str, prefix: str) -> None:
    where = ("--redis-url", redis_url, "--key-prefix", prefix)

    added = run("schedules", "add", "poll", "feed-poll", "feed.poll", '{"feed": "abuse.ch"}',
                "--every", "15m", "--catch-up", "last", "--priority", "HIGH",
                "--header", "team=cti", *where)
    cron = run("schedules", "add", "morning", "reports", "report.daily", "{}",
               "--cron", "0 9 * * 1-5", "--tz", "Europe/Berlin", *where)
    listed = run("schedules", "list", *where)
    paused = run("schedules", "pause", "poll", *where)
    as_json = run("schedules", "list", "--json", *where)
    resumed = run("schedules", "resume", "poll", *where)
    removed = run("schedules", "remove", "poll", *where)
    again = run("schedules", "remove", "poll", *where)
    after = run("schedules", "list", "--queues", "feed-*", *where)

    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("poll: every 15m -> feed-poll (feed.poll, HIGH, TLP:CLEAR)")
    assert cron.returncode == 0 and "cron 0 9 * * 1-5 (Europe/Berlin)" in cron.stdout
    lines = listed.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["poll", "morning"]  # by queue
    morning = next(line for line in lines if line.startswith("morning"))
    assert morning.count("CET") + morning.count("CEST") == 3  # next 3, Berlin time
    assert "last fired never" in morning
    assert paused.returncode == 0 and ", paused;" in paused.stdout
    rows = {r["name"]: r for r in map(orjson.loads, as_json.stdout.splitlines())}
    assert rows["poll"]["paused"] is True and rows["poll"]["next_fires"] == []
    assert len(rows["morning"]["next_fires"]) == 3 and rows["morning"]["paused"] is False
    assert resumed.returncode == 0 and ", active;" in resumed.stdout
    assert removed.returncode == 0 and removed.stdout.strip() == "removed poll"
    assert again.returncode == 1 and "no schedule named 'poll'" in again.stderr
    assert after.returncode == 0 and after.stdout.strip() == "no schedules"
    mq = pn.connect(redis_url, key_prefix=prefix)
    assert [s.name for s in mq.schedules()] == ["morning"]
    mq.close()


@pytest.mark.parametrize(("args", "code", "says"), [
    (["--cron", "61 * * * *"], 1, "invalid cron expression"),
    (["--every", "1m", "--cron", "* * * * *"], 2, "not allowed with argument"),
    (["--every", "1m", "--tz", "Europe/Berlin"], 1, "tz applies to cron"),
    (["--every", "soon"], 1, "invalid every"),
])
def test_bad_schedules_are_refused_in_one_line(redis_url: str, prefix: str, args: list[str],
                                               code: int, says: str) -> None:
    done = run("schedules", "add", "x", "q", "t", "{}", *args, "--redis-url", redis_url,
               "--key-prefix", prefix)
    assert done.returncode == code and says in done.stderr


@pytest.mark.parametrize("command", [["schedules"], ["schedules", "add"], ["scheduler"]])
def test_the_schedule_commands_have_help(command: list[str]) -> None:
    done = run(*command, "--help")
    assert done.returncode == 0 and "usage: phantom-notebook" in done.stdout
