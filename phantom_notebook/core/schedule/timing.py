"""When a recurring schedule fires: its ticks, as epoch milliseconds (pure; no Redis).

A **tick** is one moment a schedule is due, identified by its epoch ms. Two kinds:

* ``every``: the multiples of the interval since the Unix epoch (``every=1h`` fires on the
  hour, ``every=15m`` at :00 :15 :30 :45, ``every=1d`` at 00:00 UTC); every process
  computes the same ticks without talking to another. A time of day in a time zone is a
  cron schedule's job.
* ``cron``: a 5-field expression (``croniter``) read as wall-clock time in ``tz`` (IANA
  name, ``zoneinfo``; default UTC). Daylight saving time, in one rule each way:

  - a wall time the clock skips (spring forward: 02:30 in Europe/Berlin on the last Sunday
    of March) fires once, shifted by the gap (at 03:30 CEST); wall times that shift onto
    the same moment fire once;
  - a wall time the clock shows twice (fall back: 02:30 on the last Sunday of October)
    fires at its first occurrence (CEST) only, unless the hour field starts with ``*``
    (``*/15 * * * *``, ``0 * * * *``): such hour-independent schedules fire in the repeated
    hour too, so they keep their real-time rhythm (as Vixie cron does).

  A daily job therefore fires exactly once on both transition days.

Ticks are generated in both directions with a small look-ahead: naive wall times from
``croniter`` map to instants that can be out of order by the zone's offset spread, so a
buffer holds them until no later wall time can map before them. The zone's offset range is
sampled once per zone (every 6 hours over ±2 years).

``jitter`` spreads the firing of a tick over ``[tick, tick + jitter)``, by a deterministic
offset of (name, tick), so every scheduler process agrees when a tick is due (the tick,
not the moment, is what is claimed in Redis).
"""

from __future__ import annotations

import hashlib
import heapq
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from ..errors import ValidationError

MIN_EVERY_MS = 1000
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_HOUR_MS = 3_600_000


