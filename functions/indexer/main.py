"""Cloud Run function ``indexer``: face-embeddings / face-deletions pushes in, index out.

Each push blocks until the group commit holding its message has stored the
manifest, then returns (ack). All logic and the ack/retry mapping live in
:mod:`facesearch.indexer.entry`; the writer and its cache live once per instance.
Run it with enough request concurrency (Cloud Run ``concurrency`` > 1 and
several worker threads) for group commit to gather requests.
"""

from __future__ import annotations

import functions_framework
from cloudevents.http.event import CloudEvent

from facesearch.config import get_settings
from facesearch.indexer.entry import handle_cloud_event
from facesearch.logs import configure_for
from facesearch.telemetry import configure as configure_telemetry

_settings = get_settings()
configure_for(_settings)
configure_telemetry(_settings, "indexer")  # FACESEARCH_TELEMETRY_*; off by default


@functions_framework.cloud_event
def indexer(event: CloudEvent) -> None:
    handle_cloud_event(event)
