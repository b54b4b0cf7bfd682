"""Telemetry: one trace across the bus through envelopes, redaction at the source, exporters."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from dfj_common.config import Secret, Settings
from dfj_common.envelope import Envelope
from dfj_common.errors import ConfigError
from dfj_common.logging import REDACTED
from dfj_common.telemetry import (
    Telemetry,
    current_trace_id,
    extract,
    inject,
    safe_attributes,
    setup_telemetry,
    start_consume_span,
    start_publish_span,
    telemetry_from_settings,
)
from dfj_common.testing import find_leaks

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqaXJhIn0.c2lnbmF0dXJlLWJ5dGVz"
SHARED_SECRET = "connect-shared-secret-6f1c4f3e"
AZURE_CONNECTION = (
    "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/"
)

Factory = Callable[[str], Telemetry]


@pytest.fixture(name="exporter")
def fixture_exporter() -> InMemorySpanExporter:
    """Collects finished spans of every service in the test."""
    return InMemorySpanExporter()


@pytest.fixture(name="service")
def fixture_service(exporter: InMemorySpanExporter) -> Iterator[Factory]:
    """Makes a ``none`` telemetry per service name, all exporting to ``exporter``; shuts down."""
    made: list[Telemetry] = []

    def make(name: str) -> Telemetry:
        telemetry = setup_telemetry(service=name, kind="none", span_exporter=exporter)
        made.append(telemetry)
        return telemetry

    yield make
    for telemetry in made:
        telemetry.shutdown()


def _raw_spans(telemetry: Telemetry) -> InMemorySpanExporter:
    """The spans as they finished, before any exporter-side cleaning."""
    raw = InMemorySpanExporter()
    telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(raw))
    return raw


def _envelope(event_id: str, **kwargs: Any) -> Envelope:
    return Envelope(id=event_id, source="/test", type="test.event", **kwargs)


def _by_name(spans: tuple[ReadableSpan, ...], name: str, service: str) -> ReadableSpan:
    (span,) = [
        s for s in spans if s.name == name and s.resource.attributes["service.name"] == service
    ]
    return span


class TestPropagation:
    def test_gateway_worker_worker_is_one_trace(
        self, service: Factory, exporter: InMemorySpanExporter
    ) -> None:
        """publish (A) → consume (B) → publish (B) → consume (C) through bytes is one trace."""
        gateway, jira_worker, discord_worker = (
            service("gateway"),
            service("jira-worker"),
            service("discord-worker"),
        )
        incoming = _envelope("ev-1", tenant="ck-1", session_key="ck-1:10001")
        with start_publish_span(gateway, incoming, "jira-events") as published:
            wire = published.envelope.encode()
        assert incoming.traceparent is None  # the envelope is immutable; a stamped copy travels

        with start_consume_span(jira_worker, Envelope.decode(wire), "jira-events"):
            outgoing = _envelope("ev-2", tenant="ck-1", session_key="channel-9")
            with start_publish_span(jira_worker, outgoing, "discord-outbox") as published2:
                wire2 = published2.envelope.encode()

        # an unrelated span is current at the consumer: the envelope decides the parent
        with (
            discord_worker.tracer.start_as_current_span("poll"),
            start_consume_span(discord_worker, Envelope.decode(wire2), "discord-outbox"),
        ):
            pass

        spans = exporter.get_finished_spans()
        send_a = _by_name(spans, "send jira-events", "gateway")
        process_b = _by_name(spans, "process jira-events", "jira-worker")
        send_b = _by_name(spans, "send discord-outbox", "jira-worker")
        process_c = _by_name(spans, "process discord-outbox", "discord-worker")
        chain = [send_a, process_b, send_b, process_c]

        assert all(s.context is not None for s in chain)
        assert len({s.context.trace_id for s in chain if s.context}) == 1
        assert send_a.parent is None
        assert process_b.parent is not None and send_a.context is not None
        assert process_b.parent.span_id == send_a.context.span_id
        assert process_b.parent.is_remote
        assert send_b.parent is not None and process_b.context is not None
        assert send_b.parent.span_id == process_b.context.span_id
        assert process_c.parent is not None and send_b.context is not None
        assert process_c.parent.span_id == send_b.context.span_id
        assert [s.kind for s in chain] == [
            SpanKind.PRODUCER,
            SpanKind.CONSUMER,
            SpanKind.PRODUCER,
            SpanKind.CONSUMER,
        ]
        assert process_b.attributes is not None
        assert process_b.attributes["messaging.destination.name"] == "jira-events"
        assert process_b.attributes["cloudevents.event_id"] == "ev-1"
        assert process_b.attributes["dfj.tenant"] == "ck-1"

    def test_published_envelope_carries_the_producer_span(self, service: Factory) -> None:
        """The traceparent written is W3C version 00 naming the PRODUCER span, sampled."""
        gateway = service("gateway")
        with start_publish_span(gateway, _envelope("ev-1"), "jira-events") as (span, stamped):
            context = span.get_span_context()
        assert stamped.traceparent is not None
        version, trace_id, span_id, flags = stamped.traceparent.split("-")
        assert (version, trace_id, span_id) == (
            "00",
            f"{context.trace_id:032x}",
            f"{context.span_id:016x}",
        )
        assert int(flags, 16) & 0x01  # sampled

    def test_tracestate_travels(self, service: Factory) -> None:
        """A tracestate received is passed on to the next hop."""
        worker = service("worker")
        received = _envelope(
            "ev-1",
            traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            tracestate="vendor=opaque",
        )
        with start_consume_span(worker, received, "q") as span:
            forwarded = inject(_envelope("ev-2"))
            assert current_trace_id() == "0af7651916cd43dd8448eb211c80319c"
        assert forwarded.tracestate == "vendor=opaque"
        assert forwarded.traceparent is not None
        assert forwarded.traceparent.split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
        assert forwarded.traceparent.split("-")[2] == f"{span.get_span_context().span_id:016x}"

    def test_inject_without_span_changes_nothing(self) -> None:
        """With no current span the envelope comes back as it was."""
        original = _envelope("ev-1", traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01")
        assert inject(original) is original
        assert current_trace_id() is None

    def test_inject_explicit_span_or_context(self, service: Factory) -> None:
        """inject accepts a span or a context instead of the current one."""
        telemetry = service("x")
        span = telemetry.tracer.start_span("explicit")
        expected = f"{span.get_span_context().span_id:016x}"
        from_span = inject(_envelope("ev"), span)
        from_context = inject(_envelope("ev"), trace.set_span_in_context(span))
        span.end()
        assert from_span.traceparent is not None and from_context.traceparent is not None
        assert from_span.traceparent.split("-")[2] == expected
        assert from_context.traceparent == from_span.traceparent

    @pytest.mark.parametrize("traceparent", [None, "garbage", "00-" + "0" * 32 + "-" + "0" * 16])
    def test_missing_or_bad_traceparent_starts_a_new_trace(
        self, service: Factory, exporter: InMemorySpanExporter, traceparent: str | None
    ) -> None:
        """Without a usable traceparent the consumer span is a root, and nothing raises."""
        assert (
            not trace.get_current_span(extract(_envelope("e", traceparent=traceparent)))
            .get_span_context()
            .is_valid
        )
        with start_consume_span(service("w"), _envelope("e", traceparent=traceparent), "q"):
            pass
        (span,) = exporter.get_finished_spans()
        assert span.parent is None

    def test_none_kind_still_propagates(self) -> None:
        """``none`` exports nothing but spans have real ids, so traceparent is written."""
        with setup_telemetry(service="solo", kind="none") as telemetry:
            assert telemetry.span_exporter is None and telemetry.metric_exporter is None
            with start_publish_span(telemetry, _envelope("ev"), "q") as published:
                pass
        assert published.envelope.traceparent is not None
        assert published.span.get_span_context().is_valid


class TestRedaction:
    def test_safe_attributes(self) -> None:
        """Secret keys lose their values, URLs their queries, strings their tokens."""
        attrs = safe_attributes(
            {
                "url.full": f"https://x.atlassian.net/rest/api/3/issue?jwt={JWT}",
                "http.target": f"/installed?jwt={JWT}",
                "http.url": "https://discord.com/api/v10/channels/1/messages?wait=true",
                "url.query": f"jwt={JWT}",
                "http.request.header.authorization": f"JWT {JWT}",
                "sharedSecret": SHARED_SECRET,
                "message.content": "hello there",
                "user.email": "alice@example.com",
                "note": f"verified Bearer {JWT} for alice@example.com",
                "retry.count": 3,
                "ok": True,
                "ids": [1, 2, 3],
                "mixed": ["a", 1, None],
                "object": {"token": SHARED_SECRET},
                "nothing": None,
                "password": Secret(SHARED_SECRET),
            }
        )
        assert attrs["url.full"] == "https://x.atlassian.net/rest/api/3/issue"
        assert attrs["http.target"] == "/installed"
        assert attrs["http.url"] == "https://discord.com/api/v10/channels/1/messages"
        assert attrs["url.query"] == REDACTED
        assert attrs["http.request.header.authorization"] == REDACTED
        assert attrs["sharedSecret"] == REDACTED
        assert attrs["message.content"] == "[CONTENT]"
        assert attrs["user.email"] == "[EMAIL]"
        assert attrs["note"] == f"verified Bearer {REDACTED} for [EMAIL]"
        assert attrs["retry.count"] == 3 and attrs["ok"] is True
        assert attrs["ids"] == (1, 2, 3)
        assert attrs["mixed"] == ("a", "1")
        assert isinstance(attrs["object"], str)
        assert "nothing" not in attrs
        assert attrs["password"] == REDACTED
        assert find_leaks(json.dumps(attrs), [SHARED_SECRET, JWT]) == []

    def test_span_helpers_redact_at_the_source(self, service: Factory) -> None:
        """Attributes given to the span helpers are clean on the span itself."""
        telemetry = service("gateway")
        raw = _raw_spans(telemetry)
        envelope = _envelope("ev-1", subject=f"https://x.atlassian.net/x?jwt={JWT}")
        with start_consume_span(
            telemetry, envelope, "jira-events", attributes={"sharedSecret": SHARED_SECRET}
        ):
            pass
        with start_publish_span(
            telemetry, envelope, "jira-events", attributes={"http.url": f"/cb?code={JWT}"}
        ):
            pass
        consume, publish = raw.get_finished_spans()
        assert consume.attributes is not None and publish.attributes is not None
        assert consume.attributes["sharedSecret"] == REDACTED
        assert consume.attributes["cloudevents.event_subject"] == "https://x.atlassian.net/x"
        assert publish.attributes["http.url"] == "/cb"
        text = json.dumps([dict(consume.attributes), dict(publish.attributes)])
        assert find_leaks(text, [SHARED_SECRET, JWT]) == []

    def test_failures_are_recorded_redacted(
        self, service: Factory, exporter: InMemorySpanExporter
    ) -> None:
        """An exception in a handler marks the span failed with a redacted message, and escapes."""
        telemetry = service("worker")
        raw = _raw_spans(telemetry)
        with (
            pytest.raises(ValueError, match="rejected"),
            start_consume_span(telemetry, _envelope("ev"), "q"),
        ):
            raise ValueError(f"rejected token={SHARED_SECRET} jwt {JWT}")
        (span,) = raw.get_finished_spans()
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description is not None
        assert span.status.description.startswith("ValueError: rejected")
        (event,) = span.events
        assert event.name == "exception"
        rendered = json.dumps([span.status.description, dict(event.attributes or {})])
        assert "ValueError" in rendered
        assert find_leaks(rendered, [SHARED_SECRET, JWT]) == []

    def test_exporters_get_clean_copies(
        self, service: Factory, exporter: InMemorySpanExporter
    ) -> None:
        """Attributes set outside our helpers are cleaned for export; finished spans stay."""
        telemetry = service("gateway")
        raw = _raw_spans(telemetry)
        with telemetry.tracer.start_as_current_span(f"GET /installed?jwt={JWT}") as span:
            span.set_attribute("http.url", f"https://gw/installed?jwt={JWT}")
            span.add_event("retry", {"authorization": f"JWT {JWT}"})
        (exported,) = exporter.get_finished_spans()
        (finished,) = raw.get_finished_spans()
        assert exported.name == "GET /installed"
        assert exported.attributes == {"http.url": "https://gw/installed"}
        assert exported.events[0].attributes == {"authorization": REDACTED}
        assert exported.context == finished.context
        # the finished span kept what was set: we rebuilt a copy, we did not mutate it
        assert finished.attributes is not None and JWT in str(finished.attributes["http.url"])


class TestSetup:
    def test_unknown_kind(self) -> None:
        """An unknown kind fails naming DFJ_TELEMETRY."""
        with pytest.raises(ConfigError, match="DFJ_TELEMETRY"):
            setup_telemetry(service="x", kind="zipkin")  # type: ignore[arg-type]

    def test_console(self) -> None:
        """``console`` writes finished spans as JSON to the given stream, redacted."""
        out = io.StringIO()
        telemetry = setup_telemetry(service="cli", kind="console", console_out=out)
        with telemetry.tracer.start_as_current_span("work") as span:
            span.set_attribute("token", SHARED_SECRET)
        telemetry.shutdown()
        text = out.getvalue()
        assert '"name": "work"' in text and '"service.name": "cli"' in text
        assert find_leaks(text, [SHARED_SECRET]) == []

    def test_otlp_posts_to_the_endpoint(self) -> None:
        """``otlp`` sends spans and metrics to ``<endpoint>/v1/traces`` and ``/v1/metrics``."""
        paths: list[str] = []

        class Collector(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            endpoint = f"http://127.0.0.1:{server.server_address[1]}/"
            telemetry = setup_telemetry(service="svc", kind="otlp", otlp_endpoint=endpoint)
            with telemetry.tracer.start_as_current_span("work"):
                telemetry.meter.create_counter("dfj.test.count").add(1)
            telemetry.shutdown()
        finally:
            server.shutdown()
            server.server_close()
        assert "/v1/traces" in paths and "/v1/metrics" in paths

    def test_azure_constructs_without_network(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """``azure`` builds both Azure Monitor exporters and shuts down fast, with no traffic."""
        from azure.monitor.opentelemetry.exporter import (
            AzureMonitorMetricExporter,
            AzureMonitorTraceExporter,
        )

        for switch in (
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL",
            "APPLICATIONINSIGHTS_SDKSTATS_DISABLED",
            "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED",
        ):
            monkeypatch.setenv(switch, "true")
        attempts: list[object] = []

        def refuse(_sock: socket.socket, address: object) -> None:
            attempts.append(address)
            raise OSError("network disabled in this test")

        monkeypatch.setattr(socket.socket, "connect", refuse)
        started = time.monotonic()
        telemetry = setup_telemetry(
            service="svc",
            kind="azure",
            azure_connection_string=Secret(AZURE_CONNECTION),
            azure_exporter_options={"disable_offline_storage": True},
        )
        assert isinstance(telemetry.span_exporter, AzureMonitorTraceExporter)
        assert isinstance(telemetry.metric_exporter, AzureMonitorMetricExporter)
        telemetry.shutdown()
        assert time.monotonic() - started < 5
        assert attempts == []

    def test_azure_needs_a_connection_string(self) -> None:
        """``azure`` without a connection string fails naming the setting."""
        with pytest.raises(ConfigError, match="DFJ_APPLICATIONINSIGHTS_CONNECTION_STRING"):
            setup_telemetry(service="svc", kind="azure")

    def test_from_settings(self, exporter: InMemorySpanExporter) -> None:
        """telemetry_from_settings follows DFJ_TELEMETRY and names the service."""
        telemetry = telemetry_from_settings(Settings(), service="linker", span_exporter=exporter)
        with telemetry.tracer.start_as_current_span("x"):
            pass
        telemetry.shutdown()
        telemetry.shutdown()  # idempotent
        (span,) = exporter.get_finished_spans()
        assert span.resource.attributes["service.name"] == "linker"

    def test_meter_reaches_readers(self) -> None:
        """The meter records to the readers given, not to a global provider."""
        reader = InMemoryMetricReader()
        with setup_telemetry(service="m", kind="none", metric_readers=[reader]) as telemetry:
            telemetry.meter.create_counter("dfj.test.count").add(2, {"queue": "q"})
            data = reader.get_metrics_data()
        assert data is not None
        (resource_metrics,) = data.resource_metrics
        (scope,) = resource_metrics.scope_metrics
        (metric,) = scope.metrics
        assert metric.name == "dfj.test.count"
        assert [p.value for p in metric.data.data_points] == [2]  # type: ignore[union-attr]
