"""The queue registry: which queues exist, their kind and settings, layouts, consumer groups.

A queue's kind (and partition count) is stored in its ``meta`` hash so every process agrees
on it; the ``<prefix>:queues`` set lists the declared names for discovery. ``QueueRegistry``
keeps what one connection has learnt (settings, key names, layouts) so the publish and
consume hot paths never ask Redis twice.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import redis

from ..backend.connection import TRANSIENT_ERRORS
from ..backend.keyspace import QueueKeys, check_queue_name
from ..config.settings import QUEUE_KINDS, QueueSettings
from ..errors import ConfigError, UnknownQueueError, UnknownQueueKindError, ValidationError
from ..model.envelope import now_ms
from ..model.routing import Layout
from ..observe.integrity import split_registry

if TYPE_CHECKING:
    from ..ports import Deployment

log = logging.getLogger("phantom_notebook.registry")

LAYOUT_TTL_S = 1.0  # producers and workers re-read a queue's partition layout this often


class QueueRegistry:
    """One connection's view of the declared queues (thread-safe; reads lock-free)."""

    def __init__(self, mq: Deployment) -> None:
        self.mq = mq
        self._declared: dict[str, QueueSettings] = {}
        self._queue_keys: dict[str, QueueKeys] = {}
        self._layouts: dict[str, tuple[float, Layout]] = {}
        self._lock = threading.Lock()

    def known(self, queue: str) -> QueueSettings | None:
        """The settings of ``queue`` if this connection declared it already (no lock)."""
        return self._declared.get(queue)

    def declare(self, queue: str, kind: str | None, overrides: dict[str, Any]) -> QueueSettings:
        """Create (or look up) ``queue`` in Redis and remember its settings."""
        check_queue_name(queue)
        if kind is not None and kind not in QUEUE_KINDS:
            raise UnknownQueueKindError(
                f"unknown queue kind {kind!r} for {queue!r}: use one of {', '.join(QUEUE_KINDS)}")
        with self._lock:
            known = self._declared.get(queue)
        if known is not None and kind in (None, known.kind) and not overrides:
            return known
        mq = self.mq
        qs = mq.settings.for_queue(queue)
        if kind is not None or overrides:
            qs = qs.replace(**({"kind": kind} if kind else {}), **overrides)
        keys = self.queue_keys(queue)
        pipe = mq.client.pipeline(transaction=False)
        pipe.hget(keys.meta, "kind")
        pipe.hget(keys.meta, "partitions")
        stored, stored_parts = pipe.execute()
        if stored is not None and stored_parts is not None \
                and int(stored_parts) != qs.partitions:
            if "partitions" in overrides:
                raise ValidationError(
                    f"queue {queue!r} has {int(stored_parts)} partitions, not "
                    f"{qs.partitions}: change it with repartition()")
            qs = qs.replace(partitions=int(stored_parts))
        if stored is not None and stored.decode() != qs.kind:
            if kind is not None:
                raise ValidationError(
                    f"queue {queue!r} exists with kind {stored.decode()!r}, not {kind!r}")
            qs = qs.replace(kind=stored.decode())
        if qs.enable_encryption and not getattr(mq.codec, "keyring", None):
            raise ConfigError(f"queues.{queue}.enable_encryption",
                              "the queue requires encryption but no key ring is configured",
                              "set [security] keys / key_file or $PHANTOM_KEYS")
        if stored is None:
            self._create(queue, qs, keys)
        with self._lock:
            self._declared[queue] = qs
        return qs

    def _create(self, queue: str, qs: QueueSettings, keys: QueueKeys) -> None:
        """Write a new queue's meta and registry entry (needs ``manage`` with a role)."""
        mq = self.mq
        if not self.may_create(queue):
            raise UnknownQueueError(
                f"queue {queue!r} is not declared, and role {mq.role!r} may not declare "
                f"it: an admin declares it with `phantom-notebook declare {queue} "
                f"--kind {qs.kind}`")
        if qs.partitions > 1 and qs.kind == "pubsub":
            raise ValidationError("a pub/sub queue stores nothing: it has no partitions")
        pipe = mq.client.pipeline(transaction=False)
        pipe.hsetnx(keys.meta, "kind", qs.kind)
        pipe.hsetnx(keys.meta, "created_ms", now_ms())
        if qs.partitions > 1:
            pipe.hsetnx(keys.meta, "partitions", qs.partitions)
        pipe.sadd(mq.keys.queues, queue)
        try:
            pipe.execute()
        except redis.exceptions.NoPermissionError:
            raise UnknownQueueError(
                f"queue {queue!r} is not declared, and this Redis user may not declare it: "
                f"an admin declares it with `phantom-notebook declare {queue} --kind "
                f"{qs.kind}`") from None

    def may_create(self, queue: str) -> bool:
        """Whether this connection may declare queues and create consumer groups: a role
        needs ``manage`` on the queue (non-admin roles cannot write the registry)."""
        mq = self.mq
        return mq.role is None or mq.access.allows(mq.role, "manage", queue)

    def queue_keys(self, queue: str) -> QueueKeys:
        """The Redis keys of ``queue`` (validated once, then cached)."""
        keys = self._queue_keys.get(queue)
        if keys is None:
            keys = self._queue_keys[queue] = self.mq.keys.queue(queue)
        return keys

    def layout(self, queue: str, fresh: bool = False) -> Layout:
        """The partitions of ``queue``, re-read from Redis every ``LAYOUT_TTL_S``.

        While Redis is unreachable (a failover) the last layout read keeps routing.
        """
        now = time.monotonic()
        with self._lock:
            cached = self._layouts.get(queue)
        if cached is not None and not fresh and cached[0] > now:
            return cached[1]
        try:
            layout = Layout.read(self.mq.client, queue, self.queue_keys(queue).meta)
        except TRANSIENT_ERRORS:
            if cached is None:
                raise
            return cached[1]
        with self._lock:
            self._layouts[queue] = (now + LAYOUT_TTL_S, layout)
        return layout

    def cached_layout(self, queue: str) -> Layout | None:
        """The layout of ``queue`` when a fresh one is cached (no Redis call), else None."""
        with self._lock:
            cached = self._layouts.get(queue)
        return cached[1] if cached is not None and cached[0] > time.monotonic() else None

    def forget(self, queue: str) -> None:
        """Drop what is cached of ``queue`` (after ``repartition``)."""
        with self._lock:
            self._layouts.pop(queue, None)
            self._declared.pop(queue, None)

    def names(self) -> list[str]:
        """Every declared queue name, sorted; invalid registry members are skipped.

        Anything may have been added to the registry set by hand (or by an attacker on a
        server without ACLs): a member that is not a queue name is logged and left out,
        never an exception for every reader. ``junk()`` lists them for health.
        """
        good, bad = self._members()
        for name in bad:
            log.warning("registry %s holds %r, which is not a queue name: skipped",
                        self.mq.keys.queues, name[:80])
        return good

    def junk(self) -> list[str]:
        """Registry members that are not queue names (shown by health as a WARN)."""
        return self._members()[1]

    def _members(self) -> tuple[list[str], list[str]]:
        return split_registry(self.mq.client, self.mq.keys.queues)


