"""Typed wrappers around the server-side functions (``library.py``, sources in ``lua/``).

Every wrapper passes all keys in KEYS (never built inside Lua) so the functions run on
Redis Cluster: all keys of one queue share a hash tag and therefore a slot. Three layers
compose around each call:

* the **audit section** (``AuditSection``): pre-MACed audit entries that the function
  appends to the caller's audit stream before it writes anything else, so an action and
  its audit entry are one atomic step (a replicated publish is audited like any other);
* a **follow-up command** on the same connection (``then``): ``WAIT`` / ``WAITAOF`` for
  queues with ``durability`` set, which count the replicas that have every write of
  *this connection*;
* the **transport**: the pinned hot-path connection when it is free (``pinned.py``), else
  the pool (a cluster routes by the first key).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from . import library
from .deploy import deploy, may_deploy
from .keyspace import QueueKeys
from .pinned import FALLBACK, PinnedConnection
from .records import Delivery, FetchResult, FlowControl, PublishColumns, Settlement

log = logging.getLogger("phantom_notebook.functions")


@dataclass(frozen=True)
class AuditSection:
    """Audit entries riding in a function call: the caller's audit stream and the ARGV
    section ``includes/audit.lua`` reads (mode, count, per entry: field count, fields)."""

    key: str
    args: tuple[Any, ...]


class Functions:
    """The phantom_notebook functions as one Redis client calls them (FCALL)."""

    def __init__(self, client: redis.Redis, deploy_policy: str = "missing") -> None:
        self.client: Any = client
        self.deploy_policy = deploy_policy
        #: the hot path's own connection for publish, fetch and settle (``pinned.py``)
        self.pinned = PinnedConnection(client)
        self._names = {f: library.name(f) for f in library.FUNCTIONS}

    # -- the generic call ---------------------------------------------------------------------

    def call(self, function: str, keys: Sequence[str], args: Sequence[Any], *,
             audit: AuditSection | None = None, client: Any = None,
             then: tuple[Any, ...] | None = None) -> Any:
        """FCALL ``function`` with ``keys`` and ``args`` (plus the audit section, if any).

        Returns its reply, or ``(reply, reply of then)`` when a follow-up command is given.
        A library missing on the server (a restart without persistence) is loaded again
        when this client may (``deploy_policy``), then the call is repeated once.
        """
        command = self.command(function, keys, args, audit)
        try:
            return self._send(command, client, then)
        except redis.ResponseError as exc:
            if "Function not found" not in str(exc) or not may_deploy(self.deploy_policy):
                raise
            log.warning("redis lost phantom_notebook's functions; loading them again")
            deploy(self.client)
            return self._send(command, client, then)

    def command(self, function: str, keys: Sequence[str], args: Sequence[Any],
                audit: AuditSection | None = None) -> list[Any]:
        """The FCALL arguments after the command name: function, numkeys, keys, argv."""
        if audit is None:
            return [self._names[function], len(keys), *keys, *args, 0]
        start = len(args) + 1  # ARGV is 1-based
        return [self._names[function], len(keys) + 1, *keys, audit.key, *args, *audit.args,
                start]

    def _send(self, command: list[Any], client: Any, then: tuple[Any, ...] | None) -> Any:
        if client is None:
            out = self.pinned.call(command, then)
            if out is not FALLBACK:
                return out
        target = client if client is not None else self.client
        if then is None:
            return target.fcall(*command)
        pipe = target.pipeline(transaction=False)
        pipe.fcall(*command)
        pipe.execute_command(*then)
        reply, after = pipe.execute(raise_on_error=False)
        if isinstance(reply, BaseException):
            raise reply
        return reply, after

    # -- publish ------------------------------------------------------------------------------

    def publish_args(self, keys: QueueKeys, metrics_key: str, batch: PublishColumns, *,
                     max_size: int | None, dedup_window_ms: int, now_ms: int,
                     metrics_ttl_s: int, trace_cap: int = 0, actor: str = "",
                     ) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of ``publish.lua`` for a batch (see its header for the layout)."""
        n = len(batch.ids)
        window = max(dedup_window_ms, 1)
        bucket = now_ms // window
        streams = keys.streams
        key_list = [streams[0], streams[1], streams[2], streams[3], keys.delayed, metrics_key,
                    keys.trace, keys.dedup_bucket(bucket), keys.dedup_bucket(bucket - 1),
                    keys.wake]
        tags = batch.tags
        if n == 1:  # the one-message publish: the same arguments, built directly (~1 us less)
            level, due = batch.levels[0], batch.dues[0]
            item = f"{batch.ids[0]}|{batch.trace_ids[0]}|1|"
            later = due > now_ms
            if later:
                item += f"due {due}"
            if tags and tags[0]:
                item += f" {tags[0]}" if later else tags[0]
            return key_list, [max_size or 0, window, now_ms, metrics_ttl_s, trace_cap, actor, 1,
                              _DELAYED[level] if later else _LEVEL[level],
                              batch.dedups[0] or "", item,
                              batch.envelopes[0], *((due,) if later else ())]
        # the detail: "due <ms>" for delayed messages, then the blind indicator tags, if any
        items = [f"{mid}|{tid}|1|" for mid, tid in zip(batch.ids, batch.trace_ids, strict=True)] \
            if not tags else [f"{mid}|{tid}|1|{tag}" for mid, tid, tag in
                              zip(batch.ids, batch.trace_ids, tags, strict=True)]
        digits = [_LEVEL[level] for level in batch.levels]
        dues = []
        if n and max(batch.dues) > now_ms:
            for i, due in enumerate(batch.dues):
                if due > now_ms:
                    digits[i] = _DELAYED[batch.levels[i]]
                    tag = tags[i] if tags else ""
                    items[i] = f"{batch.ids[i]}|{batch.trace_ids[i]}|1|due {due}" + \
                        (f" {tag}" if tag else "")
                    dues.append(due)
        argv: list[Any] = [max_size or 0, window, now_ms, metrics_ttl_s, trace_cap, actor, n,
                           "".join(digits), *([""] * (3 * n)), *dues]
        argv[8:8 + 3 * n:3] = [d or "" for d in batch.dedups]
        argv[9:9 + 3 * n:3] = items
        argv[10:10 + 3 * n:3] = batch.envelopes
        return key_list, argv

    def publish(self, keys: QueueKeys, metrics_key: str, batch: PublishColumns, *,
                max_size: int | None, dedup_window_ms: int, now_ms: int, metrics_ttl_s: int,
                trace_cap: int = 0, actor: str = "", audit: AuditSection | None = None,
                client: Any = None, then: tuple[Any, ...] | None = None) -> Any:
        """Publish a batch in one call; returns the duplicates' flat reply (index, first id)
        (with ``then``: that and the follow-up command's reply). ``QUEUE_FULL``,
        ``AUDIT_FAILED`` and OOM replies raise ``redis.ResponseError`` (the caller maps them).
        """
        key_list, argv = self.publish_args(
            keys, metrics_key, batch, max_size=max_size, dedup_window_ms=dedup_window_ms,
            now_ms=now_ms, metrics_ttl_s=metrics_ttl_s, trace_cap=trace_cap, actor=actor)
        return self.call("publish", key_list, argv, audit=audit, client=client, then=then)

    # -- consume ------------------------------------------------------------------------------

    def fetch(self, keys: QueueKeys, metrics_key: str, *, group: str, consumer: str, count: int,
              now_ms: int, reclaim_idle_ms: int, max_deliveries: int, levels: str,
              metrics_ttl_s: int, delete: bool, trace_cap: int = 0,
              promote_limit: int = 1000, probe: bool = False,
              flow: FlowControl | None = None, charge: int = 0) -> FetchResult:
        """Promote due delayed messages, reclaim stale deliveries and read up to ``count``
        (what pause, the rate limit and global concurrency allow: ``flow``; ``charge`` =
        deliveries made outside this function since the last call)."""
        f = flow or _NO_FLOW
        flat, next_due, dead, probed, throttle, wait, granted, answered = self.call(
            "fetch", [*_lane_keys(keys, metrics_key), keys.meta, keys.limiter,
                      keys.running(group)], [
                group, consumer, count, now_ms, reclaim_idle_ms, max_deliveries,
                promote_limit, metrics_ttl_s, levels, "1" if delete else "0", trace_cap,
                "1" if probe else "0", f.interval_us, f.tau_us, charge, f.max_running,
                f.lease_ms, f.limiter])
        it = iter(flat)  # level, stream id, field list, delivery count, ...
        deliveries = [delivery(int(level), sid, fields, int(n))
                      for level, sid, fields, n in zip(it, it, it, it, strict=True)]
        it = iter(probed)
        return FetchResult(deliveries, None if next_due < 0 else int(next_due), int(dead),
                           [(int(level), int(n)) for level, n in zip(it, it, strict=True)],
                           int(throttle), int(wait), int(granted),
                           tuple(a for a in answered if isinstance(a, bytes)))

    def settle(self, keys: QueueKeys, metrics_key: str, batch: Settlement, *, group: str,
               delete: bool, now_ms: int, metrics_ttl_s: int, trace_cap: int = 0,
               consumer: str = "", audit: AuditSection | None = None,
               seen: tuple[str, str] | None = None, track_running: bool = False) -> Any:
        """Ack, re-schedule and dead-letter a batch atomically; returns [acked, retried, dead]."""
        by_level: dict[int, list[str]] = {}
        for level, sid in batch.acks:
            ids = by_level.get(level)
            if ids is None:
                by_level[level] = [sid]
            else:
                ids.append(sid)
        argv: list[Any] = [group, ("1" if delete else "0") + ("1" if track_running else "0"),
                           now_ms, metrics_ttl_s, len(by_level)]
        for level, ids in by_level.items():
            argv.append(level)
            argv.append(len(ids))
            argv += ids
        argv.append(len(batch.retries))
        for retry in batch.retries:
            argv += retry
        argv.append(len(batch.dead))
        for dead in batch.dead:
            argv += dead
        result_keys: list[str] = []
        argv.append(len(batch.results))
        first = 13  # KEYS index of the first result hash (after the 12 fixed keys)
        for r in batch.results:
            index = first + len(result_keys)
            result_keys += [keys.result(r.message_id), keys.result_wake(r.message_id)]
            argv += [r.mode, r.level, r.stream_id, index, r.sealed, r.ttl_ms, r.state]
        argv.append(len(batch.counters))
        for name, amount in batch.counters.items():
            argv += [name, amount]
        argv += [trace_cap, consumer, len(batch.trace)]
        for name, items in batch.trace.items():
            argv += [name, ";".join(items)]
        argv.append(len(batch.unclaims))
        argv += batch.unclaims
        seen = seen or seen_keys(keys, group, now_ms, 0)
        return self.call("settle", [*_lane_keys(keys, metrics_key), *seen,
                                    keys.running(group), keys.wake, *result_keys], argv,
                         audit=audit)

    def join(self, keys: QueueKeys, metrics_key: str, mode: str, joins: Sequence[str],
             args: Sequence[Any], *, now_ms: int, metrics_ttl_s: int, trace_cap: int,
             actor: str) -> Any:
        """Call ``join.lua`` on the callback queue ``keys`` for the join hashes ``joins``
        (see its header for ``mode`` and ``args``)."""
        return self.call("join", [*keys.streams, keys.delayed, metrics_key, keys.trace,
                                  *joins],
                         [mode, now_ms, metrics_ttl_s, trace_cap, actor, *args])

    def claim(self, keys: QueueKeys, group: str, now_ms: int, window_ms: int,
              fields: list[str], stream_ids: list[str]) -> list[int]:
        """Claim a fetched batch for ``group``; returns the 0-based indexes of replays."""
        argv: list[Any] = [max(window_ms, 1), len(fields)]
        for f, sid in zip(fields, stream_ids, strict=True):
            argv += [f, sid]
        reply = self.call("claim", list(seen_keys(keys, group, now_ms, window_ms)), argv)
        return [int(i) - 1 for i in reply]

    # -- maintenance --------------------------------------------------------------------------

    def trim_broadcast(self, keys: QueueKeys) -> int:
        """Remove broadcast entries every group has acked; returns how many."""
        return int(self.call("trim_broadcast", list(keys.streams), []))


