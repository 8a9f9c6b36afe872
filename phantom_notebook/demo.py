"""``phantom-notebook demo``: the IOC enrichment pipeline end to end, on every queue kind.

The pipeline of ``notebooks/ioc_enrichment_pipeline.ipynb``, at volume:

- ``ioc-processing`` (priority): ``ioc.enrichment.request`` for IOC-like values (documentation
  addresses, ``*.example.*`` hosts, URLs, hashes, e-mails, CVE ids) and the IOCs extracted from
  a sample threat report, in catalog-validated batches with mixed priorities; ~1 % malformed
  ones, published raw, are dead-lettered as ``schema_invalid``.  ``IOCEnrichmentConsumer`` runs
  the built-in enrichers and a provider that times out (``Retry``) on the first attempt for
  ~2 % of values; results go to ``ioc-results``.
- ``scheduled-enrichment`` (delayed): re-check requests due 50-1000 ms later, same consumer.
- ``threat-analysis`` (fifo): ``ThreatAnalysisConsumer`` scores each result (to
  ``threat-results``) and raises a critical alert for the worst.
- ``alerts`` (broadcast): group ``soc`` distributes them (JSON-lines file, and live
  notifications on ``alerts-live``); group ``incident-response`` records them.
- ``alerts-live`` (pub/sub): a live subscriber; not durable, nothing stored or retried.

Published, dead-lettered and retried come from the queue metrics in Redis (what the fleet
view shows); consumed and latencies from a wrapper around every handler, cross-checked.

Then ``score_report`` fans out and in (``intel.pipeline``): every indicator of the sample
report is asked of all four enricher queues at once (``enrich-network``,
``enrich-reputation``, ``enrich-malware``, ``enrich-relationships``: one ``mq.group`` per
indicator), and the group's callback on ``threat-analysis`` scores it once from all the
answers: one verdict per indicator.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from .core import Envelope, MessageContext, MessageQueue, Reject, Retry, RetrySettings
from .core.consume.pubsub import PubSubLane
from .core.consume.subscription import Subscription
from .core.consume.worker import Worker
from .core.observe.metrics import MetricsStore, merge
from .core.queues import wait_until
from .intel import (
    CATALOG,
    IOC,
    AlertDistributionConsumer,
    IOCEnrichmentConsumer,
    IOCMessageProducer,
    JsonlFileSink,
    ThreatAnalysisConsumer,
    extract_iocs,
)
from .intel.consumers import default_enrichers, sample_feeds
from .intel.pipeline import ScoringStatus, Verdict, enrich_and_score, subscribe_scoring
from .intel.schemas import IOCData

#: the demo's queues in pipeline order, with their kind (None: as declared, default priority)
QUEUES: dict[str, str | None] = {
    "ioc-processing": "priority", "scheduled-enrichment": "delayed", "ioc-results": None,
    "threat-analysis": "fifo", "threat-results": None, "alerts": "broadcast",
    "alerts-live": "pubsub"}
BROADCAST_GROUPS = ("soc", "incident-response")
SAMPLE_REPORT = """Incident 2024-117 (TLP:AMBER). The loader beacons to 203.0.113[.]77 on 8080 and
to login-verify[.]example[.]org; the second stage comes from hxxp://203.0.113[.]45/bins/mozi.m.
Payload SHA256 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8. Phishing from
billing[@]invoices-example[.]com exploits CVE-2024-3400; patient zero was 10.20.30.40."""
_WORDS = ("login-verify", "secure-update", "cdn-files", "invoice-portal", "mail-auth", "sso",
          "vpn-gateway", "drive-share", "pay-confirm", "account-recovery", "telemetry")
_PATHS = ("/gate.php", "/wp-admin/css/x.php", "/bins/mozi.m", "/office/invoice.docm",
          "/download/setup.exe", "/auth/login", "/api/v2/beacon")
_KINDS = ("ipv4",) * 5 + ("domain",) * 5 + ("url",) * 4 + ("sha256",) * 3 + \
    ("email",) * 2 + ("ipv6", "md5", "cve", "cidr")
_ATTEMPT: contextvars.ContextVar[int] = contextvars.ContextVar("demo_attempt", default=1)


@dataclass
class QueueResult:
    """What happened on one queue during the demo (broadcast: summed over both groups)."""

    queue: str
    kind: str
    published: int = 0
    consumed: int = 0
    dead_lettered: int = 0
    retried: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def percentile(self, q: float) -> float | None:
        """The ``q`` percentile (0-100) of publish -> handled latency, in ms."""
        if not self.latencies_ms:
            return None
        values = sorted(self.latencies_ms)
        return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


@dataclass
class DemoSummary:
    """What the pipeline produced, beyond the per-queue counts."""

    enriched: int = 0
    risk_levels: dict[str, int] = field(default_factory=dict)
    alerts: dict[str, int] = field(default_factory=dict)  # per broadcast group, and "live"
    alerts_file: Path | None = None
    dead_reasons: dict[str, int] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)  # metrics vs. recorders


class DemoRun(list[QueueResult]):
    """The per-queue results (a list, as before) with the pipeline's ``summary``."""

    summary: DemoSummary


