"""``phantom-notebook dashboard``: serve the live operations dashboard with Voila.

Voila runs the shipped ``dashboard.ipynb`` (its only parameters: the connection and the
role, passed through the environment) with one pre-heated kernel, so a page view gets a
kernel that has already connected and drawn the first snapshot. It binds to 127.0.0.1; a
token is always required (one is generated and printed unless given), and exposing the
page with ``--host`` on a non-loopback address needs an explicit ``--token`` or
``--password`` (``$PHANTOM_DASHBOARD_TOKEN`` / ``$PHANTOM_DASHBOARD_PASSWORD``): anyone
who reaches the port could otherwise replay and purge dead letters. The secret goes to
Voila in a private config file, never on its command line.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .. import core
from ..core.model.tlp import parse_tlp
from .common import add_connection

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebook" / "dashboard" / "dashboard.ipynb"
LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def register(sub: Any) -> None:
    """Add ``dashboard``."""
    p = add_connection(sub.add_parser(
        "dashboard", help="Serve the live operations dashboard (Voila) on 127.0.0.1.",
        description="Serve the live operations dashboard: tiles, queues, charts, workers, "
                    "search and dead letters, refreshed live. Without --redis-url it runs "
                    "on the embedded Redis with a small demo load."))
    p.add_argument("--port", type=int, default=8866, help="port (default 8866)")
    p.add_argument("--host", default="127.0.0.1",
                   help="bind address (default 127.0.0.1); any other needs --token or "
                        "--password")
    p.add_argument("--role", default=None,
                   help="role whose grants the page follows (default: the settings' "
                        "[security] role; none = unrestricted operator view)")
    p.add_argument("--user", default=None,
                   help="who is at the dashboard: the audit actor of its actions is "
                        "dashboard:<user> (default <login>@<host>)")
    p.add_argument("--refresh", type=float, default=2.0, help="seconds between refreshes")
    p.add_argument("--max-tlp", default="GREEN",
                   help="read-only roles see payloads up to this TLP (default GREEN)")
    p.add_argument("--token", default=None,
                   help="access token (default $PHANTOM_DASHBOARD_TOKEN, else a random one)")
    p.add_argument("--password", default=None,
                   help="a login password instead of a token (default "
                        "$PHANTOM_DASHBOARD_PASSWORD)")
    p.add_argument("--no-demo", action="store_true",
                   help="embedded Redis without the demo load")
    p.add_argument("--check", action="store_true",
                   help="check the options and the connection, then exit without serving")
    p.set_defaults(func=run_dashboard)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def secrets_of(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """(token, password) from the options or the environment; ``ValidationError`` when the
    page would be exposed beyond loopback without either."""
    token = args.token or os.environ.get("PHANTOM_DASHBOARD_TOKEN") or None
    password = args.password or os.environ.get("PHANTOM_DASHBOARD_PASSWORD") or None
    if not is_loopback(args.host) and not token and not password:
        raise core.ValidationError(
            f"refusing to serve the dashboard on {args.host} without --token or --password "
            "(or $PHANTOM_DASHBOARD_TOKEN / $PHANTOM_DASHBOARD_PASSWORD): anyone reaching "
            "the port could replay and purge dead letters")
    if token is not None and len(token) < 16:
        raise core.ValidationError("the dashboard token must be at least 16 characters")
    return token, password


def voila_command(args: argparse.Namespace, config_dir: Path) -> list[str]:
    """The Voila command line (no secrets on it: they are in ``config_dir``, which the
    environment names as ``$JUPYTER_CONFIG_DIR``)."""
    return [sys.executable, "-m", "voila", str(NOTEBOOK), "--no-browser",
            f"--port={args.port}", f"--Voila.ip={args.host}", "--preheat_kernel=True",
            "--pool_size=1", "--show_tracebacks=False", "--theme=light",
            # the page draws its charts as SVG: plotly's 4.8 MB renderer would cost >1 s of
            # first paint; pygments' only styles code cells, which the page strips;
            # jupytext's (installed with mkdocs-jupyter, and by many analysts) is built for
            # another JupyterLab and stops the page ("the getter for the shared module is
            # not a function")
            '--VoilaConfiguration.extension_denylist=["jupyterlab-plotly",'
            '"jupyterlab_pygments","jupyterlab-jupytext"]',
            # a tab that died without its beforeunload shutdown: its kernel goes idle (the
            # page's clock no longer ticks) and is shut down; pooled kernels are never culled
            "--MappingKernelManager.cull_idle_timeout=120",
            "--MappingKernelManager.cull_interval=30",
            "--MappingKernelManager.cull_connected=True"]


def write_config(config_dir: Path, token: str | None, password: str | None) -> None:
    """Voila's config file with the token and/or the hashed password (mode 0600)."""
    config: dict[str, Any] = {"Voila": {"token": token or ""}}
    if password:
        from jupyter_server.auth.security import passwd

        config["PasswordIdentityProvider"] = {
            "hashed_password": passwd(password)}  # type: ignore[no-untyped-call]
    path = config_dir / "voila.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config, f)


