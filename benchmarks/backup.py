"""Backup and restore at scale: throughput, archive size, snapshot pause and client memory.

``python -m benchmarks.backup [--messages 1000000] [--partitions 4] [--repartition N]``

Loads ``--messages`` real messages (~300-byte IOC payloads, sealed with AES-256-GCM the way
the library stores them, through ``publish_stream``) into a priority queue of
``--partitions`` partitions on a redis-server of our own: every priority, 1 % delayed by an
hour, 0.5 % in flight (read by a consumer that never acks), plus a small queue of dead
letters (rejected by a real worker). Then

1. **backup**: ``mq.backup`` in a child process (so its peak RSS is its own): messages/s,
   archive bytes per message (compressed, and raw before zstd), the longest single
   partition snapshot (one atomic Redis call: that long a pause of the server); the same
   child is run once at 100k messages first, so the peak RSS at 100k and at the full size
   show it does not grow with the queue;
2. **restore** into a fresh prefix on the same server (same partition count) and into one
   with ``--repartition`` partitions: messages/s, counts checked against the source;
3. **the raw redis-py ceiling**: XRANGE every stream entry in pages of 1000 (what a backup
   cannot beat) and XADD them back pipelined in batches of 500 (what a restore cannot).

Prints a table and writes ``reports/bench-backup.json``. ``--child-backup`` is the child's
mode (it prints one JSON line); nothing else calls it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import phantom_notebook as pn  # noqa: E402
from benchmarks.payload import MESSAGE_TYPE, ioc_payload  # noqa: E402
from phantom_notebook.core.config.settings import SecuritySettings  # noqa: E402
from phantom_notebook.core.errors import Reject  # noqa: E402
from phantom_notebook.core.testing import wait_until  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

# fixed, public keys: benchmarks only
SEAL_KEYS = "bench:" + base64.b64encode(bytes(range(32))).decode()
BACKUP_KEY = "bk:" + base64.b64encode(bytes(range(32, 64))).decode()
QUEUE = "ioc-feed"
POISON = "ioc-poison"
PRIORITIES = ("CRITICAL", "HIGH", "HIGH", "NORMAL", "NORMAL", "NORMAL", "NORMAL", "NORMAL",
              "NORMAL", "LOW")
DELAY = timedelta(hours=1)
SMALL = 100_000
MIB = 2**20


def settings() -> pn.Settings:
    """Sealing on (the stored size of a real deployment), archives MACed with BACKUP_KEY."""
    return pn.Settings(security=SecuritySettings(keys=SEAL_KEYS, backup_key=BACKUP_KEY))


def maxrss_mib() -> float:
    """``ru_maxrss`` (KiB on Linux) in MiB. Beware in a child: Linux carries the peak over
    from before ``execve``, i.e. from the parent's address space it was forked from, so a
    child of a big parent reports at least the parent's RSS (``peak_rss_mib`` does not)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _status_mib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mib() -> float:
    """This process's own peak resident set in MiB: ``VmHWM`` of its address space, which
    starts at ``execve`` (``ru_maxrss`` where there is no ``/proc``)."""
    peak = _status_mib("VmHWM")
    return maxrss_mib() if peak is None else peak


# -- loading ------------------------------------------------------------------------------------

def messages(start: int, stop: int) -> Iterator[pn.Message]:
    """Messages ``start``..``stop``: every priority, one in a hundred delayed by an hour."""
    for i in range(start, stop):
        if i % 100 == 99:
            yield pn.Message(MESSAGE_TYPE, ioc_payload(i), delay=DELAY)
        else:
            yield pn.Message(MESSAGE_TYPE, ioc_payload(i), priority=PRIORITIES[i % 10])


def declare(mq: pn.MessageQueue, partitions: int) -> None:
    """The benchmark queue: priority, ``partitions`` partitions, no size limit."""
    mq.declare(QUEUE, kind="priority", partitions=partitions, max_queue_size=None)


def load(mq: pn.MessageQueue, start: int, stop: int) -> float:
    """Publish messages ``start``..``stop`` to QUEUE (atomic batches of 1000); seconds."""
    started = time.perf_counter()
    mq.publish_stream(QUEUE, messages(start, stop), batch_size=1000)
    return time.perf_counter() - started


