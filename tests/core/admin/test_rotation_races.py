"""Key rotation under races: two real ``keys rotate`` processes at once, and one SIGKILLed
in the middle of its reseal and run again. Every stored message must still decrypt.

The full run of the issue (20 concurrent pairs, 5,000 messages) is ``PN_ROTATION_RUNS=20
PN_ROTATION_MESSAGES=5000``; the test command runs a smaller size that fits CI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import phantom_notebook as pn
from phantom_notebook.core.admin.rotation import pending_count
from phantom_notebook.core.model.envelope import unframe
from phantom_notebook.core.security.keyring import KeyRing
from tests.support.collect import eventually

ROOT = Path(__file__).resolve().parents[3]
CLI = [sys.executable, "-m", "phantom_notebook.cli"]
RUNS = int(os.environ.get("PN_ROTATION_RUNS", "3"))
MESSAGES = int(os.environ.get("PN_ROTATION_MESSAGES", "2000"))


def _rotate(key_file: Path, url: str, prefix: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*CLI, "keys", "rotate", "--quiet", "--key-file", str(key_file),
                             "--redis-url", url, "--key-prefix", prefix],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _undecryptable(url: str, prefix: str, key_file: Path) -> tuple[int, int]:
    """(stored envelopes, how many the key file cannot open) in the test queue."""
    settings = pn.Settings.from_dict({"security": {"key_file": str(key_file)}})
    mq = pn.connect(url, key_prefix=prefix, settings=settings)
    try:
        keys = mq.queue_keys("intel")
        raws = [f[b"m"] for s in keys.streams for _, f in mq.client.xrange(s)]
        bad = 0
        for raw in raws:
            try:
                mq.codec.open(raw)
            except pn.DecodeError:
                bad += 1
        return len(raws), bad
    finally:
        mq.close()


def _setup(url: str, prefix: str, key_file: Path, messages: int = MESSAGES) -> None:
    subprocess.run([*CLI, "keys", "generate", "--key-file", str(key_file)], check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True)
    settings = pn.Settings.from_dict({"security": {"key_file": str(key_file)}})
    mq = pn.connect(url, key_prefix=prefix, settings=settings)
    mq.declare("intel", kind="priority", max_queue_size=None)
    mq.publish_stream("intel", (("ioc.enrichment.request", {"n": i}) for i in range(messages)))
    mq.close()


@pytest.mark.slow
def test_two_rotations_at_once_never_leave_a_message_undecryptable(
        redis_url: str, prefix: str, tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    _setup(redis_url, prefix, key_file)
    for run in range(RUNS):
        pair = [_rotate(key_file, redis_url, prefix) for _ in range(2)]
        outcomes = [(p.wait(timeout=300), p.communicate()) for p in pair]
        for code, (out, err) in outcomes:
            assert code == 0, (run, out, err)
        total, bad = _undecryptable(redis_url, prefix, key_file)
        assert (total, bad) == (MESSAGES, 0), f"run {run}: {bad} of {total} undecryptable"
        ring = KeyRing.from_file(key_file)
        assert len(ring) == 1 + 2 * (run + 1)  # every rotation's key kept, none reused
    print(f"\n{RUNS} concurrent rotation pairs over {MESSAGES} messages: "
          f"{RUNS} of {RUNS} with every message readable")


@pytest.mark.slow
def test_a_rotation_killed_mid_reseal_and_run_again_loses_nothing(
        redis_url: str, prefix: str, tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    messages = 20_000  # a reseal of seconds: the kill lands in the middle of it
    _setup(redis_url, prefix, key_file, messages)
    victim = _rotate(key_file, redis_url, prefix)
    settings = pn.Settings.from_dict({"security": {"key_file": str(key_file)}})
    watcher = pn.connect(redis_url, key_prefix=prefix, settings=settings)
    stream = watcher.queue_keys("intel").stream(2)
    first_key = KeyRing.from_file(key_file).active_id

    def resealing() -> bool:  # moved entries go to the tail: its key id changes first
        tail = watcher.client.xrevrange(stream, count=1)
        return bool(tail) and unframe(tail[0][1][b"m"])[1]["k"] != first_key

    assert eventually(resealing, timeout_s=60, interval_s=0.001)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    watcher.close()
    ring = KeyRing.from_file(key_file)
    settings = pn.Settings.from_dict({"security": {"key_file": str(key_file)}})
    halfway = pn.connect(redis_url, key_prefix=prefix, settings=settings)
    left = pending_count(halfway)  # under the old key still: the kill came mid-reseal
    halfway.close()
    assert len(ring) == 2 and 0 < left < messages
    again = _rotate(key_file, redis_url, prefix)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, (out, err)
    assert _undecryptable(redis_url, prefix, key_file) == (messages, 0)
