"""Traces cross the bus and HTTP, metrics are exposed without identifiers, stale events
are dropped and recorded, stuck images are re-queued."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from facesearch import telemetry
from facesearch.backends import services
from facesearch.backends.local import LocalBackend
from facesearch.config import load_settings
from facesearch.ingest.entry import handle_event
from facesearch.ingest.service import Outcome
from facesearch.ingest.sources import STORAGE_FINALIZED, SourceRef, request_from_ingest_message
from facesearch.ops.sweep import StuckSweep
from facesearch.storage.bus import Message
from facesearch.storage.local.bus import InProcessBus
from facesearch.storage.metadata import ImageRecord, ImageStatus
from facesearch.vision.pipeline import FacePipeline
from tests.support.api import SignedClient, build_env

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InMemorySpanExporter]:
    """The SDK as the functions install it (once per process), spans kept in memory."""
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("t"),
        telemetry_traces="console",
        telemetry_trace_sample_ratio=1.0,
        telemetry_metrics="prometheus",
    )
    telemetry.configure(settings, "test", span_exporter=EXPORTER)
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        yield EXPORTER
    else:  # pragma: no cover - another test configured first without our exporter
        pytest.fail("telemetry was configured before this module")


def finished(name: str) -> list[object]:
    telemetry.flush()
    return [s for s in EXPORTER.get_finished_spans() if s.name == name]


def test_trace_context_rides_in_message_attributes(traced: InMemorySpanExporter) -> None:
    bus = InProcessBus()
    consumed: list[object] = []

    def handler(batch: list[Message]) -> None:
        for message in batch:
            with telemetry.span("consume", parent=telemetry.extract(message.attributes)) as s:
                consumed.append(s)

    bus.subscribe("t", handler)
    with telemetry.span("upload") as upload:
        bus.publish("t", [Message(b"x", {"kind": "embeddings"})])
    (sent,) = bus.published["t"]
    assert (
        sent.attributes["traceparent"].split("-")[1] == f"{upload.get_span_context().trace_id:032x}"
    )
    bus.drain()
    (consume,) = finished("consume")
    assert consume.context.trace_id == upload.get_span_context().trace_id  # type: ignore[attr-defined]
    assert consume.parent.span_id == upload.get_span_context().span_id  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> FacePipeline:
    return FacePipeline(load_settings(data_dir=tmp_path_factory.mktemp("p")))


def test_query_requests_continue_the_callers_trace_and_are_counted(
    traced: InMemorySpanExporter, tmp_path: Path, pipeline: FacePipeline
) -> None:
    env = build_env(load_settings(data_dir=tmp_path), pipeline, images={})
    client = SignedClient(env.app)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = client.call(
        "GET", "/healthz", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    )
    assert response.status_code == 200
    spans = [s for s in finished("GET healthz") if f"{s.context.trace_id:032x}" == trace_id]  # type: ignore[attr-defined]
    assert spans and spans[0].attributes["http.response.status_code"] == 200  # type: ignore[attr-defined]

    scrape = client.call("GET", "/metrics", sign=False)
    assert scrape.status_code == 200
    text = scrape.get_data(as_text=True)
    assert "facesearch_query_seconds_count{" in text and 'route="healthz"' in text
    # aggregate counts only: no collection, image, face or key ids in any label
    labels = {
        pair.split("=")[0]
        for line in text.splitlines()
        if line.startswith("facesearch_") and "{" in line
        for pair in line[line.index("{") + 1 : line.rindex("}")].split(",")
    }
    assert labels <= {"route", "status", "result", "cache", "role", "outcome", "reason", "code",
                      "topic", "kind", "le", "otel_scope_name", "otel_scope_version",
                      "otel_scope_schema_url", "job", "instance"}, labels  # fmt: skip


def test_an_event_older_than_the_max_age_is_dropped_and_recorded(
    tmp_path: Path, pipeline: FacePipeline
) -> None:
    backend = LocalBackend(load_settings(data_dir=tmp_path, max_event_age_s=3600))
    backend.override(pipeline=pipeline)
    service = services.ingest_service(backend)
    event = {"bucket": "up", "name": "old.jpg", "generation": "7", "size": "10"}
    hours_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 7200))
    outcome = handle_event(
        STORAGE_FINALIZED, json.dumps(event), service=service, attributes={"time": hours_ago}
    )
    assert outcome is not None and outcome.outcome is Outcome.FAILED
    assert outcome.error_code == "event-expired"
    record = backend.metadata().get_image(SourceRef.gcs("up", "old.jpg", 7).image_id)
    assert record is not None and record.status is ImageStatus.FAILED


def test_stuck_images_are_requeued_as_ingest_requests(tmp_path: Path) -> None:
    backend = LocalBackend(load_settings(data_dir=tmp_path))
    store = backend.metadata()
    source = SourceRef.gcs("up", "a.jpg", 3)
    store.put_image(
        ImageRecord(source.image_id, source.display, ImageStatus.PROCESSING, source.info())
    )
    done = SourceRef.gcs("up", "b.jpg", 4)  # finished: never re-queued
    store.put_image(ImageRecord(done.image_id, done.display, ImageStatus.DONE, done.info()))
    bus = InProcessBus()

    def sweep(after_s: float) -> StuckSweep:
        return StuckSweep(
            backend.catalog(), stores=backend.metadata, bus=bus, ingest_topic="ingest-requests",
            older_than_s=60, clock=lambda: time.time() + after_s,
        )  # fmt: skip

    assert sweep(after_s=0).run().total == 0  # processing for less than the timeout
    result = sweep(after_s=120).run()
    assert result.requeued == {"default": 1}
    (message,) = bus.published["ingest-requests"]
    requested = request_from_ingest_message(message.data)
    assert isinstance(requested, SourceRef) and requested.image_id == source.image_id


TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = f"00-{TRACE}-b7ad6b7169203331-01"


def _in_trace(name: str) -> list[object]:
    return [s for s in finished(name) if f"{s.context.trace_id:032x}" == TRACE]  # type: ignore[attr-defined]


def test_ingest_continues_the_events_trace(traced: InMemorySpanExporter, tmp_path: Path) -> None:
    backend = LocalBackend(load_settings(data_dir=tmp_path))
    service = services.ingest_service(backend)
    event = {"bucket": "up", "name": "crops/own-output.jpg", "generation": "1"}
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    outcome = handle_event(
        STORAGE_FINALIZED,
        json.dumps(event),
        service=service,
        attributes={"time": now, "traceparent": PARENT},
    )
    assert outcome is not None and outcome.outcome is Outcome.SKIPPED
    (delivery,) = _in_trace("ingest.delivery")
    (ingest,) = _in_trace("ingest")
    assert ingest.parent.span_id == delivery.context.span_id  # type: ignore[attr-defined]


def test_the_indexer_continues_the_publishers_trace(traced: InMemorySpanExporter) -> None:
    import base64

    from facesearch.indexer.entry import handle_push
    from facesearch.indexer.service import Applied

    class Committer:
        def submit(self, message: Message, weight: int) -> Applied:
            with telemetry.span("index.commit"):
                return Applied("embeddings", 0)

    push = {
        "message": {
            "data": base64.b64encode(b"{}").decode(),
            "attributes": {"kind": "embeddings", "traceparent": PARENT},
            "messageId": "m1",
            "publishTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    }
    handle_push(
        "//pubsub.googleapis.com/projects/p/topics/face-embeddings",
        push,
        committer=Committer(),  # type: ignore[arg-type]
        settings=load_settings(),
    )
    (delivery,) = _in_trace("indexer.delivery")
    assert delivery.parent.span_id == int("b7ad6b7169203331", 16)  # type: ignore[attr-defined]
    assert [s.parent.span_id for s in _in_trace("index.commit")] == [delivery.context.span_id]  # type: ignore[attr-defined]


def test_the_clusterer_continues_the_indexers_trace(traced: InMemorySpanExporter) -> None:
    import base64

    from facesearch.people.entry import handle_push

    class Clusterer:
        def handle(self, message: Message) -> None:
            with telemetry.span("people.apply"):
                return None

    push = {
        "message": {
            "data": base64.b64encode(b"{}").decode(),
            "attributes": {"kind": "face-event", "traceparent": PARENT},
            "messageId": "e1",
        }
    }
    handle_push(push, service=Clusterer())  # type: ignore[arg-type]
    (delivery,) = _in_trace("clusterer.delivery")
    assert delivery.parent.span_id == int("b7ad6b7169203331", 16)  # type: ignore[attr-defined]
    assert [s.parent.span_id for s in _in_trace("people.apply")] == [delivery.context.span_id]  # type: ignore[attr-defined]
