"""Key rotation: re-encrypt everything stored under the active key, resumably.

``reseal_all(mq)`` walks every queue's ready streams, delayed set and dead-letter queue and
replaces each envelope sealed with an older key by its copy under the active key, in
batches, each batch one atomic Lua call (``reseal.lua``). Interrupting it loses nothing and
running it again continues where it stopped (an envelope already under the active key is
skipped). Entries a worker already holds are left to it (its retry, if any, is sealed with
the active key). Moved ready entries go to the tail of their level stream: during a
rotation, messages published meanwhile may overtake older ones of the same priority.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..backend.functions import source
from ..errors import ConfigError, DecodeError

if TYPE_CHECKING:
    from ..ports import Deployment

PAGE = 500


@dataclass
class RotationReport:
    """What a reseal pass did."""

    resealed: int = 0
    skipped_in_flight: int = 0
    unreadable: int = 0
    by_queue: dict[str, int] = field(default_factory=dict)


def pending_count(mq: Deployment) -> int:
    """How many stored envelopes are not yet sealed under the active key."""
    codec = _codec(mq)
    return sum(1 for _ in _candidates(mq, codec, queues=None))


def reseal_all(mq: Deployment, queues: list[str] | None = None,
               progress: Callable[[int], None] | None = None) -> RotationReport:
    """Re-encrypt every stored envelope of ``queues`` (all) under the active key."""
    codec = _codec(mq)
    script = mq.client.register_script(source("reseal"))
    report = RotationReport()
    batch: list[tuple[str, str, str, str | bytes, bytes]] = []

    def flush() -> None:
        by_key: dict[tuple[str, str, str], list[Any]] = {}
        for queue, key, mode, *pair in batch:
            by_key.setdefault((queue, key, mode), []).extend(pair)
        for (queue, key, mode), pairs in by_key.items():
            done = int(script(keys=[key], args=[mode, len(pairs) // 2, *pairs]))
            report.resealed += done
            report.skipped_in_flight += len(pairs) // 2 - done
            report.by_queue[queue] = report.by_queue.get(queue, 0) + done
            if progress is not None:
                progress(len(pairs) // 2)
        batch.clear()

    for queue, key, mode, old, raw in _candidates(mq, codec, queues):
        try:
            fresh = codec.reseal(raw)
        except DecodeError:
            report.unreadable += 1  # tampered or foreign: the worker will dead-letter it
            continue
        new = old[:1] + fresh if isinstance(old, bytes) else fresh  # zset: keep the level
        batch.append((queue, key, mode, old, new))
        if len(batch) >= PAGE:
            flush()
    flush()
    return report


def _codec(mq: Deployment) -> Any:
    codec = mq.codec
    if not hasattr(codec, "needs_reseal") or getattr(codec, "keyring", None) is None:
        raise ConfigError("security.keys", "rotation needs a key ring on this connection",
                          "connect with [security] keys / key_file or $PHANTOM_KEYS")
    return codec


def _candidates(mq: Deployment, codec: Any, queues: list[str] | None,
                ) -> Iterator[tuple[str, str, str, str | bytes, bytes]]:
    """(queue, key, mode, old id or member, envelope bytes) of everything to reseal."""
    for queue in queues if queues is not None else mq.queues():
        keys = mq.queue_keys(queue)
        for stream in keys.streams:
            for sid, fields in _scan_stream(mq, stream):
                raw = fields.get(b"m", b"")
                if raw and codec.needs_reseal(raw):
                    yield queue, stream, "stream", sid, raw
        for member in _scan_zset(mq, keys.delayed):
            if codec.needs_reseal(member[1:]):
                yield queue, keys.delayed, "zset", member, member[1:]
        for sid, fields in _scan_stream(mq, keys.dlq):
            raw = fields.get(b"m", b"")
            if raw and codec.needs_reseal(raw):
                yield queue, keys.dlq, "dlq", sid, raw


def _scan_stream(mq: Deployment, key: str) -> Iterator[tuple[str, dict[bytes, bytes]]]:
    last = "-"
    while True:
        page = mq.client.xrange(key, min=last, max="+", count=PAGE)
        for sid, fields in page:
            yield sid.decode(), fields
        if len(page) < PAGE:
            return
        last = "(" + page[-1][0].decode()


def _scan_zset(mq: Deployment, key: str) -> Iterator[bytes]:
    cursor = 0
    while True:
        cursor, members = mq.client.zscan(key, cursor, count=PAGE)
        yield from (m for m, _ in members)
        if cursor == 0:
            return