class FlakyProvider:
    """A stand-in for a remote intel API that times out on the first try for ~2 % of values."""

    name = "intel-api"
    option: str | None = None

    def supports(self, ioc: IOC) -> bool:
        """Every type."""
        return True

    def enrich(self, ioc: IOC, request: Any) -> Mapping[str, Any]:
        """Raise ``Retry`` on a flaky value's first attempt; otherwise a lookup record."""
        attempt = _ATTEMPT.get()
        if sum(ioc.value.encode()) % 50 == 7 and attempt == 1:  # ~2 %, the same every run
            raise Retry("intel-api: provider timed out after 5 s (demo)", delay_s=0.05)
        return {"provider": "intel-api (demo)", "lookups": attempt, "known": False}


class LiveAlertSink:
    """An alert sink that forwards each alert to the ``alerts-live`` pub/sub queue."""

    name = "live"

    def __init__(self, mq: MessageQueue, queue: str = "alerts-live") -> None:
        self.mq, self.queue, self.sent = mq, queue, 0
        self._lock = threading.Lock()

    def send(self, alert: Mapping[str, Any]) -> None:
        """Publish the alert document live (reaches whoever is subscribed now)."""
        self.mq.publish(self.queue, str(alert["type"]), dict(alert), priority="CRITICAL")
        with self._lock:
            self.sent += 1


