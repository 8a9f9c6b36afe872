"""Validation consumers: sanitize and deduplicate batches, validate single values, ingest feeds.

``DataValidationConsumer`` refangs, types and normalizes every record of a
``data.validation.request`` (through the ``IOC`` model), refuses invalid ones with the
reason, and drops duplicates: within the batch, and across batches seen within
``recent_window_s`` (one ``SET NX EX`` per IOC under ``<prefix>:intel:seen:``, pipelined).
The window key holds the batch id, so a redelivered batch is not mistaken for its own
duplicate.  With ``forward_queue`` the valid IOCs go on as one batch of enrichment requests
sharing the batch id as report id.
"""

from __future__ import annotations

from typing import Any, ClassVar

from phantom_notebook.core.consume.context import MessageContext
from phantom_notebook.core.model.envelope import Envelope
from phantom_notebook.core.queues import MessageQueue
from phantom_notebook.intel.catalog import CATALOG, Catalog
from phantom_notebook.intel.consumers.base import Consumer
from phantom_notebook.intel.consumers.enrichers import ioc_key
from phantom_notebook.intel.defang import defang_as
from phantom_notebook.intel.ioc import DEFAULT_CONFIDENCE, IOC
from phantom_notebook.intel.producers import IOCMessageProducer
from phantom_notebook.intel.schemas import (
    DataIngestionRequest,
    DataIngestionResult,
    DataValidationRequest,
    DataValidationResult,
    DuplicateRecord,
    InvalidRecord,
    IOCData,
    IOCValidationRequest,
    IOCValidationResult,
)

__all__ = ["DataIngestionConsumer", "DataValidationConsumer", "validate_value"]


def validate_value(request: IOCValidationRequest) -> IOCValidationResult:
    """The verdict on one raw value: normalized and defanged forms, or the reason it fails."""
    try:
        ioc = IOC.parse(request.value, request.type)
    except ValueError as exc:
        return IOCValidationResult(value=request.value, valid=False, type=request.type,
                                   error=str(exc))
    return IOCValidationResult(value=request.value, valid=True, type=ioc.type,
                               normalized=ioc.value, defanged=defang_as(ioc.value, ioc.type))


class DataValidationConsumer(Consumer):
    """Handles ``data.validation.request`` and ``ioc.validation.request``."""

    types: ClassVar[tuple[str, ...]] = ("data.validation.request", "ioc.validation.request")

    def __init__(self, mq: MessageQueue, *, result_queue: str | None = None,
                 recent_window_s: int | None = 3600, forward_queue: str | None = None,
                 catalog: Catalog = CATALOG, origin: str | None = None) -> None:
        super().__init__(mq, catalog=catalog, origin=origin)
        self.result_queue = result_queue
        self.recent_window_s = recent_window_s
        self.forward_queue = forward_queue
        self.iocs = IOCMessageProducer(mq, origin=self.producer.origin, catalog=catalog)

    def _parse(self, request: DataValidationRequest) -> tuple[list[IOC], list[InvalidRecord],
                                                              list[DuplicateRecord]]:
        unique: dict[str, IOC] = {}
        invalid: list[InvalidRecord] = []
        duplicates: list[DuplicateRecord] = []
        for record in request.records:
            try:
                ioc = IOC.parse(record.value, record.type or None,
                                tlp=record.tlp or request.default_tlp,
                                confidence=DEFAULT_CONFIDENCE if record.confidence is None
                                else record.confidence, source=request.source, tags=record.tags)
            except ValueError as exc:
                invalid.append(InvalidRecord(value=record.value, error=str(exc)))
                continue
            key = ioc_key(ioc)
            if key in unique:
                duplicates.append(DuplicateRecord(key=key, where="batch"))
            else:
                unique[key] = ioc
        return list(unique.values()), invalid, duplicates

    def _fresh(self, iocs: list[IOC], batch_id: str) -> list[bool]:
        """Which IOCs were not seen by another batch within the recent window."""
        if not iocs or not self.recent_window_s:
            return [True] * len(iocs)
        keys = [self.key("seen", ioc_key(ioc)) for ioc in iocs]
        pipe = self.mq.client.pipeline(transaction=False)
        for key in keys:
            pipe.set(key, batch_id, nx=True, ex=self.recent_window_s)
        fresh = [bool(ok) for ok in pipe.execute()]
        taken = [key for key, ok in zip(keys, fresh, strict=True) if not ok]
        if taken:
            owners = iter(self.mq.client.mget(taken))
            fresh = [ok or next(owners) == batch_id.encode() for ok in fresh]
        return fresh

    def validate_batch(self, request: DataValidationRequest) -> DataValidationResult:
        """Sanitize, normalize and deduplicate one batch (records the recent window)."""
        iocs, invalid, duplicates = self._parse(request)
        valid = []
        for ioc, fresh in zip(iocs, self._fresh(iocs, request.batch_id), strict=True):
            if fresh:
                valid.append(IOCData.from_ioc(ioc))
            else:
                duplicates.append(DuplicateRecord(key=ioc_key(ioc), where="recent"))
        return DataValidationResult(batch_id=request.batch_id, valid=valid, invalid=invalid,
                                    duplicates=duplicates)

    def process(self, payload: Any, message: Envelope, context: MessageContext) -> None:
        """Validate, publish the verdict correlated to the request, forward valid IOCs."""
        if isinstance(payload, IOCValidationRequest):
            self.producer.publish("ioc.validation.result", validate_value(payload),
                                  queue=self.result_queue, context=context)
            return
        result = self.validate_batch(payload)
        self.producer.publish("data.validation.result", result, queue=self.result_queue,
                              context=context)
        if self.forward_queue and result.valid:
            self.iocs.publish_batch_enrichment(result.valid, report_id=result.batch_id,
                                               queue=self.forward_queue, context=message,
                                               progress=False)


class DataIngestionConsumer(Consumer):
    """Handles ``data.ingestion.request``: reads text, CSV, STIX or MISP content."""

    types: ClassVar[tuple[str, ...]] = ("data.ingestion.request",)

    def __init__(self, mq: MessageQueue, *, result_queue: str | None = None,
                 catalog: Catalog = CATALOG, origin: str | None = None) -> None:
        super().__init__(mq, catalog=catalog, origin=origin)
        self.result_queue = result_queue

    def ingest(self, request: DataIngestionRequest) -> DataIngestionResult:
        """Read the request's content (no publishing)."""
        from phantom_notebook.intel.exchange import read_indicators

        read = read_indicators(request.content, request.format, tlp=request.tlp,
                               source=request.source, tags=request.tags)
        return DataIngestionResult(source=request.source, accepted=len(read.iocs),
                                   rejected=len(read.rejected),
                                   iocs=[IOCData.from_ioc(i) for i in read.iocs],
                                   errors=[f"{where}: {why}" for where, why in read.rejected])

    def process(self, payload: DataIngestionRequest, message: Envelope,
                context: MessageContext) -> None:
        """Ingest and publish the result correlated to the request."""
        self.producer.publish("data.ingestion.result", self.ingest(payload),
                              queue=self.result_queue, context=context)
