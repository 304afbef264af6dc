"""Traces and metrics with OpenTelemetry: one API in the code, the exporter chosen by settings.

The library only uses the vendor-neutral OpenTelemetry *API* (``span``, ``inject``,
``extract``, the instruments in :mod:`.metrics`): with nothing configured those are
no-ops, so tests and the CLI pay nothing. :func:`configure` (called once per process by
each function's ``main.py`` and by ``facesearch serve``) installs the SDK with the
exporters ``FACESEARCH_TELEMETRY_*`` ask for:

* traces: Cloud Trace (``opentelemetry-exporter-gcp-trace``) in the cloud, the console
  or OTLP/HTTP locally; parent-based ratio sampling;
* metrics: Cloud Monitoring (``opentelemetry-exporter-gcp-monitoring``) in the cloud,
  Prometheus (``GET /metrics`` of ``facesearch serve``) locally.

Cloud Run pitfalls handled here: the resource carries a unique ``service.instance.id``
per process (uuid + pid: gunicorn workers of one instance must not write the same time
series, or Cloud Monitoring rejects the points) plus what the GCP resource detector finds;
functions call :func:`flush` before they answer, because Cloud Run throttles the CPU once
the response is sent and a batch of spans would otherwise wait for the next request; and
SIGTERM (scale-in) flushes spans and metrics before the previous handler runs.

Trace context crosses Pub/Sub as W3C ``traceparent``/``tracestate`` message attributes
(:func:`inject` when publishing — both bus adapters do it — and :func:`extract` in the
consumer), and HTTP as the same headers.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import logging
import os
import signal
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from facesearch.config import Settings

logger = logging.getLogger(__name__)

TRACER = trace.get_tracer("facesearch")
_PROPAGATOR = TraceContextTextMapPropagator()
#: the attributes that carry trace context on a message (W3C trace context)
TRACE_ATTRIBUTES = ("traceparent", "tracestate")

_lock = threading.Lock()
_state: dict[str, Any] = {}


def span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    parent: otel_context.Context | None = None,
    links: Sequence[Link] = (),
    kind: SpanKind = SpanKind.INTERNAL,
) -> contextlib.AbstractContextManager[Span]:
    """A span as a context manager (records the exception and an error status on raise)."""
    return TRACER.start_as_current_span(
        name,
        context=parent,
        links=list(links),
        kind=kind,
        attributes={k: v for k, v in (attributes or {}).items() if v is not None},
    )


def inject(attributes: Mapping[str, str]) -> dict[str, str]:
    """``attributes`` plus the current trace context (unchanged when nothing is traced)."""
    carrier = dict(attributes)
    _PROPAGATOR.inject(carrier)
    return carrier


def extract(carrier: Mapping[str, str] | None) -> otel_context.Context:
    """The trace context a message's attributes or a request's headers carry."""
    if not carrier:
        return otel_context.Context()
    lowered = {str(k).lower(): str(v) for k, v in carrier.items()}
    return _PROPAGATOR.extract(lowered)


def link_to(carrier: Mapping[str, str] | None) -> Link | None:
    """A span link to the context ``carrier`` holds (a group commit links its messages)."""
    span_context = trace.get_current_span(extract(carrier)).get_span_context()
    return Link(span_context) if span_context.is_valid else None


def configured() -> bool:
    return bool(_state)


def configure(settings: Settings, service: str, *, span_exporter: Any = None) -> None:
    """Install the SDK for this process once (later calls do nothing).

    ``span_exporter`` replaces the configured one (tests pass an in-memory exporter).
    """
    t = settings.telemetry
    if t.traces == "off" and t.metrics == "off":
        return
    with _lock:
        if _state:
            return
        from opentelemetry.sdk.resources import Resource

        resource = Resource.create(
            {
                "service.name": f"facesearch-{service}",
                "service.namespace": f"facesearch-{settings.env}",
                "service.instance.id": f"{uuid.uuid4().hex[:16]}-{os.getpid()}",
                "deployment.environment": settings.env,
            }
        )
        if "gcp" in (t.traces, t.metrics):
            resource = _gcp_resource().merge(resource)
        _state["timeout_ms"] = int(t.flush_timeout_s * 1000)
        if t.traces != "off":
            _state["tracer_provider"] = _tracer_provider(settings, resource, span_exporter)
        if t.metrics != "off":
            _state["meter_provider"] = _meter_provider(settings, resource)
        atexit.register(shutdown)
        _chain_sigterm()
        logger.info(
            "telemetry configured",
            extra={"fields": {"traces": t.traces, "metrics": t.metrics, "service": service}},
        )


def _gcp_resource() -> Any:
    from opentelemetry.sdk.resources import Resource

    detector = importlib.import_module("opentelemetry.resourcedetector.gcp_resource_detector")
    try:
        return detector.GoogleCloudResourceDetector(raise_on_error=False).detect()
    except Exception:  # not on GCP (emulators): no platform attributes
        return Resource.get_empty()


def _tracer_provider(settings: Settings, resource: Any, override: Any = None) -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    t = settings.telemetry
    exporter: SpanExporter
    if override is not None:
        exporter = override
    elif t.traces == "gcp":
        # importlib: a static import makes mypy resolve google.cloud from the typed
        # google-cloud-trace package and lose the untyped google.cloud.storage
        cloud_trace = importlib.import_module("opentelemetry.exporter.cloud_trace")
        exporter = cloud_trace.CloudTraceSpanExporter(project_id=settings.project)
    elif t.traces == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=t.otlp_endpoint)
    else:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        exporter = ConsoleSpanExporter()
    provider = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(t.trace_sample_ratio))
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def _meter_provider(settings: Settings, resource: Any) -> Any:
    from opentelemetry import metrics as otel_metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
    from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

    from facesearch.telemetry.metrics import LATENCY_BUCKETS_S

    t = settings.telemetry
    reader: MetricReader
    if t.metrics == "gcp":
        monitoring = importlib.import_module("opentelemetry.exporter.cloud_monitoring")
        reader = PeriodicExportingMetricReader(
            monitoring.CloudMonitoringMetricsExporter(
                project_id=settings.project, add_unique_identifier=True
            ),
            export_interval_millis=int(t.metrics_interval_s * 1000),
        )
    else:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader

        reader = PrometheusMetricReader()
    seconds = View(
        instrument_name="facesearch.*seconds*",
        aggregation=ExplicitBucketHistogramAggregation(LATENCY_BUCKETS_S),
    )
    provider = MeterProvider(resource=resource, metric_readers=[reader], views=[seconds])
    otel_metrics.set_meter_provider(provider)
    return provider


def flush() -> None:
    """Export buffered spans now (before a function answers: the CPU is throttled after)."""
    provider = _state.get("tracer_provider")
    if provider is not None:
        provider.force_flush(_state["timeout_ms"])


def flush_all() -> None:
    """Spans and metrics (SIGTERM, exit)."""
    flush()
    provider = _state.get("meter_provider")
    if provider is not None:
        with contextlib.suppress(Exception):
            provider.force_flush(_state["timeout_ms"])


def shutdown() -> None:
    for name in ("tracer_provider", "meter_provider"):
        provider = _state.get(name)
        if provider is not None:
            with contextlib.suppress(Exception):
                provider.shutdown()


def _chain_sigterm() -> None:
    """Flush on SIGTERM, then do what the previous handler (gunicorn's) did."""
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: Any) -> None:
        with contextlib.suppress(Exception):
            flush_all()
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)


@contextlib.contextmanager
def request_scope() -> Iterator[None]:
    """Around one function request: spans are flushed before the response goes out."""
    try:
        yield
    finally:
        flush()


@contextlib.contextmanager
def delivery(
    name: str, attributes: Mapping[str, Any], carrier: Mapping[str, str] | None
) -> Iterator[Span]:
    """One pushed message's handling: a CONSUMER span continuing the publisher's trace
    (``carrier`` = the message attributes), flushed before the push is answered."""
    with (
        span(name, attributes, parent=extract(carrier), kind=SpanKind.CONSUMER) as current,
        request_scope(),
    ):
        yield current


def prometheus_text() -> tuple[bytes, str] | None:
    """The Prometheus exposition of this process's metrics (None unless that exporter is on)."""
    if "meter_provider" not in _state:
        return None
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


__all__ = [
    "TRACER",
    "TRACE_ATTRIBUTES",
    "configure",
    "configured",
    "extract",
    "flush",
    "flush_all",
    "inject",
    "link_to",
    "prometheus_text",
    "request_scope",
    "shutdown",
    "span",
]
