"""Every Redis key name phantom_notebook uses, built in one place.

All keys of one queue share the hash tag ``{<queue>}`` so each Lua script touches a
single Cluster slot::

    <prefix>:{<queue>}:s:<level>     stream per priority level (0 = CRITICAL .. 3 = LOW)
    <prefix>:{<queue>}:delayed       sorted set, score = due time in ms
    <prefix>:{<queue>}:dlq           stream of dead letters
    <prefix>:{<queue>}:dedup:<bucket> hash dedup key -> first message id, per time window
    <prefix>:{<queue>}:meta          hash: kind, settings, created time
    <prefix>:{<queue>}:m:<bucket>    hash: metric counters for one time bucket
    <prefix>:{<queue>}:trace         capped stream of lifecycle events
    <prefix>:{<queue>}:audit:<user>  the audit stream of one ACL user's actions on the queue
    <prefix>:{<queue>}:bk:<token>:<i> a backup's snapshot copies (core/backup; TTL 1 h)
    <prefix>:{<queue>}:restored      restore ledger: archived records already written back
    <prefix>:{<queue>}:sched         hash: name -> JSON spec of a schedule firing here
    <prefix>:{<queue>}:fired         hash: schedule name -> last tick fired (ms)
    <prefix>:{<queue>}:res:<id>      hash: a request's state, sealed result, progress (TTL)
    <prefix>:{<queue>}:res:<id>:w    list: a request's wake-up (pushed when its result is stored)
    <prefix>:{<queue>}:join:<group>  hash: a group's join, with its callback's queue (TTL)
    <prefix>:queues                  set of known queue names (registry; admins write it)
    <prefix>:hb:<user>               hash consumer -> heartbeat JSON of one ACL user's workers
    <prefix>:hb-users                set of the users with heartbeats (each adds its own name)
    <prefix>:audit:<user>            the audit stream of one ACL user's other actions
    <prefix>:backup:last             hash: the last good backup (time, archive, messages)
    <prefix>:ps:<topic>              pub/sub channel
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from ..errors import ValidationError

LEVELS = 4  # CRITICAL, HIGH, NORMAL, LOW

_QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$")
# a partition of a queue: <queue>#<i>[.<k>] (core/partitions.py)
_PARTITION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}#[0-9]{1,3}(\.[0-9]{1,6})?$")


def check_queue_name(name: str) -> str:
    """Return ``name`` if it is a valid queue name, else raise ``ValidationError``."""
    if not isinstance(name, str) or not (_QUEUE_NAME.fullmatch(name)
                                         or _PARTITION_NAME.fullmatch(name)):
        raise ValidationError(
            f"invalid queue name {name!r}: use 1-128 characters from A-Z a-z 0-9 . _ - "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True, slots=False)
class QueueKeys:
    """The key names of one queue (all in one hash slot)."""

    prefix: str
    queue: str

    @cached_property
    def base(self) -> str:
        """The common ``<prefix>:{<queue>}`` stem of every key of this queue."""
        return f"{self.prefix}:{{{self.queue}}}"

    @cached_property
    def streams(self) -> tuple[str, ...]:
        """The ready/in-flight streams, highest priority first."""
        return tuple(f"{self.base}:s:{level}" for level in range(LEVELS))

    def stream(self, level: int) -> str:
        """The stream of one priority level."""
        return self.streams[level]

    @cached_property
    def wake(self) -> str:
        """The wake-up stream (capped, no messages): idle consumers block on it with the level
        streams; a publish of delayed messages and a pause append to it so a blocked
        consumer looks again (its due times, the pause) at once."""
        return f"{self.base}:s:w"

    @cached_property
    def delayed(self) -> str:
        """The sorted set of delayed messages and retry backoffs."""
        return f"{self.base}:delayed"

    @cached_property
    def dlq(self) -> str:
        """The dead-letter stream."""
        return f"{self.base}:dlq"

    @cached_property
    def meta(self) -> str:
        """The hash holding the queue's kind and settings."""
        return f"{self.base}:meta"

    @cached_property
    def trace(self) -> str:
        """The capped stream of lifecycle events."""
        return f"{self.base}:trace"

    @cached_property
    def breakers(self) -> str:
        """The hash of circuit-breaker states per subscription group."""
        return f"{self.base}:breakers"

    def dedup_bucket(self, bucket: int) -> str:
        """The dedup hash of one window bucket (bucket = now ms // window ms)."""
        return f"{self.base}:dedup:{bucket}"

    def seen(self, group: str, bucket: int) -> str:
        """The hash of messages consumer ``group`` was handed in one replay-window bucket."""
        return f"{self.base}:seen:{group}:{bucket}"

    def metrics(self, bucket: int) -> str:
        """The metric hash for one time bucket (bucket = start time in seconds)."""
        return f"{self.base}:m:{bucket}"

    def audit(self, user: str) -> str:
        """The audit stream of ``user``'s actions on this queue (same slot as the queue,
        so an action and its audit entry are one atomic function call)."""
        return f"{self.base}:audit:{user}"

    @cached_property
    def rotation_fence(self) -> str:
        """The counter fencing key rotations of this queue (each reseal takes a token)."""
        return f"{self.base}:rotation"

    def snapshot(self, token: str) -> tuple[str, ...]:
        """A backup's snapshot copies: the 4 streams, delayed, dlq, 2 dedup buckets, and
        the pending hash (``lua/snapshot.lua``)."""
        return tuple(f"{self.base}:bk:{token}:{part}" for part in
                     ("s0", "s1", "s2", "s3", "delayed", "dlq", "dedup0", "dedup1", "pel"))

    @cached_property
    def restore_ledger(self) -> str:
        """The hash of archived records already restored here (restoring is idempotent)."""
        return f"{self.base}:restored"

    @cached_property
    def cancels(self) -> str:
        """The hash of in-flight messages asked to stop (message id -> ms; ``mq.cancel``)."""
        return f"{self.base}:cancel"

    @cached_property
    def limiter(self) -> str:
        """The hash of GCRA states of this queue's rate limits ("g:<group>" -> TAT us)."""
        return f"{self.base}:limits"

    @cached_property
    def reservations(self) -> str:
        """The hash of rate-limit slots given to deferred messages ("<id>:<attempt>" -> us)."""
        return f"{self.base}:reserved"

    def reclaim(self, group: str) -> str:
        """The window key of ``group``'s reclaims (SET NX PX visibility timeout / 4): one
        lane per queue and group reclaims stale deliveries per window, not every lane."""
        return f"{self.base}:reclaim:{group}"

    def running(self, group: str) -> str:
        """The zset of ``group``'s deliveries in flight ("<level>:<stream id>" -> lease
        expiry ms), for global concurrency limits."""
        return f"{self.base}:running:{group}"

    def processed(self, group: str) -> str:
        """The processed-set of a consumer group (idempotent-handler helper)."""
        return f"{self.base}:done:{group}"

    def result(self, message_id: str) -> str:
        """The result hash of a request read from this queue (state, sealed value,
        progress)."""
        return f"{self.base}:res:{message_id}"

    def result_wake(self, message_id: str) -> str:
        """The list a waiter blocks on until the result of ``message_id`` is stored."""
        return f"{self.base}:res:{message_id}:w"

    def join(self, group_id: str) -> str:
        """The join hash of a group whose callback goes to this queue."""
        return f"{self.base}:join:{group_id}"

    @cached_property
    def schedules(self) -> str:
        """The hash of the recurring schedules firing into this queue (name -> JSON spec;
        core/schedule). Per queue, so only roles managing the queue can write them."""
        return f"{self.base}:sched"

    @cached_property
    def fired(self) -> str:
        """The hash of the last tick each schedule fired here (name -> epoch ms), written
        only by ``pn1_fire``: the atomic claim that fires a tick once."""
        return f"{self.base}:fired"


