"""Workers' heartbeats: who is consuming, from where, since when, how busy.

Each ACL user's workers write one hash, ``<prefix>:hb:<user>`` (field: consumer name,
value: heartbeat JSON), so no role can fake or delete another's; readers find every
user's hash with ``SCAN``. A heartbeat that is not JSON is skipped, never an exception.
"""

from __future__ import annotations

import logging
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
    prefix = mq.keys.heartbeat_pattern[:-1]
    for key in sorted(_keys(mq.client, mq.keys.heartbeat_pattern)):
        user = key[len(prefix):]
        for name, raw in mq.client.hgetall(key).items():
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


def _keys(client: Any, pattern: str) -> set[str]:
    found = set()
    for key in client.scan_iter(match=pattern, count=1000):
        found.add(key.decode() if isinstance(key, bytes) else str(key))
    return found


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