def hold_in_flight(mq: pn.MessageQueue, n: int) -> int:
    """Have a consumer that then "dies" read ``n`` CRITICAL messages of partition 0."""
    if n <= 0:
        return 0
    mq.ensure_group(QUEUE)
    stream = mq.queue_keys(mq.layout(QUEUE).active[0]).stream(0)
    got = mq.client.xreadgroup("workers", "dead-worker", {stream: ">"}, count=n)
    return sum(len(entries) for _, entries in got)


def dead_letters(url: str, prefix: str, n: int) -> int:
    """``n`` messages a real worker rejected (POISON's dead-letter stream)."""
    mq = pn.connect(url, key_prefix=prefix, settings=settings())
    try:
        mq.declare(POISON, max_queue_size=None)

        def handle(message: pn.Envelope, context: pn.MessageContext) -> None:
            raise Reject("malformed indicator")

        mq.publish_batch(POISON, [("ioc.bad", {"n": i}) for i in range(n)])
        mq.subscribe(POISON, "ioc.bad", handle)
        with mq.worker():
            if not wait_until(lambda: mq.stats(POISON)[0].dead >= n, 120, interval_s=0.05):
                raise RuntimeError(f"the worker dead-lettered {mq.stats(POISON)[0].dead} of {n}")
        return mq.stats(POISON)[0].dead
    finally:
        mq.close()


# -- backing up in a child process ----------------------------------------------------------------

def child_backup(url: str, prefix: str, path: str) -> dict[str, Any]:
    """The child's side: connect, back everything up, report the figures and peak RSS
    (``rss_before_mib``: after imports and connecting, ``rss_peak_mib``: after the backup)."""
    mq = pn.connect(url, key_prefix=prefix, settings=pn.Settings())
    before = peak_rss_mib()
    report = mq.backup(path)
    peak = peak_rss_mib()
    mq.close()
    return {"rss_before_mib": before, "rss_peak_mib": peak, "ru_maxrss_mib": maxrss_mib(),
            "messages": report.messages,
            "counts": report.counts, "partitions": report.partitions, "bytes": report.bytes,
            "raw_bytes": report.raw_bytes, "seconds": report.seconds,
            "messages_per_s": report.messages_per_s,
            "bytes_per_message": report.bytes_per_message,
            "raw_bytes_per_message": report.raw_bytes / report.messages if report.messages
            else 0.0, "snapshot_ms_max": report.snapshot_ms_max}


def backup_in_child(url: str, prefix: str, path: str | Path,
                    key: str = BACKUP_KEY) -> dict[str, Any]:
    """Run ``child_backup`` in a fresh Python (``--child-backup``); its JSON result.

    The key reaches the child through ``$PHANTOM_BACKUP_KEY``, as an operator's would.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PHANTOM_BACKUP_KEY": key}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.backup", "--child-backup", url,
                           prefix, str(path)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"the backup child failed ({proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["parent_peak_mib"] = _status_mib("VmHWM")
    return result


# -- restoring ---------------------------------------------------------------------------------

def restore(url: str, prefix: str, path: Path, partitions: int | None) -> dict[str, Any]:
    """Restore ``path`` under a fresh ``prefix``; its figures and what the target holds."""
    mq = pn.connect(url, key_prefix=prefix, settings=settings())
    try:
        report = mq.restore(path, partitions=partitions)
        rows = {s.queue: s for s in mq.stats()}
        held = {"ready": sum(s.ready for s in rows.values()),
                "in_flight": sum(s.in_flight for s in rows.values()),
                "delayed": sum(s.delayed for s in rows.values()),
                "dead": sum(s.dead for s in rows.values())}
        return {"messages": report.messages, "seconds": report.seconds,
                "messages_per_s": report.messages_per_s, "skipped": report.total("skipped"),
                "pending": report.total("pending"), "partitions": len(report.layouts[QUEUE]),
                "held": held}
    finally:
        mq.close()


def held_by(mq: pn.MessageQueue) -> dict[str, int]:
    """What the source holds, by state (to check a restore against)."""
    rows = mq.stats()
    return {"ready": sum(s.ready for s in rows), "in_flight": sum(s.in_flight for s in rows),
            "delayed": sum(s.delayed for s in rows), "dead": sum(s.dead for s in rows)}


def drop_prefix(client: Any, prefix: str) -> None:
    """Remove every key under ``prefix`` (a restored copy, once measured)."""
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        batch.append(key)
        if len(batch) == 1000:
            client.unlink(*batch)
            batch = []
    if batch:
        client.unlink(*batch)


# -- the raw ceiling -----------------------------------------------------------------------------

def source_streams(mq: pn.MessageQueue) -> list[str]:
    """Every stream the source stores messages in: each partition's levels and dead letters."""
    out: list[str] = []
    for name in mq.queues():
        for part in mq.layout(name, fresh=True).all:
            keys = mq.queue_keys(part)
            out += [*keys.streams, keys.dlq]
    return out