def environment(args: argparse.Namespace, config_dir: Path) -> dict[str, str]:
    """The environment of the Voila process and its kernels."""
    from ..notebook.dashboard import (
        ENV_DEMO,
        ENV_MAX_TLP,
        ENV_PREFIX,
        ENV_REFRESH,
        ENV_ROLE,
        ENV_USER,
        default_user,
    )

    env = dict(os.environ)
    env.update({ENV_USER: args.user or default_user(), ENV_REFRESH: str(args.refresh),
                ENV_MAX_TLP: args.max_tlp, "JUPYTER_CONFIG_DIR": str(config_dir),
                ENV_DEMO: "0" if args.no_demo else "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"})
    for name, value in (("PHANTOM_REDIS_URL", args.redis_url),
                        ("PHANTOM_SETTINGS", args.settings), (ENV_ROLE, args.role),
                        (ENV_PREFIX, args.key_prefix)):
        if value:
            env[name] = value
    env.pop("PHANTOM_DASHBOARD_TOKEN", None)
    env.pop("PHANTOM_DASHBOARD_PASSWORD", None)
    return env


def run_dashboard(args: argparse.Namespace) -> int:
    """Check everything, then run Voila until it exits (Ctrl-C stops it)."""
    if not 0 < args.port < 65536:
        raise core.ValidationError(f"--port must be 1-65535, got {args.port}")
    if not args.refresh > 0:
        raise core.ValidationError(f"--refresh must be > 0, got {args.refresh}")
    parse_tlp(args.max_tlp)
    token, password = secrets_of(args)
    if token is None and password is None:
        token = secrets.token_urlsafe(24)
    from ..notebook.dashboard import connect_dashboard

    url = args.redis_url or os.environ.get("PHANTOM_REDIS_URL")
    if url:  # fail now, with the core's clear error, not inside a kernel
        connect_dashboard(url, role=args.role, user=args.user,
                          settings=core.Settings.load(args.settings),
                          key_prefix=args.key_prefix).close()
    if args.check:
        print(f"dashboard: ok (would serve http://{args.host}:{args.port}/)")
        return 0
    with tempfile.TemporaryDirectory(prefix="pn-dashboard-") as tmp:
        config_dir = Path(tmp)
        write_config(config_dir, token, password)
        shown = f"http://{args.host}:{args.port}/"
        login = f"{shown}?token={token}" if token else f"{shown} (password login)"
        print(f"dashboard: {login}", flush=True)
        process = subprocess.Popen(voila_command(args, config_dir),
                                   env=environment(args, config_dir))

        def stop(signum: int, frame: Any) -> None:  # a supervisor's SIGTERM stops Voila too
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, stop)
        try:
            return process.wait()
        except KeyboardInterrupt:
            process.terminate()  # Voila shuts its kernels down on SIGTERM
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            return 130
        finally:
            signal.signal(signal.SIGTERM, previous)
