"""The ``phantom-notebook`` command: thin wrappers over the library."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from . import core


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``phantom-notebook``; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # the benchmark suite parses its own options
        return _bench(argparse.Namespace(bench_args=argv[1:]))
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except core.PhantomError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phantom-notebook",
        description="Redis-backed message queues for threat intelligence, and their tools.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--redis-url", default=None,
                       help="redis://, rediss:// or unix:// URL (default: $PHANTOM_REDIS_URL, "
                            "else the embedded in-process Redis)")
        p.add_argument("--settings", default=None, help="TOML settings file")
        p.add_argument("--key-prefix", default=None, help="key prefix (default: pn)")
        return p

    demo = command("demo", "Publish a few thousand IOC-like messages across every queue kind, "
                           "consume them and print a summary.")
    demo.add_argument("--messages", type=int, default=3000, help="how many to publish")
    demo.set_defaults(func=_demo)

    worker = command("worker", "Run handlers from MODULE:OBJECT until SIGTERM/SIGINT.")
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

    publish = command("publish", "Publish one message (payload as JSON).")
    publish.add_argument("queue")
    publish.add_argument("type", help="message type, e.g. ioc.enrichment.request")
    publish.add_argument("payload", help="JSON payload, e.g. '{\"ioc\": \"1.2.3.4\"}'")
    publish.add_argument("--priority", default="NORMAL", help="CRITICAL, HIGH, NORMAL or LOW")
    publish.add_argument("--delay", type=float, default=None, help="seconds before delivery")
    publish.add_argument("--dedup-key", default=None, help="suppress duplicates with this key")
    publish.add_argument("--kind", default=None,
                         help="declare the queue with this kind if new "
                              "(fifo, priority, delayed, pubsub, broadcast)")
    publish.set_defaults(func=_publish)

    keys = sub.add_parser("keys", help="Generate encryption keys and rotate them.",
                          description="Generate encryption keys and rotate them.")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION")
    gen = keys_sub.add_parser("generate", help="Print a new key line '<id> <base64>' or add "
                                               "it to a key file (0600).")
    gen.add_argument("--id", default=None, help="key id (default: k<UTC timestamp>)")
    gen.add_argument("--key-file", default=None, help="append to this key file instead")
    gen.set_defaults(func=_keys_generate)
    rot = keys_sub.add_parser(
        "rotate", help="Activate a new key in the key file and re-encrypt everything stored "
                       "(ready, delayed, dead-lettered) under it; resumable.")
    for flag, text in [("--redis-url", "Redis URL (default: $PHANTOM_REDIS_URL)"),
                       ("--settings", "TOML settings file"), ("--key-prefix", "key prefix")]:
        rot.add_argument(flag, default=None, help=text)
    rot.add_argument("--key-file", required=True, help="the key file (lines '<id> <base64>')")
    rot.add_argument("--activate", default=None,
                     help="make this existing key id active (default: generate a new key)")
    rot.add_argument("--reseal-only", action="store_true",
                     help="only re-encrypt stored messages under the current active key")
    rot.set_defaults(func=_keys_rotate)
    keys.set_defaults(func=lambda args: _help(keys))

    report = sub.add_parser("report", help="Scheduled reports (papermill).",
                            description="Scheduled reports (papermill).")
    report_sub = report.add_subparsers(dest="report_command", metavar="REPORT")
    health = report_sub.add_parser(
        "health", help="Run notebooks/health_report.ipynb, write reports/health-<UTC>.ipynb "
                       "and .html (no code); exit 2 when health is critical.")
    health.add_argument("--redis-url", default=None,
                        help="Redis to report on (default: embedded with a seeded demo load)")
    health.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="notebook parameter (JSON or text)")
    health.add_argument("--output-dir", default="reports", help="where reports land")
    health.add_argument("--notebook", default=None, help="a different report notebook")
    health.set_defaults(func=_report_health)
    report.set_defaults(func=lambda args: _help(report))

    acl = sub.add_parser("acl", help="Redis ACL users for the configured roles.",
                         description="Render or install ACL SETUSER rules so Redis itself "
                                     "enforces each role's grants.")
    acl_sub = acl.add_subparsers(dest="acl_command", metavar="ACTION")
    for name, text in [("render", "Print the ACL SETUSER commands (passwords as hashes)."),
                       ("apply", "Install the users on the server (needs an admin login).")]:
        p = acl_sub.add_parser(name, help=text, description=text)
        for flag, help_text in [("--redis-url", "Redis URL (default: $PHANTOM_REDIS_URL)"),
                                ("--settings", "TOML settings file ([roles], [acl.users])"),
                                ("--key-prefix", "key prefix")]:
            p.add_argument(flag, default=None, help=help_text)
        p.add_argument("--user", action="append", default=[], metavar="NAME:ROLE",
                       help="a user and its role (repeatable); its password comes from "
                            "$PHANTOM_ACL_PASSWORD_<NAME>")
        if name == "apply":
            p.add_argument("--save", action="store_true", help="ACL SAVE to the aclfile")
        p.set_defaults(func=_acl, acl_apply=name == "apply")
    acl.set_defaults(func=lambda args: _help(acl))

    metrics = sub.add_parser("metrics", help="Prometheus exporter.",
                             description="Prometheus exporter.")
    metrics_sub = metrics.add_subparsers(dest="metrics_command", metavar="ACTION")
    serve = metrics_sub.add_parser("serve", help="Serve /metrics for Prometheus (reads Redis "
                                                 "on each scrape).")
    for flag, help_text in [("--redis-url", "Redis URL (default: $PHANTOM_REDIS_URL)"),
                            ("--settings", "TOML settings file"), ("--key-prefix", "key prefix")]:
        serve.add_argument(flag, default=None, help=help_text)
    serve.add_argument("--port", type=int, default=9464, help="port (default 9464)")
    serve.add_argument("--addr", default="127.0.0.1", help="bind address (0.0.0.0 to expose)")
    serve.add_argument("--queue", action="append", help="queues to export (default: all)")
    serve.add_argument("--no-health", action="store_true", help="skip health checks per scrape")
    serve.set_defaults(func=_metrics_serve)
    metrics.set_defaults(func=lambda args: _help(metrics))

    bench = sub.add_parser("bench", help="Run the benchmark suite (see benchmarks/).",
                           description="Run the benchmark suite: ours vs the raw redis-py "
                                       "ceiling (and peers with --peers).", add_help=False)
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(func=_bench)

    stats = command("stats", "Depth per queue and state.")
    stats.add_argument("queues", nargs="*", help="queues (default: all)")
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")
    stats.set_defaults(func=_stats)
    return parser


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _connect(args: argparse.Namespace) -> core.MessageQueue:
    settings = core.Settings.load(args.settings)
    options: dict[str, Any] = {}
    if args.key_prefix:
        options["key_prefix"] = args.key_prefix
    return core.connect(args.redis_url, settings=settings, **options)


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    from .report_text import demo_table

    mq = _connect(args)
    results, elapsed = run_demo(mq, total=args.messages)
    demo_table(results, elapsed, where=repr(mq))
    return 0


def _load(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise core.ValidationError(f"expected MODULE:OBJECT, got {target!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise core.ValidationError(f"cannot import {module_name!r}: {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise core.ValidationError(f"{module_name!r} has no attribute {attr!r}") from None


def _worker(args: argparse.Namespace) -> int:
    if args.processes or args.min_processes or args.max_processes:
        return _supervise(args)
    mq = _connect(args)
    obj = _load(args.target)
    if args.queue:
        options: dict[str, Any] = {"prefetch_count": args.prefetch,
                                   "max_concurrency": args.concurrency}
        if args.group:
            options["group"] = args.group
        mq.subscribe(args.queue, args.type, obj, **options)
    else:
        obj(mq)
    worker = mq.worker(name=args.name, grace_s=args.grace, overlap=args.overlap)
    print(f"worker {worker.consumer} consuming {sorted({s.queue for s in worker.subscriptions})}"
          f" on {mq!r}", flush=True)
    return int(worker.run())


def _supervise(args: argparse.Namespace) -> int:
    from .core.consume.scaling import ScalePolicy, Supervisor

    start = args.processes or args.min_processes or 1
    policy = ScalePolicy(
        min_processes=args.min_processes or start,
        max_processes=args.max_processes or max(start, args.min_processes or 1),
        up_depth_per_process=args.scale_up_depth, up_after_s=args.scale_up_after,
        down_depth_per_process=args.scale_down_depth, down_after_s=args.scale_down_after,
        up_lag_s=args.scale_up_lag)
    mq = _connect(args)
    if args.queue:
        queues = [args.queue]
    else:
        _load(args.target)(mq)
        queues = sorted({s.queue for s in mq.subscriptions})
    command = _child_command(args, policy.max_processes)
    supervisor = Supervisor(mq, queues, command, policy, initial=start, grace_s=args.grace)
    print(f"supervising {start} worker process(es) ({policy.min_processes}.."
          f"{policy.max_processes}) for {queues} on {mq!r}", flush=True)
    return supervisor.run()


def _child_command(args: argparse.Namespace, max_processes: int) -> list[str]:
    """The command line of one supervised worker process.

    Children work one batch ahead only while ``max_processes`` leave a core spare
    (``overlap_fits``), unless ``--overlap``/``--no-overlap`` was given.
    """
    command = [sys.executable, "-m", "phantom_notebook.cli", "worker", args.target,
               "--type", args.type, "--prefetch", str(args.prefetch),
               "--concurrency", str(args.concurrency), "--grace", str(args.grace)]
    overlap = args.overlap if args.overlap is not None else core.overlap_fits(max_processes)
    command.append("--overlap" if overlap else "--no-overlap")
    for flag, value in (("--queue", args.queue), ("--group", args.group),
                        ("--redis-url", args.redis_url), ("--settings", args.settings),
                        ("--key-prefix", args.key_prefix)):
        if value:
            command += [flag, value]
    return command


def _publish(args: argparse.Namespace) -> int:
    mq = _connect(args)
    try:
        payload = orjson.loads(args.payload)
    except orjson.JSONDecodeError as exc:
        raise core.ValidationError(f"payload is not valid JSON: {exc}") from None
    if args.kind:
        mq.declare(args.queue, kind=args.kind)
    mid = mq.publish(args.queue, args.type, payload, priority=args.priority, delay=args.delay,
                     dedup_key=args.dedup_key)
    print(mid)
    return 0


def _keys_generate(args: argparse.Namespace) -> int:
    import time

    from .core.security.keyring import KeyRing, generate_key

    key_id = args.id or time.strftime("k%Y%m%dT%H%M%SZ", time.gmtime())
    if not args.key_file:
        print(f"{key_id} {generate_key()}")
        return 0
    from pathlib import Path

    path = Path(args.key_file)
    if path.exists():
        ring = KeyRing.from_file(path)
        ring = ring.rotate(key_id)
        ring = KeyRing.from_base64([(k, ring.key(k).to_base64()) for k in ring.ids],
                                   active=KeyRing.from_file(path).active_id)
    else:
        ring = KeyRing.from_base64([(key_id, generate_key())], active=key_id)
    ring.write_key_file(path)
    print(f"added key {key_id!r} to {path} (active: {ring.active_id!r})")
    return 0


def _keys_rotate(args: argparse.Namespace) -> int:
    import dataclasses
    import time

    from rich.progress import Progress

    from .core.admin.rotation import pending_count, reseal_all
    from .core.security.keyring import KeyRing

    ring = KeyRing.from_file(args.key_file)
    if not args.reseal_only:
        if args.activate:
            ring = KeyRing.from_base64([(k, ring.key(k).to_base64()) for k in ring.ids],
                                       active=args.activate)
        else:
            ring = ring.rotate(time.strftime("k%Y%m%dT%H%M%SZ", time.gmtime()))
        ring.write_key_file(args.key_file)
        print(f"active key is now {ring.active_id!r} (older keys still decrypt)")
    settings = core.Settings.load(args.settings)
    security = dataclasses.replace(settings.security, key_file=args.key_file, keys=None)
    settings = dataclasses.replace(settings, security=security)
    options = {"key_prefix": args.key_prefix} if args.key_prefix else {}
    mq = core.connect(args.redis_url, settings=settings, **options)
    total = pending_count(mq)
    with Progress() as bar:
        task = bar.add_task("re-encrypting", total=total)
        report = reseal_all(mq, progress=lambda n: bar.advance(task, n))
    from .core.audit.inline import AuditItem, record_safely

    record_safely(mq.audit, AuditItem("key_rotation", "keyring", detail={
        "active": ring.active_id, "resealed": report.resealed,
        "in_flight": report.skipped_in_flight, "unreadable": report.unreadable}))
    print(f"re-encrypted {report.resealed:,} of {total:,} stored messages; "
          f"{report.skipped_in_flight:,} in flight left to their workers; "
          f"{report.unreadable:,} unreadable (will be dead-lettered)")
    return 0


def _report_health(args: argparse.Namespace) -> int:
    from .notebook.reports import run_health_report

    params: dict[str, Any] = {}
    for name, value in args.parameter:
        try:
            params[name] = orjson.loads(value)
        except orjson.JSONDecodeError:
            params[name] = value
    result = run_health_report(args.redis_url, parameters=params, output_dir=args.output_dir,
                               notebook=args.notebook)
    print(f"health: {result.status.upper()}")
    print(f"notebook: {result.notebook}")
    print(f"html:     {result.html}")
    return result.exit_code


def _acl(args: argparse.Namespace) -> int:
    import os

    from .core.security.access import apply_acl, format_setuser, render_all

    mq = _connect(args)
    users: dict[str, tuple[str, str | None]] = {}
    table = dict(mq.settings.acl.get("users", {}))
    for spec in args.user:
        name, _, role = spec.partition(":")
        table[name] = {"role": role}
    if not table:
        raise core.ValidationError("no users: give --user NAME:ROLE or [acl.users.NAME] role")
    for name, entry in table.items():
        env = entry.get("password_env") or f"PHANTOM_ACL_PASSWORD_{name.upper()}"
        password = os.environ.get(env)
        if password is None:
            raise core.ValidationError(f"no password for user {name!r}: set ${env}")
        users[name] = (str(entry.get("role", "")), password)
    rules = render_all(mq.access, users, prefix=mq.keys.prefix, queues=mq.queues())
    if not args.acl_apply:
        for name, user_rules in rules.items():
            print(format_setuser(name, user_rules))
        return 0
    applied = apply_acl(mq.client, rules, save=args.save)
    from .core.audit.inline import AuditItem, record_safely

    for user in applied.users:
        record_safely(mq.audit, AuditItem("acl_change", f"user:{user}",
                                          detail={"role": users[user][0]}))
    print(f"installed ACL users: {', '.join(applied.users)}")
    if applied.save_error:
        print(f"warning: ACL SAVE failed ({applied.save_error}); the users are live until "
              "the server restarts", file=sys.stderr)
    return 0


def _metrics_serve(args: argparse.Namespace) -> int:
    from .notebook.prometheus import run

    return int(run(_connect(args), args.port, args.addr, queues=args.queue,
                   include_health=not args.no_health) or 0)


def _bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "benchmarks").is_dir() and str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    try:
        from benchmarks.__main__ import main as bench_main
    except ImportError:
        raise core.ValidationError("the benchmarks ship with the source tree: run from a "
                                   "checkout (./run bench)") from None
    return int(bench_main(args.bench_args) or 0)


def _stats(args: argparse.Namespace) -> int:
    from .report_text import stats_table

    mq = _connect(args)
    rows = mq.stats(args.queues or None)
    if args.json:
        print(orjson.dumps([{**r.__dict__, "depth": r.depth} for r in rows]).decode())
    else:
        stats_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
