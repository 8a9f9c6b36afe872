"""The exception tree: every error phantom_notebook raises is a ``PhantomError``.

::

    PhantomError
    ├── ConfigError              invalid or inconsistent settings
    ├── ValidationError          bad input from the caller
    │   ├── PayloadError         payload not serializable or too large
    │   └── UnknownQueueKindError
    ├── ConnectionLostError      Redis unreachable / connection dropped
    ├── PublishError             a publish could not be confirmed
    │   └── QueueFullError       the queue is at max_queue_size
    ├── DecodeError              stored bytes are not a valid envelope
    ├── PermissionDeniedError    the caller's role does not allow the action
    └── HandlerSignal            raised by handlers to steer delivery
        ├── Retry                retry this message (optionally after a delay)
        └── Reject               do not retry; dead-letter with a reason
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


class ValidationError(PhantomError, ValueError):
    """Raised when input from the caller is malformed."""


class PayloadError(ValidationError):
    """Raised when a payload cannot be serialized or exceeds the size limit."""


class UnknownQueueKindError(ValidationError):
    """Raised when a queue kind is not one of fifo, priority, delayed, pubsub, broadcast."""


class ConnectionLostError(PhantomError, ConnectionError):
    """Raised when Redis cannot be reached after the configured reconnect attempts."""


class PublishError(PhantomError):
    """Raised when a publish could not be confirmed: the caller must assume it failed."""


class QueueFullError(PublishError):
    """Raised when publishing into a queue that holds ``max_queue_size`` messages."""


class PublishStreamError(PublishError):
    """Raised when ``publish_stream`` stops early; ``published`` = every id Redis confirmed.

    The cause (a bad message, a full queue, a lost connection) is ``__cause__``.
    """

    def __init__(self, message: str, published: list[str]) -> None:
        super().__init__(message)
        self.published = published


class DecodeError(PhantomError):
    """Raised when stored bytes are not a valid envelope; keeps the raw bytes for the DLQ."""

    def __init__(self, reason: str, detail: str, raw: bytes = b"") -> None:
        self.reason = reason
        self.detail = detail
        self.raw = raw
        super().__init__(f"{reason}: {detail}")


class PermissionDeniedError(PhantomError, PermissionError):
    """Raised when the caller's role does not grant the action on the queue."""


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
    "ConfigError",
    "ConnectionLostError",
    "DecodeError",
    "HandlerSignal",
    "PayloadError",
    "PermissionDeniedError",
    "PhantomError",
    "PublishError",
    "QueueFullError",
    "Reject",
    "Retry",
    "UnknownQueueKindError",
    "ValidationError",
]
