"""The scheduler: finds the schedules, fires each tick when it falls due, exactly once.

Any number of ``Scheduler`` s (threads, processes, machines) may run at once: each one
fires every due tick through ``pn1_fire``, which claims the tick atomically, so one of
them writes the message and the others learn it was fired. Running two or three is how
schedules survive a crashed scheduler: nothing is handed over, the survivors simply keep
firing (a ``SIGKILL`` loses no tick and fires none twice).

One round (``run_once``) per due tick: re-read each schedule and its last fired tick (a
pause or removal takes effect before the next fire), decide which ticks to fire (``plan``),
fire them oldest first. Between rounds it sleeps until the next tick is due, at most
``refresh_s`` (how soon a newly added schedule is found). A failing round (Redis
unreachable, failing over) is logged and retried with backoff; the loop never dies of it.

``catch_up``, for ticks that fell due while no scheduler ran (or while Redis was away):

* ``"none"`` — missed ticks never fire. The newest due tick fires only when it fell due at
  most ``grace`` ago (default 60 s): so after an outage the current tick fires if it is
  that fresh, else the schedule waits for its next tick. (What system cron does.)
* ``"last"`` — the newest missed tick fires once, however old; older ones are skipped.
* ``"all"`` — every missed tick fires, oldest first, each message with its own tick; at
  most ``CATCH_UP_MAX`` (1,000) per round: beyond that only the newest 1,000.

Ticks never fire from before the schedule was added, resumed or re-timed (``since_ms``), and
a full queue (``max_queue_size``) holds a tick back: it is tried again every second, while
its policy still wants it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import redis

from ..admin.registry import select_queues
from ..backend.boundary import public
from ..errors import ConnectionLostError, PhantomError, QueueFullError, ValidationError
from ..model.envelope import now_ms
from .spec import CATCH_UP_MAX, ScheduleSpec
from .store import fire, last_fired, load_specs, readable, template_of

if TYPE_CHECKING:
    from ..ports import Deployment

log = logging.getLogger("phantom_notebook.schedule")

#: how soon a tick held back by a full queue (or an error) is tried again
RETRY_MS = 1000
_LOST = (ConnectionLostError, redis.ConnectionError, redis.TimeoutError, ConnectionError,
         TimeoutError)


@dataclass(frozen=True)
class Fired:
    """One tick this scheduler fired: the schedule, its queue, the tick and the message."""

    name: str
    queue: str
    tick: int
    message_id: str

    @property
    def tick_time(self) -> datetime:
        """The tick as an aware UTC datetime."""
        return datetime.fromtimestamp(self.tick / 1000, UTC)

    def __str__(self) -> str:
        return (f"fired {self.name} tick {self.tick} ({self.tick_time:%Y-%m-%d %H:%M:%S} "
                f"UTC) -> {self.queue} {self.message_id}")


def plan(spec: ScheduleSpec, last_ms: int, now: int) -> list[int]:
    """The ticks of ``spec`` to fire at ``now`` (epoch ms), oldest first, given the last
    tick fired (0 = never): the ``catch_up`` policy of the module docstring."""
    if spec.paused:
        return []
    timing, floor = spec.timing, max(spec.since_ms, last_ms)
    due: list[int] = []
    for tick in timing.at_or_before(now):
        if tick <= floor:
            break
        if timing.due(spec.name, tick) <= now:  # jitter: the newest tick may not be due yet
            due.append(tick)
            if spec.catch_up != "all" or len(due) >= CATCH_UP_MAX:
                break
    if spec.catch_up == "none" and due and now - timing.due(spec.name, due[0]) > spec.grace_ms:
        return []
    return due[::-1]


def _ms(now: datetime | float | None) -> int:
    if now is None:
        return now_ms()
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise PhantomError("run_once(now=...) needs an aware datetime")
        return int(now.timestamp() * 1000)
    return int(now * 1000)


@public
class Scheduler:
    """Fires the schedules of one deployment (``queues``: names or globs to limit it to;
    ``on_fired`` is called with each tick this scheduler fired).

    ``start()``/``stop()`` run it in a thread, ``run(stop)`` in the caller's, and
    ``run_once(now)`` fires what is due at ``now`` once (tests drive time with it). It
    fires only into queues this connection's role may manage; schedules of other queues
    are logged once and left to a scheduler that may.
    """

    def __init__(self, mq: Deployment, *, queues: str | Iterable[str] | None = None,
                 refresh_s: float = 5.0,
                 on_fired: Callable[[Fired], None] | None = None) -> None:
        self.mq = mq
        self.queues = queues
        self.refresh_s = refresh_s
        self.on_fired = on_fired
        self.fired = 0  # ticks this scheduler fired
        self.lost = 0   # ticks another scheduler fired first
        self.errors = 0
        self._specs: list[ScheduleSpec] = []
        self._found_at = -1e9
        self._floors: dict[tuple[str, str], int] = {}
        self._retry_at: int | None = None
        self._warned: dict[tuple[str, str], str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return (f"Scheduler({len(self._specs)} schedules, fired={self.fired}, "
                f"lost={self.lost}, errors={self.errors})")

    # -- running ----------------------------------------------------------------------------

    def run_once(self, now: datetime | float | None = None) -> list[Fired]:
        """Find the schedules again, then fire every tick due at ``now`` (an aware
        datetime or epoch seconds; default the clock); returns the ticks this call fired."""
        return self._round(_ms(now), rediscover=True)

    def run(self, stop: threading.Event | None = None) -> int:
        """Fire ticks as they fall due until ``stop`` (or ``stop()``) is set; returns 0."""
        stop = stop or self._stop
        backoff = 0.1
        while not stop.is_set():
            try:
                self._round(now_ms(), time.monotonic() >= self._found_at + self.refresh_s)
                wait, backoff = self._wait_s(now_ms()), 0.1
            except Exception as exc:  # noqa: BLE001 - the loop never dies of one round
                self.errors += 1
                log.warning("scheduler round failed (%s: %s); again in %.1f s",
                            type(exc).__name__, exc, backoff)
                wait, backoff = backoff, min(backoff * 2, 5.0)
            stop.wait(wait)
        return 0

    def start(self) -> Scheduler:
        """Run in a daemon thread until ``stop()``."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self.run, name="pn-scheduler", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread ``start()`` began (a round in progress finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def __enter__(self) -> Scheduler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def schedules(self) -> list[ScheduleSpec]:
        """The schedules found at the last look."""
        return list(self._specs)

    # -- one round --------------------------------------------------------------------------

    def _discover(self) -> None:
        mq = self.mq
        names = mq.queues()
        if self.queues is not None:
            names = select_queues(names, self.queues)
        specs = []
        for spec in load_specs(mq, readable(mq, names)):
            if mq.may_manage(spec.queue):
                specs.append(spec)
            else:
                self._warn(spec, "role", f"schedule {spec.name!r} of {spec.queue!r} is not "
                           f"fired here: role {mq.role!r} may not manage that queue")
        self._specs = specs
        self._found_at = time.monotonic()

    def _round(self, now: int, rediscover: bool) -> list[Fired]:
        if rediscover:
            self._discover()
        if not self._specs:
            return []
        mq = self.mq
        # a pause or removal since the last look takes effect before the next fire
        pipe = mq.client.pipeline(transaction=False)
        for spec in self._specs:
            pipe.hget(mq.queue_keys(spec.queue).schedules, spec.name)
        current = []
        for spec, raw in zip(self._specs, pipe.execute(), strict=True):
            if raw is None:
                continue  # removed
            try:
                current.append(ScheduleSpec.from_json(spec.name, spec.queue, raw))
            except ValidationError as exc:  # overwritten with something not ours
                self._warn(spec, "spec", f"{exc}: not fired")
        self._specs = current
        self._retry_at = None
        out: list[Fired] = []
        for spec, last in zip(current, last_fired(mq, current), strict=True):
            out += self._fire_due(spec, last, now)
        return out

    def _fire_due(self, spec: ScheduleSpec, last: int, now: int) -> list[Fired]:
        key = (spec.queue, spec.name)
        floor = max(spec.since_ms, last)
        self._floors[key] = floor
        ticks = plan(spec, last, now)
        out: list[Fired] = []
        if not ticks:
            return out
        try:
            message = template_of(self.mq, spec)
            for tick in ticks:
                if tick <= floor:
                    continue  # another scheduler is catching up ahead of us
                result = fire(self.mq, spec, tick, floor, message)
                floor = max(floor, result.last_ms)
                if result.fired and result.message_id is not None:
                    done = Fired(spec.name, spec.queue, tick, result.message_id)
                    log.info("%s", done)
                    out.append(done)
                    self.fired += 1
                    if self.on_fired is not None:
                        self.on_fired(done)
                else:
                    self.lost += 1
            self._warned.pop(key, None)
        except _LOST:
            raise
        except QueueFullError as exc:
            self._warn(spec, "full", f"schedule {spec.name!r} holds tick(s) back: {exc}")
            self._retry(now)
        except PhantomError as exc:  # a template it cannot open, a denial, an audit failure
            self.errors += 1
            self._warn(spec, type(exc).__name__, f"schedule {spec.name!r} of {spec.queue!r} "
                       f"did not fire ({type(exc).__name__}: {exc})")
            self._retry(now)
        self._floors[key] = floor
        return out

    def _retry(self, now: int) -> None:
        at = now + RETRY_MS
        self._retry_at = at if self._retry_at is None else min(self._retry_at, at)

    def _warn(self, spec: ScheduleSpec, reason: str, text: str) -> None:
        key = (spec.queue, spec.name)
        if self._warned.get(key) != reason:
            self._warned[key] = reason
            log.warning("%s", text)

    def _wait_s(self, now: int) -> float:
        """Seconds until the next tick of any schedule is due (at most ``refresh_s``)."""
        best = now + int(self.refresh_s * 1000)
        if self._retry_at is not None:
            best = min(best, self._retry_at)
        for spec in self._specs:
            if spec.paused:
                continue
            timing = spec.timing
            floor = self._floors.get((spec.queue, spec.name), spec.since_ms)
            for _, tick in zip(range(3), timing.after(max(floor, now - timing.jitter_ms)),
                               strict=False):
                due = timing.due(spec.name, tick)
                if due > now:
                    best = min(best, due)
                    break
        return max(best - now, 1) / 1000


__all__ = ["CATCH_UP_MAX", "Fired", "Scheduler", "plan"]