class _Tally:
    """Thread-safe per-queue outcomes, latencies and collected payloads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # per queue: handled OK, rejected, failed (retried); per reason, group, risk level
        self.ok, self.dead, self.retried = Counter[str](), Counter[str](), Counter[str]()
        self.reasons, self.groups, self.levels = Counter[str](), Counter[str](), Counter[str]()
        self.latencies: dict[str, list[float]] = {q: [] for q in QUEUES}


class _Measured:
    """Wraps a handler: records its outcome and publish -> handled latency per queue."""

    def __init__(self, tally: _Tally, queue: str, handler: Any, group: str = "") -> None:
        self.tally, self.queue, self.group = tally, queue, group
        self.call = handler.handle if hasattr(handler, "handle") else handler

    def handle(self, message: Envelope, context: MessageContext) -> None:
        token = _ATTEMPT.set(context.attempt)
        t = self.tally
        try:
            self.call(message, context)
        except Reject as exc:
            with t.lock:
                t.dead[self.queue] += 1
                t.reasons[exc.reason] += 1
            raise
        except Exception:
            with t.lock:
                t.retried[self.queue] += 1
            raise
        finally:
            _ATTEMPT.reset(token)
        done = time.time() * 1000
        with t.lock:
            t.ok[self.queue] += 1
            t.latencies[self.queue].append(done - message.created_at_ms)
            if self.group:
                t.groups[self.group] += 1
            if message.type == "threat.analysis.result":
                t.levels[str(message.payload.get("risk_level"))] += 1


def _collect(message: Envelope, context: MessageContext) -> None:
    """Results collector and incident-response recorder (``_Measured`` does the recording)."""


def _indicator(rng: random.Random, kind: str) -> str:
    net = rng.choice(("192.0.2", "198.51.100", "203.0.113"))
    tld = rng.choice(("com", "org", "net"))
    host = f"{rng.choice(_WORDS)}-{rng.randrange(10**4):04d}.example.{tld}"
    return {
        "ipv4": lambda: f"{net}.{rng.randrange(1, 255)}",
        "ipv6": lambda: f"2001:db8:{rng.randrange(1, 0xffff):x}::{rng.randrange(1, 0xffff):x}",
        "cidr": lambda: f"{net}.{rng.choice((0, 64, 128))}/{rng.choice((26, 27))}",
        "domain": lambda: host if rng.random() < 0.7 else f"cdn.{host}",
        "url": lambda: f"{rng.choice(('http', 'https'))}://{host}{rng.choice(_PATHS)}",
        "sha256": lambda: f"{rng.getrandbits(256):064x}",
        "md5": lambda: f"{rng.getrandbits(128):032x}",
        "email": lambda: f"{rng.choice(('billing', 'hr', 'payroll'))}{rng.randrange(99)}@{host}",
        "cve": lambda: f"CVE-{rng.randrange(2017, 2026)}-{rng.randrange(1000, 49999)}",
    }[kind]()


def _ioc(rng: random.Random, value: str, listed: bool = False) -> dict[str, Any]:
    return {"value": value, "tlp": rng.choice(("AMBER",) * 6 + ("GREEN", "GREEN", "RED", "CLEAR")),
            "confidence": rng.randrange(70, 96) if listed else rng.randrange(20, 91),
            "source": rng.choice(("osint-feed", "partner-isac", "honeypot", "sandbox")),
            "tags": ["demo"]}


def _requests(rng: random.Random, n: int) -> list[tuple[dict[str, Any], str]]:
    """``n`` (request payload, priority): threat reports, then bulk feed lines.

    The IOCs of one report (the sample first, then made-up ones of 6-12) name each other in
    ``related``; feed lines are looked up on their own (no relationships), ~3 % of them
    values the sample reputation feeds list.
    """
    listed = [e.value for feed in sample_feeds() for e in feed.entries]
    reports = [[_ioc(rng, i.value, True) for i in extract_iocs(SAMPLE_REPORT)]]
    while sum(map(len, reports)) < n * 0.4:
        reports.append([_ioc(rng, _indicator(rng, rng.choice(_KINDS)))
                        for _ in range(rng.randrange(6, 13))])
    out = []
    for number, report in enumerate(reports):
        keys = [IOCData.model_validate(data).key for data in report]
        priority = "CRITICAL" if number == 0 else rng.choice(("HIGH", "NORMAL"))
        out += [({"ioc": data, "report_id": f"report-{number:04d}", "related": [
            k for k in keys if k != key]}, priority) for data, key in zip(report, keys,
                                                                       strict=True)]
    while len(out) < n:
        hot = rng.random() < 0.03
        value = rng.choice(listed) if hot else _indicator(rng, rng.choice(_KINDS))
        out.append(({"ioc": _ioc(rng, value, hot), "options": {"include_relationships": False}},
                    "HIGH" if hot else rng.choice(("NORMAL", "NORMAL", "LOW"))))
    return out


_MALFORMED: tuple[dict[str, Any], ...] = (  # octet > 255, confidence > 100, TLP, empty
    {"value": "999.1.1.1", "type": "ipv4"}, {"value": "203.0.113.5", "confidence": 140},
    {"value": "login-verify.example.org", "tlp": "PURPLE"}, {"value": ""})


def run_demo(mq: MessageQueue, total: int = 3000, seed: int = 7, timeout_s: float = 60.0,
             *, alerts_dir: str | Path | None = None) -> tuple[DemoRun, float]:
    """Run the IOC pipeline until ~``total`` messages crossed its queues; return the results.

    A quarter of ``total`` are analysts' requests (89 % enrichment, 1 % malformed, 10 % delayed
    re-checks); each makes ~3 more down the pipeline (result, analysis request and result;
    alerts for the worst).  Returns the per-queue results (a list carrying ``.summary``) and
    the seconds it took.  Alerts are written to ``alerts_dir`` (default: a new temporary
    directory).  Same shape for a ``seed``; ``TimeoutError`` if not drained in ``timeout_s``.
    """
    retry = RetrySettings(max_retries=2, initial_delay_s=0.05, jitter=0.0)
    kinds = {q: mq.declare(q, kind=k, retry=retry).kind for q, k in QUEUES.items()}
    folder = Path(alerts_dir) if alerts_dir else Path(tempfile.mkdtemp(prefix="phantom-demo-"))
    tally, live = _Tally(), LiveAlertSink(mq)
    store = MetricsStore(mq)
    since = time.time() - 1  # the metric buckets of the run: this one and every later one
    before = _counters(store, since, {})
    started = time.perf_counter()
    quiet = _QuietRejections()
    logging.getLogger("phantom_notebook.intel").addFilter(quiet)
    worker = Worker(mq, _subscribe(mq, tally, live, folder / "alerts.jsonl"), poll_ms=20).start()
    try:
        for lane in worker.lanes:
            if isinstance(lane, PubSubLane):
                lane.wait_ready()
        _publish_all(mq, random.Random(seed), total)
        seen: list[dict[str, dict[str, int]]] = []

        def settled() -> bool:  # counts unchanged since the last look, and every queue empty
            now = _counters(store, since, before)
            stable = bool(seen) and seen[-1] == now
            seen.append(now)
            return stable and _drained(mq, now, tally, live)

        finished = wait_until(settled, timeout_s, interval_s=0.05)
    finally:
        worker.stop(grace_s=5)
        logging.getLogger("phantom_notebook.intel").removeFilter(quiet)
    if not finished:
        raise TimeoutError(f"the demo did not drain its queues within {timeout_s} s")
    elapsed = time.perf_counter() - started
    return _results(kinds, seen[-1], tally, live, folder / "alerts.jsonl"), elapsed


def score_report(mq: MessageQueue, text: str = SAMPLE_REPORT, *, timeout_s: float = 30.0,
                 progress: bool | Callable[[ScoringStatus], None] = False) -> list[Verdict]:
    """Fan out, fan in: ask every enricher queue about each indicator of ``text`` (the
    sample report by default) at once, and score each from all their answers.

    Runs its own worker (a consumer per enricher queue, the analysis on
    ``threat-analysis``; no alerts) until every indicator has its verdict, in report
    order. ``progress``: a callable given each ``ScoringStatus`` (or True for a bar).
    """
    iocs = extract_iocs(text, tlp="AMBER", source="demo-report")
    worker = Worker(mq, subscribe_scoring(mq, alert_threshold=None, max_concurrency=4),
                    poll_ms=20).start()
    try:
        run = enrich_and_score(mq, iocs, min_success=3, report_id="incident-2024-117",
                               requested_by="demo-analyst")
        return run.wait(timeout_s, progress=progress)
    finally:
        worker.stop(grace_s=5)


class _QuietRejections(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:  # the demo rejects some on purpose
        return not str(record.msg).startswith("rejecting ")


def _subscribe(mq: MessageQueue, tally: _Tally, live: LiveAlertSink,
               alerts_file: Path) -> list[Subscription]:
    """The pipeline's consumers, each wrapped to measure it."""
    enrich = IOCEnrichmentConsumer(mq, [*default_enrichers(mq), FlakyProvider()],
                                   analysis_queue="threat-analysis", origin="demo-enrichment")
    analyse = ThreatAnalysisConsumer(mq, origin="demo-analysis")  # alerts at risk >= 75
    soc = AlertDistributionConsumer(mq, [JsonlFileSink(alerts_file, name="jsonl"), live],
                                    origin="demo-soc")
    pool = {"prefetch_count": 100, "max_concurrency": 4}
    return [  # threat-analysis: one at a time, so FIFO order holds
        *(mq.subscribe(q, "ioc.*", _Measured(tally, q, enrich), **pool)
          for q in ("ioc-processing", "scheduled-enrichment")),
        mq.subscribe("threat-analysis", "threat.*", _Measured(tally, "threat-analysis", analyse)),
        *(mq.subscribe(q, "*", _Measured(tally, q, _collect))
          for q in ("ioc-results", "threat-results", "alerts-live")),
        mq.subscribe("alerts", "alert.*", _Measured(tally, "alerts", soc, "soc"), group="soc"),
        mq.subscribe("alerts", "alert.*", _Measured(tally, "alerts", _collect, "incident-response"),
                     group="incident-response")]


