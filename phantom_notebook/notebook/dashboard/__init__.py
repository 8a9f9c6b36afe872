"""The live operations dashboard: ``phantom-notebook dashboard`` serves it with Voila.

In a notebook::

    from phantom_notebook.notebook.dashboard import open_dashboard
    open_dashboard("redis://ops-redis:6379", role="auditor")   # displays and goes live

``open_dashboard`` reads what it is not given from the environment the command sets for
the Voila kernel: ``$PHANTOM_REDIS_URL`` (else the embedded Redis with a small demo load),
``$PHANTOM_SETTINGS``, ``$PN_DASHBOARD_ROLE``, ``$PN_DASHBOARD_USER``,
``$PN_DASHBOARD_REFRESH``, ``$PN_DASHBOARD_MAX_TLP`` and ``$PN_DASHBOARD_KEY_PREFIX``.
The dashboard user's identity (``user``) is the actor of every audit entry its actions
write (replay, purge, a refused action).
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import socket
from collections.abc import Callable
from typing import Any

from ...core.config.settings import Settings
from .deadletters import DeadLetterPager, Page
from .model import DashboardModel, QueueRow, Snapshot, Tiles, WorkerRow
from .view import Dashboard

ENV_ROLE = "PN_DASHBOARD_ROLE"
ENV_USER = "PN_DASHBOARD_USER"
ENV_REFRESH = "PN_DASHBOARD_REFRESH"
ENV_MAX_TLP = "PN_DASHBOARD_MAX_TLP"
ENV_PREFIX = "PN_DASHBOARD_KEY_PREFIX"
ENV_DEMO = "PN_DASHBOARD_DEMO"


def default_user() -> str:
    """``<login>@<host>``: who runs the dashboard (the audit actor is ``dashboard:<this>``)."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - containers without a passwd entry
        login = "unknown"
    return f"{login}@{socket.gethostname()}"


def connect_dashboard(redis_url: str | None = None, *, role: str | None = None,
                      user: str | None = None, settings: Settings | None = None,
                      key_prefix: str | None = None) -> Any:
    """The ``MessageQueue`` a dashboard uses: ``role`` set, its audit entries by ``user``."""
    from ... import core

    env = os.environ
    base = settings or Settings.load()
    role = role or env.get(ENV_ROLE) or None
    if role is not None:
        base = dataclasses.replace(base, security=dataclasses.replace(base.security, role=role))
    prefix = key_prefix or env.get(ENV_PREFIX) or None
    options: dict[str, Any] = {"key_prefix": prefix} if prefix else {}
    mq = core.connect(redis_url, settings=base, **options)
    who = user or env.get(ENV_USER) or default_user()
    if mq.audit is not None:
        mq.audit.actor = f"dashboard:{who}"[:200]
    return mq


def open_dashboard(redis_url: str | None = None, *, role: str | None = None,
                   refresh_s: float | None = None, user: str | None = None,
                   max_tlp: str | None = None, demo: Callable[[Any], Any] | None = None,
                   start: bool = True, display: bool = True) -> Dashboard:
    """Connect, build the ``Dashboard``, draw it once, display it and make it live.

    Without a URL (argument or ``$PHANTOM_REDIS_URL``) this is the embedded Redis, where
    ``demo(mq)`` starts a load to look at (the shipped notebook passes
    ``phantom_notebook.demo.start_demo_load``; ``$PN_DASHBOARD_DEMO=0`` turns it off).
    """
    env = os.environ
    who = user or env.get(ENV_USER) or default_user()
    mq = connect_dashboard(redis_url, role=role, user=who)
    if demo is not None and mq.embedded and env.get(ENV_DEMO, "1") != "0":
        demo(mq)
    board = Dashboard(mq, role=mq.role, user=who,
                      refresh_s=refresh_s or float(env.get(ENV_REFRESH) or 2.0),
                      max_tlp=max_tlp or env.get(ENV_MAX_TLP) or "GREEN")
    board.refresh()
    if display:
        from IPython.display import display as show

        show(board)  # type: ignore[no-untyped-call]
    if start:
        board.start()
    return board


__all__ = ["Dashboard", "DashboardModel", "DeadLetterPager", "Page", "QueueRow", "Snapshot",
           "Tiles", "WorkerRow", "connect_dashboard", "default_user", "open_dashboard"]