def pages(client: Any, stream: str) -> Iterator[list[tuple[bytes, dict[bytes, bytes]]]]:
    """XRANGE ``stream`` in pages of 1000."""
    start = "-"
    while True:
        entries = client.xrange(stream, start, "+", count=1000)
        if not entries:
            return
        yield entries
        start = "(" + entries[-1][0].decode()


def raw_read(client: Any, streams: list[str]) -> dict[str, float]:
    """Plain redis-py: read every stream entry in pages of 1000 (no archive)."""
    started = time.perf_counter()
    n = sum(len(page) for stream in streams for page in pages(client, stream))
    seconds = time.perf_counter() - started
    return {"entries": n, "seconds": seconds, "per_s": n / seconds if seconds else 0.0}


def raw_write(client: Any, streams: list[str], prefix: str) -> dict[str, float]:
    """Plain redis-py: XADD every entry to a copy, pipelined 500 a batch (writes timed)."""
    n, seconds = 0, 0.0
    for stream in streams:
        target = f"{prefix}:{stream}"
        for page in pages(client, stream):
            for at in range(0, len(page), 500):
                pipe = client.pipeline(transaction=False)
                for _, fields in page[at:at + 500]:
                    pipe.xadd(target, fields)
                started = time.perf_counter()
                pipe.execute()
                seconds += time.perf_counter() - started
            n += len(page)
    drop_prefix(client, prefix)
    return {"entries": n, "seconds": seconds, "per_s": n / seconds if seconds else 0.0}


# -- the run --------------------------------------------------------------------------------------

