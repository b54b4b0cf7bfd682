"""OpenTelemetry traces and metrics, and W3C trace context carried across the bus.

:func:`setup_telemetry` builds a :class:`Telemetry` that owns its ``TracerProvider`` and
``MeterProvider`` (nothing is installed globally, so tests and several services in one process
do not fight over providers). The exporter is chosen by ``kind``: ``console``, ``otlp``
(OTLP/HTTP), ``azure`` (Application Insights through azure-monitor-opentelemetry-exporter,
a hand-built pipeline rather than the distro, so we control redaction) or ``none`` — spans are
still created with real ids, so ``traceparent`` propagates even when nothing is exported.

**Trace propagation.** Nothing makes a handler's span a child of the producer's on its own
(Azure Service Bus only links them). So the envelope carries W3C ``traceparent``/``tracestate``:
:func:`start_publish_span` opens a PRODUCER span and hands back the envelope stamped with it
(:func:`inject`); :func:`start_consume_span` opens a CONSUMER span whose parent is the context
:func:`extract`-ed from the envelope. A request through gateway → jira-worker → discord-worker
is then one trace, in every bus mode.

**Redaction at the source.** Finished spans are immutable (opentelemetry-sdk makes their
attributes read-only in ``Span.end()``; a processor that rewrites them fails), so attributes
are cleaned before they are set: :func:`safe_attributes` drops the values of secret-looking
keys and message content, strips query strings from URLs (Connect URLs carry ``jwt=``) and
scrubs every string. All span helpers here use it, and exceptions are recorded with redacted
messages. As a second line, every exporter is wrapped so it exports rebuilt copies of spans
whose attributes, events, links and status passed the same cleaning (for attributes set by
third-party instrumentation) — the finished spans themselves are never touched.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final, NamedTuple, TextIO, get_args

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from dfj_common._redact import (
    PLACEHOLDERS,
    REDACTED,
    classify_key,
    redact_text,
    strip_url_query,
)
from dfj_common.config import Secret, Settings, TelemetryKind
from dfj_common.envelope import Envelope
from dfj_common.errors import ConfigError

__all__ = [
    "PublishSpan",
    "Telemetry",
    "TelemetryKind",
    "current_trace_id",
    "extract",
    "inject",
    "record_failure",
    "safe_attributes",
    "setup_telemetry",
    "start_consume_span",
    "start_publish_span",
    "telemetry_from_settings",
]

_URL_KEY_SUFFIXES: Final = ("url", "uri", "target", "path", "href", "link", "location")


# --------------------------------------------------------------------------- attributes


def safe_attributes(attributes: Mapping[str, object] | None) -> dict[str, AttributeValue]:
    """Attributes fit to set on a span: secrets and content dropped, URLs without queries.

    ``None`` values are left out; values that are not OpenTelemetry attribute types become
    (redacted) strings; sequences become homogeneous sequences of strings when mixed.
    """
    out: dict[str, AttributeValue] = {}
    try:
        items = list((attributes or {}).items())
    except Exception:
        return out
    for key, value in items:
        try:
            name = redact_text(str(key))
            if value is None:
                continue
            kind = classify_key(name)
            harmless = isinstance(value, bool) or (
                kind == "secret" and isinstance(value, int | float)
            )
            if kind is not None and not harmless:
                out[name] = PLACEHOLDERS[kind]
                continue
            if _normalised_key(name).endswith("query") and isinstance(value, str):
                out[name] = REDACTED
                continue
            out[name] = _attribute_value(name, value)
        except Exception:  # noqa: S112 - an attribute that cannot be made safe is left out
            continue
    return out


def _normalised_key(key: str) -> str:
    return "".join(ch for ch in key.lower() if ch.isalnum())


def _clean_string(key: str, value: str) -> str:
    text = strip_url_query(value)
    if "?" in text and _normalised_key(key).endswith(_URL_KEY_SUFFIXES):
        text = text.split("?", 1)[0]
    return redact_text(text)


def _attribute_value(key: str, value: object) -> AttributeValue:
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return _clean_string(key, value)
    if isinstance(value, Secret):
        return REDACTED
    if isinstance(value, list | tuple):
        kinds = {type(v) for v in value if v is not None}
        if len(kinds) == 1 and kinds <= {bool, int, float}:
            return tuple(value)
        return tuple(_clean_string(key, str(v)) for v in value if v is not None)
    return _clean_string(key, str(value))


# --------------------------------------------------------------------------- telemetry


class Telemetry:
    """One service's tracer and meter, with the providers behind them; ``shutdown()`` flushes.

    ``span_exporter``/``metric_exporter`` are the exporters ``kind`` chose (``None`` for
    ``none``), kept for inspection; spans reach them through a redacting wrapper.
    """

    def __init__(
        self,
        *,
        service: str,
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
        span_exporter: SpanExporter | None = None,
        metric_exporter: MetricExporter | None = None,
    ) -> None:
        self.service = service
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.span_exporter = span_exporter
        self.metric_exporter = metric_exporter
        self.tracer: Tracer = tracer_provider.get_tracer(f"dfj.{service}")
        self.meter: Meter = meter_provider.get_meter(f"dfj.{service}")
        self._shut_down = False

    def force_flush(self, timeout_millis: int = 5_000) -> bool:
        """Export what is buffered now; ``False`` if it did not finish in time."""
        traces = self.tracer_provider.force_flush(timeout_millis)
        metrics = self.meter_provider.force_flush(timeout_millis)
        return bool(traces and metrics)

    def shutdown(self, timeout_millis: int = 5_000) -> None:
        """Flush and stop both providers (idempotent)."""
        if self._shut_down:
            return
        self._shut_down = True
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown(timeout_millis=timeout_millis)

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.shutdown()


def setup_telemetry(
    *,
    service: str,
    kind: TelemetryKind,
    otlp_endpoint: str | None = None,
    azure_connection_string: str | Secret | None = None,
    span_exporter: SpanExporter | None = None,
    metric_readers: Sequence[MetricReader] = (),
    console_out: TextIO | None = None,
    metric_export_interval_millis: float = 60_000,
    resource_attributes: Mapping[str, str] | None = None,
    azure_exporter_options: Mapping[str, Any] | None = None,
) -> Telemetry:
    """Build the providers for ``service`` exporting to ``kind``.

    ``span_exporter`` (tests: ``InMemorySpanExporter``) is attached as well, synchronously;
    ``metric_readers`` likewise (``InMemoryMetricReader``). ``otlp_endpoint`` is the OTLP/HTTP
    base URL (``/v1/traces`` and ``/v1/metrics`` are appended); ``azure_connection_string``
    is the Application Insights connection string, and ``azure_exporter_options`` go to both
    Azure exporters (``credential=`` for Entra ID auth, ``disable_offline_storage=``, …).
    Nothing is set globally.

    The Azure exporter also reports SDK statistics to Microsoft and polls a remote
    configuration service unless ``APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL``,
    ``APPLICATIONINSIGHTS_SDKSTATS_DISABLED`` and ``APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED``
    are ``true`` in the environment; that is the library's own switch, left to the operator.
    """
    if kind not in get_args(TelemetryKind):
        raise ConfigError(f"DFJ_TELEMETRY must be one of {', '.join(get_args(TelemetryKind))}")
    resource = Resource.create({**(resource_attributes or {}), SERVICE_NAME: service})
    tracer_provider = TracerProvider(resource=resource)
    readers: list[MetricReader] = list(metric_readers)

    exporters = _exporters(
        kind,
        otlp_endpoint=otlp_endpoint,
        azure_connection_string=azure_connection_string,
        console_out=console_out,
        azure_options=azure_exporter_options or {},
    )
    if exporters is not None:
        spans, metrics = exporters
        tracer_provider.add_span_processor(BatchSpanProcessor(RedactingSpanExporter(spans)))
        readers.append(
            PeriodicExportingMetricReader(
                metrics, export_interval_millis=metric_export_interval_millis
            )
        )
    if span_exporter is not None:
        tracer_provider.add_span_processor(
            SimpleSpanProcessor(RedactingSpanExporter(span_exporter))
        )
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    return Telemetry(
        service=service,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        span_exporter=exporters[0] if exporters else None,
        metric_exporter=exporters[1] if exporters else None,
    )


def telemetry_from_settings(
    settings: Settings, *, service: str, span_exporter: SpanExporter | None = None
) -> Telemetry:
    """:func:`setup_telemetry` as ``DFJ_TELEMETRY`` and its endpoint settings say."""
    return setup_telemetry(
        service=service,
        kind=settings.telemetry,
        otlp_endpoint=settings.otlp_endpoint,
        azure_connection_string=settings.applicationinsights_connection_string,
        span_exporter=span_exporter,
    )


def _exporters(
    kind: TelemetryKind,
    *,
    otlp_endpoint: str | None,
    azure_connection_string: str | Secret | None,
    console_out: TextIO | None,
    azure_options: Mapping[str, Any],
) -> tuple[SpanExporter, MetricExporter] | None:
    if kind == "none":
        return None
    if kind == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        out = console_out if console_out is not None else sys.stdout
        return ConsoleSpanExporter(out=out), ConsoleMetricExporter(out=out)
    if kind == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        if otlp_endpoint is None:  # the exporters read OTEL_EXPORTER_OTLP_* themselves
            return OTLPSpanExporter(), OTLPMetricExporter()
        base = otlp_endpoint.rstrip("/").removesuffix("/v1/traces").removesuffix("/v1/metrics")
        return (
            OTLPSpanExporter(endpoint=f"{base}/v1/traces"),
            OTLPMetricExporter(endpoint=f"{base}/v1/metrics"),
        )
    from azure.monitor.opentelemetry.exporter import (
        AzureMonitorMetricExporter,
        AzureMonitorTraceExporter,
    )

    if not azure_connection_string:
        raise ConfigError("DFJ_TELEMETRY=azure needs DFJ_APPLICATIONINSIGHTS_CONNECTION_STRING")
    connection = (
        azure_connection_string.reveal()
        if isinstance(azure_connection_string, Secret)
        else azure_connection_string
    )
    try:
        return (
            AzureMonitorTraceExporter(connection_string=connection, **azure_options),
            AzureMonitorMetricExporter(connection_string=connection, **azure_options),
        )
    except ValueError as exc:
        raise ConfigError(
            f"DFJ_APPLICATIONINSIGHTS_CONNECTION_STRING is not a valid connection string: {exc}"
        ) from None


class RedactingSpanExporter(SpanExporter):
    """Exports clean copies of spans (attributes, events, links, status) to ``inner``."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([_clean_span(span) for span in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


