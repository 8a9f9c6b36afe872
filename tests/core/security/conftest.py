"""Real-server fixtures for the ACL tests: users per built-in role on a server of our own."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest
import redis

import phantom_notebook as pn
from phantom_notebook.core.backend.deploy import deploy
from phantom_notebook.core.security.access import AccessPolicy, apply_acl, render_all
from tests.support.redis_server import RedisServer

POLICY = AccessPolicy()
USERS = {"ana": "analyst", "enr": "enricher", "rex": "responder", "aud": "auditor",
         "adm": "admin"}
PASSWORDS = {name: secrets.token_hex(12) for name in USERS}


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    """A redis-server of our own: the tests create ACL users on it."""
    srv = RedisServer().start()
    yield srv
    srv.close()


@pytest.fixture
def admin(server: RedisServer) -> Iterator[redis.Redis]:
    """The server's default (unrestricted) user: sets ACLs and seeds other queues."""
    client = server.client()
    yield client
    client.close()


@pytest.fixture
def users(server: RedisServer, admin: redis.Redis, prefix: str) -> None:
    """ana=analyst, rex=responder, aud=auditor, adm=admin, for this test's key prefix; the
    operator (the default user) loads the functions and declares the queues first."""
    deploy(admin)
    operator = pn.connect(server.url, key_prefix=prefix, settings=pn.Settings())
    for queue, kind in (("ioc-feed", "priority"), ("alerts-live", "pubsub"),
                        ("threat-apt", "broadcast")):
        operator.declare(queue, kind=kind)
    operator.ensure_group("ioc-feed")
    for group in ("a", "b"):
        operator.ensure_group("threat-apt", group)
    operator.close()
    rules = render_all(POLICY, {u: (r, PASSWORDS[u]) for u, r in USERS.items()},
                       prefix=prefix, queues=["ioc-feed", "alerts-live"])
    applied = apply_acl(admin, rules, save=True)
    assert applied.users == tuple(USERS)
    assert not applied.saved and "ACL file" in (applied.save_error or "")
    admin.acl_log_reset()


Connect = Callable[..., pn.MessageQueue]


@pytest.fixture
def connect_as(server: RedisServer, users: None, prefix: str) -> Iterator[Connect]:
    """``connect_as("ana")``: a MessageQueue logged in with that user's own credentials."""
    opened: list[pn.MessageQueue] = []

    def connect(user: str, **security: object) -> pn.MessageQueue:
        url = f"redis://{user}:{PASSWORDS[user]}@127.0.0.1:{server.port}/0"
        settings = pn.Settings.from_dict({"security": security}) if security else pn.Settings()
        opened.append(pn.connect(url, key_prefix=prefix, settings=settings))
        return opened[-1]

    yield connect
    for mq in opened:
        mq.client.close()


def denials(admin: redis.Redis, user: str) -> list[str]:
    """What the server's ACL LOG recorded as denied for ``user`` (reason and object)."""
    log: list[dict[str, object]] = admin.acl_log()  # type: ignore[assignment]
    return [f"{e['reason']} {e['object']}" for e in log if e["username"] == user]




def raw_as(server: RedisServer, user: str) -> redis.Redis:
    """A plain redis-py client logged in as ``user``: what an attacker holding it uses."""
    return redis.Redis(port=server.port, username=user, password=PASSWORDS[user])