def run(messages_n: int, partitions: int, repartition: int, workdir: Path) -> dict[str, Any]:
    """Every measurement on a redis-server of our own; the JSON-friendly result."""
    server = RedisServer().start()
    client = server.client()
    source = "bk-src"
    small_n = SMALL if messages_n >= 2 * SMALL else max(messages_n // 10, 1)
    try:
        mq = pn.connect(server.url, key_prefix=source, settings=settings())
        declare(mq, partitions)
        step(f"loading {small_n:,} messages")
        load_s = load(mq, 0, small_n)
        step("backing up in a child process (small)")
        small = backup_in_child(server.url, source, workdir / "small.pnbk")
        step(f"loading {messages_n - small_n:,} more messages")
        load_s += load(mq, small_n, messages_n)
        in_flight = hold_in_flight(mq, messages_n // 200)
        dead = dead_letters(server.url, source, max(min(messages_n // 100, 2000), 10))
        held = held_by(mq)
        used = int(client.info("memory")["used_memory"])
        step(f"loaded {messages_n:,} in {load_s:.1f} s ({messages_n / load_s:,.0f}/s), "
             f"{in_flight:,} in flight, {dead:,} dead letters; redis {used / MIB:,.0f} MiB")
        step("backing up in a child process (full)")
        archive = workdir / "full.pnbk"
        full = backup_in_child(server.url, source, archive)
        step(f"backup {full['messages']:,} in {full['seconds']:.1f} s")
        streams = source_streams(mq)
        step("raw ceiling: XRANGE")
        read = raw_read(client, streams)
        step("raw ceiling: XADD")
        write = raw_write(client, streams, "bk-raw")
        step("restoring into a fresh prefix")
        same = restore(server.url, "bk-same", archive, None)
        drop_prefix(client, "bk-same")
        step(f"restoring into {repartition} partitions")
        other = restore(server.url, "bk-wide", archive, repartition)
        drop_prefix(client, "bk-wide")
        version = str(client.info("server")["redis_version"])
        mq.close()
    finally:
        client.close()
        server.close()
    return {
        "meta": {"messages": messages_n, "partitions": partitions, "repartition": repartition,
                 "sealed": True, "payload": "benchmarks.payload.ioc_payload (~300 B JSON)",
                 "redis": version, "python": platform.python_version(),
                 "cpus": os.cpu_count(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        "load": {"messages": messages_n, "seconds": load_s, "in_flight": in_flight,
                 "dead": dead, "held": held, "redis_used_mib": used / MIB},
        "backup": full,
        "rss": {"small": {"messages": small["messages"], "before_mib": small["rss_before_mib"],
                          "peak_mib": small["rss_peak_mib"],
                          "ru_maxrss_mib": small["ru_maxrss_mib"]},
                "full": {"messages": full["messages"], "before_mib": full["rss_before_mib"],
                         "peak_mib": full["rss_peak_mib"], "ru_maxrss_mib": full["ru_maxrss_mib"]},
                "growth_mib": full["rss_peak_mib"] - small["rss_peak_mib"],
                "parent_peak_mib": full["parent_peak_mib"]},
        "restore": {"same": same, "repartitioned": other},
        "ceiling": {"xrange": read, "xadd": write},
        "ratios": {"backup_vs_xrange": full["messages_per_s"] / read["per_s"],
                   "restore_vs_xadd": same["messages_per_s"] / write["per_s"],
                   "repartitioned_restore_vs_xadd": other["messages_per_s"] / write["per_s"]},
        "checks": {"restore_same_holds_source": same["held"] == held,
                   "restore_repartitioned_holds_source": other["held"] == held,
                   "archive_holds_every_message": full["messages"]
                   == sum(held.values())},
    }


def step(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def table(result: dict[str, Any]) -> str:
    b, r, c = result["backup"], result["restore"], result["ceiling"]
    ratios, rss = result["ratios"], result["rss"]
    meta = result["meta"]
    lines = [
        f"backup / restore, {meta['messages']:,} sealed messages, priority queue of "
        f"{meta['partitions']} partitions (redis {meta['redis']}, {meta['cpus']} cpus)",
        f"{'':34} {'ours':>14} {'raw ceiling':>14} {'ours/ceiling':>13}",
        f"{'backup, messages/s':34} {b['messages_per_s']:>14,.0f} "
        f"{c['xrange']['per_s']:>14,.0f} {ratios['backup_vs_xrange']:>13.2f}",
        f"{'restore, messages/s':34} {r['same']['messages_per_s']:>14,.0f} "
        f"{c['xadd']['per_s']:>14,.0f} {ratios['restore_vs_xadd']:>13.2f}",
        f"{'restore into {} partitions, msg/s'.format(meta['repartition']):34} "
        f"{r['repartitioned']['messages_per_s']:>14,.0f} {c['xadd']['per_s']:>14,.0f} "
        f"{ratios['repartitioned_restore_vs_xadd']:>13.2f}",
        f"{'archive bytes/message (zstd)':34} {b['bytes_per_message']:>14,.1f}",
        f"{'raw record bytes/message':34} {b['raw_bytes_per_message']:>14,.1f}",
        f"{'archive size, MiB':34} {b['bytes'] / MIB:>14,.1f}",
        f"{'longest snapshot pause, ms':34} {b['snapshot_ms_max']:>14,.1f}",
        f"{'backup seconds':34} {b['seconds']:>14,.1f} {c['xrange']['seconds']:>14,.1f}",
        f"{'restore seconds (same, repart.)':34} {r['same']['seconds']:>14,.1f} "
        f"{r['repartitioned']['seconds']:>14,.1f}",
        f"peak RSS of the backing-up process: {rss['small']['peak_mib']:.1f} MiB at "
        f"{rss['small']['messages']:,} messages, {rss['full']['peak_mib']:.1f} MiB at "
        f"{rss['full']['messages']:,} (growth {rss['growth_mib']:+.1f} MiB; "
        f"{rss['full']['before_mib']:.1f} MiB before the backup started)",
        f"  (VmHWM; the child's ru_maxrss says {rss['small']['ru_maxrss_mib']:.1f} and "
        f"{rss['full']['ru_maxrss_mib']:.1f} MiB: Linux carries over the peak of the "
        f"benchmark process it was spawned from, {rss['parent_peak_mib'] or 0:.1f} MiB)",
        f"archive counts: {b['counts']}",
        f"checks: {result['checks']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.backup")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repartition", type=int, default=None,
                        help="partition count of the second restore (default: partitions + 2)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench-backup.json")
    parser.add_argument("--child-backup", nargs=3, metavar=("URL", "PREFIX", "PATH"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_backup:
        print(json.dumps(child_backup(*args.child_backup)), flush=True)
        return 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pn-bench-backup-") as workdir:
        result = run(args.messages, args.partitions, args.repartition or args.partitions + 2,
                     Path(workdir))
    result["meta"]["total_seconds"] = time.perf_counter() - started
    print(table(result))
    print(f"total {result['meta']['total_seconds']:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if all(result["checks"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
