"""Backups under ACLs: an admin user backs up and restores through the functions it holds;
lower roles are refused by the library and, holding raw redis-py, by Redis itself - they
cannot copy a queue out through pn1_snapshot nor write one in through pn1_restore."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import redis

import phantom_notebook as pn
from phantom_notebook.core.backend import library
from tests.core.security.conftest import Connect, raw_as
from tests.support.redis_server import RedisServer

DENIED = "can't run this command|can't access|no permissions"
KEY = "bk-acl:" + base64.b64encode(bytes(range(3, 35))).decode()


def test_an_admin_user_backs_up_and_restores_under_its_acl(
        connect_as: Connect, prefix: str, tmp_path: Path) -> None:
    adm = connect_as("adm", backup_key=KEY)
    ana = connect_as("ana")
    for i in range(30):
        ana.publish("ioc-feed", "ioc.raw", {"i": i})

    taken = adm.backup(tmp_path / "acl.pnbk", queues="ioc-feed")
    adm.client.delete(*adm.queue_keys("ioc-feed").streams)  # the incident
    restored = adm.restore(tmp_path / "acl.pnbk")

    assert taken.messages == restored.messages == 30
    assert adm.stats("ioc-feed")[0].ready == 30


@pytest.mark.parametrize(("user", "role"), [("ana", "analyst"), ("enr", "enricher"),
                                            ("aud", "auditor")])
def test_lower_roles_may_not_back_up_or_restore(connect_as: Connect, user: str, role: str,
                                               tmp_path: Path) -> None:
    adm = connect_as("adm", backup_key=KEY)
    adm.backup(tmp_path / "a.pnbk", queues="ioc-feed")
    gated = connect_as(user, role=role, backup_key=KEY)
    ungated = connect_as(user, backup_key=KEY)  # no role named: only Redis stands guard

    with pytest.raises(pn.PermissionDeniedError, match="may not manage"):
        gated.backup(tmp_path / "b.pnbk", queues="ioc-feed")
    with pytest.raises(pn.PermissionDeniedError, match="may not manage"):
        gated.restore(tmp_path / "a.pnbk")
    with pytest.raises(pn.PermissionDeniedError, match="Redis refused"):
        ungated.backup(tmp_path / "b.pnbk", queues="ioc-feed")
    with pytest.raises(pn.PermissionDeniedError, match="Redis refused"):
        ungated.restore(tmp_path / "a.pnbk")
    assert not list(tmp_path.glob("b.pnbk*"))


def test_an_analyst_with_raw_redis_cannot_snapshot_a_queue_out_or_restore_one_in(
        server: RedisServer, connect_as: Connect, prefix: str) -> None:
    ana_mq = connect_as("ana")
    ana_mq.publish("ioc-feed", "ioc.raw", {"secret": "x"})
    keys = ana_mq.queue_keys("ioc-feed")
    raw = raw_as(server, "ana")
    src = [*keys.streams, keys.delayed, keys.dlq, keys.dedup_bucket(1), keys.dedup_bucket(0)]
    copies = keys.snapshot("evil")

    with pytest.raises(redis.exceptions.ResponseError, match=DENIED):
        raw.fcall(library.name("snapshot"), 17, *src, *copies, 60000, 0)
    with pytest.raises(redis.exceptions.ResponseError, match=DENIED):
        raw.fcall(library.name("restore"), 7, *keys.streams, keys.delayed, keys.dlq,
                  keys.restore_ledger, 1000, "pn-restore", 1000, 1,
                  "e", "e:forged:1", 0, "", 2, "m", b"forged", 0)
    admin = server.client()
    assert not list(admin.scan_iter(f"{keys.base}:bk:*"))
    assert admin.xlen(keys.stream(0)) == 0 and not admin.exists(keys.restore_ledger)
    raw.close()