def duration_ms(value: timedelta | float | int | str | None, what: str,
                minimum_ms: int = 0) -> int:
    """Milliseconds in ``value``: a ``timedelta``, seconds, or text ("90s", "15m", "1h")."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValidationError(f"{what} must be a duration, got {value!r}")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        m = _DURATION.match(value)
        if not m:
            raise ValidationError(f"invalid {what} {value!r}: use a number and ms, s, m, h, d "
                                  "or w (e.g. 30s, 15m, 1h)")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValidationError(f"{what} must be a timedelta, seconds or text like '15m', got "
                              f"{type(value).__name__}")
    if not 0 <= seconds < math.inf:
        raise ValidationError(f"{what} must be a finite duration >= 0, got {value!r}")
    ms = round(seconds * 1000)
    if ms < minimum_ms:
        raise ValidationError(f"{what} must be at least {minimum_ms / 1000:g} s, got {value!r}")
    return ms


def format_ms(ms: int) -> str:
    """A duration as compact text: ``15m``, ``1h``, ``90s``, ``1500ms``."""
    for unit, size in (("w", 604_800_000), ("d", 86_400_000), ("h", _HOUR_MS),
                       ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def zone(name: str) -> ZoneInfo:
    """The ``ZoneInfo`` called ``name``; ``ValidationError`` for an unknown zone."""
    if not isinstance(name, str) or not name:
        raise ValidationError(f"tz must be an IANA time zone name, got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"unknown time zone {name!r}: use an IANA name such as "
                              "'Europe/Berlin' or 'UTC'") from None


@lru_cache(maxsize=64)
def _offsets(name: str) -> tuple[int, int]:
    """(min, max) UTC offset of zone ``name`` in ms, sampled over ±2 years from now."""
    tz = zone(name)
    start = datetime.now(UTC) - timedelta(days=730)
    seen = set()
    for i in range(0, 4 * 1461 + 1):
        off = (start + timedelta(hours=6 * i)).astimezone(tz).utcoffset()
        seen.add(int(off.total_seconds() * 1000) if off is not None else 0)
    return min(seen), max(seen)


@dataclass(frozen=True)
class Timing:
    """When a schedule is due: ``cron`` (+ ``tz``) or ``every_ms``, and ``jitter_ms``."""

    cron: str | None = None
    every_ms: int = 0
    tz: str = "UTC"
    jitter_ms: int = 0

    @classmethod
    def of(cls, cron: str | None = None, every: timedelta | float | str | None = None,
           tz: str | None = None, jitter: timedelta | float | str | None = None) -> Timing:
        """Validate the caller's arguments into a ``Timing``."""
        if (cron is None) == (every is None):
            raise ValidationError("give a schedule either cron='*/15 * * * *' or "
                                  "every=timedelta(...), not both and not neither")
        jitter_ms = duration_ms(jitter, "jitter")
        if cron is not None:
            if not isinstance(cron, str) or len(cron.split()) != 5 \
                    or not croniter.is_valid(cron):
                raise ValidationError(f"invalid cron expression {cron!r}: use 5 fields, "
                                      "minute hour day-of-month month day-of-week")
            zone(tz or "UTC")
            timing = cls(cron=" ".join(cron.split()), tz=tz or "UTC", jitter_ms=jitter_ms)
            try:
                next(timing.after(int(datetime.now(UTC).timestamp() * 1000)))
            except CroniterError:
                raise ValidationError(f"cron expression {cron!r} never fires") from None
        else:
            if tz not in (None, "UTC"):
                raise ValidationError("tz applies to cron schedules: every= ticks are "
                                      "multiples of the interval since the epoch (UTC)")
            every_ms = duration_ms(every, "every", MIN_EVERY_MS)
            timing = cls(every_ms=every_ms, jitter_ms=jitter_ms)
        if jitter_ms and jitter_ms >= timing.min_gap_ms():
            raise ValidationError(f"jitter ({format_ms(jitter_ms)}) must be shorter than the "
                                  f"time between ticks ({format_ms(timing.min_gap_ms())})")
        return timing

    @property
    def spec(self) -> str:
        """The timing as text: ``cron */15 * * * * (Europe/Berlin)`` or ``every 15m``."""
        jitter = f", jitter {format_ms(self.jitter_ms)}" if self.jitter_ms else ""
        if self.cron is not None:
            where = f" ({self.tz})" if self.tz != "UTC" else ""
            return f"cron {self.cron}{where}{jitter}"
        return f"every {format_ms(self.every_ms)}{jitter}"

    def min_gap_ms(self) -> int:
        """The shortest time between two ticks (cron: over the next ~100 ticks)."""
        if self.cron is None:
            return self.every_ms
        now = int(datetime.now(UTC).timestamp() * 1000)
        it = self.after(now)
        ticks = [next(it) for _ in range(100)]
        return min(b - a for a, b in zip(ticks, ticks[1:], strict=False))

    # -- ticks ------------------------------------------------------------------------------

    def after(self, ms: int) -> Iterator[int]:
        """The ticks strictly after ``ms``, ascending."""
        if self.cron is None:
            t = (ms // self.every_ms + 1) * self.every_ms
            while True:
                yield t
                t += self.every_ms
        else:
            yield from self._cron(ms, ascending=True)

    def at_or_before(self, ms: int) -> Iterator[int]:
        """The ticks at or before ``ms``, descending."""
        if self.cron is None:
            t = (ms // self.every_ms) * self.every_ms
            while True:
                yield t
                t -= self.every_ms
        else:
            yield from self._cron(ms, ascending=False)

    def due(self, name: str, tick: int) -> int:
        """When ``tick`` of schedule ``name`` is due: the tick plus its jitter offset."""
        if not self.jitter_ms:
            return tick
        digest = hashlib.blake2b(f"{name}\0{tick}".encode(), digest_size=8).digest()
        return tick + int.from_bytes(digest, "big") % self.jitter_ms

    def _cron(self, ms: int, ascending: bool) -> Iterator[int]:
        assert self.cron is not None
        tz = zone(self.tz)
        lo_off, hi_off = _offsets(self.tz)
        hour_star = self.cron.split()[1].startswith("*")
        # a tick after ms has wall time > ms + min offset; one before, < ms + max offset
        start = _naive(ms + (lo_off if ascending else hi_off) + (-1 if ascending else 1))
        it = croniter(self.cron, start)
        step = it.get_next if ascending else it.get_prev
        heap: list[int] = []
        last: int | None = None
        while True:
            wall = step(datetime)
            wall_ms = _naive_ms(wall)
            for t in _instants(wall, tz, hour_star):
                if (t > ms) if ascending else (t <= ms):
                    heapq.heappush(heap, t if ascending else -t)
            # later wall times map to instants >= wall - max offset (earlier: <= wall - min)
            bound = wall_ms - hi_off if ascending else -(wall_ms - lo_off)
            while heap and heap[0] < bound:
                t = heapq.heappop(heap)
                t = t if ascending else -t
                if t != last:
                    last = t
                    yield t


def _naive(ms: int) -> datetime:
    """Epoch ms as a naive datetime read as UTC (the wall clock of offset 0)."""
    return datetime(1970, 1, 1) + timedelta(milliseconds=ms)


def _naive_ms(wall: datetime) -> int:
    return (wall - datetime(1970, 1, 1)) // timedelta(milliseconds=1)


def _instants(wall: datetime, tz: ZoneInfo, hour_star: bool) -> tuple[int, ...]:
    """The moments a wall time of ``tz`` fires (see the module docstring for the rules)."""
    first = round(wall.replace(tzinfo=tz, fold=0).timestamp() * 1000)
    second = round(wall.replace(tzinfo=tz, fold=1).timestamp() * 1000)
    if first == second:
        return (first,)
    early, late = min(first, second), max(first, second)
    shown = datetime.fromtimestamp(early / 1000, tz).replace(tzinfo=None)
    if shown != wall:  # skipped by the clock: shifted forward by the gap
        return (late,)
    return (early, late) if hour_star else (early,)


__all__ = ["MIN_EVERY_MS", "Timing", "duration_ms", "format_ms", "zone"]
