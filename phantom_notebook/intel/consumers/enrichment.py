"""The IOC enrichment consumer: runs pluggable enrichers and publishes ``ioc.enrichment.result``.

Results go to ``result_queue`` (``ioc-results`` by default, the catalog's queue for
results).  Queues are competing-consumer groups, so whoever consumes the results there must
be subscribed in the same worker group; a dedicated queue (e.g. ``ioc-results``) avoids that.
With ``analysis_queue`` set, each result is also sent on as a ``threat.analysis.request``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from phantom_notebook.core.consume.context import MessageContext
from phantom_notebook.core.errors import HandlerSignal
from phantom_notebook.core.model.envelope import Envelope
from phantom_notebook.core.queues import MessageQueue
from phantom_notebook.intel.catalog import CATALOG, Catalog
from phantom_notebook.intel.consumers.base import Consumer, log
from phantom_notebook.intel.consumers.enrichers import (
    DomainEnricher,
    Enricher,
    HashEnricher,
    IPEnricher,
    RelationshipEnricher,
)
from phantom_notebook.intel.consumers.feeds import FeedReputation, ReputationFeed
from phantom_notebook.intel.schemas import (
    IOCEnrichmentRequest,
    IOCEnrichmentResult,
    ReputationHit,
    ThreatAnalysisRequest,
)

__all__ = ["IOCEnrichmentConsumer", "default_enrichers"]


def default_enrichers(mq: MessageQueue | None = None,
                      feeds: Iterable[ReputationFeed] | None = None) -> list[Enricher]:
    """IP, domain/URL, hash, local-feed reputation, and (given ``mq``) relationships."""
    enrichers: list[Enricher] = [IPEnricher(), DomainEnricher(), HashEnricher(),
                                 FeedReputation(feeds)]
    if mq is not None:
        enrichers.append(RelationshipEnricher(mq))
    return enrichers


class IOCEnrichmentConsumer(Consumer):
    """Handles ``ioc.enrichment.request``: every supporting enricher adds what it knows.

    One enricher failing does not fail the message: its error is reported in the result's
    ``errors``.  An enricher that raises ``Retry`` or ``Reject`` steers the whole message.
    """

    types: ClassVar[tuple[str, ...]] = ("ioc.enrichment.request",)

    def __init__(self, mq: MessageQueue, enrichers: Iterable[Enricher] | None = None, *,
                 result_queue: str = "ioc-results", analysis_queue: str | None = None,
                 catalog: Catalog = CATALOG, origin: str | None = None) -> None:
        super().__init__(mq, catalog=catalog, origin=origin)
        self.enrichers = list(default_enrichers(mq) if enrichers is None else enrichers)
        self.result_queue = result_queue
        self.analysis_queue = analysis_queue

    def enrich(self, request: IOCEnrichmentRequest) -> IOCEnrichmentResult:
        """Run the enrichers on the request's IOC and assemble the result (no publishing)."""
        ioc = request.ioc.to_ioc()
        enrichments: dict[str, dict[str, Any]] = {}
        errors: dict[str, str] = {}
        for enricher in self.enrichers:
            option = getattr(enricher, "option", None)
            if option and not getattr(request.options, option, True):
                continue
            if not enricher.supports(ioc):
                continue
            try:
                enrichments[enricher.name] = dict(enricher.enrich(ioc, request))
            except HandlerSignal:
                raise
            except Exception as exc:  # noqa: BLE001 - one provider failing degrades the result
                log.warning("enricher %s failed on %s: %s", enricher.name, ioc, exc)
                errors[enricher.name] = f"{type(exc).__name__}: {exc}"
        hits = [ReputationHit.model_validate(hit) for data in enrichments.values()
                for hit in data.get("hits", [])]
        related = sorted({key for data in enrichments.values() for key in data.get("related", [])})
        return IOCEnrichmentResult(ioc=request.ioc, enrichments=enrichments, reputation=hits,
                                   related_iocs=related, errors=errors)

    def process(self, payload: IOCEnrichmentRequest, message: Envelope,
                context: MessageContext) -> None:
        """Enrich, publish the result correlated to the request, optionally ask for analysis."""
        result = self.enrich(payload)
        self.producer.publish("ioc.enrichment.result", result, queue=self.result_queue,
                              context=context)
        if self.analysis_queue:
            request = ThreatAnalysisRequest(ioc=result.ioc, enrichments=result.enrichments,
                                            reputation=result.reputation,
                                            related_iocs=result.related_iocs)
            self.producer.publish("threat.analysis.request", request, queue=self.analysis_queue,
                                  context=context)
