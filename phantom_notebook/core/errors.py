"""The exception tree: every error phantom_notebook raises is a ``PhantomError``.

::

    PhantomError
    ├── ConfigError              invalid or inconsistent settings
    │   └── NotDeployedError     Redis lacks this client's functions: run `phantom-notebook deploy`
    ├── ValidationError          bad input from the caller
    │   ├── PayloadError         payload not serializable (NaN, non-string keys) or too large
    │   ├── UnknownQueueKindError
    │   └── UnknownQueueError    a queue that was never declared
    ├── ConnectionLostError      Redis unreachable, connection dropped, TLS refused, failing over
    ├── PublishError             a publish could not be confirmed
    │   ├── QueueFullError       the queue is at max_queue_size
    │   │   └── CapacityError    Redis itself is out of memory (maxmemory reached)
    │   └── PublishStreamError   publish_stream stopped early (``published`` = what was written)
    ├── AuditError               the action's audit entry could not be written: action refused
    ├── DecodeError              stored bytes are not a valid envelope
    ├── PermissionDeniedError    the role does not allow the action (client check or Redis ACL)
    ├── ServerError              any other error reply from Redis (WRONGTYPE, BUSY, MISCONF ...)
    ├── HandlerTimeoutError      a handler ran past handler_timeout_s (a delivery's error)
    └── HandlerSignal            raised by handlers to steer delivery
        ├── Retry                retry this message (optionally after a delay)
        └── Reject               do not retry; dead-letter with a reason

Lower-level errors (redis-py, sockets, TLS) never cross the public API: the one boundary
that maps them is ``core/backend/boundary.py`` (``translate``), applied to every public
class and function of the engine.
"""

from __future__ import annotations


class PhantomError(Exception):
    """Raised for every failure phantom_notebook reports: the root of the tree."""


class ConfigError(PhantomError, ValueError):
    """Raised when a setting is invalid: names the field and the allowed values."""

    def __init__(self, field: str, problem: str, allowed: str | None = None) -> None:
        self.field = field
        self.problem = problem
        self.allowed = allowed
        text = f"invalid setting {field!r}: {problem}"
        if allowed:
            text += f" (allowed: {allowed})"
        super().__init__(text)


class NotDeployedError(ConfigError):
    """Raised when Redis does not hold this client's server-side functions (or another build).

    The message names the command that fixes it (``phantom-notebook deploy``).
    """

    def __init__(self, problem: str, command: str) -> None:
        self.command = command
        super().__init__("redis functions", problem, f"run `{command}` as the operator")


class ValidationError(PhantomError, ValueError):
    """Raised when input from the caller is malformed."""


class PayloadError(ValidationError):
    """Raised when a payload cannot be serialized exactly or exceeds the size limit."""


class UnknownQueueKindError(ValidationError):
    """Raised when a queue kind is not one of fifo, priority, delayed, pubsub, broadcast."""


class UnknownQueueError(ValidationError, LookupError):
    """Raised when a queue that was never declared is used where it must exist."""


class ConnectionLostError(PhantomError, ConnectionError):
    """Raised when Redis cannot be reached, the connection drops, or TLS is refused."""


class PublishError(PhantomError):
    """Raised when a publish could not be confirmed: the caller must assume it failed."""


class QueueFullError(PublishError):
    """Raised when publishing into a queue that holds ``max_queue_size`` messages."""


class CapacityError(QueueFullError):
    """Raised when Redis itself is out of memory: nothing more can be stored until
    consumers drain it (or ``maxmemory`` grows). Publishing waits for room like for a
    full queue (``wait_s``)."""


class PublishStreamError(PublishError):
    """Raised when ``publish_stream`` stops early; ``published`` = every id Redis confirmed.

    The cause (a bad message, a full queue, a lost connection) is ``__cause__``.
    """

    def __init__(self, message: str, published: list[str]) -> None:
        super().__init__(message)
        self.published = published


class AuditError(PhantomError):
    """Raised when an action was refused because its audit entry could not be appended
    (``security.audit_failure = "fail"``, the default): nothing of the action was written."""


class ArchiveError(PhantomError):
    """Raised when a backup archive cannot be read or trusted: not an archive, a format this
    version does not read, truncated, or its HMAC does not verify (tampered, or another key).
    A restore refuses such an archive before it writes anything."""


class DecodeError(PhantomError):
    """Raised when stored bytes are not a valid envelope; keeps the raw bytes for the DLQ."""

    def __init__(self, reason: str, detail: str, raw: bytes = b"") -> None:
        self.reason = reason
        self.detail = detail
        self.raw = raw
        super().__init__(f"{reason}: {detail}")


class TaskFailedError(PhantomError):
    """Raised by ``pending.result()`` when the handler of a request failed for good (its
    message was dead-lettered): the handler's error type and message, and the DLQ reason."""

    def __init__(self, message_id: str, queue: str, error_type: str, error: str,
                 reason: str) -> None:
        self.message_id = message_id
        self.queue = queue
        self.error_type = error_type
        self.error = error
        self.reason = reason
        what = f"{error_type}: {error}" if error_type else error
        super().__init__(f"request {message_id} on {queue!r} failed ({reason}): {what}")


class ResultTimeoutError(PhantomError, TimeoutError):
    """Raised by ``pending.result(timeout=...)`` when no result arrived in time (the
    request may still be waiting, running or retrying: ask again later)."""


class PermissionDeniedError(PhantomError, PermissionError):
    """Raised when the caller's role does not grant the action (here or in a Redis ACL)."""


class ServerError(PhantomError):
    """Raised for an error reply from Redis that no other class describes (the text says
    which command and why: WRONGTYPE, BUSY, MISCONF, LOADING ...)."""


class HandlerTimeoutError(PhantomError, TimeoutError):
    """Raised (as a delivery's error) when its handler ran past ``handler_timeout_s``: the
    delivery is retried, then dead-lettered as ``handler_timeout``."""


class HandlerSignal(PhantomError):
    """Base of the exceptions a handler raises on purpose to steer delivery."""


class Retry(HandlerSignal):
    """Raised by a handler to retry the message, optionally after ``delay_s`` seconds."""

    def __init__(self, reason: str = "retry requested", *, delay_s: float | None = None) -> None:
        self.delay_s = delay_s
        super().__init__(reason)


class Reject(HandlerSignal):
    """Raised by a handler to skip retries and dead-letter the message with ``reason``."""

    def __init__(self, reason: str = "rejected") -> None:
        self.reason = reason
        super().__init__(reason)


__all__ = [
    "ArchiveError",
    "AuditError",
    "CapacityError",
    "ConfigError",
    "ConnectionLostError",
    "DecodeError",
    "HandlerSignal",
    "HandlerTimeoutError",
    "NotDeployedError",
    "PayloadError",
    "PermissionDeniedError",
    "PhantomError",
    "PublishError",
    "PublishStreamError",
    "QueueFullError",
    "Reject",
    "ResultTimeoutError",
    "Retry",
    "ServerError",
    "TaskFailedError",
    "UnknownQueueError",
    "UnknownQueueKindError",
    "ValidationError",
]
