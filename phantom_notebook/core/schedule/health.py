"""Health of the schedules: a tick that should have fired a while ago and did not means no
scheduler is running (or none may publish there). Registered as the "schedules" rule."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..model.envelope import now_ms
from ..observe.health import OK, WARN, HealthCheck, HealthThresholds, health_rule
from .store import last_fired, load_specs, readable

if TYPE_CHECKING:
    from ..ports import Deployment

#: a tick this long overdue (after its jitter) is late: schedulers look every second
LATE_MS = 60_000


@health_rule("schedules")
def late_schedules(mq: Deployment, names: list[str], t: HealthThresholds, *,
                   at_ms: int | None = None) -> list[HealthCheck]:
    """One check per active schedule: OK, or WARN when a tick is ``LATE_MS`` overdue
    (``at_ms``: the time to judge at, default now)."""
    specs = [s for s in load_specs(mq, readable(mq, names)) if not s.paused]
    now = now_ms() if at_ms is None else at_ms
    out = []
    for spec, last in zip(specs, last_fired(mq, specs), strict=True):
        target = f"{spec.queue}/{spec.name}"
        missed = None
        for tick in spec.timing.at_or_before(now):
            if tick <= max(last, spec.since_ms):
                break
            if spec.timing.due(spec.name, tick) <= now - LATE_MS:
                missed = tick
                break
        if missed is None:
            out.append(HealthCheck("schedule", OK, target, spec.timing.spec,
                                   "fires on time" if last else "not fired yet"))
        else:
            late_s = (now - missed) / 1000
            out.append(HealthCheck("schedule", WARN, target, f"{late_s:,.0f} s late",
                                   f"the tick due {late_s:,.0f} s ago has not fired: is a "
                                   "`phantom-notebook scheduler` running (as a role that "
                                   "manages the queue)?"))
    return out


__all__ = ["LATE_MS", "late_schedules"]
