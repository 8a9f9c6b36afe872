"""Workers' heartbeats: who is consuming, from where, since when, how busy.

Each ACL user's workers write one hash, ``<prefix>:hb:<user>`` (field: consumer name,
value: heartbeat JSON), so no role can fake or delete another's, and add their user name
to ``<prefix>:hb-users`` so readers find every hash without ``SCAN`` (which would show them
every key name on the server). A name in that set that is not a user with heartbeats is
just an empty hash; a heartbeat that is not JSON is skipped, never an exception.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from ..ports import Deployment

log = logging.getLogger("phantom_notebook.consumers")


@dataclass(frozen=True)
class Heartbeat:
    """The last heartbeat of one worker (consumer)."""

    consumer: str
    user: str
    host: str
    pid: int
    queues: tuple[str, ...]
    groups: tuple[str, ...]
    started: float
    last_seen: float
    handled: int
    in_flight: int
    extra: dict[str, Any] = field(default_factory=dict)


def read_heartbeats(mq: Deployment) -> list[Heartbeat]:
    """Every worker's last heartbeat, oldest ``last_seen`` first."""
    out: list[Heartbeat] = []
    users = sorted(_text(u) for u in mq.client.smembers(mq.keys.heartbeat_index))
    users = [u for u in users if _USER.fullmatch(u)]
    pipe = mq.client.pipeline(transaction=False)
    for user in users:
        pipe.hgetall(mq.keys.heartbeats(user))
    for user, beats in zip(users, pipe.execute(), strict=True):
        key = mq.keys.heartbeats(user)
        for name, raw in beats.items():
            consumer = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
            beat = _parse(raw)
            if beat is None:
                log.warning("heartbeat %s of %s is not JSON: skipped", consumer[:80], key)
                continue
            out.append(Heartbeat(
                consumer, user, str(beat.get("host", "")), _int(beat.get("pid")),
                tuple(map(str, beat.get("queues") or ())),
                tuple(map(str, beat.get("groups") or ())), _float(beat.get("started")),
                _float(beat.get("last_seen")), _int(beat.get("handled")),
                _int(beat.get("in_flight")),
                {k: v for k, v in beat.items() if k not in _KNOWN}))
    return sorted(out, key=lambda b: b.last_seen)


_KNOWN = {"consumer", "host", "pid", "queues", "groups", "started", "last_seen", "handled",
          "in_flight"}


_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@\-]{0,63}")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _parse(raw: Any) -> dict[str, Any] | None:
    try:
        beat = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        return None
    return beat if isinstance(beat, dict) else None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _float(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else 0.0


__all__ = ["Heartbeat", "read_heartbeats"]
