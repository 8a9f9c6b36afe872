"""What every built-in consumer shares: schema-checked reading, typed publishing, subscribing."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from phantom_notebook.core.consume.context import MessageContext
from phantom_notebook.core.errors import Reject
from phantom_notebook.core.model.envelope import Envelope
from phantom_notebook.core.model.flow_headers import wants_result
from phantom_notebook.core.queues import MessageQueue
from phantom_notebook.intel.catalog import CATALOG, SCHEMA_INVALID, Catalog, SchemaValidationError
from phantom_notebook.intel.producers import Producer
from phantom_notebook.intel.schemas import Payload

log = logging.getLogger("phantom_notebook.intel")


class SchemaRejected(Reject):
    """Raised for a message that fails its schema: dead-lettered as ``schema_invalid``.

    ``reason`` is ``schema_invalid``; the text (the DLQ's ``error``) lists the problems.
    """

    def __init__(self, error: SchemaValidationError) -> None:
        super().__init__(SCHEMA_INVALID)
        self.args = (f"{SCHEMA_INVALID}: {error}",)
        self.problems = error.problems


class Consumer(ABC):
    """A handler class: ``handle(message, context)`` reads the payload through the catalog.

    Subclasses list the message ``types`` they handle and implement ``process``.  A payload
    that fails its schema (or has another MAJOR version) is rejected, never retried.
    """

    types: ClassVar[tuple[str, ...]] = ()

    def __init__(self, mq: MessageQueue, *, catalog: Catalog = CATALOG,
                 origin: str | None = None) -> None:
        self.mq = mq
        self.catalog = catalog
        self.producer = Producer(mq, origin=origin or type(self).__name__, catalog=catalog)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(types={list(self.types)})"

    def read(self, message: Envelope) -> Payload:
        """The payload as its model; raises ``SchemaRejected`` when it does not fit."""
        try:
            return self.catalog.validate_incoming(message)
        except SchemaValidationError as exc:
            log.warning("rejecting %s %s: %s", message.type, message.id, exc)
            raise SchemaRejected(exc) from None

    def handle(self, message: Envelope, context: MessageContext) -> Any:
        """Validate the message, then ``process`` it (the entry point the worker calls).

        Returns what ``process`` returns: for a request or a group member (``mq.request``,
        ``mq.group``) that value is the stored result its caller waits for.
        """
        return self.process(self.read(message), message, context)

    @abstractmethod
    def process(self, payload: Any, message: Envelope, context: MessageContext) -> Any:
        """Do the work for one validated message (subclasses implement this); the return
        value is the result of a request (ignored for a plain publish)."""

    def subscribe(self, queue: str | None = None, **options: Any) -> list[Any]:
        """Subscribe this handler for each of its types (on the type's default queue)."""
        return [self.mq.subscribe(queue or self.catalog.get(t).queue, t, self, **options)
                for t in self.types]

    @staticmethod
    def replies(message: Envelope) -> bool:
        """True when someone waits for this message's return value: a request, a group's
        member or callback, a chain's step (``mq.request`` / ``mq.group`` / ``mq.chain``)."""
        return bool(message.headers) and wants_result(message.headers)

    def key(self, *parts: str) -> str:
        """A Redis key of the intel layer under the deployment prefix."""
        return ":".join((self.mq.keys.prefix, "intel", *parts))