def ensure_group(mq: Deployment, queue: str, group: str, *, may_create: bool = True) -> None:
    """Make sure consumer ``group`` exists on every stream of ``queue``.

    Asks first (``XINFO GROUPS``, which works on a full Redis: ``XGROUP CREATE`` does not,
    even for a group that exists) and creates only what is missing. Competing-consumer
    queues start a new group at the beginning, so messages published before the first
    worker are delivered; broadcast groups start at "now". Without ``may_create`` (a role
    that may not manage the queue: consumers cannot create groups, which could read a
    broadcast queue's history) a missing group is a clear error naming the admin command.
    """
    mq.authorize("consume", queue)
    qs = mq.declare(queue)
    start = "$" if qs.kind == "broadcast" else "0"
    parts = [mq.queue_keys(part) for part in mq.layout(queue).all]
    streams = [s for keys in parts for s in keys.streams]
    wakes = {keys.wake for keys in parts}
    streams += sorted(wakes)
    pipe = mq.client.pipeline(transaction=False)
    for stream in streams:
        pipe.xinfo_groups(stream)
    missing = []
    for stream, reply in zip(streams, pipe.execute(raise_on_error=False), strict=True):
        if isinstance(reply, Exception):
            if "no such key" not in str(reply):
                raise reply
            reply = []
        if not any(_text(g.get("name")) == group for g in reply):
            missing.append(stream)
    if not may_create:
        # a deployment older than the wake-up streams: its consumers block without one
        missing = [m for m in missing if m not in wakes]
    if not missing:
        return
    if not may_create:
        raise UnknownQueueError(
            f"consumer group {group!r} of queue {queue!r} does not exist, and role "
            f"{mq.role!r} may not create it: an admin creates it with `phantom-notebook "
            f"declare {queue} --group {group}`")
    pipe = mq.client.pipeline(transaction=False)
    for stream in missing:
        pipe.xgroup_create(stream, group, id=start, mkstream=True)
    for result in pipe.execute(raise_on_error=False):
        if isinstance(result, Exception) and "BUSYGROUP" not in str(result):
            raise result


def select_queues(names: Iterable[str], patterns: str | Iterable[str] | None) -> list[str]:
    """The queue names matching any of ``patterns`` (comma-separated globs; all if None)."""
    if patterns is None:
        return sorted(names)
    wanted = [p.strip() for p in (patterns.split(",") if isinstance(patterns, str)
                                  else patterns) if p.strip()]
    if not wanted:
        raise ValidationError("--queues needs at least one name or glob pattern")
    return sorted(n for n in names if any(fnmatch.fnmatchcase(n, p) for p in wanted))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["LAYOUT_TTL_S", "QueueRegistry", "ensure_group", "select_queues"]
