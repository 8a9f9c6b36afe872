"""Typed wrappers around the Lua scripts in ``lua/`` (one ``.lua`` file per operation).

Every wrapper passes all keys in KEYS (never built inside Lua) so the scripts run on
Redis Cluster: all keys of one queue share a hash tag and therefore a slot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, NamedTuple

import redis
from redis.exceptions import NoScriptError

from ..errors import QueueFullError
from .keyspace import QueueKeys
from .pinned import FALLBACK, PinnedConnection


@cache
def source(name: str) -> str:
    """The text of ``lua/<name>.lua``."""
    return resources.files(__package__).joinpath(f"lua/{name}.lua").read_text("utf-8")


class Delivery(NamedTuple):
    """One entry handed out by ``fetch``: where it lives and how often it was delivered.

    A named tuple, not a frozen dataclass: hundreds are built per fetch (~0.2 vs ~0.9 us).
    """

    level: int
    stream_id: str
    raw: bytes
    delivery_count: int


@dataclass(frozen=True)
class FetchResult:
    """What ``fetch`` returned: deliveries, the next delayed due time, dead-lettered count."""

    deliveries: list[Delivery]
    next_due_ms: int | None
    dead_lettered: int
    #: with ``probe``: (level, undelivered entries) in priority order, for direct reads
    probed: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class Settlement:
    """A batch of outcomes to write in one ``settle`` call.

    ``acks``: (level, stream id); ``retries``: (level, stream id, due ms, new envelope);
    ``dead``: (level, stream id, envelope, reason, error type, error, traceback, attempts,
    consumer, first failure ms); ``counters``: extra metric increments.
    """

    acks: list[tuple[int, str]]
    retries: list[tuple[int, str, int, bytes]]
    dead: list[tuple[int, str, bytes, str, str, str, str, int, str, int]]
    counters: dict[str, int]
    trace: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> Settlement:
        """A settlement with nothing in it."""
        return cls([], [], [], {})

    def count(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to a metric counter of this batch."""
        self.counters[name] = self.counters.get(name, 0) + amount

    def event(self, name: str, item: str) -> None:
        """Add a trace item to the batch's ``name`` event."""
        self.trace.setdefault(name, []).append(item)

    def absorb(self, other: Settlement) -> None:
        """Put ``other`` (a batch that failed to write) in front of this one."""
        self.acks[:0] = other.acks
        self.retries[:0] = other.retries
        self.dead[:0] = other.dead
        for name, amount in other.counters.items():
            self.count(name, amount)
        for name, items in other.trace.items():
            self.trace.setdefault(name, [])[:0] = items

    def __bool__(self) -> bool:
        return bool(self.acks or self.retries or self.dead or self.counters or self.trace)

    def __len__(self) -> int:
        return len(self.acks) + len(self.retries) + len(self.dead)


