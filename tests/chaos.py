"""Chaos run: messages flow through worker processes that keep being SIGKILLed, and the
Redis server is restarted mid-run (AOF on). Nothing published may be lost.

    python -m tests.chaos --messages 20000 --workers 3 --kill-every 0.5

Prints published, handled (unique), lost, duplicates, dead-lettered, kills and elapsed time;
exits 1 if anything was lost. ``tests/test_chaos.py`` runs it at a smaller size in CI.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from dataclasses import asdict, dataclass

import phantom_notebook as pn
from tests.support.redis_server import RedisServer
from tests.support.worker_process import WorkerProcess

pace = threading.Event().wait  # pacing the publisher/killer loop, not synchronization


@dataclass
class ChaosReport:
    """The figures of one chaos run."""

    published: int
    handled: int
    lost: int
    duplicates: int
    dead_lettered: int
    worker_kills: int
    redis_restarts: int
    publish_retries: int
    elapsed_s: float


def run_chaos(messages: int = 20_000, workers: int = 3, kill_every_s: float = 0.5,
              batch: int = 200, seed: int = 1, timeout_s: float = 300.0) -> ChaosReport:
    """Run the chaos scenario on a throwaway redis-server and return its figures."""
    rng = random.Random(seed)
    server = RedisServer(appendonly=True).start()
    prefix, queue = "chaos", "chaos-queue"
    env = {"PHANTOM_QUEUE_MAX_DELIVERIES": "50"}  # crashes here are not the message's fault
    mq = pn.connect(server.url, key_prefix=prefix, command_timeout_s=2.0)
    mq.declare(queue, kind="priority", max_queue_size=messages + 1, max_deliveries=50)
    procs: list[WorkerProcess] = []
    kills = restarts = retries = 0
    started = time.monotonic()

    def spawn() -> WorkerProcess:
        return WorkerProcess(server.url, prefix, queue, concurrency=1, prefetch=50,
                             visibility_timeout_s=1.0, extra_env=env)

    try:
        procs = [spawn() for _ in range(workers)]
        last_kill = time.monotonic()
        published: list[str] = []
        restart_at = messages * 2 // 5
        seq = 0
        deadline = time.monotonic() + timeout_s

        def chaos_tick() -> None:
            nonlocal last_kill, kills
            if time.monotonic() - last_kill >= kill_every_s * rng.uniform(0.6, 1.4):
                victim = rng.randrange(len(procs))
                procs[victim].kill()
                procs[victim].close()
                procs[victim] = spawn()
                kills += 1
                last_kill = time.monotonic()

        while seq < messages:
            size = min(batch, messages - seq)
            msgs = [pn.Message("ioc.enrichment.request", {"seq": s, "ioc": f"203.0.113.{s % 250}"},
                               priority=rng.choice(["HIGH", "NORMAL", "LOW"]), dedup_key=f"s{s}")
                    for s in range(seq, seq + size)]
            try:
                published += mq.publish_batch(queue, msgs)
                seq += size
            except (pn.PublishError, pn.QueueFullError):
                retries += 1  # unconfirmed: publish the same batch again (dedup keys)
                pace(0.05)
            if restarts == 0 and seq >= restart_at:
                server.restart()
                restarts += 1
            chaos_tick()
        ids = set(published)
        while time.monotonic() < deadline:
            chaos_tick()
            done, dead = _done(mq, prefix, queue)
            if ids <= done | dead:
                break
            pace(0.05)
        for p in procs:
            p.close()
        done_tags = [t.decode() for t in server.client().lrange(f"{prefix}:done", 0, -1)]
        done, dead = _done(mq, prefix, queue)
        unique = {t.split(":")[0] for t in done_tags} & ids
        return ChaosReport(
            published=len(ids), handled=len(unique), lost=len(ids - done - dead),
            duplicates=len([t for t in done_tags if t.split(":")[0] in ids]) - len(unique),
            dead_lettered=len(dead & ids), worker_kills=kills, redis_restarts=restarts,
            publish_retries=retries, elapsed_s=round(time.monotonic() - started, 1))
    finally:
        for p in procs:
            p.close()
        server.close()


def _done(mq: pn.MessageQueue, prefix: str, queue: str) -> tuple[set[str], set[str]]:
    try:
        done = {t.decode().split(":")[0] for t in mq.client.lrange(f"{prefix}:done", 0, -1)}
        dead = {mq.codec.open(e[b"m"]).id
                for _, e in mq.client.xrange(mq.queue_keys(queue).dlq)}
        return done, dead
    except Exception:  # noqa: BLE001 - Redis may be restarting; ask again
        return set(), set()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: run, print the figures, exit 1 if anything was lost."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kill-every", type=float, default=0.5)
    args = parser.parse_args(argv)
    report = run_chaos(args.messages, args.workers, args.kill_every)
    for name, value in asdict(report).items():
        print(f"{name:>16}: {value}")
    return 1 if report.lost else 0


if __name__ == "__main__":
    sys.exit(main())
