"""The ``phantom-notebook`` command: thin wrappers over the library, one module per area.

Exit codes (every command): 0 success; 1 an expected failure, reported in one line
``error: ...`` (bad input or settings, Redis unreachable, permission denied, a damaged
trail; ``-v`` adds the traceback); 2 usage errors, and commands that report a status
(``report health`` critical, ``audit verify`` broken); 3 a worker lane that could not
recover (its supervisor should restart the process).
"""

from __future__ import annotations

import argparse
import logging
import socket
import ssl
import sys
import traceback
from collections.abc import Sequence

import redis

from .. import core
from . import backup, dashboard, ops, queues, run, schedules, security
from .run import child_command


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``phantom-notebook``; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # the benchmark suite parses its own options
        return ops.run_bench(argparse.Namespace(bench_args=argv[1:]))
    parser = parser_of()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except core.PhantomError as exc:
        return _report(exc, exc, args.verbose)
    except _LOWER as exc:
        return _report(exc, _translate(exc), args.verbose)
    except KeyboardInterrupt:
        return 130


def _report(exc: BaseException, error: core.PhantomError, verbose: bool) -> int:
    """Print one line ``error: ...`` (with ``-v`` the traceback first); exit code 1."""
    if verbose:
        traceback.print_exception(exc)
    print(f"error: {error}", file=sys.stderr)
    return 1


def parser_of() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="phantom-notebook",
        description="Redis-backed message queues for threat intelligence, and their tools.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log progress to stderr; show tracebacks of failures")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run.register(sub)
    queues.register(sub)
    security.register(sub)
    ops.register(sub)
    dashboard.register(sub)
    backup.register(sub)
    schedules.register(sub)
    return parser


def _translate(exc: BaseException) -> core.PhantomError:
    from ..core.backend.boundary import translate

    return translate(exc)


_LOWER = (redis.RedisError, ConnectionError, TimeoutError, socket.gaierror, ssl.SSLError)

__all__ = ["child_command", "main", "parser_of"]
