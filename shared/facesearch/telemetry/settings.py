"""Knobs of traces and metrics (``FACESEARCH_TELEMETRY_*``) and of the operational
safety nets (``FACESEARCH_MAX_EVENT_AGE_S``, ``FACESEARCH_OPS_STUCK_AFTER_S``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat

from facesearch.section import Fraction, SettingsSection, env_name


class TelemetrySettings(SettingsSection):
    """Where spans and metrics go. Off by default (tests, the CLI); Terraform turns the
    Cloud Trace / Cloud Monitoring exporters on, ``facesearch serve`` the Prometheus one."""

    env_prefix = "telemetry_"

    traces: Literal["off", "console", "otlp", "gcp"] = "off"
    """Span exporter: off, console (stderr), otlp (HTTP, see FACESEARCH_TELEMETRY_OTLP_ENDPOINT) or
    gcp (Cloud Trace)."""
    trace_sample_ratio: Fraction = 0.1
    """Share of new traces sampled (parent-based: a sampled caller's trace is always followed)."""
    otlp_endpoint: str = "http://127.0.0.1:4318/v1/traces"
    """OTLP/HTTP traces endpoint when FACESEARCH_TELEMETRY_TRACES=otlp."""
    metrics: Literal["off", "prometheus", "gcp"] = "off"
    """Metrics exporter: off, prometheus (GET /metrics on facesearch serve) or gcp (Cloud
    Monitoring)."""
    metrics_interval_s: float = Field(default=60.0, ge=10.0)
    """Cloud Monitoring export period (a series takes one point per 10 s at most)."""
    flush_timeout_s: PositiveFloat = 2.0
    """How long a function waits to flush its spans before it answers (Cloud Run throttles the CPU
    afterwards) and on SIGTERM."""


class OpsSettings(SettingsSection):
    """Retry hygiene and the stuck-image sweep."""

    env_prefix = "ops_"

    max_event_age_s: PositiveFloat = Field(
        default=6 * 3600.0, json_schema_extra=env_name("max_event_age_s")
    )
    """Events and messages older than this are dropped and recorded (image failed 'event-expired',
    or an ERROR log for the indexer) instead of retried forever."""
    stuck_after_s: PositiveFloat = 1800.0
    """An image 'processing' this long is stuck: the sweep re-queues it and facesearch doctor
    reports it."""
