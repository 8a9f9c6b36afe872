"""Alert sinks: where the alert distribution consumer delivers alerts.

A sink is anything with a ``name`` and ``send(alert)`` (the ``AlertSink`` protocol).
``send`` returns when the alert is delivered and raises ``AlertDeliveryError`` when it is
not: ``retryable=False`` for a refusal that repeating will not fix (an HTTP 4xx other
than 408/429), ``True`` otherwise, so the queue retries the message later.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import orjson

from phantom_notebook.core.errors import PhantomError, ValidationError

__all__ = ["AlertDeliveryError", "AlertSink", "JsonlFileSink", "RedisChannelSink", "WebhookSink"]

_RETRYABLE_STATUS = {408, 425, 429}


class AlertDeliveryError(PhantomError):
    """Raised when a sink could not deliver an alert; ``retryable`` says if trying again may."""

    def __init__(self, sink: str, problem: str, *, retryable: bool = True) -> None:
        self.sink = sink
        self.retryable = retryable
        super().__init__(f"{sink}: {problem}")


@runtime_checkable
class AlertSink(Protocol):
    """What the alert distribution consumer needs from a sink."""

    name: str

    def send(self, alert: Mapping[str, Any]) -> None:
        """Deliver one alert document or raise ``AlertDeliveryError``."""
        ...


def _json(alert: Mapping[str, Any]) -> bytes:
    return orjson.dumps(alert, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


class JsonlFileSink:
    """Appends each alert as one JSON line to a file (created with its directory)."""

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name or f"jsonl:{self.path.name}"
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"JsonlFileSink({str(self.path)!r})"

    def send(self, alert: Mapping[str, Any]) -> None:
        """Append the alert and flush it to the operating system."""
        line = _json(alert) + b"\n"
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("ab") as handle:
                    handle.write(line)
                    handle.flush()
        except OSError as exc:
            raise AlertDeliveryError(self.name, f"cannot write {self.path}: {exc}") from exc


class RedisChannelSink:
    """Publishes each alert as JSON on a Redis pub/sub channel (live, not durable)."""

    def __init__(self, client: Any, channel: str, name: str | None = None) -> None:
        self.client = client
        self.channel = channel
        self.name = name or f"redis:{channel}"

    def __repr__(self) -> str:
        return f"RedisChannelSink({self.channel!r})"

    def send(self, alert: Mapping[str, Any]) -> None:
        """PUBLISH the alert (nobody listening is not an error: pub/sub is live only)."""
        try:
            self.client.publish(self.channel, _json(alert))
        except Exception as exc:  # noqa: BLE001 - any client failure is a delivery failure
            raise AlertDeliveryError(self.name, f"publish failed: {exc}") from exc


class WebhookSink:
    """POSTs each alert as JSON to an http(s) URL, retrying with exponential backoff.

    ``attempts`` tries in all, waiting ``backoff_s`` then twice that (capped at
    ``max_backoff_s``) between them; each request times out after ``timeout_s``.  Connection
    errors, timeouts, 5xx and 408/425/429 are retried; other 4xx are refused at once.
    """

    def __init__(self, url: str, *, timeout_s: float = 5.0, attempts: int = 3,
                 backoff_s: float = 0.5, max_backoff_s: float = 10.0,
                 headers: Mapping[str, str] | None = None, name: str | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValidationError(f"webhook URL must be http(s)://host/..., got {url!r}")
        if attempts < 1:
            raise ValidationError(f"attempts must be >= 1, got {attempts}")
        self.url = url
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.headers = {"Content-Type": "application/json",
                        "User-Agent": "phantom-notebook-alerts", **(headers or {})}
        self.name = name or f"webhook:{parts.netloc}"
        self._sleep = sleep

    def __repr__(self) -> str:
        host = urlsplit(self.url).netloc
        return f"WebhookSink({host!r}, attempts={self.attempts}, timeout_s={self.timeout_s})"

    def _post(self, body: bytes) -> int:
        request = urllib.request.Request(self.url, data=body, headers=self.headers,
                                         method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
            return int(response.status)

    def send(self, alert: Mapping[str, Any]) -> None:
        """POST the alert; raise ``AlertDeliveryError`` once the attempts are used up."""
        body = _json(alert)
        problem = ""
        for attempt in range(1, self.attempts + 1):
            try:
                self._post(body)
                return
            except urllib.error.HTTPError as exc:
                exc.close()  # the error holds the response: release its socket now
                problem = f"HTTP {exc.code} {exc.reason}"
                if exc.code < 500 and exc.code not in _RETRYABLE_STATUS:
                    raise AlertDeliveryError(self.name, f"refused: {problem}",
                                             retryable=False) from exc
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                reason = getattr(exc, "reason", exc)
                problem = f"{type(reason).__name__}: {reason}"
            if attempt < self.attempts:
                self._sleep(min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s))
        raise AlertDeliveryError(self.name, f"failed after {self.attempts} attempt(s): {problem}")
