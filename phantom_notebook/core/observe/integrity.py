"""Integrity checks for health: what ACLs cannot prevent, detected.

* **streams whose last id lies in the future** (``find_damage``): a role must hold XADD on
  the streams its functions write, so it can also XADD with an explicit id; the maximum id
  makes the stream refuse every later append. ``phantom-notebook repair``
  (``admin/repair.py``) restores such a stream with nothing lost.
* **registry junk** (``registry_junk``): members of ``<prefix>:queues`` that are not queue
  names; readers skip them (health WARNs).
* **vanished dead letters** (``dlq_losses``): a role that writes dead letters can also
  ``XADD ... MAXLEN 0`` the DLQ; every legitimate removal (replay, purge, retention, repair)
  is counted in the queue's meta (``dlq_removed``), so entries added minus entries held
  minus that count is what disappeared otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from ..audit.verify import audit_streams
from ..backend.keyspace import check_queue_name
from ..errors import ValidationError

if TYPE_CHECKING:
    from ..ports import Deployment

#: ids further ahead of the server clock than this are "in the future"
SLACK_S = 3600.0


@dataclass(frozen=True)
class StreamDamage:
    """One stream whose last id lies in the future."""

    key: str
    queue: str | None
    #: the (sub-)queue whose hash tag the key carries (None: a global audit stream)
    part: str | None
    last_id: str
    ahead_s: float
    entries: int

    @property
    def exhausted(self) -> bool:
        """True when the stream refuses every new entry (its last id is the maximum)."""
        return self.last_id.startswith("18446744073709551615-")


def stream_keys(mq: Deployment, queues: Iterable[str] | None = None
                ) -> list[tuple[str | None, str | None, str]]:
    """(queue, sub-queue, key) of every stream of ``queues`` (all), including each
    sub-queue's audit streams, and every global audit stream (queue None)."""
    out: list[tuple[str | None, str | None, str]] = []
    names = list(queues if queues is not None else mq.queues())
    parts: dict[str, tuple[str, str]] = {}
    for queue in names:
        for part in mq.layout(queue).all:
            keys = mq.queue_keys(part)
            parts[keys.base] = (queue, part)
            out += [(queue, part, k) for k in (*keys.streams, keys.dlq, keys.trace)]
    for key in audit_streams(mq.client, mq.keys.audit_patterns):
        base = key.rsplit(":audit:", 1)[0]
        if base in parts:
            out.append((*parts[base], key))
        elif base == mq.keys.prefix:
            out.append((None, None, key))
    return out


def find_damage(mq: Deployment, queues: Iterable[str] | None = None,
                slack_s: float = SLACK_S) -> list[StreamDamage]:
    """Every stream whose last generated id is more than ``slack_s`` ahead of Redis' clock.

    Needs ``XINFO STREAM`` (operators and admins; it shows entries, so stats-only roles do
    not hold it): raises ``redis.exceptions.NoPermissionError`` otherwise.
    """
    targets = stream_keys(mq, queues)
    sec, usec = mq.client.time()
    now_ms = int(sec) * 1000 + int(usec) // 1000
    pipe = mq.client.pipeline(transaction=False)
    for _, _, key in targets:
        pipe.xinfo_stream(key)
    damaged = []
    for (queue, part, key), info in zip(targets, pipe.execute(raise_on_error=False),
                                        strict=True):
        if isinstance(info, redis.exceptions.NoPermissionError):
            raise info
        if isinstance(info, Exception) or not isinstance(info, dict):
            continue  # no such key
        last = _text(info.get("last-generated-id", "0-0"))
        ms = int(last.split("-", 1)[0] or 0)
        if ms - now_ms > slack_s * 1000:
            damaged.append(StreamDamage(key, queue, part, last, (ms - now_ms) / 1000,
                                        int(info.get("length", 0))))
    return damaged


def split_registry(client: Any, registry_key: str) -> tuple[list[str], list[str]]:
    """(queue names, junk) of the queue registry: junk is anything that is not a queue
    name, partitions (``name#3``) included; both sorted."""
    good: list[str] = []
    bad: list[str] = []
    for raw in client.smembers(registry_key):
        name = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        try:
            check_queue_name(name)
        except ValidationError:
            bad.append(name)
            continue
        (bad if "#" in name else good).append(name)  # a partition is not a queue of its own
    return sorted(good), sorted(bad)


def registry_junk(client: Any, registry_key: str) -> list[str]:
    """Members of the queue registry that are not queue names (partitions included)."""
    return split_registry(client, registry_key)[1]


def dlq_losses(mq: Deployment, queues: Iterable[str] | None = None) -> dict[str, int]:
    """Dead letters that vanished outside replay, purge, retention and repair, per DLQ key.

    Needs ``XINFO STREAM`` (operators and admins); raises ``NoPermissionError`` otherwise.
    """
    keys = [mq.queue_keys(part) for q in (queues if queues is not None else mq.queues())
            for part in mq.layout(q).all]
    pipe = mq.client.pipeline(transaction=False)
    for k in keys:
        pipe.xinfo_stream(k.dlq)
        pipe.hget(k.meta, "dlq_removed")
    out: dict[str, int] = {}
    replies = pipe.execute(raise_on_error=False)
    for k, info, removed in zip(keys, replies[::2], replies[1::2], strict=True):
        if isinstance(info, redis.exceptions.NoPermissionError):
            raise info
        if not isinstance(info, dict) or "entries-added" not in info:
            continue
        lost = int(info["entries-added"]) - int(info.get("length", 0)) - int(removed or 0)
        if lost > 0:
            out[k.dlq] = lost
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["SLACK_S", "StreamDamage", "dlq_losses", "find_damage", "registry_junk",
           "stream_keys"]
