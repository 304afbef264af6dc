"""Cloud Run function ``ingest`` (GPU): image uploads in, faces out.

Receives Eventarc ``google.cloud.storage.object.v1.finalized`` CloudEvents from
the uploads bucket and Pub/Sub pushes of ``ingest-requests`` (converted to
``messagePublished`` CloudEvents by functions-framework). All logic, and the
one mapping of errors to ack (return) vs retry (raise), lives in
:mod:`facesearch.ingest.entry`. Models and clients load once per instance.
"""

from __future__ import annotations

import functions_framework
from cloudevents.http.event import CloudEvent

from facesearch.config import get_settings
from facesearch.ingest.entry import handle_cloud_event
from facesearch.logs import configure_for
from facesearch.telemetry import configure as configure_telemetry

_settings = get_settings()
configure_for(_settings)
configure_telemetry(_settings, "ingest")  # FACESEARCH_TELEMETRY_*; off by default


@functions_framework.cloud_event
def ingest(event: CloudEvent) -> None:
    handle_cloud_event(event)
