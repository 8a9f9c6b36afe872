"""Recurring schedules: publish a message on a cron expression or an interval, each tick
exactly once however many schedulers run (``runner.py``), with a policy for ticks missed
while none ran. ``timing.py`` computes ticks, ``spec.py`` is the stored form, ``store.py``
reads and writes Redis and fires one tick through ``pn1_fire``."""

from . import health  # noqa: F401 - registers the "schedules" health rule
from .runner import Fired, Scheduler, plan
from .spec import CATCH_UP, CATCH_UP_MAX, NAME_HEADER, TICK_HEADER, Schedule, ScheduleSpec
from .timing import Timing

__all__ = ["CATCH_UP", "CATCH_UP_MAX", "NAME_HEADER", "TICK_HEADER", "Fired", "Schedule",
           "ScheduleSpec", "Scheduler", "Timing", "plan"]