def _publish_all(mq: MessageQueue, rng: random.Random, total: int) -> None:
    """The analysts' side: validated batches, malformed raw publishes, delayed re-checks."""
    producer = IOCMessageProducer(mq, origin="demo-analyst")
    analyst = max(total // 4, 40)
    n_malformed, n_recheck = max(analyst // 100, 2), max(analyst // 10, 1)
    requests = _requests(rng, analyst - n_malformed - n_recheck)
    bad_at = sorted(rng.sample(range(len(requests)), n_malformed - 1))
    raw_options = CATALOG.publish_options("ioc.enrichment.request")
    for start in range(0, len(requests), 500):
        batch = [producer.message("ioc.enrichment.request", payload, priority=priority)
                 for payload, priority in requests[start:start + 500]]
        producer.publish_batch("ioc-processing", batch, progress=False)
        for i in (b for b in bad_at if start <= b < start + 500):  # raw: nothing validates
            ioc = {**_MALFORMED[i % len(_MALFORMED)], "source": "partner-isac"}
            mq.publish("ioc-processing", "ioc.enrichment.request", {"ioc": ioc},
                       priority="NORMAL", **raw_options)
    recheck = [dataclasses.replace(producer.message("ioc.enrichment.request", {
        "ioc": payload["ioc"], "requested_by": "demo-scheduler",
        "options": {"include_relationships": False}}, priority="NORMAL"),
        delay=timedelta(milliseconds=rng.randrange(50, 1000)))
        for payload, _ in rng.sample(requests, min(n_recheck, len(requests)))]
    producer.publish_batch("scheduled-enrichment", recheck, progress=False)
    mq.publish("scheduled-enrichment", "ioc.enrichment.request",
               {"ioc": {**_MALFORMED[0], "source": "partner-isac"}}, delay=0.2, **raw_options)


def _counters(store: MetricsStore, since: float, before: dict[str, dict[str, int]],
              ) -> dict[str, dict[str, int]]:
    """Metric counters per queue from ``since`` on, minus ``before`` (what was there)."""
    out = {}
    for queue in QUEUES:
        now = merge(store.read(queue, since, time.time()), queue).counters
        old = before.get(queue, {})
        out[queue] = {k: now.get(k, 0) - old.get(k, 0)
                      for k in ("published", "acked", "retried", "dead_lettered")}
    return out


def _drained(mq: MessageQueue, counts: dict[str, dict[str, int]], tally: _Tally,
             live: LiveAlertSink) -> bool:
    """Every durable queue empty with nothing in flight, every message accounted for."""
    durable = [q for q in QUEUES if q != "alerts-live"]
    if any(row.depth for row in mq.stats(durable)):
        return False
    for q in durable:
        c, fan_out = counts[q], len(BROADCAST_GROUPS) if q == "alerts" else 1
        if c["published"] * fan_out != c["acked"] + c["dead_lettered"]:
            return False
    with tally.lock:
        return tally.ok["alerts-live"] == live.sent


def _results(kinds: Mapping[str, str], counts: dict[str, dict[str, int]], tally: _Tally,
             live: LiveAlertSink, alerts_file: Path) -> DemoRun:
    """Per-queue rows (metrics for published/dead/retried, handlers for consumed/latency)."""
    run = DemoRun()
    summary = DemoSummary(alerts_file=alerts_file)
    for queue, kind in kinds.items():
        c = counts[queue]
        row = QueueResult(queue, kind, c["published"], tally.ok[queue], c["dead_lettered"],
                          c["retried"], list(tally.latencies[queue]))
        if kind == "pubsub":  # nothing is stored: the sink and the subscriber are the record
            row.published = live.sent
        elif (tally.ok[queue], tally.dead[queue], tally.retried[queue]) != \
                (c["acked"], c["dead_lettered"], c["retried"]):
            summary.mismatches.append(
                f"{queue}: metrics acked/dead/retried {c['acked']}/{c['dead_lettered']}/"
                f"{c['retried']}, handlers {tally.ok[queue]}/{tally.dead[queue]}/"
                f"{tally.retried[queue]}")
        run.append(row)
    summary.enriched = tally.ok["ioc-results"]
    summary.risk_levels = {level: tally.levels[level]
                           for level in ("critical", "high", "medium", "low")}
    summary.alerts = {**{g: tally.groups[g] for g in BROADCAST_GROUPS},
                      "live subscriber": tally.ok["alerts-live"]}
    summary.dead_reasons = dict(tally.reasons)
    run.summary = summary
    return run


class DemoLoad:
    """A small continuous load on the demo pipeline, so a first look shows something alive.

    ``start_demo_load(mq)`` publishes ~``rate_per_s`` enrichment requests a second (about 1 %
    malformed, dead-lettered as ``schema_invalid``; a few delayed re-checks) and runs the
    pipeline's consumers in a worker of this process, until ``stop()``. For the embedded
    Redis of a notebook, a Binder session or ``phantom-notebook dashboard`` without a URL.
    """

    def __init__(self, mq: MessageQueue, rate_per_s: float = 10.0, seed: int = 7,
                 alerts_dir: str | Path | None = None) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"rate_per_s must be > 0, got {rate_per_s}")
        self.mq = mq
        self.rate_per_s = rate_per_s
        self.published = 0
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        folder = Path(alerts_dir) if alerts_dir else Path(tempfile.mkdtemp(prefix="pn-demo-"))
        retry = RetrySettings(max_retries=2, initial_delay_s=0.05, jitter=0.0)
        for queue, kind in QUEUES.items():
            mq.declare(queue, kind=kind, retry=retry)
        self.worker = Worker(mq, _subscribe(mq, _Tally(), LiveAlertSink(mq),
                                            folder / "alerts.jsonl"), poll_ms=50)
        self._thread = threading.Thread(target=self._run, name="pn-demo-load", daemon=True)

    def __repr__(self) -> str:
        state = "running" if self._thread.is_alive() else "stopped"
        return f"DemoLoad({self.rate_per_s:g}/s, {self.published} published, {state})"

    def start(self) -> DemoLoad:
        """Start the worker and the publishing thread; returns self."""
        self.worker.start()
        self._thread.start()
        return self

    def stop(self, grace_s: float = 2.0) -> None:
        """Stop publishing and the worker."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(grace_s)
        self.worker.stop(grace_s=grace_s)

    def _run(self) -> None:
        quiet = _QuietRejections()
        logging.getLogger("phantom_notebook.intel").addFilter(quiet)
        producer = IOCMessageProducer(self.mq, origin="demo-analyst")
        raw_options = CATALOG.publish_options("ioc.enrichment.request")
        rounds = 0
        try:
            while not self._stop.is_set():
                rounds += 1
                try:
                    self._round(producer, raw_options, rounds)
                except Exception as exc:  # noqa: BLE001 - a demo load must not die silently
                    logging.getLogger(__name__).warning("demo load: %s", exc)
                self._stop.wait(1.0)
        finally:
            logging.getLogger("phantom_notebook.intel").removeFilter(quiet)

    def _round(self, producer: IOCMessageProducer, raw_options: Mapping[str, Any],
               rounds: int) -> None:
        """One second of load: requests, a delayed re-check, now and then a malformed one."""
        n = max(int(self.rate_per_s), 1)
        rng = self._rng
        requests = [({"ioc": _ioc(rng, _indicator(rng, rng.choice(_KINDS))),
                      "options": {"include_relationships": False}},
                     rng.choice(("HIGH", "NORMAL", "NORMAL", "LOW"))) for _ in range(n)]
        batch = [producer.message("ioc.enrichment.request", payload, priority=priority)
                 for payload, priority in requests]
        producer.publish_batch("ioc-processing", batch, progress=False)
        recheck = requests[0][0]
        producer.publish_batch("scheduled-enrichment", [dataclasses.replace(
            producer.message("ioc.enrichment.request", {
                "ioc": recheck["ioc"], "requested_by": "demo-scheduler",
                "options": {"include_relationships": False}}, priority="NORMAL"),
            delay=timedelta(milliseconds=self._rng.randrange(200, 2000)))], progress=False)
        if rounds % 10 == 0:  # ~1 % malformed, published raw: dead-lettered schema_invalid
            ioc = {**_MALFORMED[rounds // 10 % len(_MALFORMED)], "source": "partner-isac"}
            self.mq.publish("ioc-processing", "ioc.enrichment.request", {"ioc": ioc},
                            **raw_options)
        self.published += n + 1


def start_demo_load(mq: MessageQueue, rate_per_s: float = 10.0, seed: int = 7) -> DemoLoad:
    """Start a ``DemoLoad`` on ``mq`` (see there); ``stop()`` it when done."""
    return DemoLoad(mq, rate_per_s, seed).start()