def seen_keys(keys: QueueKeys, group: str, now_ms: int, window_ms: int) -> tuple[str, str]:
    """The seen hashes of ``group`` for the current and previous replay-window bucket."""
    bucket = now_ms // max(window_ms, 1)
    return keys.seen(group, bucket), keys.seen(group, bucket - 1)


def _lane_keys(keys: QueueKeys, metrics_key: str) -> list[str]:
    """KEYS of fetch.lua and settle.lua: the streams, delayed, DLQ, metrics and trace keys."""
    return [*keys.streams, keys.delayed, keys.dlq, metrics_key, keys.trace]


def delivery(level: int, sid: Any, fields: Any, count: int) -> Delivery:
    """A ``Delivery`` from a stream entry's raw field list (``[b"m", envelope]`` normally).

    An entry without the envelope field (or a reply that is not a field list) becomes a
    delivery with empty ``raw`` and its fields kept: the lane dead-letters it as
    ``decode_failed`` instead of failing on it.
    """
    stream_id = sid.decode() if type(sid) is bytes else str(sid)
    if type(fields) is list:
        if len(fields) == 2 and fields[0] == b"m" and type(fields[1]) is bytes:
            return Delivery(level, stream_id, fields[1], count)
        for i in range(0, len(fields) - 1, 2):
            if fields[i] == b"m" and type(fields[i + 1]) is bytes:
                return Delivery(level, stream_id, fields[i + 1], count, tuple(fields))
        return Delivery(level, stream_id, b"", count, tuple(_bytes(f) for f in fields))
    if isinstance(fields, dict):  # redis-py's parsed form (RESP3 / callbacks)
        raw = fields.get(b"m")
        flat = tuple(_bytes(x) for kv in fields.items() for x in kv)
        return Delivery(level, stream_id, raw if type(raw) is bytes else b"", count,
                        () if type(raw) is bytes and len(fields) == 1 else flat)
    return Delivery(level, stream_id, b"", count, (_bytes(fields),))


def _bytes(value: Any) -> bytes:
    return value if type(value) is bytes else str(value).encode()


_NO_FLOW = FlowControl(0, 0, 0, 0, "")

# publish.lua's level digits: "0".."3" now, "4".."7" delayed (level + 4)
_LEVEL = "0123"
_DELAYED = "4567"


def publish_ids(batch: PublishColumns, dups: list[Any]) -> list[str]:
    """The ids a publish returns: each message's own, or the first one's for a duplicate."""
    ids = list(batch.ids)
    for i in range(0, len(dups), 2):
        first = dups[i + 1]
        ids[int(dups[i]) - 1] = first.decode() if isinstance(first, bytes) else str(first)
    return ids


__all__ = ["AuditSection", "Functions", "delivery", "publish_ids"]
