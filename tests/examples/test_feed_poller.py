"""examples/feed_poller.py against a real redis-server and a real HTTP feed server on a
loopback port: indicators are queued once however often the feed repeats them, and a
failing feed does not stop the others."""

from __future__ import annotations

from typing import Any

from aiohttp import web

import phantom_notebook as pn
from examples.feed_poller import poll
from tests.support.aio import run_async

FEED = """# daily blocklist
hxxp://login-verify[.]top/owa/ 203.0.113.77
malware-drop[.]xyz,44d88612fea8a8f36de82e1278abb02f
"""


async def _serve() -> tuple[web.AppRunner, str]:
    app = web.Application()
    async def feed(request: web.Request) -> web.Response:
        return web.Response(text=FEED)

    app.router.add_get("/iocs.txt", feed)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def test_two_rounds_of_one_feed_queue_each_indicator_once_and_a_404_feed_is_reported(
        redis_url: str, prefix: str) -> None:
    async def scenario() -> tuple[list[Any], int]:
        runner, base = await _serve()
        try:
            async with await pn.aio.connect(redis_url, key_prefix=prefix,
                                            settings=pn.Settings()) as mq:
                await mq.declare("ioc-processing", enable_deduplication=True)
                reports = await poll(mq, [f"{base}/iocs.txt", f"{base}/missing.txt"],
                                     every_s=0.01, rounds=2)
                depth = (await mq.stats("ioc-processing"))[0].ready
        finally:
            await runner.cleanup()
        return reports, depth

    reports, depth = run_async(scenario())
    first, second = reports
    assert first.fetched[next(iter(first.fetched))] == 4  # domain, IP, domain, MD5 hash
    assert len(first.message_ids) == 4 and depth == 4
    assert second.message_ids == first.message_ids  # duplicates: the first ids, nothing new
    assert list(first.failed) == [u for u in first.failed if u.endswith("/missing.txt")]
    assert "404" in next(iter(first.failed.values()))
