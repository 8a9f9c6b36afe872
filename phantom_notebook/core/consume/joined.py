"""A lane's handling of group callbacks and group deadlines before handlers run.

A callback (header ``pn-joined``) gets its group's results as ``context.join`` (one
pipelined HGETALL for the fetched batch); when the group failed it is dead-lettered as
``group_failed`` and its handler does not run. A group's deadline message (type
``pn.join.deadline``) decides the group with whatever outcomes it has (``join.lua``
"expire") and is acked; no handler sees it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import redis

from ..backend.records import Delivery
from ..errors import PhantomError
from ..model.envelope import Envelope, now_ms
from ..model.flow_headers import DEADLINE_TYPE, JOINED, joined_of
from ..results.join import GroupFailedError, expire_join, parse_join
from .context import Action, MessageContext, Outcome

if TYPE_CHECKING:
    from .lane import Lane
    from .subscription import Subscription

log = logging.getLogger("phantom_notebook.lane")

Runnable = tuple["Subscription", Envelope, MessageContext]


def sort_out(d: Delivery, env: Envelope, ctx: MessageContext,
             deadlines: list[tuple[Delivery, Envelope]], callbacks: list[MessageContext]
             ) -> bool:
    """Note a group's callback or deadline among a fetched batch; True for a deadline
    (it runs no handler)."""
    if JOINED not in env.headers:
        return False
    if env.type == DEADLINE_TYPE:
        deadlines.append((d, env))
        return True
    callbacks.append(ctx)
    return False


def admit(lane: Lane, runnable: list[Runnable], deadlines: list[tuple[Delivery, Envelope]],
          callbacks: list[MessageContext]) -> list[Runnable]:
    """Expire the groups whose deadline came, load the callbacks' joins, and return the
    runnable deliveries without the callbacks of failed groups (settled here)."""
    settler = lane.settler
    for d, env in deadlines:
        ref = joined_of(env.headers)
        try:
            if ref is not None:
                expire_join(lane.mq, ref[0], ref[1], now_ms(), lane.consumer)
        except (PhantomError, redis.RedisError) as exc:
            log.warning("group deadline %s on %s: %s (retried)", env.id, lane.queue, exc)
            settler.settle(d, Outcome(Action.RETRY, delay_s=1.0, reason="join_unavailable",
                                      error=exc), env)
            continue
        settler.settle(d, Outcome(Action.DROP), env)
    if not callbacks:
        return runnable
    refs = [joined_of(ctx.envelope.headers) for ctx in callbacks]
    pipe = lane.mq.client.pipeline(transaction=False)
    for ref in refs:
        if ref is not None:
            pipe.hgetall(lane.mq.queue_keys(ref[0]).join(ref[1]))
    replies: list[Any] = list(pipe.execute())
    failed: set[int] = set()
    for ctx, ref in zip(callbacks, refs, strict=True):
        if ref is None:
            continue
        state = parse_join(replies.pop(0), ref[0], ref[1], lane.mq.codec)
        ctx.join = state
        if state.status == "failed":
            failed.add(id(ctx))
            settler.settle(ctx.delivery, Outcome(
                Action.DEAD, reason="group_failed",
                error=GroupFailedError(state.summary())), ctx.envelope)
    if not failed:
        return runnable
    return [r for r in runnable if id(r[2]) not in failed]


__all__ = ["admit", "sort_out"]
