"""The threat analysis consumer: an explained 0-100 risk score per indicator.

``risk_score`` adds up factors, each a ``RiskFactor(factor, points, why)``:

=================  =====================================================================
reputation         +40 for the first feed listing the IOC itself, +10 per further feed
                   (max +60); +15 once when it only hosts listed URLs
threat             +10 when a listing says botnet C2, +5 for malware delivery/payload
feed confidence    up to +10: the best listing confidence / 10
confidence         the analyst's confidence / 5 (0..+20)
network            -40 for private, loopback, documentation and other non-routable ranges
benign             -50 for a digest of a well-known benign input (the empty file)
related            +2 per related indicator (max +10)
tlp                +5 for AMBER / AMBER+STRICT, +10 for RED: the source judged it sensitive
=================  =====================================================================

The sum is clamped to 0..100; 75+ is critical, 50+ high, 25+ medium, below that low.

As a group's callback (``mq.group(..., then=Task(<analysis queue>,
"threat.analysis.request", ...))``, see ``intel.pipeline``) the consumer fans in: every
member's ``ioc.enrichment.result`` in ``context.join`` is merged into the request (``fan_in``)
and the indicator gets ONE score.  A member that failed, timed out or answered about
something else adds a 0-point ``coverage`` line naming it, so a score made without, say,
reputation says so.  The score is returned (the callback's result) and, for a plain publish
only, published as ``threat.analysis.result``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pydantic

from phantom_notebook.core.consume.context import MessageContext
from phantom_notebook.core.model.envelope import Envelope
from phantom_notebook.core.queues import MessageQueue
from phantom_notebook.core.results.codec import stricter
from phantom_notebook.core.results.join import JoinState
from phantom_notebook.intel.catalog import CATALOG, Catalog
from phantom_notebook.intel.consumers.base import Consumer
from phantom_notebook.intel.producers import AlertProducer
from phantom_notebook.intel.schemas import (
    IOCEnrichmentResult,
    RiskFactor,
    ThreatAnalysisRequest,
    ThreatAnalysisResult,
)

__all__ = ["ThreatAnalysisConsumer", "analyze", "fan_in", "risk_level", "risk_score"]

_NON_ROUTABLE = {"private", "shared", "loopback", "link-local", "documentation", "broadcast",
                 "unspecified", "reserved", "multicast"}
_TLP_POINTS = {"AMBER": 5, "AMBER+STRICT": 5, "RED": 10}
_THREAT_POINTS = {"botnet_cc": 10, "malware_download": 5, "payload": 5, "payload_delivery": 5}


def _reputation(request: ThreatAnalysisRequest) -> list[RiskFactor]:
    exact = sorted({h.feed for h in request.reputation if h.match == "exact"})
    hosting = sorted({h.feed for h in request.reputation if h.match == "url-host"})
    out = []
    if exact:
        points = min(40 + 10 * (len(exact) - 1), 60)
        out.append(RiskFactor(factor="reputation", points=points,
                              why=f"listed by {len(exact)} feed(s): {', '.join(exact)}"))
    elif hosting:
        out.append(RiskFactor(factor="reputation", points=15,
                              why=f"hosts URLs listed by {', '.join(hosting)}"))
    threats = {h.threat for h in request.reputation if h.threat}
    best = max((_THREAT_POINTS.get(t, 0) for t in threats), default=0)
    if best:
        out.append(RiskFactor(factor="threat", points=best,
                              why=f"feeds call it {', '.join(sorted(threats))}"))
    if request.reputation:
        top = max(h.confidence for h in request.reputation)
        out.append(RiskFactor(factor="feed confidence", points=top // 10,
                              why=f"best listing confidence {top}/100"))
    return out


def _network(enrichments: dict[str, dict[str, Any]]) -> list[RiskFactor]:
    ip = enrichments.get("ip") or enrichments.get("domain", {}).get("ip")
    if isinstance(ip, dict) and ip.get("category") in _NON_ROUTABLE:
        where = ip.get("range_name") or ip["category"]
        return [RiskFactor(factor="network", points=-40,
                           why=f"{ip['category']} address ({where} {ip.get('range')}): "
                               "not reachable from the internet")]
    return []


def risk_score(request: ThreatAnalysisRequest) -> tuple[int, list[RiskFactor]]:
    """The clamped score and the factors that make it up (see the module docstring)."""
    ioc = request.ioc
    factors = _reputation(request)
    factors.append(RiskFactor(factor="confidence", points=ioc.confidence // 5,
                              why=f"indicator confidence {ioc.confidence}/100"))
    factors += _network(request.enrichments)
    benign = request.enrichments.get("hash", {}).get("known_benign")
    if benign:
        factors.append(RiskFactor(factor="benign", points=-50, why=f"well-known: {benign}"))
    if request.related_iocs:
        n = len(request.related_iocs)
        factors.append(RiskFactor(factor="related", points=min(2 * n, 10),
                                  why=f"seen together with {n} other indicator(s)"))
    if ioc.tlp in _TLP_POINTS:
        factors.append(RiskFactor(factor="tlp", points=_TLP_POINTS[ioc.tlp],
                                  why=f"shared as TLP:{ioc.tlp}: the source judged it sensitive"))
    total = sum(f.points for f in factors)
    return max(0, min(100, total)), factors


def risk_level(score: int) -> str:
    """critical (75+), high (50+), medium (25+) or low."""
    return "critical" if score >= 75 else "high" if score >= 50 else \
        "medium" if score >= 25 else "low"


def analyze(request: ThreatAnalysisRequest,
            coverage: RiskFactor | None = None) -> ThreatAnalysisResult:
    """Score one request (no publishing); ``coverage`` (0 points) ends the breakdown."""
    score, factors = risk_score(request)
    if coverage is not None:
        factors.append(coverage)
    return ThreatAnalysisResult(ioc=request.ioc, risk_score=score,
                                risk_level=risk_level(score),  # type: ignore[arg-type]
                                breakdown=factors)


def fan_in(request: ThreatAnalysisRequest, join: JoinState
           ) -> tuple[ThreatAnalysisRequest, RiskFactor | None]:
    """Merge the enrichment results of a group's members into ``request``.

    Returns the merged request and, when some member gave nothing usable (failed, timed
    out, or returned something other than an enrichment result of this indicator), a
    0-point ``coverage`` factor naming them (None when every member answered).
    """
    enrichments = {k: dict(v) for k, v in request.enrichments.items()}
    hits = list(request.reputation)
    related = set(request.related_iocs)
    answered, missing = 0, []
    for member in join.members:
        where = member.result.queue if member.result is not None else f"member {member.index}"
        if not member.ok:
            missing.append(f"{where}: {member.error or 'no outcome yet'}")
            continue
        try:
            part = IOCEnrichmentResult.model_validate(member.value)
        except pydantic.ValidationError:
            missing.append(f"{where}: did not return an ioc.enrichment.result")
            continue
        if part.ioc.key != request.ioc.key:
            missing.append(f"{where}: answered about another indicator")
            continue
        answered += 1
        enrichments.update(part.enrichments)
        hits += [h for h in part.reputation if h not in hits]
        related.update(part.related_iocs)
        missing += [f"{where} {name}: {error}" for name, error in sorted(part.errors.items())]
    merged = ThreatAnalysisRequest(ioc=request.ioc, enrichments=enrichments, reputation=hits,
                                   related_iocs=sorted(related - {request.ioc.key}))
    if not missing:
        return merged, None
    why = f"{answered} of {len(join.members)} enrichments answered; " + "; ".join(missing)
    return merged, RiskFactor(factor="coverage", points=0, why=why[:500])


class ThreatAnalysisConsumer(Consumer):
    """Handles ``threat.analysis.request`` (and ``ioc.enrichment.result`` when subscribed).

    Returns the ``threat.analysis.result`` (as its JSON dict: a request's or a group
    callback's result) and, for a plain publish, publishes it; as a group's callback it
    first fans the members' enrichment results in (``fan_in``).  At or above
    ``alert_threshold`` it also raises an ``alert.threat.notification`` (severity from the
    risk level), unless the threshold is None.
    """

    types: ClassVar[tuple[str, ...]] = ("threat.analysis.request",)

    def __init__(self, mq: MessageQueue, *, result_queue: str | None = None,
                 alert_threshold: int | None = 75,
                 catalog: Catalog = CATALOG, origin: str | None = None) -> None:
        super().__init__(mq, catalog=catalog, origin=origin)
        self.result_queue = result_queue
        self.alert_threshold = alert_threshold
        self.alerts = AlertProducer(mq, origin=self.producer.origin, catalog=catalog)

    def process(self, payload: ThreatAnalysisRequest | IOCEnrichmentResult, message: Envelope,
                context: MessageContext) -> dict[str, Any]:
        """Score (fanning a group's results in first), publish the result unless it is
        the reply, raise an alert above the threshold; returns the result."""
        if isinstance(payload, IOCEnrichmentResult):
            payload = ThreatAnalysisRequest(ioc=payload.ioc, enrichments=payload.enrichments,
                                            reputation=payload.reputation,
                                            related_iocs=payload.related_iocs)
        coverage = None
        if context.join is not None:
            payload, coverage = fan_in(payload, context.join)
            context.result_tlp = _strictest(context.join, message.tlp)
        result = analyze(payload, coverage)
        if not self.replies(message):
            self.producer.publish("threat.analysis.result", result, queue=self.result_queue,
                                  context=context)
        if self.alert_threshold is not None and result.risk_score >= self.alert_threshold:
            ioc = result.ioc
            why = "; ".join(f"{f.factor} {f.points:+d}: {f.why}" for f in result.breakdown)
            self.alerts.publish_threat_alert(
                "critical" if result.risk_level == "critical" else "high",
                f"High-risk {ioc.ioc_type.value} {ioc.to_ioc().defanged} "
                f"(risk {result.risk_score})", why, "ioc-risk", related_iocs=[ioc],
                tags=["auto", f"risk:{result.risk_level}"], context=context)
        data: dict[str, Any] = result.model_dump(mode="json")
        return data


def _strictest(join: JoinState, tlp: str) -> str:
    """The strictest TLP of the members' results and the callback itself: the score is
    made of all of them."""
    for member in join.members:
        if member.result is not None:
            tlp = stricter(member.result.tlp, tlp)
    return tlp