def _clean_span(span: ReadableSpan) -> ReadableSpan:
    status = span.status
    if status.description:
        status = Status(status.status_code, redact_text(status.description))
    return ReadableSpan(
        name=redact_text(strip_url_query(span.name)),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=safe_attributes(span.attributes),
        events=[Event(e.name, safe_attributes(e.attributes), e.timestamp) for e in span.events],
        links=[Link(link.context, safe_attributes(link.attributes)) for link in span.links],
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


# --------------------------------------------------------------------------- propagation


def inject(envelope: Envelope, span_or_context: Span | Context | None = None) -> Envelope:
    """The envelope carrying the W3C trace context of ``span_or_context`` (default: current).

    Without a valid span the envelope is returned unchanged.
    """
    ctx: Context
    if span_or_context is None:  # first: the usual case, and Span is an ABC (a slow check)
        ctx = otel_context.get_current()
    elif isinstance(span_or_context, Span):
        ctx = trace.set_span_in_context(span_or_context)
    else:
        ctx = span_or_context
    if not trace.get_current_span(ctx).get_span_context().is_valid:
        return envelope
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=ctx)
    return envelope.with_trace(carrier.get("traceparent"), carrier.get("tracestate") or None)


def extract(envelope: Envelope) -> Context:
    """The trace context an envelope carries (an empty context when it has none or it is bad)."""
    carrier = {
        k: v
        for k, v in (("traceparent", envelope.traceparent), ("tracestate", envelope.tracestate))
        if v
    }
    return TraceContextTextMapPropagator().extract(carrier, context=Context())


