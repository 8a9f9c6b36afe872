"""Idempotent handlers: skip a message whose key was already processed successfully.

At-least-once delivery means a handler can see a message again (its worker died after the
work but before the ack). Wrap the handler to make that harmless::

    mq.subscribe("ioc-processing", "ioc.*", idempotent(enrich, ttl_s=86400))

The processed-mark is written only after the handler succeeds, so a crash mid-handling
never skips work; a crash between success and ack is what the mark protects against.
Costs two round trips per message (a GET before, a SET after), so it is opt-in.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from ..model.envelope import Envelope
from .context import MessageContext


def idempotent(handler: Any, *, ttl_s: float = 24 * 3600,
               key: Callable[[Envelope], str] = lambda env: env.id) -> Any:
    """Wrap ``handler`` so messages whose ``key`` was processed within ``ttl_s`` are skipped."""
    target = handler.handle if hasattr(handler, "handle") else handler
    ttl_ms = int(ttl_s * 1000)

    def mark_key(env: Envelope, ctx: MessageContext) -> str:
        return ctx.keys.processed(ctx.group) + ":" + key(env)

    if inspect.iscoroutinefunction(target):
        async def run_async(message: Envelope, context: MessageContext) -> None:
            client = context.redis
            mark = mark_key(message, context)
            if await asyncio.to_thread(client.exists, mark):
                return
            await target(message, context)
            await asyncio.to_thread(client.set, mark, "1", px=ttl_ms)

        return run_async

    def run(message: Envelope, context: MessageContext) -> None:
        client = context.redis
        mark = mark_key(message, context)
        if client.exists(mark):
            return
        target(message, context)
        client.set(mark, "1", px=ttl_ms)

    return run
