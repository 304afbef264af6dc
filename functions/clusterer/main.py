"""Cloud Run function ``clusterer`` (CPU): face-events pushes in, persons out.

The indexer announces every index commit on ``face-events``; a push subscription
(with a dead-letter topic) delivers each event here as a ``messagePublished``
CloudEvent. All logic, and the one mapping of outcomes to ack (return) vs retry
(raise), lives in :mod:`facesearch.people.entry`; the stores, index readers and
clients live once per instance.
"""

from __future__ import annotations

import functions_framework
from cloudevents.http.event import CloudEvent

from facesearch.config import get_settings
from facesearch.logs import configure_for
from facesearch.people.entry import handle_cloud_event
from facesearch.telemetry import configure as configure_telemetry

_settings = get_settings()
configure_for(_settings)
configure_telemetry(_settings, "clusterer")  # FACESEARCH_TELEMETRY_*; off by default


@functions_framework.cloud_event
def clusterer(event: CloudEvent) -> None:
    handle_cloud_event(event)