@dataclass
class PublishColumns:
    """A publish batch as columns, one entry per message (see ``Functions.publish``)."""

    levels: list[int]
    dues: list[int]
    dedups: list[str | None]
    ids: list[str]
    trace_ids: list[str]
    envelopes: list[bytes]

    @classmethod
    def from_rows(cls, rows: list[tuple[int, int, str | None, str, str, bytes]]
                  ) -> PublishColumns:
        """Columns of ``(level, due_ms, dedup_key, id, trace_id, envelope)`` rows."""
        return cls([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                   [r[3] for r in rows], [r[4] for r in rows], [r[5] for r in rows])

    def select(self, index: list[int]) -> PublishColumns:
        """The messages at ``index``, in that order."""
        return PublishColumns([self.levels[i] for i in index], [self.dues[i] for i in index],
                              [self.dedups[i] for i in index], [self.ids[i] for i in index],
                              [self.trace_ids[i] for i in index],
                              [self.envelopes[i] for i in index])


class Functions:
    """The registered scripts of one Redis client (EVALSHA with automatic reload)."""

    def __init__(self, client: redis.Redis) -> None:
        self._publish = client.register_script(source("publish"))
        self._fetch = client.register_script(source("fetch"))
        self._settle = client.register_script(source("settle"))
        self._trim = client.register_script(source("trim_broadcast"))
        #: the hot path's own connection for publish, fetch and settle (``core/wire.py``)
        self.pinned = PinnedConnection(client)

    def publish(self, keys: QueueKeys, metrics_key: str,
                messages: list[tuple[int, int, str | None, str, str, bytes]], *,
                max_size: int | None, dedup_window_ms: int, now_ms: int, metrics_ttl_s: int,
                trace_cap: int = 0, actor: str = "", client: Any = None) -> list[str]:
        """Publish ``(level, due_ms, dedup_key, id, trace_id, envelope)`` tuples in one call.

        Returns, per message, its id, or the first message's id for a suppressed duplicate.
        Raises ``QueueFullError`` when the batch does not fit under ``max_size``.
        """
        return self.publish_columns(
            keys, metrics_key, PublishColumns.from_rows(messages),
            max_size=max_size, dedup_window_ms=dedup_window_ms, now_ms=now_ms,
            metrics_ttl_s=metrics_ttl_s, trace_cap=trace_cap, actor=actor, client=client)

    def publish_columns(self, keys: QueueKeys, metrics_key: str, batch: PublishColumns, *,
                        max_size: int | None, dedup_window_ms: int, now_ms: int,
                        metrics_ttl_s: int, trace_cap: int = 0, actor: str = "",
                        client: Any = None) -> list[str]:
        """``publish`` for a batch held as columns (the publish hot path: no tuple per
        message, the arguments interleaved by slice assignment)."""
        command = self.publish_command(keys, metrics_key, batch, max_size=max_size,
                                       dedup_window_ms=dedup_window_ms, now_ms=now_ms,
                                       metrics_ttl_s=metrics_ttl_s, trace_cap=trace_cap,
                                       actor=actor)
        try:
            dups = self._run(self._publish, client, *command)
        except redis.ResponseError as exc:
            raise queue_full(exc, keys.queue) from None
        return publish_ids(batch, dups)

    def publish_command(self, keys: QueueKeys, metrics_key: str, batch: PublishColumns, *,
                        max_size: int | None, dedup_window_ms: int, now_ms: int,
                        metrics_ttl_s: int, trace_cap: int = 0, actor: str = "") -> list[Any]:
        """The EVALSHA arguments after the sha (numkeys, keys, argv) of a publish batch."""
        n = len(batch.ids)
        window = max(dedup_window_ms, 1)
        bucket = now_ms // window
        streams = keys.streams
        head: list[Any] = [9, streams[0], streams[1], streams[2], streams[3], keys.delayed,
                           metrics_key, keys.trace, keys.dedup_bucket(bucket),
                           keys.dedup_bucket(bucket - 1)]
        if n == 1:  # the one-message publish: the same arguments, built directly (~1 us less)
            level, due = batch.levels[0], batch.dues[0]
            item = f"{batch.ids[0]}|{batch.trace_ids[0]}|1|"
            later = due > now_ms
            head += [max_size or 0, window, now_ms, metrics_ttl_s, trace_cap, actor, 1,
                     _DELAYED[level] if later else _LEVEL[level], batch.dedups[0] or "",
                     f"{item}due {due}" if later else item, batch.envelopes[0],
                     *((due,) if later else ())]
            return head
        items = [f"{mid}|{tid}|1|" for mid, tid in zip(batch.ids, batch.trace_ids, strict=True)]
        digits = [_LEVEL[level] for level in batch.levels]
        dues = []
        if n and max(batch.dues) > now_ms:
            for i, due in enumerate(batch.dues):
                if due > now_ms:
                    digits[i] = _DELAYED[batch.levels[i]]
                    items[i] += f"due {due}"
                    dues.append(due)
        argv: list[Any] = [max_size or 0, window, now_ms, metrics_ttl_s, trace_cap, actor, n,
                           "".join(digits), *([""] * (3 * n)), *dues]
        argv[8:8 + 3 * n:3] = [d or "" for d in batch.dedups]
        argv[9:9 + 3 * n:3] = items
        argv[10:10 + 3 * n:3] = batch.envelopes
        head += argv
        return head

    def publish_sha(self, client: Any) -> str:
        """The sha of the publish script, loaded into ``client``'s server (one round trip)."""
        sha = str(client.script_load(self._publish.script))
        self._publish.sha = sha
        return sha

    def fetch(self, keys: QueueKeys, metrics_key: str, *, group: str, consumer: str, count: int,
              now_ms: int, reclaim_idle_ms: int, max_deliveries: int, levels: str,
              metrics_ttl_s: int, delete: bool, trace_cap: int = 0,
              promote_limit: int = 1000, probe: bool = False) -> FetchResult:
        """Promote due delayed messages, reclaim stale deliveries and read up to ``count``."""
        flat, next_due, dead, probed = self._run(
            self._fetch, None, *_lane_keys(keys, metrics_key), group, consumer, count, now_ms,
            reclaim_idle_ms, max_deliveries, promote_limit, metrics_ttl_s, levels,
            "1" if delete else "0", trace_cap, "1" if probe else "0")
        it = iter(flat)  # level, stream id, envelope, delivery count, ...
        deliveries = [Delivery(int(level), sid.decode() if type(sid) is bytes else str(sid),
                               raw, int(count))
                      for level, sid, raw, count in zip(it, it, it, it, strict=True)]
        it = iter(probed)
        return FetchResult(deliveries, None if next_due < 0 else int(next_due), int(dead),
                           [(int(level), int(n)) for level, n in zip(it, it, strict=True)])

    def settle(self, keys: QueueKeys, metrics_key: str, batch: Settlement, *, group: str,
               delete: bool, now_ms: int, metrics_ttl_s: int, dlq_retention_ms: int,
               trace_cap: int = 0, consumer: str = "", client: Any = None) -> Any:
        """Ack, re-schedule and dead-letter a batch atomically; returns [acked, retried, dead]."""
        by_level: dict[int, list[str]] = {}
        for level, sid in batch.acks:
            ids = by_level.get(level)
            if ids is None:
                by_level[level] = [sid]
            else:
                ids.append(sid)
        argv: list[Any] = [group, "1" if delete else "0", now_ms, metrics_ttl_s,
                           dlq_retention_ms, len(by_level)]
        for level, ids in by_level.items():
            argv.append(level)
            argv.append(len(ids))
            argv += ids
        argv.append(len(batch.retries))
        for retry in batch.retries:
            argv += list(retry)
        argv.append(len(batch.dead))
        for dead in batch.dead:
            argv += list(dead)
        argv.append(len(batch.counters))
        for name, amount in batch.counters.items():
            argv += [name, amount]
        argv += [trace_cap, consumer, len(batch.trace)]
        for name, items in batch.trace.items():
            argv += [name, ";".join(items)]
        return self._run(self._settle, client, *_lane_keys(keys, metrics_key), *argv)

    def _run(self, script: Any, client: Any, numkeys: int, *keys_and_args: Any) -> Any:
        """EVALSHA ``script`` on the pinned connection when it is free, else through the
        pool (a wrapping ``client``, such as the audit's, always takes its own path)."""
        if client is None:
            out = self.pinned.evalsha(script, numkeys, *keys_and_args)
            if out is not FALLBACK:
                return out
        return _evalsha(script, client, numkeys, *keys_and_args)

    def trim_broadcast(self, keys: QueueKeys) -> int:
        """Remove broadcast entries every group has acked; returns how many."""
        return int(self._trim(keys=list(keys.streams), args=[]))


def _lane_keys(keys: QueueKeys, metrics_key: str) -> list[Any]:
    """numkeys and KEYS of fetch.lua and settle.lua: the streams, delayed, DLQ, metrics
    and trace keys."""
    return [len(keys.streams) + 4, *keys.streams, keys.delayed, keys.dlq, metrics_key,
            keys.trace]


# publish.lua's level digits: "0".."3" now, "4".."7" delayed (level + 4)
_LEVEL = "0123"
_DELAYED = "4567"


def publish_ids(batch: PublishColumns, dups: list[Any]) -> list[str]:
    """The ids a publish returns: each message's own, or the first one's for a duplicate."""
    ids = list(batch.ids)
    for i in range(0, len(dups), 2):
        ids[int(dups[i]) - 1] = _s(dups[i + 1])
    return ids


def _evalsha(script: Any, client: Any, numkeys: int, *keys_and_args: Any) -> Any:
    """Run a registered script as ``Script.__call__`` does (EVALSHA, loading it on
    NOSCRIPT), minus its per-call costs: a copy of every argument into a new tuple and an
    import of redis-py's Pipeline class."""
    target = client if client is not None else script.registered_client
    try:
        return target.evalsha(script.sha, numkeys, *keys_and_args)
    except NoScriptError:
        script.sha = target.script_load(script.script)
        return target.evalsha(script.sha, numkeys, *keys_and_args)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def queue_full(exc: redis.ResponseError, queue: str) -> Exception:
    """``QueueFullError`` for the publish script's QUEUE_FULL reply, else ``exc``."""
    text = str(exc)
    if "QUEUE_FULL" in text:
        parts = text.split("QUEUE_FULL", 1)[1].split()
        depth, limit = (parts + ["?", "?"])[:2]
        return QueueFullError(
            f"queue {queue!r} is full: {depth} messages queued, max_queue_size is {limit}")
    return exc
