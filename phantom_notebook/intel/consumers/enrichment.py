"""The IOC enrichment consumer: runs pluggable enrichers and answers ``ioc.enrichment.result``.

Two ways in, one result:

* a **request** (``mq.request``, a member of ``mq.group``, a step of ``mq.chain``): the
  handler *returns* the ``ioc.enrichment.result`` (as its JSON dict); that is the stored
  result the caller waits for, so nothing is published.  A request on which every
  enricher that applies failed fails too (``EnrichmentFailedError``: retried, then
  dead-lettered), so a group's ``min_success`` counts it as the failure it is.
* a **plain publish**: the result is published to ``result_queue`` (``ioc-results`` by
  default, the catalog's queue for results) and, with ``analysis_queue`` set, sent on as a
  ``threat.analysis.request``.  Queues are competing-consumer groups, so whoever consumes
  the results there must be subscribed in the same worker group; a dedicated queue (e.g.
  ``ioc-results``) avoids that.

Either way the handler reports ``context.progress`` as it goes from enricher to enricher
(the note names the enricher, never the indicator).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from phantom_notebook.core.consume.context import MessageContext
from phantom_notebook.core.errors import HandlerSignal, PhantomError
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

__all__ = ["EnrichmentFailedError", "IOCEnrichmentConsumer", "default_enrichers"]

#: ``progress(fraction, note)``: what ``enrich`` reports to (``context.progress``)
ProgressReport = Callable[[float, str], None]


class EnrichmentFailedError(PhantomError):
    """Raised for a request on which every enricher that applies failed (retried, then
    dead-lettered): an answer made only of errors is no answer.  ``errors`` maps each
    enricher to its error."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("every enricher failed: " + "; ".join(
            f"{name}: {error}" for name, error in sorted(errors.items())))


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
    ``errors`` (a request fails only when every enricher that applies failed).  An enricher
    that raises ``Retry`` or ``Reject`` steers the whole message.  One consumer per queue,
    each with its own enrichers, is how ``intel.pipeline`` fans an indicator out.
    """

    types: ClassVar[tuple[str, ...]] = ("ioc.enrichment.request",)

    def __init__(self, mq: MessageQueue, enrichers: Iterable[Enricher] | None = None, *,
                 result_queue: str = "ioc-results", analysis_queue: str | None = None,
                 catalog: Catalog = CATALOG, origin: str | None = None) -> None:
        super().__init__(mq, catalog=catalog, origin=origin)
        self.enrichers = list(default_enrichers(mq) if enrichers is None else enrichers)
        self.result_queue = result_queue
        self.analysis_queue = analysis_queue

    def applicable(self, request: IOCEnrichmentRequest) -> list[Enricher]:
        """The enrichers that run on ``request``: they support its IOC's type and the
        request's options do not switch them off."""
        ioc = request.ioc.to_ioc()
        chosen = []
        for enricher in self.enrichers:
            option = getattr(enricher, "option", None)
            if option and not getattr(request.options, option, True):
                continue
            if enricher.supports(ioc):
                chosen.append(enricher)
        return chosen

    def enrich(self, request: IOCEnrichmentRequest,
               progress: ProgressReport | None = None) -> IOCEnrichmentResult:
        """Run the enrichers on the request's IOC and assemble the result (no publishing).

        ``progress(fraction, note)`` (e.g. ``context.progress``) hears before each
        enricher runs, and 1.0 at the end.
        """
        ioc = request.ioc.to_ioc()
        enrichments: dict[str, dict[str, Any]] = {}
        errors: dict[str, str] = {}
        chosen = self.applicable(request)
        for step, enricher in enumerate(chosen):
            if progress is not None:
                progress(step / len(chosen), f"{enricher.name} ({step + 1}/{len(chosen)})")
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
        if progress is not None:
            progress(1.0, f"{len(enrichments)} of {len(chosen)} enrichers answered")
        return IOCEnrichmentResult(ioc=request.ioc, enrichments=enrichments, reputation=hits,
                                   related_iocs=related, errors=errors)

    def process(self, payload: IOCEnrichmentRequest, message: Envelope,
                context: MessageContext) -> dict[str, Any]:
        """Enrich and return the result (as its JSON dict); for a plain publish, also
        publish it correlated to the request and optionally ask for analysis."""
        result = self.enrich(payload, context.progress)
        data: dict[str, Any] = result.model_dump(mode="json")
        if self.replies(message):  # the return value is the reply: nothing to publish
            if result.errors and not result.enrichments:
                raise EnrichmentFailedError(result.errors)
            return data
        self.producer.publish("ioc.enrichment.result", result, queue=self.result_queue,
                              context=context)
        if self.analysis_queue:
            request = ThreatAnalysisRequest(ioc=result.ioc, enrichments=result.enrichments,
                                            reputation=result.reputation,
                                            related_iocs=result.related_iocs)
            self.producer.publish("threat.analysis.request", request, queue=self.analysis_queue,
                                  context=context)
        return data
