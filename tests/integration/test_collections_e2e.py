"""Collections end to end on the emulators: uploads under ``collections/<id>/`` reach that
collection's records, crops and index; the signed API keeps collections apart and
refuses scoped keys elsewhere; an erase (Pub/Sub control messages to a real indexer
process) leaves nothing in Firestore, the index bucket or the crops bucket, and a late
upload does not bring anything back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from facesearch.api.crops import LocalCropUrls
from facesearch.auth.keys import StaticKeyRing
from facesearch.auth.signing import SigningKey
from facesearch.backends import backend_for, services
from facesearch.config import load_settings
from facesearch.vision.pipeline import FacePipeline
from tests.integration.pipeline_harness import Deployment, small_jpeg, wait_for
from tests.support.api import KEY, SignedClient

pytestmark = [pytest.mark.integration, pytest.mark.slow]
KIOSK = SigningKey("kiosk", "k" * 40)


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    return FacePipeline(load_settings())


@pytest.fixture
def deployment(
    emulated: None, emulator_log_dir: Path, gcp_project: str, tmp_path: Path, pipeline: FacePipeline
) -> Iterator[Deployment]:
    with Deployment(
        project=gcp_project, tmp=tmp_path, log_dir=emulator_log_dir, pipeline=pipeline
    ) as d:
        yield d


def _api(d: Deployment, pipeline: FacePipeline) -> tuple[SignedClient, SignedClient, Any]:
    """The query service as Cloud Run runs it (gcp backend), with test keys and local crop
    URLs (GCS signed URLs need a service account's key, which the emulator has not)."""
    settings = load_settings(
        **{k[len("FACESEARCH_") :].lower(): v for k, v in d.env(d.tmp / "query").items()},
        public_url="https://query.test",
        index_refresh_interval_s=0.0,
    )
    backend = backend_for(settings).override(
        pipeline=pipeline,
        keyring=StaticKeyRing(
            {
                KEY.key_id: KEY.secret,
                KIOSK.key_id: {
                    "secret": KIOSK.secret,
                    "collections": ["wedding"],
                    "scopes": ["search"],
                },
            }
        ),
        crop_urls=LocalCropUrls(b"k" * 32, 60, base_url="https://query.test"),
    )
    app = services.query_app(backend)
    return SignedClient(app), SignedClient(app, KIOSK), backend


def _gcs_names(project: str, bucket: str, prefix: str) -> list[str]:
    from google.cloud import storage

    return [b.name for b in storage.Client(project=project).list_blobs(bucket, prefix=prefix)]


def test_collections_are_isolated_and_erase_leaves_nothing(
    deployment: Deployment, photos_dir: Path, pipeline: FacePipeline
) -> None:
    d = deployment
    admin, kiosk, backend = _api(d, pipeline)
    for cid in ("wedding", "gala"):
        response = admin.post("/v1/collections", json_body={"collection_id": cid})
        assert response.status_code == 201, response.get_data(as_text=True)

    uploads = {
        "collections/wedding/obama.jpg": ("wedding", "labelled/obama/obama_1.jpg"),
        "collections/gala/obama.jpg": ("gala", "labelled/obama/obama_2.jpg"),
        "people/biden.jpg": ("default", "labelled/biden/biden_1.jpg"),
    }
    for name, (_, photo) in uploads.items():
        d.upload(name, small_jpeg(photos_dir / photo))

    def done(name: str) -> bool:
        cid = uploads[name][0]
        record = backend.metadata(cid).get_image(_image_id(d, name, cid))
        return record is not None and str(record.status) == "done"

    wait_for("every upload ingested", lambda: all(done(n) for n in uploads), 240)

    def listed(cid: str) -> set[str]:
        path = "/v1/faces" if cid == "default" else f"/v1/collections/{cid}/faces"
        return {f["face_id"] for f in admin.get(path).get_json()["items"]}

    wedding_faces, gala_faces = listed("wedding"), listed("gala")
    assert len(wedding_faces) == 1 and len(gala_faces) == 1 and len(listed("default")) == 1
    probe = pipeline.process(small_jpeg(photos_dir / "labelled/obama/obama_3.jpg")).faces[0]
    assert probe.embedding is not None
    body = {"embedding": probe.embedding.tolist(), "k": 10, "threshold": -1}

    def found(client: SignedClient, cid: str) -> set[str]:
        response = client.post(f"/v1/collections/{cid}/search", json_body=body)
        assert response.status_code == 200, response.get_data(as_text=True)
        return {m["face_id"] for m in response.get_json()["faces"][0]["matches"]}

    wait_for("wedding searchable", lambda: found(admin, "wedding") == wedding_faces, 90, 0.5)
    wait_for("gala searchable", lambda: found(admin, "gala") == gala_faces, 90, 0.5)
    assert found(kiosk, "wedding") == wedding_faces
    for path in ("/v1/collections/gala/search", "/v1/search"):
        refused = kiosk.post(path, json_body=body)
        assert refused.status_code == 403 and refused.get_json()["code"] == "forbidden-scope"

    index_bucket, index_root = d.index_url[5:].split("/", 1)
    assert _gcs_names(d.project, index_bucket, f"{index_root}/collections/wedding/")
    assert _gcs_names(d.project, d.crops_bucket, "collections/wedding/")

    # erase: the query service marks it and queues the work; the indexer process does it
    assert admin.call("DELETE", "/v1/collections/wedding").status_code == 202

    def erased() -> bool:
        return bool(admin.get("/v1/collections/wedding").get_json()["status"] == "erased")

    wait_for("wedding erased by the indexer", erased, 120, 0.5)
    report = admin.get("/v1/collections/wedding").get_json()["erase_report"]
    assert report["verified"] and not any(report["leftovers"].values())
    assert report["removed"]["faces"] == 1 and report["removed"]["crops"] == 1
    # our own scan of the three stores
    counts = backend.metadata("wedding").counts()
    assert (counts.images, counts.faces) == (0, 0)
    assert backend.people("wedding").counts().records == 0
    assert _gcs_names(d.project, index_bucket, f"{index_root}/collections/wedding/") == []
    assert _gcs_names(d.project, d.crops_bucket, "collections/wedding/") == []
    # a late upload is acknowledged and skipped; nothing comes back
    d.upload("collections/wedding/late.jpg", small_jpeg(photos_dir / "labelled/obama/obama_3.jpg"))
    wait_for("late upload handled", lambda: d.relay.stats.acked >= len(uploads) + 1, 120)
    assert backend.metadata("wedding").counts().images == 0
    assert _gcs_names(d.project, d.crops_bucket, "collections/wedding/") == []
    assert _gcs_names(d.project, index_bucket, f"{index_root}/collections/wedding/") == []
    # the others are untouched
    assert found(admin, "gala") == gala_faces and len(listed("default")) == 1


def _image_id(d: Deployment, name: str, collection_id: str) -> str:
    from facesearch.ingest.sources import SourceRef

    source = SourceRef.gcs(d.uploads_bucket, name, d.generations[name])
    return source.in_collection(collection_id).image_id
