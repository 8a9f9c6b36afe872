"""OpenTelemetry spans, when ``opentelemetry-api`` is installed (the ``[otel]`` extra).

Every envelope already carries a W3C ``traceparent``; with OpenTelemetry present:

* a publish made inside an active span takes that span's trace (the envelope's traceparent
  is the span context), so queue hops join the application's own traces;
* each handled message gets a CONSUMER span ``process <queue>`` whose parent is the
  envelope's traceparent, with the messaging semantic-convention attributes.

Without the package (or without an SDK configured) this module costs one attribute check.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..model.envelope import Envelope

try:  # optional dependency
    from opentelemetry import trace as _trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # pragma: no cover - exercised when the extra is absent
    _trace = None  # type: ignore[assignment]

_CHECKED: list[Any] = [-1e9, False]  # [monotonic time of the last check, enabled?]
_PROPAGATOR: Any = TraceContextTextMapPropagator() if _trace is not None else None


def enabled() -> bool:
    """True when spans would be recorded: the API is importable and an SDK provider is set.

    With only the API installed, every span is a no-op that still costs ~15 us per message
    (context extraction, span objects): measured as a third of the consume path, so skip it.
    """
    if _trace is None:
        return False
    now = time.monotonic()
    if now - _CHECKED[0] > 1.0:  # a provider set later (in a notebook) is seen within 1 s
        provider = _trace.get_tracer_provider()
        _CHECKED[:] = [now, not isinstance(
            provider, _trace.ProxyTracerProvider | _trace.NoOpTracerProvider)]
    return bool(_CHECKED[1])


def current_traceparent() -> str | None:
    """The traceparent of the active span, if there is one with a valid context."""
    if not enabled():
        return None
    span = _trace.get_current_span()
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def process_span(env: Envelope, consumer: str, group: str) -> Iterator[Any]:
    """A CONSUMER span around one handler call, child of the envelope's traceparent."""
    if not enabled():
        yield None
        return
    parent = _PROPAGATOR.extract({"traceparent": env.traceparent}) if env.traceparent else None
    tracer = _trace.get_tracer("phantom_notebook")
    with tracer.start_as_current_span(
            f"process {env.queue}", context=parent, kind=_trace.SpanKind.CONSUMER,
            attributes={"messaging.system": "redis", "messaging.destination.name": env.queue,
                        "messaging.operation.type": "process",
                        "messaging.message.id": env.id, "messaging.consumer.group.name": group,
                        "messaging.message.type": env.type, "phantom.attempt": env.attempt,
                        "phantom.consumer": consumer}) as span:
        yield span
