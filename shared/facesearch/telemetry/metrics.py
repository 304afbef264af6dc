"""The metrics, defined once (OpenTelemetry instruments; no-ops until configured).

Names follow OpenTelemetry (dots); the Prometheus exporter shows them with underscores
and unit suffixes, Cloud Monitoring as ``workload.googleapis.com/<name>``.

Labels are bounded and carry no identifiers: no collection ids (they can be customer
or event names, and hundreds of them would multiply every series), no image, face or
key ids. Per-collection detail is what ``facesearch index stats`` and ``doctor`` are for.

| instrument | kind | labels |
| --- | --- | --- |
| ``facesearch.upload_to_searchable.seconds`` | histogram | — |
| ``facesearch.ingest.images`` | counter | ``outcome`` (done, failed, duplicate, ...) |
| ``facesearch.ingest.faces`` | counter (rate = faces/s) | — |
| ``facesearch.ingest.seconds`` | histogram | ``outcome`` |
| ``facesearch.ingest.rejects`` | counter | ``reason`` (the error code an image failed with) |
| ``facesearch.ingest.failures`` | counter | ``code`` (deliveries answered 5xx: retried) |
| ``facesearch.message.age.seconds`` | histogram | ``topic`` (publish -> handled) |
| ``facesearch.events.expired`` | counter | ``topic`` (older than max event age: dropped) |
| ``facesearch.index.commit.seconds`` | histogram | ``kind`` (add, delete) |
| ``facesearch.index.segments`` / ``.live`` / ``.tombstones`` | gauge | ``role`` (writer, reader) |
| ``facesearch.query.seconds`` | histogram | ``route``, ``status`` |
| ``facesearch.query.shed`` | counter | ``reason`` (connections, detection slots, quota) |
| ``facesearch.cache.requests`` | counter | ``cache`` (segments), ``result`` (hit, miss) |
| ``facesearch.sweep.requeued`` | counter | — |
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

#: histogram buckets for every ``*.seconds`` instrument (ms to many minutes)
LATENCY_BUCKETS_S = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    900.0,
)  # fmt: skip

_meter = metrics.get_meter("facesearch")

upload_to_searchable = _meter.create_histogram(
    "facesearch.upload_to_searchable.seconds",
    unit="s",
    description="From the upload (source creation time) to the index commit that holds its faces.",
)
ingest_images = _meter.create_counter(
    "facesearch.ingest.images", description="Images handled by ingest, by outcome."
)
ingest_faces = _meter.create_counter("facesearch.ingest.faces", description="Faces stored.")
ingest_seconds = _meter.create_histogram(
    "facesearch.ingest.seconds", unit="s", description="One image through ingest, by outcome."
)
ingest_rejects = _meter.create_counter(
    "facesearch.ingest.rejects", description="Images recorded failed, by reason (error code)."
)
ingest_failures = _meter.create_counter(
    "facesearch.ingest.failures",
    description="Deliveries that failed and will be retried (5xx), by error code.",
)
message_age = _meter.create_histogram(
    "facesearch.message.age.seconds",
    unit="s",
    description="Age of an event or Pub/Sub message when handled, by topic.",
)
events_expired = _meter.create_counter(
    "facesearch.events.expired",
    description="Events older than FACESEARCH_MAX_EVENT_AGE_S, dropped and recorded.",
)
index_commit_seconds = _meter.create_histogram(
    "facesearch.index.commit.seconds", unit="s", description="One index commit (manifest swap)."
)
query_seconds = _meter.create_histogram(
    "facesearch.query.seconds", unit="s", description="Query API requests, by route and status."
)
query_shed = _meter.create_counter(
    "facesearch.query.shed", description="Requests refused to protect the instance, by reason."
)
cache_requests = _meter.create_counter(
    "facesearch.cache.requests", description="Cache lookups by cache and result (hit, miss)."
)
sweep_requeued = _meter.create_counter(
    "facesearch.sweep.requeued", description="Stuck images re-queued by the sweep."
)

# index shape, per role: the latest manifest each open writer / reader saw, summed
_index_lock = threading.Lock()
_index_state: dict[tuple[str, int], tuple[int, int, int]] = {}


def record_index(role: str, owner: object, segments: int, live: int, tombstones: int) -> None:
    """The manifest an index writer or reader (``owner``) now holds."""
    with _index_lock:
        _index_state[(role, id(owner))] = (segments, live, tombstones)


def _observe(position: int) -> object:
    def callback(options: CallbackOptions) -> Iterable[Observation]:
        with _index_lock:
            totals: dict[str, int] = {}
            for (role, _), values in _index_state.items():
                totals[role] = totals.get(role, 0) + values[position]
        return [Observation(v, {"role": role}) for role, v in totals.items()]

    return callback


for _position, _name, _what in (
    (0, "facesearch.index.segments", "Live segments in the open indexes."),
    (1, "facesearch.index.live", "Live (searchable) vectors in the open indexes."),
    (2, "facesearch.index.tombstones", "Deleted vectors awaiting compaction."),
):
    _meter.create_observable_gauge(_name, callbacks=[_observe(_position)], description=_what)  # type: ignore[list-item]


def record_ingest(outcome: str, seconds: float, faces: int, error_code: str | None) -> None:
    ingest_images.add(1, {"outcome": outcome})
    ingest_seconds.record(seconds, {"outcome": outcome})
    if faces:
        ingest_faces.add(faces)
    if outcome == "failed":
        ingest_rejects.add(1, {"reason": error_code or "unknown"})


def record_failure(code: str) -> None:
    ingest_failures.add(1, {"code": code})


def record_message_age(topic: str, age_s: float) -> None:
    if age_s >= 0:
        message_age.record(age_s, {"topic": topic})


def record_expired(topic: str) -> None:
    events_expired.add(1, {"topic": topic})


def record_searchable(seconds: float) -> None:
    if seconds >= 0:
        upload_to_searchable.record(seconds)


def record_commit(kind: str, seconds: float) -> None:
    index_commit_seconds.record(seconds, {"kind": kind})


def record_request(route: str, status: int, seconds: float) -> None:
    query_seconds.record(seconds, {"route": route, "status": str(status)})


def record_shed(reason: str) -> None:
    query_shed.add(1, {"reason": reason})


def record_cache(cache: str, hit: bool) -> None:
    cache_requests.add(1, {"cache": cache, "result": "hit" if hit else "miss"})


def record_requeued(images: int) -> None:
    sweep_requeued.add(images)


__all__ = [
    "LATENCY_BUCKETS_S",
    "record_cache",
    "record_commit",
    "record_expired",
    "record_failure",
    "record_index",
    "record_ingest",
    "record_message_age",
    "record_request",
    "record_requeued",
    "record_searchable",
    "record_shed",
]
