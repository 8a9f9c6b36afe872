"""Fan-out/fan-in scoring: every enricher asked at once, ONE risk score per indicator.

::

    subscribe_scoring(mq)                      # the workers' side: a consumer per queue
    with mq.worker():
        run = enrich_and_score(mq, ["203.0.113.77", "login-verify.example.org"],
                               report_id="incident-2024-117")
        verdicts = run.wait(timeout_s=60)      # a live bar: "scoring: 100% ... 2/2 done"
    [(v.ioc.value, v.risk_score, v.risk_level) for v in verdicts]

For each indicator ``enrich_and_score`` creates one ``mq.group``: a member
``ioc.enrichment.request`` for every enricher queue, and a ``threat.analysis.request``
callback on the analysis queue (the catalog's ``threat-analysis``).  Each enricher queue is
served by an ``IOCEnrichmentConsumer`` holding only its own enrichers, the way a SOC runs
its lookups as separate services: each has its own worker pool, rate limits and outages,
and a slow one holds up no other.  The shipped offline enrichers stand in for them:

======================  ==========================================  ============================
queue                   enrichers (offline)                         stands in for
======================  ==========================================  ============================
enrich-network          IP ranges (``IPEnricher``), host parts      GeoIP/ASN, WHOIS, passive DNS
                        (``DomainEnricher``)
enrich-reputation       the local abuse.ch-format feeds             abuse.ch, VirusTotal, a TIP
                        (``FeedReputation``)
enrich-malware          hash algorithm, known-benign digests        a sandbox, a malware archive
                        (``HashEnricher``)
enrich-relationships    co-occurrence sets in Redis                 a sightings graph
                        (``RelationshipEnricher``)
======================  ==========================================  ============================

(They map onto the request's ``include_geolocation`` / ``include_reputation`` /
``include_malware_analysis`` / ``include_relationships`` options.)  Each member *returns*
its ``ioc.enrichment.result``: that is the member's stored result.  The callback, a
``ThreatAnalysisConsumer``, reads them all in ``context.join``, merges them (``fan_in``) and
returns one ``threat.analysis.result``.  With ``min_success`` (default 1) an indicator is
still scored when some enricher queues failed, or had no worker before the group's
deadline: the breakdown's 0-point ``coverage`` line names what is missing, and
``Verdict.enrichers`` says how each queue answered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from phantom_notebook.core.consume.subscription import Subscription
from phantom_notebook.core.queues import MessageQueue
from phantom_notebook.core.results.codec import Result
from phantom_notebook.core.results.flows import GroupHandle, Task
from phantom_notebook.core.results.join import JoinState
from phantom_notebook.core.results.pending import BatchStatus, PendingResult, batch_status
from phantom_notebook.intel.catalog import CATALOG, Catalog
from phantom_notebook.intel.consumers.analysis import ThreatAnalysisConsumer
from phantom_notebook.intel.consumers.enrichers import (
    DomainEnricher,
    Enricher,
    HashEnricher,
    IPEnricher,
    RelationshipEnricher,
)
from phantom_notebook.intel.consumers.enrichment import IOCEnrichmentConsumer
from phantom_notebook.intel.consumers.feeds import FeedReputation, ReputationFeed
from phantom_notebook.intel.producers import IOCLike, TLPLike, ioc_payload, message_tlp
from phantom_notebook.intel.schemas import IOCData, IOCEnrichmentRequest, RiskFactor

__all__ = [
    "ANALYSIS_QUEUE",
    "ENRICHER_QUEUES",
    "ScoringRun",
    "ScoringStatus",
    "Verdict",
    "enrich_and_score",
    "enricher_queues",
    "subscribe_scoring",
]

ENRICHMENT_REQUEST = "ioc.enrichment.request"
ANALYSIS_REQUEST = "threat.analysis.request"
#: where the callbacks go by default: the catalog's queue for analysis requests
ANALYSIS_QUEUE = CATALOG.get(ANALYSIS_REQUEST).queue
#: the enricher queues ``enrich_and_score`` asks by default (see the module docstring)
ENRICHER_QUEUES = ("enrich-network", "enrich-reputation", "enrich-malware",
                   "enrich-relationships")
#: at most this many indicators of one report name each other in ``related`` explicitly
RELATE_EXPLICITLY = 50


def enricher_queues(mq: MessageQueue, feeds: Iterable[ReputationFeed] | None = None
                    ) -> dict[str, list[Enricher]]:
    """The enrichers each queue of ``ENRICHER_QUEUES`` runs (``feeds``: the reputation
    feeds, the shipped samples by default)."""
    return {"enrich-network": [IPEnricher(), DomainEnricher()],
            "enrich-reputation": [FeedReputation(feeds)],
            "enrich-malware": [HashEnricher()],
            "enrich-relationships": [RelationshipEnricher(mq)]}


def subscribe_scoring(mq: MessageQueue, enrichers: Mapping[str, Iterable[Enricher]] | None = None,
                      *, analysis_queue: str = ANALYSIS_QUEUE, alert_threshold: int | None = 75,
                      catalog: Catalog = CATALOG, **options: Any) -> list[Subscription]:
    """Subscribe one ``IOCEnrichmentConsumer`` per enricher queue and the
    ``ThreatAnalysisConsumer`` that scores the groups on ``analysis_queue``.

    ``enrichers`` maps each queue to its enrichers (default: ``enricher_queues(mq)``);
    ``options`` go to every ``mq.subscribe`` (``max_concurrency``, ``retry``...).  A
    deployment may just as well run each queue in its own worker processes.
    """
    table = enricher_queues(mq) if enrichers is None else enrichers
    subs: list[Subscription] = []
    for queue, chosen in table.items():
        consumer = IOCEnrichmentConsumer(mq, list(chosen), catalog=catalog,
                                         origin=f"scoring:{queue}")
        subs += consumer.subscribe(queue, **options)
    analysis = ThreatAnalysisConsumer(mq, alert_threshold=alert_threshold, catalog=catalog,
                                      origin="scoring:analysis")
    subs += analysis.subscribe(analysis_queue, **options)
    return subs


@dataclass(frozen=True)
class ScoringStatus:
    """Where a scoring run stands: its enrichment requests and its risk scores."""

    enrichment: BatchStatus
    scores: BatchStatus

    @property
    def fraction(self) -> float:
        """How far the whole run is, 0.0 .. 1.0: every enrichment request and every score
        counts one step (those still running by the progress their handlers reported)."""
        steps = self.enrichment.total + self.scores.total
        if not steps:
            return 1.0
        e, s = self.enrichment, self.scores
        done = e.done + e.failed + e.running + s.done + s.failed + s.running
        return min(done / steps, 1.0)

    def describe(self) -> str:
        """``"3/5 done · enrichment 18/20, 1 failed"``: scores first, then enrichment."""
        e = self.enrichment
        text = f"{self.scores.describe()} · enrichment {e.done + e.failed}/{e.total}"
        return text + (f", {e.failed} failed" if e.failed else "")


@dataclass(frozen=True)
class Verdict:
    """One indicator's fan-in: its risk score, or why it has none.

    ``enrichers`` maps each enricher queue to ``"ok"``, ``"failed: <why>"``, ``"timeout"``
    (no outcome before the group's deadline) or ``"pending"``.  ``message_id`` is the
    callback's: its trace holds the whole group (``TraceExplorer.show(message_id)``).
    """

    ioc: IOCData
    message_id: str
    ok: bool
    risk_score: int | None = None
    risk_level: str | None = None
    breakdown: tuple[RiskFactor, ...] = ()
    enrichers: dict[str, str] = field(default_factory=dict)
    error: str = ""
    tlp: str = "CLEAR"

    @property
    def answered(self) -> int:
        """How many enricher queues answered."""
        return sum(1 for state in self.enrichers.values() if state == "ok")

    def as_row(self) -> dict[str, Any]:
        """A flat row for tables: type, value (defanged), score, level, enrichers..."""
        missing = [q for q, state in self.enrichers.items() if state != "ok"]
        return {"type": self.ioc.ioc_type.value, "value": self.ioc.to_ioc().defanged,
                "tlp": self.tlp, "risk_score": self.risk_score,
                "risk_level": self.risk_level or "not scored",
                "enrichers": f"{self.answered}/{len(self.enrichers)}",
                "missing": ", ".join(missing) or None,
                "breakdown": "; ".join(f"{f.factor} {f.points:+d}" for f in self.breakdown)
                if self.ok else self.error}


class ScoringRun:
    """The groups of one ``enrich_and_score`` call, one per indicator, in order."""

    def __init__(self, mq: MessageQueue, iocs: list[IOCData], groups: list[GroupHandle],
                 queues: list[str]) -> None:
        self.mq = mq
        self.iocs = iocs
        self.groups = groups
        #: the enricher queues, in member order (member i of every group went to queues[i])
        self.queues = queues

    def __repr__(self) -> str:
        return (f"ScoringRun({len(self.groups)} indicators x {len(self.queues)} enricher "
                f"queues)")

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self) -> Iterator[GroupHandle]:
        return iter(self.groups)

    @property
    def callbacks(self) -> list[PendingResult]:
        """The risk-score requests (the groups' callbacks), one per indicator."""
        return [g.callback for g in self.groups]

    @property
    def members(self) -> list[PendingResult]:
        """Every enrichment request of the run."""
        return [m for g in self.groups for m in g.members]

    def status(self) -> ScoringStatus:
        """The run now (two pipelined round trips)."""
        return ScoringStatus(batch_status(self.mq, self.members),
                             batch_status(self.mq, self.callbacks))

    def wait(self, timeout_s: float | None = None, *,
             progress: bool | Callable[[ScoringStatus], None] = True) -> list[Verdict]:
        """Wait for every risk score (``mq.wait_all`` over the callbacks); one ``Verdict``
        per indicator, in order, failures included.

        ``progress``: a live bar (tqdm.auto: a widget in notebooks; none without tqdm) of
        the whole run, reading ``"3/5 done · enrichment 18/20, 1 failed"`` (risk scores,
        then the enrichment requests behind them); or a callable given each
        ``ScoringStatus``.  ``ResultTimeoutError`` after ``timeout_s``.
        """
        report = progress if callable(progress) else _ScoringBar.open(len(self)) \
            if progress else None
        members = self.members

        def relay(scores: BatchStatus) -> None:
            if report is not None:
                report(ScoringStatus(batch_status(self.mq, members), scores))

        try:
            results = self.mq.wait_all(self.callbacks, timeout_s,
                                       progress=relay if report is not None else False)
        finally:
            close = getattr(report, "close", None)
            if close is not None:
                close()
        return [self._verdict(i, g, r) for i, (g, r) in
                enumerate(zip(self.groups, results, strict=True))]

    def verdicts(self) -> list[Verdict]:
        """The verdicts now, without waiting (``ok`` False, error "pending" where the
        score is not in yet)."""
        return [self._verdict(i, g, g.callback.peek()) for i, g in enumerate(self.groups)]

    def records(self) -> list[dict[str, Any]]:
        """Every answer of the run as the catalog's dicts: each member's
        ``ioc.enrichment.result``, then each indicator's ``threat.analysis.result`` (for
        ``to_stix_bundle``, ``to_csv``... which merge what is about one indicator)."""
        enriched = [m.value for g in self.groups for m in g.state().members if m.ok]
        scored = [r.value for r in (g.callback.peek() for g in self.groups)
                  if r is not None and r.ok]
        return [*enriched, *scored]

    def _verdict(self, index: int, group: GroupHandle, result: Result | None) -> Verdict:
        ioc, cid = self.iocs[index], group.callback.id
        enrichers = _member_states(group.state(), self.queues)
        if result is None:
            return Verdict(ioc, cid, False, enrichers=enrichers, error="pending")
        if not result.ok:
            why = f"{result.reason}: {result.error}" if result.reason else result.error
            return Verdict(ioc, cid, False, enrichers=enrichers, error=why, tlp=result.tlp)
        value = result.value or {}
        return Verdict(ioc, cid, True, int(value["risk_score"]), str(value["risk_level"]),
                       tuple(RiskFactor.model_validate(f) for f in value["breakdown"]),
                       enrichers, tlp=result.tlp)


def _member_states(join: JoinState, queues: list[str]) -> dict[str, str]:
    states = {}
    for queue, member in zip(queues, join.members, strict=False):
        if member.ok:
            states[queue] = "ok"
        elif member.state == "timeout":
            states[queue] = "timeout"
        elif member.state:
            states[queue] = f"failed: {member.error}"
        else:
            states[queue] = "pending"
    return states


def enrich_and_score(mq: MessageQueue, iocs: Iterable[IOCLike],
                     enrichers: Iterable[str] = ENRICHER_QUEUES,
                     analysis_queue: str = ANALYSIS_QUEUE, min_success: int | None = 1, *,
                     report_id: str | None = None,
                     options: Mapping[str, Any] | None = None,
                     deadline_s: float | None = None, result_ttl_s: float | None = None,
                     requested_by: str | None = None, tlp: TLPLike = None,
                     catalog: Catalog = CATALOG, origin: str = "scoring") -> ScoringRun:
    """Ask every enricher queue about each indicator and fan in to one risk score each.

    One ``mq.group`` per indicator: an ``ioc.enrichment.request`` member per queue of
    ``enrichers``, then a ``threat.analysis.request`` on ``analysis_queue`` (see the module
    docstring).  ``min_success``: how many enricher queues must answer for a score (None:
    all of them); a group with fewer fails and its verdict says why.  ``report_id``
    relates the indicators to each other (they came from one report; up to 50 also name
    each other, so the relations do not depend on the order the enrichers run in).
    ``options``: the requests' ``EnrichmentOptions``.  ``deadline_s``: members without an
    outcome by then fail as ``timeout`` (default: an hour).  Every payload is validated
    against the catalog first; each message carries its indicator's TLP (``tlp`` may only
    be stricter).  Returns a ``ScoringRun``: ``.wait()`` for the verdicts.
    """
    queues = list(enrichers)
    datas = [_indicator(catalog, i) for i in iocs]
    keys = [d.key for d in datas]
    relate = report_id is not None and len(keys) <= RELATE_EXPLICITLY
    groups = []
    for data, key in zip(datas, keys, strict=True):
        request = {"ioc": data.model_dump(mode="json"), "report_id": report_id,
                   "related": [k for k in keys if k != key] if relate else [],
                   "requested_by": requested_by}
        if options is not None:
            request["options"] = dict(options)
        member = _task(catalog, ENRICHMENT_REQUEST, request, tlp, origin, "")
        callback = _task(catalog, ANALYSIS_REQUEST, {"ioc": request["ioc"]}, tlp, origin,
                         analysis_queue)
        groups.append(mq.group([replace(member, queue=q) for q in queues], then=callback,
                               min_success=min_success, timeout=deadline_s,
                               result_ttl=result_ttl_s))
    return ScoringRun(mq, datas, groups, queues)


def _indicator(catalog: Catalog, ioc: IOCLike) -> IOCData:
    """The wire form of ``ioc``, validated as the catalog validates a request's."""
    model = catalog.outgoing_model(ENRICHMENT_REQUEST, {"ioc": ioc_payload(ioc)})
    assert isinstance(model, IOCEnrichmentRequest)
    return model.ioc


def _task(catalog: Catalog, message_type: str, payload: Mapping[str, Any], tlp: TLPLike,
          origin: str, queue: str) -> Task:
    """A catalog-validated ``Task``: schema header, default priority, the content's TLP."""
    model = catalog.outgoing_model(message_type, payload)
    spec = catalog.get(message_type)
    headers = catalog.publish_options(message_type, {"pn-producer": origin})["headers"]
    return Task(queue, message_type, model.model_dump(mode="json"), priority=spec.priority,
                headers=headers, tlp=message_tlp(message_type, model, tlp).value)


class _ScoringBar:
    """A tqdm.auto bar (a widget in notebooks) of the whole run (``ScoringStatus.fraction``),
    the scores and enrichment requests in words: ``scoring: 62%|██████   | 3/5 done ·
    enrichment 18/20, 1 failed [00:02]``; amber once anything failed."""

    FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {status} [{elapsed}]"

    def __init__(self, total: int) -> None:
        from tqdm.auto import tqdm  # type: ignore[import-untyped]  # the notebook extra

        class Bar(tqdm):  # type: ignore[misc]  # adds the {status} field to the format
            status = f"0/{total} done"

            @property
            def format_dict(self) -> dict[str, Any]:
                return {**super().format_dict, "status": self.status}

        self._bar = Bar(total=total, desc="scoring", bar_format=self.FORMAT)

    @classmethod
    def open(cls, total: int) -> _ScoringBar | None:
        try:
            return cls(total)
        except ImportError:
            return None

    def __call__(self, status: ScoringStatus) -> None:
        self._bar.n = status.fraction * status.scores.total
        self._bar.status = status.describe()
        if (status.scores.failed or status.enrichment.failed) and self._bar.colour is None:
            self._bar.colour = "#d08700"  # amber: finished, but not everything answered
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()
