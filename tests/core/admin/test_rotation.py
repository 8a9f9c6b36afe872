"""Key rotation re-encrypts ready, delayed and dead-lettered messages, resumably."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

import phantom_notebook as pn
from phantom_notebook.core.admin.rotation import pending_count, reseal_all
from phantom_notebook.core.model.envelope import unframe
from phantom_notebook.core.security.keyring import KeyRing, generate_key
from tests.support.collect import Collector, eventually

ROOT = Path(__file__).resolve().parents[3]


def _sealed(url: str | None, prefix: str, keys: str) -> pn.MessageQueue:
    settings = pn.Settings.from_dict({"security": {"keys": keys}})
    return pn.connect(url, key_prefix=prefix, settings=settings)


def _stored_key_ids(mq: pn.MessageQueue, queue: str) -> list[str]:
    keys = mq.queue_keys(queue)
    raws = [f[b"m"] for s in keys.streams for _, f in mq.client.xrange(s)]
    raws += [m[1:] for m in mq.client.zrange(keys.delayed, 0, -1)]
    raws += [f[b"m"] for _, f in mq.client.xrange(keys.dlq)]
    return [unframe(r)[1]["k"] for r in raws]


def _fill(mq: pn.MessageQueue) -> None:
    mq.publish_batch("intel", [("ioc.enrichment.request", {"n": i}) for i in range(1200)])
    mq.publish_batch("intel", [pn.Message("ioc.enrichment.request", {"later": i},
                                          delay=timedelta(hours=1)) for i in range(30)])
    mq.subscribe("rejects", "*", lambda m, c: c.reject("bad feed"))
    mq.publish_batch("rejects", [("data.ingestion.request", {"bad": i}) for i in range(20)])
    with mq.worker():
        assert eventually(lambda: mq.stats(["rejects"])[0].dead == 20)


def test_rotation_moves_everything_stored_to_the_new_key_and_nothing_is_lost(
        mq: pn.MessageQueue) -> None:
    url = None if mq.embedded else mq.settings.redis.url
    k1 = f"k1:{generate_key()}"
    old = _sealed(url, mq.keys.prefix, k1)
    _fill(old)
    new = _sealed(url, mq.keys.prefix, f"k2:{generate_key()},{k1}")
    assert pending_count(new) == 1200 + 30 + 20
    report = reseal_all(new)
    assert report.resealed == 1250 and report.unreadable == 0
    assert set(_stored_key_ids(new, "intel") + _stored_key_ids(new, "rejects")) == {"k2"}
    assert pending_count(new) == 0
    got = Collector()
    new.subscribe("intel", "*", got, prefetch_count=500)
    with new.worker():
        assert got.wait_for(1200)
    assert sorted(p["n"] for p in got.payloads) == list(range(1200))
    assert new.stats(["intel"])[0].delayed == 30 and new.stats(["rejects"])[0].dead == 20


def test_an_interrupted_rotation_resumes_where_it_stopped(mq: pn.MessageQueue) -> None:
    url = None if mq.embedded else mq.settings.redis.url
    k1 = f"k1:{generate_key()}"
    _fill(_sealed(url, mq.keys.prefix, k1))
    new = _sealed(url, mq.keys.prefix, f"k2:{generate_key()},{k1}")

    def interrupt(done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reseal_all(new, progress=interrupt)
    assert 0 < pending_count(new) < 1250
    reseal_all(new)
    assert pending_count(new) == 0
    assert len(_stored_key_ids(new, "intel")) == 1230


def test_the_cli_generates_a_key_file_and_rotates_with_a_progress_bar(
        real_mq: pn.MessageQueue, redis_url: str, tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "phantom_notebook.cli"]
    subprocess.run([*cli, "keys", "generate", "--id", "k1", "--key-file", str(key_file)],
                   check=True, env=env, capture_output=True)
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    ring = KeyRing.from_file(key_file)
    old = _sealed(redis_url, real_mq.keys.prefix, f"k1:{ring.key('k1').to_base64()}")
    old.publish_batch("intel", [("t", i) for i in range(10)])
    out = subprocess.run([*cli, "keys", "rotate", "--key-file", str(key_file), "--redis-url",
                          redis_url, "--key-prefix", real_mq.keys.prefix],
                         check=True, env=env, capture_output=True, text=True).stdout
    assert "re-encrypted 10 of 10 stored messages" in out
    ring = KeyRing.from_file(key_file)
    assert ring.active_id != "k1" and "k1" in ring.ids
    assert set(_stored_key_ids(real_mq, "intel")) == {ring.active_id}
    generate_key_line = subprocess.run([*cli, "keys", "generate", "--id", "k9"], check=True,
                                       env=env, capture_output=True, text=True).stdout
    assert generate_key_line.startswith("k9 ") and len(generate_key_line.split()[1]) == 44
