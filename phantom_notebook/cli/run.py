"""Running things: the demo, workers (one process or a supervised, scaling fleet)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import core
from .common import command, connect, load


def register(sub: Any) -> None:
    """Add ``demo`` and ``worker``."""
    demo = command(sub, "demo", "Publish a few thousand IOC-like messages across every queue "
                                "kind, consume them and print a summary; then fan a report's "
                                "indicators out to every enricher queue and in to one risk "
                                "score each.")
    demo.add_argument("--messages", type=int, default=3000, help="how many to publish")
    demo.set_defaults(func=_demo)

    worker = command(sub, "worker", "Run handlers from MODULE:OBJECT until SIGTERM/SIGINT. "
                                    "Exit codes: 0 drained after SIGTERM/SIGINT; 1 could not "
                                    "start (settings, Redis unreachable, permissions); 3 a "
                                    "lane could not recover (a supervisor should restart it).")
    worker.add_argument("target", metavar="MODULE:OBJECT",
                        help="a handler (with --queue) or a setup(mq) function that subscribes")
    worker.add_argument("--queue", help="queue to consume (when OBJECT is a handler)")
    worker.add_argument("--type", default="*", help="message type pattern (default: *)")
    worker.add_argument("--group", default=None, help="consumer group (broadcast queues)")
    worker.add_argument("--prefetch", type=int, default=100, help="max unacked per subscription")
    worker.add_argument("--concurrency", type=int, default=1, help="handlers run at once")
    worker.add_argument("--grace", type=float, default=30.0,
                        help="seconds to finish in-flight work on SIGTERM")
    worker.add_argument("--name", default=None, help="consumer name (default: host-pid-rand)")
    worker.add_argument("--drain", action="store_true",
                        help="exit 0 once the queues hold nothing ready or in flight")
    worker.add_argument("--overlap", action=argparse.BooleanOptionalAction, default=None,
                        help="work one batch ahead on a spare core (default: when the "
                             "worker processes leave one)")
    scale = worker.add_argument_group(
        "scaling", "run several worker processes, grown and shrunk on queue depth and lag")
    scale.add_argument("--processes", type=int, default=None,
                       help="worker processes to start with (default: 1, in this process)")
    scale.add_argument("--min-processes", type=int, default=None, help="never fewer")
    scale.add_argument("--max-processes", type=int, default=None, help="never more")
    scale.add_argument("--scale-up-depth", type=float, default=1000.0,
                       help="add a process when depth per process stays above this")
    scale.add_argument("--scale-up-after", type=float, default=10.0, help="... for seconds")
    scale.add_argument("--scale-up-lag", type=float, default=None,
                       help="or when the oldest waiting message is older than this (s)")
    scale.add_argument("--scale-down-depth", type=float, default=100.0,
                       help="remove a process when depth per process stays below this")
    scale.add_argument("--scale-down-after", type=float, default=60.0, help="... for seconds")
    worker.set_defaults(func=_worker)


def _demo(args: argparse.Namespace) -> int:
    from ..demo import SAMPLE_REPORT, run_demo, score_report
    from ..intel import extract_iocs
    from ..report_text import demo_table, scores_table, scoring_progress

    mq = connect(args)
    results, elapsed = run_demo(mq, total=args.messages)
    demo_table(results, elapsed, where=repr(mq))
    total = len(extract_iocs(SAMPLE_REPORT))
    print(f"\nfan-out/fan-in: {total} indicators of the sample report, each asked of every "
          "enricher queue at once (one group per indicator), scored once from all answers")
    with scoring_progress(total) as progress:
        verdicts = score_report(mq, progress=progress)
    scores_table(verdicts)
    return 0


def _worker(args: argparse.Namespace) -> int:
    if args.processes or args.min_processes or args.max_processes:
        return _supervise(args)
    mq = connect(args)
    obj = load(args.target)
    if args.queue:
        options: dict[str, Any] = {"prefetch_count": args.prefetch,
                                   "max_concurrency": args.concurrency}
        if args.group:
            options["group"] = args.group
        mq.subscribe(args.queue, args.type, obj, **options)
    else:
        obj(mq)
    worker = mq.worker(name=args.name, grace_s=args.grace, overlap=args.overlap,
                       drain=args.drain)
    print(f"worker {worker.consumer} consuming {sorted({s.queue for s in worker.subscriptions})}"
          f" on {mq!r}", flush=True)
    return int(worker.run())


def _supervise(args: argparse.Namespace) -> int:
    from ..core.consume.scaling import ScalePolicy, Supervisor

    start = args.processes or args.min_processes or 1
    policy = ScalePolicy(
        min_processes=args.min_processes or start,
        max_processes=args.max_processes or max(start, args.min_processes or 1),
        up_depth_per_process=args.scale_up_depth, up_after_s=args.scale_up_after,
        down_depth_per_process=args.scale_down_depth, down_after_s=args.scale_down_after,
        up_lag_s=args.scale_up_lag)
    mq = connect(args)
    if args.queue:
        queues = [args.queue]
    else:
        load(args.target)(mq)
        queues = sorted({s.queue for s in mq.subscriptions})
    child = child_command(args, policy.max_processes)
    supervisor = Supervisor(mq, queues, child, policy, initial=start, grace_s=args.grace)
    print(f"supervising {start} worker process(es) ({policy.min_processes}.."
          f"{policy.max_processes}) for {queues} on {mq!r}", flush=True)
    return supervisor.run()


def child_command(args: argparse.Namespace, max_processes: int) -> list[str]:
    """The command line of one supervised worker process.

    Children work one batch ahead only while ``max_processes`` leave a core spare
    (``overlap_fits``), unless ``--overlap``/``--no-overlap`` was given.
    """
    line = [sys.executable, "-m", "phantom_notebook.cli", "worker", args.target,
            "--type", args.type, "--prefetch", str(args.prefetch),
            "--concurrency", str(args.concurrency), "--grace", str(args.grace)]
    overlap = args.overlap if args.overlap is not None else core.overlap_fits(max_processes)
    line.append("--overlap" if overlap else "--no-overlap")
    for flag, value in (("--queue", args.queue), ("--group", args.group),
                        ("--redis-url", args.redis_url), ("--settings", args.settings),
                        ("--key-prefix", args.key_prefix)):
        if value:
            line += [flag, value]
    return line
