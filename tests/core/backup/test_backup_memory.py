"""Taking a backup holds one page in memory, however long the queues.

The backup runs in a child Python of its own, so its peak resident set is the backup's
and not the test runner's. The peak is ``VmHWM`` from ``/proc/self/status``: it belongs to
the address space ``execve`` gave the child. ``ru_maxrss`` would not do here, because Linux
carries the peak over from before ``execve``, i.e. from the pytest process the child was
spawned from. Measured on a 2-core machine with 4 partitions of sealed ~300-byte payloads
(the full-size figures are in ``python -m benchmarks.backup``): a 51 MiB peak at 100,000
messages, 54 MiB at 1,000,000, 46 MiB of it imports and the connection. The bounds are
about 40 MiB and 4x above that. A backup that kept the archive in memory would need
~390 MiB (the archive's compressed size) more, and one that kept the records ~650 MiB
more. Either fails both bounds.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import phantom_notebook as pn
from benchmarks.payload import MESSAGE_TYPE, ioc_payload
from phantom_notebook.core.config.settings import SecuritySettings
from tests.support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[3]
SEAL_KEYS = "k1:" + base64.b64encode(bytes(range(32))).decode()
BACKUP_KEY = "bk:" + base64.b64encode(bytes(range(32, 64))).decode()
QUEUE = "ioc-feed"
GROWTH_MIB = 40
CEILING_MIB = 256

# the backing-up process: connect, back everything up, print the messages and peak RSS
CHILD = """
import json, sys
import phantom_notebook as pn

def peak_mib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")

url, prefix, path = sys.argv[1:4]
mq = pn.connect(url, key_prefix=prefix, settings=pn.Settings())
connected = peak_mib()
report = mq.backup(path)
print(json.dumps({"messages": report.messages, "bytes": report.bytes,
                  "connected_mib": connected, "peak_mib": peak_mib()}))
"""


def fill(mq: pn.MessageQueue, start: int, stop: int) -> None:
    """Publish sealed IOC messages ``start``..``stop``, 1000 to a batch."""
    for at in range(start, stop, 1000):
        mq.publish_batch(QUEUE, [(MESSAGE_TYPE, ioc_payload(i))
                                 for i in range(at, min(at + 1000, stop))])


def back_up_in_a_child(url: str, prefix: str, path: Path) -> dict[str, Any]:
    """Back up the deployment at ``url``/``prefix`` to ``path`` from a fresh Python."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PHANTOM_BACKUP_KEY": BACKUP_KEY}
    proc = subprocess.run([sys.executable, "-c", CHILD, url, prefix, str(path)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_backing_up_a_million_messages_keeps_the_process_under_a_fixed_memory_bound(
        tmp_path: Path) -> None:
    server = RedisServer().start()
    settings = pn.Settings(security=SecuritySettings(keys=SEAL_KEYS, backup_key=BACKUP_KEY))
    mq = pn.connect(server.url, key_prefix="mem", settings=settings)
    try:
        mq.declare(QUEUE, kind="priority", partitions=4, max_queue_size=None)
        fill(mq, 0, 100_000)
        small = back_up_in_a_child(server.url, "mem", tmp_path / "small.pnbk")
        fill(mq, 100_000, 1_000_000)
        large = back_up_in_a_child(server.url, "mem", tmp_path / "large.pnbk")
    finally:
        mq.close()
        server.close()

    assert small["messages"] == 100_000 and large["messages"] == 1_000_000
    assert large["bytes"] > 300 * 2**20, "the messages are sealed: the archive cannot shrink"
    assert large["peak_mib"] < small["peak_mib"] + GROWTH_MIB, (small, large)
    assert large["peak_mib"] < CEILING_MIB, (small, large)
