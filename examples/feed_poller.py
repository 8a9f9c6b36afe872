"""An asyncio feed poller: fetch indicator feeds over HTTP with aiohttp, queue what is new.

    python -m examples.feed_poller https://feeds.example/iocs.txt --every 300

Each round fetches every feed (plain text or CSV: indicators are extracted from the text,
defanged ones included), and publishes one ``ioc.enrichment.request`` per indicator with
``publish_stream`` (batches sealed while the previous one is on the wire). The dedup key
is the indicator, so on a queue with deduplication enabled a feed that repeats itself within
the window queues each indicator once. A feed that fails (HTTP error, timeout) is logged and
retried next round; the others go on.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import aiohttp

import phantom_notebook as pn
from phantom_notebook.intel import CATALOG, extract_iocs
from phantom_notebook.intel.producers import ioc_payload

log = logging.getLogger("feed_poller")
REQUEST_TYPE = "ioc.enrichment.request"


@dataclass
class RoundReport:
    """What one polling round did."""

    fetched: dict[str, int] = field(default_factory=dict)  # feed -> indicators found
    failed: dict[str, str] = field(default_factory=dict)  # feed -> why
    message_ids: list[str] = field(default_factory=list)


async def _requests(session: aiohttp.ClientSession, feeds: Sequence[str], tlp: str,
                    report: RoundReport) -> AsyncIterator[pn.Message]:
    spec = CATALOG.get(REQUEST_TYPE)
    for url in feeds:
        try:
            async with session.get(url) as response:
                response.raise_for_status()
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            report.failed[url] = f"{type(exc).__name__}: {exc}"
            log.warning("feed %s failed: %s", url, exc)
            continue
        iocs = extract_iocs(text, tlp=tlp, source=url)
        report.fetched[url] = len(iocs)
        for ioc in iocs:
            payload = CATALOG.validate_outgoing(REQUEST_TYPE, {"ioc": ioc_payload(ioc),
                                                               "requested_by": "feed-poller"})
            yield pn.Message(REQUEST_TYPE, payload, priority=spec.priority, tlp=tlp,
                             dedup_key=f"ioc:{ioc.type}:{ioc.value}")


async def poll_once(mq: pn.aio.AsyncMessageQueue, session: aiohttp.ClientSession,
                    feeds: Sequence[str], queue: str = "ioc-processing",
                    tlp: str = "AMBER") -> RoundReport:
    """Fetch every feed once and queue its indicators; returns what happened."""
    report = RoundReport()
    report.message_ids = await mq.publish_stream(queue, _requests(session, feeds, tlp, report),
                                                 batch_size=200)
    return report


async def poll(mq: pn.aio.AsyncMessageQueue, feeds: Sequence[str], *, every_s: float,
               rounds: int | None = None, queue: str = "ioc-processing",
               tlp: str = "AMBER", timeout_s: float = 30.0) -> list[RoundReport]:
    """Poll ``feeds`` every ``every_s`` seconds (``rounds`` times; None: until cancelled)."""
    reports: list[RoundReport] = []
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while rounds is None or len(reports) < rounds:
            report = await poll_once(mq, session, feeds, queue, tlp)
            reports.append(report)
            log.info("round %d: %s found, %d queued, %d feed(s) failed", len(reports),
                     report.fetched, len(report.message_ids), len(report.failed))
            if rounds is None or len(reports) < rounds:
                await asyncio.sleep(every_s)  # the polling interval
    return reports


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("feeds", nargs="+", help="feed URLs (text or CSV)")
    parser.add_argument("--every", type=float, default=300.0, help="seconds between rounds")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--queue", default="ioc-processing")
    parser.add_argument("--tlp", default="AMBER")
    parser.add_argument("--redis-url", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    async with await pn.aio.connect(args.redis_url) as mq:
        await poll(mq, args.feeds, every_s=args.every, rounds=args.rounds, queue=args.queue,
                   tlp=args.tlp)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
