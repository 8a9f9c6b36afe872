"""With OpenTelemetry installed, queue hops join the application's traces."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import phantom_notebook as pn
from phantom_notebook.core.observe import otel
from tests.support.collect import Collector, eventually

_EXPORTER = InMemorySpanExporter()
_PROVIDER = TracerProvider()
_PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """An SDK tracer for this test only (the global provider stays the no-op one)."""
    monkeypatch.setattr(trace, "get_tracer", _PROVIDER.get_tracer)
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: _PROVIDER)
    monkeypatch.setattr(otel, "_CHECKED", [-1e9, False])  # re-check the provider now
    _EXPORTER.clear()
    yield _EXPORTER


def test_a_publish_inside_a_span_carries_its_trace_and_the_handler_gets_a_child_span(
        mq: pn.MessageQueue, spans: InMemorySpanExporter) -> None:
    tracer = trace.get_tracer("analyst-notebook")
    with tracer.start_as_current_span("triage incident 117") as root:
        mq.publish("ioc-processing", "ioc.enrichment.request", {"ioc": "203.0.113.9"})
        trace_id = format(root.get_span_context().trace_id, "032x")
    got = Collector()
    mq.subscribe("ioc-processing", "*", got)
    with mq.worker():
        assert got.wait_for(1)
    assert got.envelopes[0].trace_id == trace_id
    process = [s for s in spans.get_finished_spans() if s.name == "process ioc-processing"]
    assert len(process) == 1
    span = process[0]
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.kind == trace.SpanKind.CONSUMER
    assert span.attributes is not None
    assert span.attributes["messaging.message.id"] == got.envelopes[0].id
    assert span.attributes["messaging.destination.name"] == "ioc-processing"


def test_a_failing_handler_records_the_exception_on_its_span(
        mq: pn.MessageQueue, spans: InMemorySpanExporter) -> None:
    def broken(message: pn.Envelope, context: pn.MessageContext) -> None:
        raise ValueError("bad feed")

    mq.subscribe("feeds", "*", broken, retry=pn.RetrySettings(max_retries=0))
    mq.publish("feeds", "data.ingestion.request", {})
    with mq.worker():
        assert eventually(lambda: mq.stats(["feeds"])[0].dead == 1)
    [span] = [s for s in spans.get_finished_spans() if s.name == "process feeds"]
    assert any(e.name == "exception" for e in span.events)


def test_without_an_sdk_provider_no_spans_are_made(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otel, "_CHECKED", [-1e9, False])
    assert not otel.enabled(), "the API alone must cost nothing per message"
    assert otel.current_traceparent() is None
