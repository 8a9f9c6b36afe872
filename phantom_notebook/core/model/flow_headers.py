"""The engine headers that make a message a request, a group member or a callback.

Set only by ``mq.request`` / ``mq.group`` / ``mq.chain`` (user code may not set ``pn-*``
headers); read by the lane when it settles a delivery.

* ``pn-reply``: the message is a request; the value is how long its result is kept (ms).
  The worker stores the handler's return value (or its failure) in the result hash of the
  queue (partition) the message was read from, in the same settle call as the ack.
* ``pn-member``: the message is member ``<index>`` of group ``<group id>`` whose join
  lives with callback queue ``<queue>``: ``"<queue>|<group id>|<index>"``. Its final
  outcome (success, or dead-lettered) is recorded in the join before the ack.
* ``pn-joined``: the message is the callback of group ``"<queue>|<group id>"``; the lane
  loads the group's results for ``context.join`` (and dead-letters it when the group
  failed).
"""

from __future__ import annotations

from collections.abc import Mapping

REPLY = "pn-reply"
MEMBER = "pn-member"
JOINED = "pn-joined"
#: the headers that need more than a plain ack when the message settles
RESULT_HEADERS = frozenset({REPLY, MEMBER, JOINED})
#: the type of a group's deadline message (the lane handles it; never a handler)
DEADLINE_TYPE = "pn.join.deadline"
#: the type of a stored result envelope
RESULT_TYPE = "pn.result"


def wants_result(headers: Mapping[str, str]) -> bool:
    """True when a message with ``headers`` is a request, a member or a callback."""
    return REPLY in headers or MEMBER in headers or JOINED in headers


def reply_ttl_ms(headers: Mapping[str, str]) -> int:
    """The result TTL of a request (0 when it is none, or the header is malformed)."""
    value = headers.get(REPLY, "")
    return int(value) if value.isdigit() and len(value) <= 13 else 0


def member_of(headers: Mapping[str, str]) -> tuple[str, str, int] | None:
    """(callback queue, group id, member index) of a group member, else None."""
    value = headers.get(MEMBER)
    if not value:
        return None
    parts = value.rsplit("|", 2)
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    return parts[0], parts[1], int(parts[2])


def joined_of(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """(callback queue, group id) of a group's callback (or deadline), else None."""
    value = headers.get(JOINED)
    if not value or "|" not in value:
        return None
    queue, gid = value.rsplit("|", 1)
    return queue, gid


__all__ = ["DEADLINE_TYPE", "JOINED", "MEMBER", "REPLY", "RESULT_HEADERS", "RESULT_TYPE",
           "joined_of", "member_of", "reply_ttl_ms", "wants_result"]
