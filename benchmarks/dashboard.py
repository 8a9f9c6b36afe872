"""The dashboard on a big fleet: first paint in a real browser, and what a refresh costs.

``python -m benchmarks.dashboard [--queues 20] [--messages 1000000] [--visits 3]``

Loads ``--messages`` real messages (sealed the way the library stores them, through
``publish_batch``) spread over ``--queues`` queues on a redis-server of our own, plus
dead letters and a worker heartbeat; then

1. **refresh cost**: one ``DashboardModel.refresh()`` (after the first, which reads the
   whole chart window) in Redis commands (``INFO commandstats``) and milliseconds, on the
   big fleet and on the same queues with 10 messages each: the counts must be equal
   (nothing O(queue length));
2. **first paint**: ``phantom-notebook dashboard`` started as a user would, then a fresh
   Chromium context per visit (no cache) opens the page; time from navigation to the
   tiles, and to the first live refresh after it.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import phantom_notebook as pn  # noqa: E402
from phantom_notebook.core.testing import wait_until  # noqa: E402
from phantom_notebook.notebook.dashboard import DashboardModel  # noqa: E402
from tests.support.redis_server import RedisServer, free_port  # noqa: E402

CHROMIUM = os.environ.get("PN_CHROMIUM", "/usr/bin/chromium")


def load(mq: pn.MessageQueue, queues: int, messages: int) -> list[str]:
    names = [f"ioc-feed-{i:02d}" for i in range(queues)]
    for name in names:
        mq.declare(name)
    per = messages // queues
    started = time.perf_counter()
    for name in names:
        for start in range(0, per, 2000):
            mq.publish_batch(name, [pn.Message("ioc.enrichment.request",
                                               {"ioc": {"value": f"198.51.100.{i % 250}"},
                                                "n": i}, priority=("HIGH", "NORMAL")[i % 2])
                                    for i in range(start, min(start + 2000, per))])
    print(f"loaded {per * queues:,} messages into {queues} queues in "
          f"{time.perf_counter() - started:.1f} s")
    return names


def commands(client: Any) -> dict[str, int]:
    return {k.removeprefix("cmdstat_"): int(v["calls"])
            for k, v in client.info("commandstats").items()}


def refresh_cost(mq: pn.MessageQueue, client: Any) -> tuple[int, dict[str, int], float]:
    model = DashboardModel(mq, health_every_s=3600)
    model.refresh()
    before = commands(client)
    started = time.perf_counter()
    model.refresh()
    ms = (time.perf_counter() - started) * 1000
    after = commands(client)
    delta = {k: n - before.get(k, 0) for k, n in after.items()
             if n - before.get(k, 0) and k not in ("info",)}
    return sum(delta.values()), delta, ms


def serve(url: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port, token = free_port(), secrets.token_urlsafe(24)
    log = Path(f"/tmp/pn-bench-dashboard-{port}.log")
    env = {**os.environ, "PHANTOM_DASHBOARD_TOKEN": token, "PYTHONPATH": str(ROOT)}
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "phantom_notebook.cli", "dashboard",
                                    "--redis-url", url, "--port", str(port)], env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    page = f"http://127.0.0.1:{port}/?token={token}"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(page, timeout=2):
                pass
        except OSError:
            return False
        return "filled with 1 kernel" in log.read_text()

    if not wait_until(ready, 120, interval_s=0.25):
        raise RuntimeError(log.read_text()[-2000:])
    return process, page, log


def first_paints(page_url: str, log: Path, visits: int) -> list[tuple[float, float]]:
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        for _ in range(visits):
            filled = log.read_text().count("filled with 1 kernel")
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            started = time.perf_counter()
            page.goto(page_url)
            page.wait_for_selector("[data-tile=waiting]", timeout=60_000)
            tiles = time.perf_counter() - started
            first = page.locator("[data-updated]").get_attribute("data-updated")
            page.wait_for_function(
                f"() => parseFloat(document.querySelector('[data-updated]').getAttribute("
                f"'data-updated')) > {first}", timeout=30_000)
            live = time.perf_counter() - started
            out.append((tiles, live))
            page.close(run_before_unload=True)
            context.close()
            wait_until(lambda f=filled: log.read_text().count("filled with 1 kernel") > f, 60,
                       interval_s=0.25)  # the pool has a pre-heated kernel again
        browser.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dashboard")
    parser.add_argument("--queues", type=int, default=20)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--visits", type=int, default=3)
    args = parser.parse_args(argv)
    server = RedisServer().start()
    client = server.client()
    try:
        mq = pn.connect(server.url, settings=pn.Settings())
        names = load(mq, args.queues, 10 * args.queues)
        small_n, small, small_ms = refresh_cost(mq, client)
        client.flushall()
        mq = pn.connect(server.url, settings=pn.Settings())
        load(mq, args.queues, args.messages)
        big_n, big, big_ms = refresh_cost(mq, client)
        print(f"refresh, {args.queues} queues x 10 messages: {small_n} commands, "
              f"{small_ms:.1f} ms")
        print(f"refresh, {args.messages:,} messages:          {big_n} commands, "
              f"{big_ms:.1f} ms  ({', '.join(f'{k} {v}' for k, v in sorted(big.items()))})")
        differ = {k: (small.get(k, 0), big.get(k, 0)) for k in set(small) | set(big)
                  if small.get(k, 0) != big.get(k, 0)}
        print(f"commands that differ with depth (small, big): {differ or 'none'}")
        print(f"redis used_memory {int(client.info('memory')['used_memory']) / 2**20:,.0f} MiB")
        process, page_url, log = serve(server.url)
        try:
            paints = first_paints(page_url, log, args.visits)
        finally:
            process.terminate()
            process.wait(20)
        for i, (tiles, live) in enumerate(paints, 1):
            print(f"visit {i}: tiles painted {tiles:.2f} s, first live refresh {live:.2f} s")
        best = sorted(t for t, _ in paints)
        print(f"first paint median {best[len(best) // 2]:.2f} s over {len(paints)} cold visits "
              f"({names[0]}..{names[-1]})")
    finally:
        client.close()
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
