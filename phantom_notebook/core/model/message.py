"""``Message``: one message to publish, as the caller describes it (before it is sealed)."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..errors import ValidationError
from .envelope import MessagePriority
from .flow_headers import RESULT_HEADERS


@dataclass(frozen=True, init=False, slots=True)
class Message:
    """One message to publish with ``publish_batch``."""

    type: str
    payload: Any
    priority: MessagePriority | int | str = MessagePriority.NORMAL
    delay: timedelta | float | None = None
    deliver_at: datetime | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    dedup_key: str | None = None
    ttl_s: float | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    traceparent: str | None = None
    tlp: str = "CLEAR"
    partition_key: str | None = None  # partitioned queues: default the IOC value or the id

    def __init__(self, type: str, payload: Any,  # noqa: A002 - the public field name
                 priority: MessagePriority | int | str = MessagePriority.NORMAL,
                 delay: timedelta | float | None = None, deliver_at: datetime | None = None,
                 headers: Mapping[str, str] | None = None, dedup_key: str | None = None,
                 ttl_s: float | None = None, correlation_id: str | None = None,
                 causation_id: str | None = None, traceparent: str | None = None,
                 tlp: str = "CLEAR", partition_key: str | None = None) -> None:
        # Callers build one Message per published message. The generated frozen __init__
        # goes through object.__setattr__ per field (~1.2 us); the slot descriptors' own
        # setters are ~0.6 us, and slots make it one GC-tracked object instead of three.
        s = _MESSAGE_SETTERS
        s[0](self, type)
        s[1](self, payload)
        s[2](self, priority)
        s[3](self, delay)
        s[4](self, deliver_at)
        s[5](self, {} if headers is None else headers)
        s[6](self, dedup_key)
        s[7](self, ttl_s)
        s[8](self, correlation_id)
        s[9](self, causation_id)
        s[10](self, traceparent)
        s[11](self, tlp)
        s[12](self, partition_key)


_MESSAGE_SETTERS: tuple[Any, ...] = tuple(
    getattr(Message, f.name).__set__ for f in dataclasses.fields(Message))



class EngineMessage(Message):
    """A message the engine itself builds (requests, group members, callbacks): it may
    carry the result headers (``model/flow_headers.py``) that user code may not set."""

    __slots__ = ()


RESERVED_HEADER_PREFIX = "pn-"
#: ``pn-*`` headers the toolkit's own layers set through the public API (the catalog's schema
#: version, a producer's origin): informational, never parsed as engine bookkeeping.
TOOLKIT_HEADERS = frozenset({"pn-schema", "pn-producer"})
MAX_TYPE_CHARS = 200
MAX_DEDUP_KEY_CHARS = 512
_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/*\-]*")


def check_type(mtype: object) -> str:
    """``mtype`` if it is a usable message type (``ioc.enrichment.request``), else raise."""
    if not isinstance(mtype, str) or len(mtype) > MAX_TYPE_CHARS or not _TYPE.fullmatch(mtype):
        shown = repr(mtype)[:60]
        raise ValidationError(
            f"message type must be 1-{MAX_TYPE_CHARS} characters of A-Z a-z 0-9 . _ : / - "
            f"starting with a letter or digit, got {shown}")
    return mtype


def check_extras(m: Message) -> int:
    """Validate what a message carries besides its payload; returns its headers' size in
    bytes (they count toward ``max_payload_bytes``).

    Headers are ``str -> str`` and user code may not set ``pn-*`` ones (the engine's own
    bookkeeping: retries, partition keys, signatures; only the informational
    :data:`TOOLKIT_HEADERS` pass); ``dedup_key`` is a string of at most
    512 characters; ``ttl_s`` a positive finite number of seconds.
    """
    size = 0
    headers = m.headers
    if headers:
        if not isinstance(headers, Mapping):
            raise ValidationError(f"headers must be a mapping of str to str, got "
                                  f"{type(headers).__name__}")
        for k, v in headers.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ValidationError(f"header {k!r}: keys and values must be strings, got "
                                      f"{type(k).__name__} -> {type(v).__name__}")
            if k.startswith(RESERVED_HEADER_PREFIX) and k not in TOOLKIT_HEADERS and not (
                    type(m) is EngineMessage and k in RESULT_HEADERS):
                raise ValidationError(f"header {k!r}: pn-* headers are reserved for "
                                      "phantom_notebook's own bookkeeping")
            size += len(k.encode()) + len(v.encode()) + 6
    dedup = m.dedup_key
    if dedup is not None and (not isinstance(dedup, str) or not dedup
                              or len(dedup) > MAX_DEDUP_KEY_CHARS):
        raise ValidationError(f"dedup_key must be a string of 1-{MAX_DEDUP_KEY_CHARS} "
                              f"characters, got {repr(dedup)[:60]}")
    ttl = m.ttl_s
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float)
                            or not 0 < ttl < math.inf):
        raise ValidationError(f"ttl_s must be a positive finite number of seconds, got {ttl!r}")
    return size


__all__ = ["MAX_DEDUP_KEY_CHARS", "MAX_TYPE_CHARS", "RESERVED_HEADER_PREFIX", "Message",
           "check_extras", "check_type"]
