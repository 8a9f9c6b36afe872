"""The hot path's own connection: one pooled connection held for the publish, fetch and
settle function calls.

A command through ``redis.Redis`` costs ~25 us of client CPU on this project's machine
before any byte reaches Redis: a checkout from the pool (a lock, a queue and a ``poll``
for stale data), argument re-tupling, the retry wrapper, response callbacks and the
observability hooks, and the check-in. A single publish is one round trip, so that is
about as much as the round trip itself (and a lane at a trickle pays it twice per
message: fetch and settle). ``PinnedConnection`` takes one connection from the pool once
and sends hiredis-packed FCALL commands on it with redis-py's own
``send_packed_command`` / ``read_response`` (which keep their timeouts, health checks and
disconnect-on-error), under a lock that is only *tried*: another thread calling at the
same moment takes the ordinary pooled path instead of waiting, so concurrency is never
lower than without it.

Anything unusual falls back to the ordinary client call, which has redis-py's retry
policy: a connection error (the pinned connection is dropped and re-made on next use),
embedded Redis (fakeredis), Redis Cluster, or a client with a non-standard pool. The
connection goes back to the pool on ``close`` and is dropped (never reused) after ``fork``.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis
from redis.exceptions import ResponseError

_pack: Any
try:  # redis[hiredis] is a dependency; the pure-Python packer stays as the fallback
    from hiredis import pack_command as _pack
except ImportError:  # pragma: no cover - hiredis wheels exist for every supported platform
    _pack = None

#: returned by ``PinnedConnection.call`` when the caller must use the ordinary client
FALLBACK: Any = object()

_FALLBACK_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


class PinnedConnection:
    """One connection of ``client``'s pool, held for hot-path script calls (thread-safe)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        pool = getattr(client, "connection_pool", None)
        # plain redis.Redis over redis-py's own pools only: not fakeredis (a subclass with
        # its own connection class), not Cluster, not a single-connection client
        self._pool: Any = pool if (
            type(client) is redis.Redis and type(pool) in (
                redis.ConnectionPool, redis.BlockingConnectionPool)
            and getattr(client, "connection", None) is None) else None
        self._lock = threading.Lock()
        self._conn: Any = None
        self._pid = os.getpid()

    @property
    def usable(self) -> bool:
        """Whether calls can take the pinned path at all (else they always fall back)."""
        return self._pool is not None

    def call(self, command: list[Any], then: tuple[Any, ...] | None = None) -> Any:
        """``FCALL *command`` on the pinned connection (and ``then`` right after it, on the
        same connection: ``(reply, reply of then)``); ``FALLBACK`` when the caller should
        use the ordinary client instead (busy, unusable, or the connection failed: then
        nothing was confirmed and the ordinary call's retry policy decides)."""
        if self._pool is None or not self._lock.acquire(blocking=False):
            return FALLBACK
        try:
            conn = self._connection()
            packed = [_pack(("FCALL", *command))] if _pack is not None \
                else conn.pack_command("FCALL", *command)
            if then is None:
                conn.send_packed_command(packed)
                return conn.read_response()
            conn.send_packed_command(packed + ([_pack(then)] if _pack is not None
                                               else conn.pack_command(*then)))
            try:
                reply = conn.read_response()
            except ResponseError:
                conn.read_response()  # the follow-up's reply: keep the connection in step
                raise
            try:
                after = conn.read_response()
            except ResponseError as exc:
                after = exc
            return reply, after
        except ResponseError:
            raise  # the whole reply was read: the connection is in step
        except _FALLBACK_ERRORS:
            self._drop()
            return FALLBACK
        except BaseException:
            self._drop()  # interrupted mid-reply: never reuse a connection out of step
            raise
        finally:
            self._lock.release()

    def close(self) -> None:
        """Give the connection back to the pool (a later call takes one again)."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == os.getpid():
                self._pool.release(conn)

    def _connection(self) -> Any:
        if self._pid != os.getpid():  # forked: the parent's socket is not ours to use
            self._conn, self._pid = None, os.getpid()
        if self._conn is None:
            self._conn = self._pool.get_connection()
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.disconnect()
            if self._pid == os.getpid():
                self._pool.release(conn)
