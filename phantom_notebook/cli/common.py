"""What every command shares: the connection options, connecting, loading MODULE:OBJECT."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from .. import core


def add_connection(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add --redis-url, --settings and --key-prefix to ``p``."""
    p.add_argument("--redis-url", default=None,
                   help="redis://, rediss://, unix://, redis+cluster:// or redis+sentinel:// "
                        "URL (default: $PHANTOM_REDIS_URL, else the embedded in-process Redis)")
    p.add_argument("--settings", default=None, help="TOML settings file")
    p.add_argument("--key-prefix", default=None, help="key prefix (default: pn)")
    return p


def command(sub: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    """A subcommand with the connection options."""
    return add_connection(sub.add_parser(name, help=help_text, description=help_text))


def connect(args: argparse.Namespace, **overrides: Any) -> core.MessageQueue:
    """The MessageQueue the command's options describe."""
    settings = core.Settings.load(args.settings)
    options: dict[str, Any] = dict(overrides)
    if args.key_prefix:
        options["key_prefix"] = args.key_prefix
    return core.connect(args.redis_url, settings=settings, **options)


def load(target: str) -> Any:
    """The object named by ``MODULE:OBJECT``."""
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


def print_help(parser: argparse.ArgumentParser) -> int:
    """Print ``parser``'s help; exit code 2 (a command group without its action)."""
    parser.print_help()
    return 2