@dataclass(frozen=True)
class GlobalKeys:
    """Keys shared by the whole deployment under one prefix."""

    prefix: str

    @property
    def queues(self) -> str:
        """The set of queue names (registry for discovery)."""
        return f"{self.prefix}:queues"

    def heartbeats(self, user: str) -> str:
        """The hash of heartbeats of ``user``'s workers (each user writes only its own)."""
        return f"{self.prefix}:hb:{user}"

    @property
    def heartbeat_index(self) -> str:
        """The set of users whose workers write heartbeats (readers need no SCAN)."""
        return f"{self.prefix}:hb-users"

    def audit(self, user: str) -> str:
        """The audit stream of ``user``'s actions that concern no single queue."""
        return f"{self.prefix}:audit:{user}"

    @property
    def audit_patterns(self) -> tuple[str, str]:
        """SCAN patterns matching every audit stream (per-queue and global)."""
        return (f"{self.prefix}:audit:*", f"{self.prefix}:{{*}}:audit:*")

    @property
    def backup_last(self) -> str:
        """The hash describing the last good backup (health shows its age)."""
        return f"{self.prefix}:backup:last"

    def channel(self, topic: str) -> str:
        """The pub/sub channel of a topic."""
        return f"{self.prefix}:ps:{topic}"

    def queue(self, name: str) -> QueueKeys:
        """The keys of one queue."""
        return QueueKeys(self.prefix, check_queue_name(name))
