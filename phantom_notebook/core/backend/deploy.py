"""Loading the functions library into Redis, and checking a server holds this client's build.

``deploy(client)`` is the operator's step (``phantom-notebook deploy``, also run by ``acl
apply``): ``FUNCTION LOAD REPLACE`` on every master (replicas receive functions through
replication, and keep them after a failover). ``ensure_deployed`` runs on connect: one
``FCALL_RO pn<API>_version`` per master, which is also the connection check. What it does
when the library is missing or of another build is the deploy policy
(``redis.deploy_functions``):

* ``missing`` (default): load it when it is missing and this user may (a fresh or
  restarted server on a developer's machine); a different build is an error naming the
  command, so two client versions never take turns replacing each other's code;
* ``always``: also replace a different build (single-version fleets, development);
* ``never``: never load (application roles cannot anyway: they hold no FUNCTION rights).
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

import redis

from ..errors import NotDeployedError
from . import library
from .cluster import is_cluster

log = logging.getLogger("phantom_notebook.deploy")

POLICIES = ("missing", "always", "never")
DEPLOY_HINT = "phantom-notebook deploy --redis-url <url>"
_LOADED: weakref.WeakSet[Any] = weakref.WeakSet()  # embedded servers holding the library
_LOCK = threading.Lock()


def _masters(client: Any) -> list[Any]:
    """A plain client per master (the client itself when not a cluster)."""
    if not is_cluster(client):
        return [client]
    return [client.get_redis_connection(node) for node in client.get_primaries()]


def deploy(client: Any) -> str:
    """Load (or replace) the library on every master; returns its build."""
    code, build = library.source()
    for master in _masters(client):
        master.function_load(code, replace=True)
    log.info("loaded %s build %s", library.LIBRARY, build)
    return build


def deployed_builds(client: Any) -> list[str | None]:
    """The library build each master holds (None where it is missing)."""
    out: list[str | None] = []
    for master in _masters(client):
        try:
            found = master.fcall_ro(library.name("version"), 0)
        except redis.ResponseError as exc:
            if "Function not found" not in str(exc):
                raise
            out.append(None)
            continue
        out.append(found.decode() if isinstance(found, bytes) else str(found))
    return out


def may_deploy(policy: str) -> bool:
    """Whether a client should try to load a missing library under ``policy``."""
    return policy != "never"


def ensure_deployed(client: Any, policy: str = "missing", *, embedded: bool = False) -> None:
    """Make sure every master holds this client's build, or raise ``NotDeployedError``.

    The embedded default (fakeredis) is loaded once per in-process server. Connection
    errors propagate (the caller reports an unreachable server).
    """
    if embedded:
        server = client.connection_pool.connection_kwargs.get("server")
        with _LOCK:
            if server is None or server not in _LOADED:
                deploy(client)
                if server is not None:
                    _LOADED.add(server)
        return
    want = library.build()
    builds = deployed_builds(client)
    if all(b == want for b in builds):
        return
    stale = [b for b in builds if b is not None and b != want]
    if stale and policy != "always":
        raise NotDeployedError(
            f"Redis holds phantom_notebook functions build {stale[0]}, this client is build "
            f"{want} ({library.LIBRARY})", DEPLOY_HINT)
    if policy == "never":
        raise NotDeployedError(f"Redis does not have {library.LIBRARY} loaded", DEPLOY_HINT)
    try:
        deploy(client)
    except redis.ResponseError as exc:  # NOPERM: this user may not load code (good)
        raise NotDeployedError(
            f"Redis does not have {library.LIBRARY} build {want} loaded, and this user may "
            f"not load it ({exc})", DEPLOY_HINT) from None


__all__ = ["DEPLOY_HINT", "POLICIES", "deploy", "deployed_builds", "ensure_deployed",
           "may_deploy"]