def current_trace_id() -> str | None:
    """The hex trace id of the current span, for ``bind_message_context(trace_id=…)``."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


class PublishSpan(NamedTuple):
    """What :func:`start_publish_span` yields: the span, and the envelope to publish."""

    span: Span
    envelope: Envelope


def _message_attributes(envelope: Envelope, queue: str, operation: str) -> dict[str, object]:
    return {
        "messaging.operation.type": operation,
        "messaging.destination.name": queue,
        "messaging.message.id": envelope.id,
        "cloudevents.event_id": envelope.id,
        "cloudevents.event_source": envelope.source,
        "cloudevents.event_type": envelope.type,
        "cloudevents.event_spec_version": "1.0",
        "cloudevents.event_subject": envelope.subject,
        "dfj.tenant": envelope.tenant,
        "dfj.session_key": envelope.session_key,
    }


@contextmanager
def start_consume_span(
    telemetry: Telemetry,
    envelope: Envelope,
    queue: str,
    *,
    attributes: Mapping[str, object] | None = None,
) -> Iterator[Span]:
    """A current CONSUMER span ``process <queue>`` whose parent is the envelope's producer."""
    with _span(
        telemetry,
        f"process {queue}",
        SpanKind.CONSUMER,
        context=extract(envelope),
        attributes={**_message_attributes(envelope, queue, "process"), **(attributes or {})},
    ) as span:
        yield span


@contextmanager
def start_publish_span(
    telemetry: Telemetry,
    envelope: Envelope,
    queue: str,
    *,
    attributes: Mapping[str, object] | None = None,
) -> Iterator[PublishSpan]:
    """A current PRODUCER span ``send <queue>``, and the envelope stamped with it to publish."""
    with _span(
        telemetry,
        f"send {queue}",
        SpanKind.PRODUCER,
        context=None,
        attributes={**_message_attributes(envelope, queue, "send"), **(attributes or {})},
    ) as span:
        yield PublishSpan(span, inject(envelope, span))


@contextmanager
def _span(
    telemetry: Telemetry,
    name: str,
    kind: SpanKind,
    *,
    context: Context | None,
    attributes: Mapping[str, object],
) -> Iterator[Span]:
    with telemetry.tracer.start_as_current_span(
        name,
        context=context,
        kind=kind,
        attributes=safe_attributes(attributes),
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except Exception as exc:
            record_failure(span, exc)
            raise


def record_failure(span: Span, exc: BaseException) -> None:
    """Record ``exc`` on ``span`` with its message and traceback redacted, and mark it failed."""
    message = redact_text(str(exc))
    stacktrace = redact_text("".join(traceback.format_exception(exc)))
    attrs: dict[str, Any] = {"exception.message": message, "exception.stacktrace": stacktrace}
    span.record_exception(exc, attributes=attrs)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {message}"[:512]))
