"""Result envelopes: a handler's return value (or failure) sealed like a message.

A result travels as an ``Envelope`` of type ``pn.result`` whose id is the request's id, so
the queue's codec encrypts and signs it exactly as it does messages (a result cannot be
read without the key, nor swapped onto another request: ``open_result`` checks the id).
Its TLP is the request's, or stricter when the handler said so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import DecodeError, TaskFailedError
from ..model.codec import Codec
from ..model.envelope import Envelope, MessagePriority
from ..model.flow_headers import RESULT_TYPE
from ..model.tlp import parse_tlp, tlp_rank


@dataclass(frozen=True)
class Result:
    """The stored outcome of a request: its value, or why it failed."""

    id: str
    queue: str
    ok: bool
    value: Any = None
    error_type: str = ""
    error: str = ""
    reason: str = ""
    tlp: str = "CLEAR"
    finished_ms: int = 0

    def __repr__(self) -> str:  # the value may be sensitive (TLP): never in a repr
        state = "ok" if self.ok else f"failed {self.reason}"
        return f"Result(id={self.id!r}, queue={self.queue!r}, {state}, tlp={self.tlp})"

    def unwrap(self) -> Any:
        """The value, or ``TaskFailedError`` with the handler's failure."""
        if self.ok:
            return self.value
        raise TaskFailedError(self.id, self.queue, self.error_type, self.error, self.reason)


def stricter(a: str, b: str) -> str:
    """The stricter of two TLP labels."""
    return a if tlp_rank(a) >= tlp_rank(b) else b


def seal_result(codec: Codec, request: Envelope, now: int, max_bytes: int, *, ok: bool,
                value: Any = None, error_type: str = "", error: str = "", reason: str = "",
                tlp: str | None = None) -> bytes:
    """The sealed result of ``request`` (raises ``PayloadError`` for a value that is not
    JSON-serializable or too large)."""
    label = stricter(parse_tlp(tlp), request.tlp) if tlp else request.tlp
    body: dict[str, Any] = {"ok": ok}
    if ok:
        body["value"] = value
    else:
        body["error"] = {"type": error_type, "message": error[:2000], "reason": reason}
    env = Envelope(id=request.id, type=RESULT_TYPE, queue=request.queue, payload=body,
                   priority=MessagePriority.NORMAL, created_at_ms=now,
                   traceparent=request.traceparent, correlation_id=request.correlation_id,
                   causation_id=request.id, origin=request.origin, tlp=label)
    return codec.seal(env, max_bytes)


def open_result(codec: Codec, raw: bytes, expected_id: str) -> Result:
    """Open a stored result; ``DecodeError`` when it cannot be decrypted or authenticated,
    or it is not the result of ``expected_id``."""
    env = codec.open(raw)
    body = env.payload
    if env.type != RESULT_TYPE or env.id != expected_id or not isinstance(body, dict):
        raise DecodeError("result_mismatch",
                          f"the stored result is not the result of {expected_id} "
                          f"(found {env.type} {env.id})", raw)
    if body.get("ok"):
        return Result(env.id, env.queue, True, body.get("value"), tlp=env.tlp,
                      finished_ms=env.created_at_ms)
    err = body.get("error") or {}
    return Result(env.id, env.queue, False, None, str(err.get("type", "")),
                  str(err.get("message", "")), str(err.get("reason", "")), env.tlp,
                  env.created_at_ms)


__all__ = ["Result", "open_result", "seal_result", "stricter"]
