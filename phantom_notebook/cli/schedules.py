"""Recurring schedules: ``schedules list|add|remove|pause|resume`` and the ``scheduler``."""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

import orjson

from .. import core
from ..core.admin.registry import select_queues
from ..core.schedule.runner import Scheduler
from ..core.schedule.spec import CATCH_UP, Schedule
from .common import add_connection, command, connect, print_help


def register(sub: Any) -> None:
    """Add ``schedules`` (with its actions) and ``scheduler``."""
    s = add_connection(sub.add_parser(
        "schedules", help="List, add, remove, pause and resume recurring schedules.",
        description="Recurring schedules publish a message on a cron expression or an "
                    "interval, each tick exactly once however many schedulers run "
                    "(`phantom-notebook scheduler`). Changes need manage on the queue; "
                    "listing needs stats."))
    s.set_defaults(func=lambda _args: print_help(s))
    actions = s.add_subparsers(dest="schedules_command", metavar="ACTION")

    ls = add_connection(actions.add_parser("list", help="Every schedule, its last and next "
                                                        "fire times."))
    ls.add_argument("--queues", help="comma-separated names or globs (default: every queue)")
    ls.add_argument("--json", action="store_true", help="print JSON lines")
    ls.set_defaults(func=_list)

    add = add_connection(actions.add_parser(
        "add", help="Add (or replace) a schedule.",
        description="Add a schedule publishing TYPE with the JSON PAYLOAD to QUEUE on "
                    "--cron or --every. Adding an existing name again replaces its spec "
                    "(its fire state and a pause are kept)."))
    add.add_argument("name")
    add.add_argument("queue")
    add.add_argument("type", help="message type, e.g. feed.poll")
    add.add_argument("payload", help="JSON payload, e.g. '{\"feed\": \"abuse-ch\"}'")
    when = add.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help="5-field cron expression, e.g. '*/15 * * * *'")
    when.add_argument("--every", help="interval: 30s, 15m, 1h, 1d (multiples since the epoch)")
    add.add_argument("--tz", default=None, help="IANA time zone of --cron (default UTC)")
    add.add_argument("--jitter", default=None, help="spread each firing over this (e.g. 30s)")
    add.add_argument("--catch-up", default="none", choices=CATCH_UP,
                     help="ticks missed while no scheduler ran: none (default; the current "
                          "one only if at most --grace late), last (the newest), all (each, "
                          "at most 1,000)")
    add.add_argument("--grace", default=None, help="how late a tick may fire under "
                                                   "--catch-up none (default 60s)")
    add.add_argument("--priority", default="NORMAL", help="CRITICAL, HIGH, NORMAL or LOW")
    add.add_argument("--tlp", default="CLEAR", help="TLP 2.0 label (default CLEAR)")
    add.add_argument("--header", action="append", default=[], metavar="KEY=VALUE",
                     help="a message header (repeatable)")
    add.add_argument("--ttl", type=float, default=None, help="message TTL in seconds")
    add.set_defaults(func=_add)

    for verb, text in (("remove", "Remove a schedule."),
                       ("pause", "Stop a schedule firing (ticks while paused never fire)."),
                       ("resume", "Let a paused schedule fire again, from its next tick.")):
        p = add_connection(actions.add_parser(verb, help=text, description=text))
        p.add_argument("name")
        p.add_argument("--queue", default=None, help="its queue (when the name is ambiguous)")
        p.set_defaults(func=_change, verb=verb)

    run = command(sub, "scheduler", "Fire the schedules' ticks until SIGTERM/SIGINT. Run two "
                                    "or more for availability: each tick fires exactly once. "
                                    "Needs a role that manages the target queues (admin).")
    run.add_argument("--queues", help="only schedules of these queues (comma-separated globs)")
    run.add_argument("--refresh", type=float, default=5.0,
                     help="seconds between looks for new schedules (default 5)")
    run.add_argument("--quiet", "-q", action="store_true", help="do not print each fired tick")
    run.set_defaults(func=_scheduler)


def _list(args: argparse.Namespace) -> int:
    mq = connect(args)
    found = mq.schedules(select_queues(mq.queues(), args.queues) if args.queues else None)
    if args.json:
        for s in found:
            print(orjson.dumps(_as_dict(s)).decode())
        return 0
    if not found:
        print("no schedules")
    for s in found:
        print(s)
    return 0


def _as_dict(s: Schedule) -> dict[str, Any]:
    return {"name": s.name, "queue": s.queue, "type": s.type, "spec": s.spec,
            "catch_up": s.catch_up, "paused": s.paused, "priority": s.priority, "tlp": s.tlp,
            "last_fired": s.last_fired.isoformat() if s.last_fired else None,
            "next_fires": [d.isoformat() for d in s.next_fires]}


def _add(args: argparse.Namespace) -> int:
    try:
        payload = orjson.loads(args.payload)
    except orjson.JSONDecodeError as exc:
        raise core.ValidationError(f"payload is not valid JSON: {exc}") from None
    headers = {}
    for pair in args.header:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise core.ValidationError(f"--header needs KEY=VALUE, got {pair!r}")
        headers[key] = value
    mq = connect(args)
    s = mq.schedule(args.name, args.queue, args.type, payload, cron=args.cron,
                    every=args.every, tz=args.tz, jitter=args.jitter, catch_up=args.catch_up,
                    grace=args.grace, priority=args.priority, tlp=args.tlp,
                    headers=headers, ttl_s=args.ttl)
    print(s)
    return 0


def _change(args: argparse.Namespace) -> int:
    mq = connect(args)
    if args.verb == "remove":
        if not mq.unschedule(args.name, args.queue):
            raise core.ValidationError(f"no schedule named {args.name!r}")
        print(f"removed {args.name}")
        return 0
    s = (mq.pause_schedule if args.verb == "pause" else mq.resume_schedule)(args.name,
                                                                           args.queue)
    print(s)
    return 0


def _scheduler(args: argparse.Namespace) -> int:
    mq = connect(args)
    said = None if args.quiet else (lambda fired: print(fired, flush=True))
    scheduler = Scheduler(mq, queues=args.queues, refresh_s=args.refresh, on_fired=said)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    scheduler.run_once()
    print(f"scheduler running {len(scheduler.schedules)} schedule(s) on {mq!r}", flush=True)
    code = scheduler.run(stop)
    print(f"scheduler stopped: {scheduler.fired} fired, {scheduler.lost} fired by another "
          f"scheduler first, {scheduler.errors} errors", flush=True)
    return code
