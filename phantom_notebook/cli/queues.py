"""Queues from the command line: declare, publish, stats, pause, resume, repair."""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from .. import core
from .common import command, connect


def register(sub: Any) -> None:
    """Add ``declare``, ``publish``, ``stats`` and ``repair``."""
    declare = command(sub, "declare", "Declare a queue (an admin's job when roles are in "
                                      "use) and create its consumer groups.")
    declare.add_argument("queue")
    declare.add_argument("--kind", default=None,
                         help="fifo, priority, delayed, pubsub or broadcast (default: the "
                              "settings' kind for the queue)")
    declare.add_argument("--partitions", type=int, default=None, help="sub-queues (Cluster)")
    declare.add_argument("--group", action="append", default=[],
                         help="consumer group to create (repeatable; competing-consumer "
                              "queues always get the default group 'workers')")
    declare.set_defaults(func=_declare)

    publish = command(sub, "publish", "Publish one message (payload as JSON).")
    publish.add_argument("queue")
    publish.add_argument("type", help="message type, e.g. ioc.enrichment.request")
    publish.add_argument("payload", help="JSON payload, e.g. '{\"ioc\": \"1.2.3.4\"}'")
    publish.add_argument("--priority", default="NORMAL", help="CRITICAL, HIGH, NORMAL or LOW")
    publish.add_argument("--delay", type=float, default=None, help="seconds before delivery")
    publish.add_argument("--dedup-key", default=None, help="suppress duplicates with this key")
    publish.add_argument("--tlp", default="CLEAR", help="TLP 2.0 label (default CLEAR)")
    publish.add_argument("--kind", default=None,
                         help="declare the queue with this kind if new "
                              "(fifo, priority, delayed, pubsub, broadcast)")
    publish.set_defaults(func=_publish)

    stats = command(sub, "stats", "Depth per queue and state.")
    stats.add_argument("queues", nargs="*", help="queues (default: all)")
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    stats.set_defaults(func=_stats)

    for verb, text in (("pause", "Stop consumers of a queue (or one group) within one fetch "
                                 "cycle; producers keep publishing. Needs manage; audited."),
                       ("resume", "Let consumers of a paused queue (or group) fetch again.")):
        p = command(sub, verb, text)
        p.add_argument("queue")
        p.add_argument("--group", default=None, help="only this consumer group")
        p.set_defaults(func=_pause if verb == "pause" else _resume)

    cancel = command(sub, "cancel", "Cancel a message by id: removed when it waits (ready, "
                                    "delayed, retrying), asked to stop when in flight. "
                                    "Needs manage; traced and audited.")
    cancel.add_argument("queue")
    cancel.add_argument("message_id")
    cancel.set_defaults(func=_cancel)

    repair = command(sub, "repair", "Find streams whose last id was pushed into the future "
                                    "(a raw XADD with an explicit id) and repair them, "
                                    "losing nothing. Exit 0 when nothing is damaged (or all "
                                    "repaired), 1 otherwise.")
    repair.add_argument("queues", nargs="*", help="queues (default: all, and the audit trail)")
    repair.add_argument("--dry-run", action="store_true", help="only list the damage")
    repair.set_defaults(func=_repair)


def _declare(args: argparse.Namespace) -> int:
    mq = connect(args)
    overrides: dict[str, Any] = {}
    if args.partitions:
        overrides["partitions"] = args.partitions
    qs = mq.declare(args.queue, kind=args.kind, **overrides)
    groups = list(args.group)
    if qs.kind not in ("broadcast", "pubsub"):
        groups = [core.queues.DEFAULT_GROUP, *groups]
    if qs.kind != "pubsub":
        for group in dict.fromkeys(groups):
            mq.ensure_group(args.queue, group)
    print(f"declared {args.queue!r} ({qs.kind}, {qs.partitions} partition(s)); "
          f"groups: {', '.join(dict.fromkeys(groups)) or 'none'}")
    return 0


def _pause(args: argparse.Namespace) -> int:
    connect(args).pause(args.queue, group=args.group)
    print(f"paused {args.queue!r}" + (f" for group {args.group!r}" if args.group else "")
          + ": consumers stop within one fetch cycle; `phantom-notebook resume` undoes it")
    return 0


def _resume(args: argparse.Namespace) -> int:
    connect(args).resume(args.queue, group=args.group)
    print(f"resumed {args.queue!r}" + (f" for group {args.group!r}" if args.group else ""))
    return 0


def _cancel(args: argparse.Namespace) -> int:
    outcome = connect(args).cancel(args.queue, args.message_id)
    said = {"cancelled": "cancelled: removed from the queue",
            "cancelling": "in flight: its handler was asked to stop (context.cancelled); "
                          "it will not be retried",
            "not_found": "not found: not waiting in the queue (already handled, dead-lettered "
                         "or never published)"}[outcome]
    print(f"{args.message_id}: {said}")
    return 0 if outcome != "not_found" else 1


def _publish(args: argparse.Namespace) -> int:
    mq = connect(args)
    try:
        payload = orjson.loads(args.payload)
    except orjson.JSONDecodeError as exc:
        raise core.ValidationError(f"payload is not valid JSON: {exc}") from None
    if args.kind:
        mq.declare(args.queue, kind=args.kind)
    mid = mq.publish(args.queue, args.type, payload, priority=args.priority, delay=args.delay,
                     dedup_key=args.dedup_key, tlp=args.tlp)
    print(mid)
    return 0


def _stats(args: argparse.Namespace) -> int:
    from ..report_text import stats_table

    mq = connect(args)
    rows = mq.stats(args.queues or None)
    schedules = mq.schedules([r.queue for r in rows])
    if args.json:
        print(orjson.dumps([{**r.__dict__, "depth": r.depth,
                             "schedules": [s.name for s in schedules if s.queue == r.queue]}
                            for r in rows]).decode())
    else:
        stats_table(rows)
        for s in schedules:
            print(f"  schedule {s}")
    return 0


def _repair(args: argparse.Namespace) -> int:
    from ..core.admin.repair import find_damage, repair

    mq = connect(args)
    queues = args.queues or None
    damage = find_damage(mq, queues)
    for d in damage:
        print(f"damaged: {d.key} last id {d.last_id} ({d.ahead_s:,.0f} s in the future"
              f"{', refuses every new entry' if d.exhausted else ''}), {d.entries} entries")
    if not damage:
        print("no damaged stream")
        return 0
    if args.dry_run:
        return 1
    report = repair(mq, queues)
    for key, (moved, reset) in report.repaired.items():
        print(f"repaired: {key}: {moved} entries given fresh ids, {reset} group(s) reset")
    left = find_damage(mq, queues)
    if left:
        print(f"still damaged: {', '.join(d.key for d in left)}")
        return 1
    return 0
