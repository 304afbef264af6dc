"""The cloud pipeline on emulators: real function servers, real deliveries.

* The GCS emulator publishes object notifications to the Pub/Sub emulator
  (fake-gcs-server's ``-event.pubsub-*`` options; see conftest's ``gcs_emulator``).
* :class:`EventarcRelay` plays Eventarc's part: it streaming-pulls those
  notifications and POSTs each as the binary-mode CloudEvent Eventarc sends
  (``google.cloud.storage.object.v1.finalized``, ``ce-source``
  ``//storage.googleapis.com/projects/_/buckets/B``, ``ce-subject objects/NAME``,
  the object resource as JSON data); 2xx acks, anything else nacks, so Pub/Sub
  redelivers — the same at-least-once contract as Eventarc's own subscription.
* :class:`FunctionServer` serves a ``functions/*/main.py`` through
  functions-framework's Flask app on a threaded local HTTP server (ingest, in
  this process, sharing the test session's models);
  :class:`FunctionProcess` runs one with the ``functions-framework`` command in
  its own process (the indexer: a real separate instance, configured only by
  ``FACESEARCH_*`` variables like on Cloud Run).
* The indexer receives ``face-embeddings`` through a real Pub/Sub *push*
  subscription of the emulator to ``/projects/P/topics/T`` on its server.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.support import emulators

ROOT = Path(__file__).resolve().parents[2]
GCS_EVENTS_PROJECT = "fs-gcs-events"
GCS_EVENTS_TOPIC = "gcs-events"


class FunctionServer:
    """A functions-framework app on a threaded werkzeug server in this process."""

    def __init__(self, target: str) -> None:
        import functions_framework
        from werkzeug.serving import make_server

        app = functions_framework.create_app(
            target=target,
            source=str(ROOT / "functions" / target / "main.py"),
            signature_type="cloudevent",
        )
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FunctionServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self._thread.join(timeout=10)


@contextlib.contextmanager
def function_process(
    target: str, env: Mapping[str, str], log_dir: Path, name: str
) -> Iterator[str]:
    """``functions-framework --target T`` in its own process group; yields its URL."""
    port = emulators.free_port()
    cmd = [
        str(Path(sys.executable).parent / "functions-framework"),
        "--target", target,
        "--source", str(ROOT / "functions" / target / "main.py"),
        "--signature-type", "cloudevent",
        "--host", "127.0.0.1",
        "--port", str(port),
    ]  # fmt: skip
    with (
        emulators.patched_env(env),
        emulators.run_emulator(name, cmd, probe_url=f"http://127.0.0.1:{port}/", log_dir=log_dir),
    ):
        yield f"http://127.0.0.1:{port}"


@dataclass
class RelayStats:
    delivered: int = 0
    acked: int = 0
    nacked: int = 0
    latencies_s: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class EventarcRelay:
    """Object notifications (pull) -> binary CloudEvents (POST) to the ingest function."""

    def __init__(
        self,
        target_url: str,
        *,
        bucket: str,
        subscription_id: str,
        repeat: int = 1,
        max_concurrent: int = 2,
    ) -> None:
        from google.cloud import pubsub_v1

        self.target_url = target_url
        self.bucket = bucket
        self.repeat = repeat  # deliver each event this many times (redelivery tests)
        self.stats = RelayStats()
        self.subscriber = pubsub_v1.SubscriberClient()
        topic = f"projects/{GCS_EVENTS_PROJECT}/topics/{GCS_EVENTS_TOPIC}"
        self.subscription = self.subscriber.create_subscription(
            name=f"projects/{GCS_EVENTS_PROJECT}/subscriptions/{subscription_id}",
            topic=topic,
            ack_deadline_seconds=60,
        ).name
        self._flow = pubsub_v1.types.FlowControl(max_messages=max_concurrent)
        self._future: Any = None
        self._session = requests.Session()

    def __enter__(self) -> EventarcRelay:
        self._future = self.subscriber.subscribe(
            self.subscription, self._on_message, flow_control=self._flow
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self._future.cancel()
        with contextlib.suppress(Exception):
            self._future.result(timeout=10)
        self.subscriber.delete_subscription(subscription=self.subscription)

    def _on_message(self, message: Any) -> None:
        attrs = dict(message.attributes)
        if attrs.get("bucketId") != self.bucket or attrs.get("eventType") != "OBJECT_FINALIZE":
            message.ack()  # another test's bucket, or not a finalize: not for this trigger
            return
        headers = cloud_event_headers(attrs["bucketId"], attrs["objectId"], message.message_id)
        ok = True
        for _ in range(self.repeat):
            response = self._session.post(
                self.target_url, data=message.data, headers=headers, timeout=600
            )
            ok = ok and 200 <= response.status_code < 300
            with self.stats.lock:
                self.stats.delivered += 1
        with self.stats.lock:
            if ok:
                self.stats.acked += 1
            else:
                self.stats.nacked += 1
        if ok:
            message.ack()
        else:
            message.nack()


def cloud_event_headers(bucket: str, name: str, event_id: str) -> dict[str, str]:
    """Exactly the binary-mode CloudEvent headers Eventarc sends for a finalized object."""
    return {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-type": "google.cloud.storage.object.v1.finalized",
        "ce-source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        "ce-subject": f"objects/{name}",
        "ce-time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "content-type": "application/json; charset=utf-8",
    }


def create_push_subscription(project: str, topic: str, sub_id: str, endpoint: str) -> str:
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    return str(
        subscriber.create_subscription(
            request={
                "name": f"projects/{project}/subscriptions/{sub_id}",
                "topic": f"projects/{project}/topics/{topic}",
                "push_config": {"push_endpoint": f"{endpoint}/projects/{project}/topics/{topic}"},
                "ack_deadline_seconds": 60,
            }
        ).name
    )


def create_topics(project: str, *topics: str) -> None:
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    for topic in topics:
        publisher.create_topic(name=f"projects/{project}/topics/{topic}")


def pull_all(project: str, sub_id: str, *, max_wait_s: float = 2.0) -> list[Any]:
    """Drain a pull subscription (until it stays empty for a moment)."""
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    path = f"projects/{project}/subscriptions/{sub_id}"
    out: list[Any] = []
    deadline = time.monotonic() + max_wait_s
    while time.monotonic() < deadline:
        response = subscriber.pull(subscription=path, max_messages=100, timeout=5)
        if not response.received_messages:
            time.sleep(0.1)
            continue
        out.extend(m.message for m in response.received_messages)
        subscriber.acknowledge(
            subscription=path, ack_ids=[m.ack_id for m in response.received_messages]
        )
        deadline = time.monotonic() + max_wait_s
    return out


def pull_until(
    project: str,
    sub_id: str,
    done: Callable[[list[Any]], bool],
    *,
    timeout_s: float = 60.0,
    quiet_s: float = 1.0,
) -> list[Any]:
    """Pull until ``done(messages so far)`` holds, then drain what follows within ``quiet_s``.

    A fixed quiet window alone (``pull_all``) misses messages that the emulator delivers
    late on a loaded machine; waiting for what the test expects, then for extras, does not.
    """
    out: list[Any] = []

    def more() -> bool:
        out.extend(pull_all(project, sub_id, max_wait_s=0.2))
        return done(out)

    wait_for(f"messages on {sub_id}", more, timeout_s, 0.0)
    return out + pull_all(project, sub_id, max_wait_s=quiet_s)


def wait_for(what: str, check: Callable[[], bool], timeout_s: float, poll_s: float = 0.05) -> float:
    """Poll ``check`` until true; returns the seconds it took, fails the test on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if check():
            return time.monotonic() - start
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def json_env(values: Mapping[str, object]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


__all__ = [
    "GCS_EVENTS_PROJECT",
    "GCS_EVENTS_TOPIC",
    "EventarcRelay",
    "FunctionServer",
    "cloud_event_headers",
    "create_push_subscription",
    "create_topics",
    "function_process",
    "json_env",
    "pull_all",
    "wait_for",
]


# --- one deployment of the pipeline on the emulators --------------------------------------------


def small_jpeg(path: Path, max_side: int = 480) -> bytes:
    """A downscaled JPEG copy: the CPU pipeline runs several times faster on it."""
    import io

    from PIL import Image

    image = Image.open(path).convert("RGB")
    image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


class Deployment:
    """Buckets, topics, the ingest function (in-process), indexer instance(s), relay.

    Mirrors Terraform's wiring: uploads bucket -> (notifications -> relay) ->
    ingest -> Firestore + crops bucket + face-embeddings -> push -> indexer ->
    index bucket; face-events observed through a pull subscription and, with
    ``clusterers``, pushed to that many clusterer processes (persons in Firestore).
    """

    def __init__(
        self,
        *,
        project: str,
        tmp: Path,
        log_dir: Path,
        pipeline: Any,
        indexers: int = 1,
        window_ms: float = 100.0,
        relay_repeat: int = 1,
        relay_concurrency: int = 2,
        clusterers: int = 0,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.project = project
        self.extra_env = dict(extra_env or {})
        self.tmp = tmp
        self.log_dir = log_dir
        self.pipeline = pipeline
        self.indexers = indexers
        self.window_ms = window_ms
        self.relay_repeat = relay_repeat
        self.relay_concurrency = relay_concurrency
        self.clusterers = clusterers
        suffix = project.rsplit("-", 1)[-1]
        self.uploads_bucket = f"uploads-{suffix}"
        self.crops_bucket = f"crops-{suffix}"
        self.index_url = f"gs://index-{suffix}/index"
        self._stack = contextlib.ExitStack()
        self.generations: dict[str, int] = {}
        self.upload_times: dict[str, float] = {}

    def env(self, data_dir: Path) -> dict[str, str]:
        """The runtime contract of docs/deploy.md, as Terraform sets it."""
        return {
            "FACESEARCH_ENV": "test",
            "FACESEARCH_BACKEND": "gcp",
            "FACESEARCH_PROJECT": self.project,
            "FACESEARCH_UPLOADS_BUCKET": self.uploads_bucket,
            "FACESEARCH_CROPS_BUCKET": self.crops_bucket,
            "FACESEARCH_INDEX_URL": self.index_url,
            "FACESEARCH_DATA_DIR": str(data_dir),
            "FACESEARCH_INDEXER_COMMIT_WINDOW_MS": str(self.window_ms),
            "FACESEARCH_LOG_JSON": "true",
            "FACESEARCH_INDEX_BUILD_THREADS": "1",
            **self.extra_env,
        }

    def __enter__(self) -> Deployment:
        from google.cloud import storage

        from facesearch.backends import backend_for, services
        from facesearch.config import load_settings
        from facesearch.ingest import entry as ingest_entry

        client = storage.Client(project=self.project)
        for bucket in (self.uploads_bucket, self.crops_bucket, self.index_url[5:].split("/")[0]):
            client.create_bucket(bucket)
        self.uploads = client.bucket(self.uploads_bucket)
        create_topics(
            self.project, "face-embeddings", "face-deletions", "face-events", "ingest-requests"
        )
        from google.cloud import pubsub_v1

        pubsub_v1.SubscriberClient().create_subscription(
            name=f"projects/{self.project}/subscriptions/events-observer",
            topic=f"projects/{self.project}/topics/face-events",
        )
        env = self.env(self.tmp / "ingest")
        self.settings = load_settings(
            **{k[len("FACESEARCH_") :].lower(): v for k, v in env.items()}
        )
        backend = backend_for(self.settings)
        backend.override(pipeline=self.pipeline)
        self.metadata = backend.metadata()
        service = services.ingest_service(backend)
        ingest_entry._service = service
        self._stack.callback(setattr, ingest_entry, "_service", None)
        self.ingest_url = self._stack.enter_context(FunctionServer("ingest")).url
        self.indexer_urls = []
        for n in range(self.indexers):
            url = self._stack.enter_context(
                function_process(
                    "indexer",
                    self.env(self.tmp / f"indexer{n}"),
                    self.log_dir,
                    f"indexer{n}-{self.project}",
                )
            )
            self.indexer_urls.append(url)
            create_push_subscription(self.project, "face-embeddings", f"indexer-push-{n}", url)
            create_push_subscription(self.project, "face-deletions", f"indexer-del-{n}", url)
        for n in range(self.clusterers):
            # each its own push subscription: every event reaches every instance, the
            # harshest form of two instances racing on the same faces
            url = self._stack.enter_context(
                function_process(
                    "clusterer",
                    self.env(self.tmp / f"clusterer{n}"),
                    self.log_dir,
                    f"clusterer{n}-{self.project}",
                )
            )
            create_push_subscription(self.project, "face-events", f"clusterer-push-{n}", url)
        self.relay = self._stack.enter_context(
            EventarcRelay(
                self.ingest_url,
                bucket=self.uploads_bucket,
                subscription_id=f"relay-{self.project}",
                repeat=self.relay_repeat,
                max_concurrent=self.relay_concurrency,
            )
        )
        from facesearch.backends import open_blob_store
        from facesearch.index.reader import IndexReader

        self.reader = IndexReader(
            open_blob_store(self.index_url), cache_dir=self.tmp / "reader-cache"
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def upload(self, name: str, data: bytes, content_type: str = "image/jpeg") -> int:
        blob = self.uploads.blob(name)
        self.upload_times[name] = time.monotonic()
        blob.upload_from_string(data, content_type=content_type)
        assert blob.generation is not None
        self.generations[name] = int(blob.generation)
        return self.generations[name]

    def image_id(self, name: str) -> str:
        from facesearch.ingest.sources import SourceRef

        return SourceRef.gcs(self.uploads_bucket, name, self.generations[name]).image_id

    def status(self, name: str) -> str | None:
        record = self.metadata.get_image(self.image_id(name))
        return None if record is None else str(record.status)

    def searchable_ids(self) -> set[str]:
        self.reader.refresh()
        return set(self.reader.face_ids())

    def face_events(self) -> list[Any]:
        from facesearch.storage.bus import Message
        from facesearch.storage.messages import FaceEvent

        return [
            FaceEvent.decode(Message(m.data, dict(m.attributes)))
            for m in pull_all(self.project, "events-observer", max_wait_s=1.0)
        ]
