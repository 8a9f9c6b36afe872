"""Handlers for the poison-message and chaos tests (run inside worker subprocesses)."""

from __future__ import annotations

import os
import signal
from typing import Any

from tests.support.handlers import record


def poison(message: Any, context: Any) -> None:
    """Kill this worker process (SIGKILL) whenever the message is marked poison."""
    if isinstance(message.payload, dict) and message.payload.get("poison"):
        os.kill(os.getpid(), signal.SIGKILL)
    record(message, context)
