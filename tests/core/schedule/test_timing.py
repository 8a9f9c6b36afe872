"""When schedules fire: cron in a time zone across both DST changes, intervals, jitter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import pytest

import phantom_notebook as pn
from phantom_notebook.core.schedule.timing import Timing, duration_ms

BERLIN = ZoneInfo("Europe/Berlin")


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _next(timing: Timing, start: datetime, n: int) -> list[str]:
    """The next n fire times after start, as Berlin wall clock with the UTC offset."""
    return [datetime.fromtimestamp(t / 1000, BERLIN).strftime("%m-%d %H:%M%z")
            for t in islice(timing.after(_ms(start)), n)]


def test_a_daily_berlin_job_fires_once_on_both_dst_days_shifting_the_skipped_time() -> None:
    daily = Timing.of(cron="30 2 * * *", tz="Europe/Berlin")

    spring = _next(daily, datetime(2026, 3, 28, 12, tzinfo=BERLIN), 3)
    autumn = _next(daily, datetime(2026, 10, 24, 12, tzinfo=BERLIN), 3)

    # 02:30 does not exist on 29 March (02:00 -> 03:00): it fires at 03:30 CEST, once
    assert spring == ["03-29 03:30+0200", "03-30 02:30+0200", "03-31 02:30+0200"]
    # 02:30 happens twice on 25 October: it fires at the first (CEST) only
    assert autumn == ["10-25 02:30+0200", "10-26 02:30+0100", "10-27 02:30+0100"]


def test_an_every_15_minutes_cron_keeps_its_real_time_rhythm_through_both_changes() -> None:
    quarter = Timing.of(cron="*/15 * * * *", tz="Europe/Berlin")

    spring = list(islice(quarter.after(_ms(datetime(2026, 3, 29, 1, 40, tzinfo=BERLIN))), 6))
    autumn = list(islice(quarter.after(_ms(datetime(2026, 10, 25, 1, 50, tzinfo=BERLIN))), 10))

    assert {b - a for a, b in zip(spring, spring[1:], strict=False)} == {15 * 60_000}
    assert {b - a for a, b in zip(autumn, autumn[1:], strict=False)} == {15 * 60_000}
    assert _next(quarter, datetime(2026, 3, 29, 1, 40, tzinfo=BERLIN), 2) == \
        ["03-29 01:45+0100", "03-29 03:00+0200"]
    # the repeated hour fires in CEST, then again in CET
    assert _next(quarter, datetime(2026, 10, 25, 2, 40, tzinfo=BERLIN), 3) == \
        ["10-25 02:45+0200", "10-25 02:00+0100", "10-25 02:15+0100"]


def test_a_weekday_morning_job_follows_the_local_clock_not_utc() -> None:
    morning = Timing.of(cron="0 9 * * 1-5", tz="Europe/Berlin")

    ticks = list(islice(morning.after(_ms(datetime(2026, 3, 26, 12, tzinfo=BERLIN))), 3))

    assert [datetime.fromtimestamp(t / 1000, UTC).strftime("%a %H:%M") for t in ticks] == \
        ["Fri 08:00", "Mon 07:00", "Tue 07:00"]  # 09:00 CET, then 09:00 CEST


@pytest.mark.parametrize(("cron", "tz"), [("*/15 * * * *", "Europe/Berlin"),
                                          ("30 2 * * *", "Europe/Berlin"),
                                          ("0 * * * *", "America/New_York"),
                                          ("*/10 2 * * *", "Australia/Lord_Howe")])
def test_ticks_backwards_are_the_ticks_forwards_reversed(cron: str, tz: str) -> None:
    timing = Timing.of(cron=cron, tz=tz)
    start = _ms(datetime(2026, 3, 1, tzinfo=UTC))  # spans the March/April changes
    forward = [t for t in islice(timing.after(start), 2000) if t <= start + 40 * 86_400_000]

    backward = list(islice(timing.at_or_before(forward[-1]), len(forward)))

    assert backward[::-1] == forward
    assert len(set(forward)) == len(forward) and forward == sorted(forward)


def test_every_ticks_are_multiples_of_the_interval_since_the_epoch() -> None:
    quarter = Timing.of(every=timedelta(minutes=15))
    at = _ms(datetime(2026, 5, 4, 10, 7, 30, tzinfo=UTC))

    assert list(islice(quarter.after(at), 2)) == [_ms(datetime(2026, 5, 4, 10, m, tzinfo=UTC))
                                                  for m in (15, 30)]
    assert next(quarter.at_or_before(at)) == _ms(datetime(2026, 5, 4, 10, 0, tzinfo=UTC))
    assert Timing.of(every="15m") == quarter == Timing.of(every=900)
    assert quarter.spec == "every 15m"


def test_jitter_is_the_same_offset_in_every_process_and_below_the_jitter() -> None:
    timing = Timing.of(every="1m", jitter="20s")
    ticks = list(islice(timing.after(0), 200))

    offsets = [timing.due("feed-poll", t) - t for t in ticks]

    assert all(0 <= o < 20_000 for o in offsets) and len(set(offsets)) > 100
    assert offsets == [Timing.of(every="1m", jitter="20s").due("feed-poll", t) - t for t in ticks]
    assert timing.due("other", ticks[0]) != timing.due("feed-poll", ticks[0]) or \
        timing.due("other", ticks[1]) != timing.due("feed-poll", ticks[1])


@pytest.mark.parametrize(("options", "error"), [
    ({}, "either cron"),
    ({"cron": "* * * * *", "every": 60}, "either cron"),
    ({"cron": "61 * * * *"}, "invalid cron"),
    ({"cron": "* * * * * *"}, "5 fields"),
    ({"cron": "* * * * *", "tz": "Mars/Olympus"}, "unknown time zone"),
    ({"cron": "0 0 30 2 *"}, "never fires"),
    ({"every": "0.5s"}, "at least 1 s"),
    ({"every": "fortnightly"}, "invalid every"),
    ({"every": 60, "tz": "Europe/Berlin"}, "tz applies to cron"),
    ({"every": "1m", "jitter": "1m"}, "jitter"),
    ({"cron": "0 9,10 * * *", "jitter": "2h"}, "jitter"),
])
def test_bad_timings_are_refused_with_what_to_write(options: dict[str, object],
                                                    error: str) -> None:
    with pytest.raises(pn.ValidationError, match=error):
        Timing.of(**options)  # type: ignore[arg-type]


def test_durations_read_text_seconds_and_timedeltas() -> None:
    assert duration_ms("1500ms", "x") == 1500 == duration_ms(1.5, "x")
    assert duration_ms(timedelta(hours=2), "x") == duration_ms("2h", "x") == 7_200_000
