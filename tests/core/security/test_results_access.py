"""Results and joins under the rendered ACLs on a real redis-server: a group runs end to
end with each built-in role doing its own part, and roles without a grant can neither
read a result, forge one, nor record a member in a join."""

from __future__ import annotations

from typing import Any

import pytest
import redis

import phantom_notebook as pn
from tests.core.security.conftest import Connect, raw_as
from tests.support.redis_server import RedisServer


@pytest.fixture(autouse=True)
def queues(server: RedisServer, users: None, prefix: str) -> None:
    """The operator declares the queues and their groups (roles below manage may not)."""
    operator = pn.connect(server.url, key_prefix=prefix, settings=pn.Settings())
    for q in ("ioc-vt", "ioc-otx", "threat-score"):
        operator.declare(q)
        operator.ensure_group(q)
    operator.close()


def _enrich(message: Any, context: pn.MessageContext) -> dict[str, Any]:
    context.progress(0.5)
    return {"source": context.queue, "score": 10}


def test_a_group_runs_with_the_analyst_fanning_out_and_the_enricher_fanning_in(
        connect_as: Connect) -> None:
    analyst, enricher = connect_as("ana"), connect_as("enr")
    for q in ("ioc-vt", "ioc-otx"):
        enricher.subscribe(q, "*", _enrich)  # consume ioc-*, publish threat-*: the join
    analyst.subscribe("threat-score", "*", lambda m, c: sum(v["score"] for v in c.join.values))
    with enricher.worker(), analyst.worker():
        g = analyst.group([pn.Task("ioc-vt", "ioc.enrichment.request", {}),
                           pn.Task("ioc-otx", "ioc.enrichment.request", {})],
                          then=pn.Task("threat-score", "threat.analysis.request", {}))
        assert g.result(timeout=15) == 20
        assert [m.result(timeout=5)["source"] for m in g.members] == ["ioc-vt", "ioc-otx"]


@pytest.mark.parametrize("user", ["rex", "aud"])
def test_roles_without_the_queue_cannot_read_forge_or_join(
        server: RedisServer, connect_as: Connect, prefix: str, user: str) -> None:
    analyst = connect_as("ana")
    analyst.subscribe("ioc-vt", "*", _enrich)
    with analyst.worker():
        pending = analyst.request("ioc-vt", "ioc.enrichment.request", {})
        pending.result(timeout=10)
    g = analyst.group([pn.Task("ioc-vt", "t", {})], then=pn.Task("threat-score", "t", {}))
    attacker = raw_as(server, user)
    res = f"{prefix}:{{ioc-vt}}:res:{pending.id}"
    join = analyst.queue_keys(g.state().queue).join(g.id)
    refused: list[tuple[Any, ...]] = [
        ("HSET", res, "v", "forged"), ("DEL", res), ("HSET", join, "ok", "99"),
        ("RPUSH", f"{res}:w", "1"), ("BLMOVE", f"{res}:w", f"{res}:w", "RIGHT", "LEFT", "0.01")]
    if user == "rex":  # the auditor may read (stats on every queue); nobody else
        refused.append(("HGETALL", res))
    for command in refused:
        with pytest.raises(redis.exceptions.NoPermissionError):
            attacker.execute_command(*command)
    keys = analyst.queue_keys(g.state().queue)
    with pytest.raises(redis.exceptions.NoPermissionError):
        attacker.fcall("pn1_join", 8, *keys.streams, keys.delayed, f"{keys.base}:m:1",
                       keys.trace, join, "settle", 1, 0, 0, "x", 1, 8, 0, g.members[0].id,
                       "ok", "forged")
    assert g.state().settled == 0
    attacker.close()


def test_a_publisher_reads_its_results_but_cannot_write_them(
        server: RedisServer, connect_as: Connect, prefix: str) -> None:
    analyst = connect_as("ana")
    analyst.subscribe("ioc-vt", "*", _enrich)
    with analyst.worker():
        pending = analyst.request("ioc-vt", "t", {})
        pending.result(timeout=10)
    responder = raw_as(server, "rex")  # publishes alerts*, nothing of ioc-*
    with pytest.raises(redis.exceptions.NoPermissionError):
        responder.hgetall(pending.key)
    responder.close()
