"""People end to end on the emulators: photos of the dev set uploaded to the bucket are
ingested, indexed and announced on face-events, which two clusterer processes (each with
its own push subscription, so every event reaches both: the harshest race) turn into
persons in Firestore; then merge, split and undo through the signed API.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from facesearch.api.crops import LocalCropUrls
from facesearch.auth.keys import StaticKeyRing
from facesearch.backends import backend_for, services
from facesearch.config import load_settings
from facesearch.storage.metadata import FaceRecord
from facesearch.vision.pipeline import FacePipeline
from tests.bench.clustering import DEFAULT_DATASET
from tests.integration.pipeline_harness import Deployment, small_jpeg, wait_for
from tests.support.api import KEY, SignedClient

pytestmark = [pytest.mark.integration, pytest.mark.slow]
IDENTITIES = ("deepface_person_01", "deepface_person_02", "deepface_person_03")
PHOTOS_EACH = 3


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    return FacePipeline(load_settings())


@pytest.fixture
def deployment(
    emulated: None,
    emulator_log_dir: Path,
    gcp_project: str,
    tmp_path: Path,
    pipeline: FacePipeline,
) -> Iterator[Deployment]:
    with Deployment(
        project=gcp_project,
        tmp=tmp_path,
        log_dir=emulator_log_dir,
        pipeline=pipeline,
        clusterers=2,
    ) as d:
        yield d


def _api(d: Deployment, pipeline: FacePipeline) -> tuple[SignedClient, Any]:
    settings = load_settings(
        **{k[len("FACESEARCH_") :].lower(): v for k, v in d.env(d.tmp / "query").items()},
        public_url="https://query.test",
        index_refresh_interval_s=0.0,
    )
    backend = backend_for(settings).override(
        pipeline=pipeline,
        keyring=StaticKeyRing({KEY.key_id: KEY.secret}),
        crop_urls=LocalCropUrls(b"k" * 32, 60, base_url="https://query.test"),
    )
    return SignedClient(services.query_app(backend)), backend


def _main_face(faces: list[FaceRecord]) -> FaceRecord:
    """The photo's subject: its largest face (dev-set photos may show bystanders)."""
    return max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]))


def test_uploaded_photos_become_persons_and_corrections_work_through_the_api(
    deployment: Deployment, pipeline: FacePipeline
) -> None:
    d = deployment
    api, backend = _api(d, pipeline)
    uploads: dict[str, str] = {}
    for identity in IDENTITIES:
        for photo in sorted((DEFAULT_DATASET / identity).iterdir())[:PHOTOS_EACH]:
            name = f"people/{identity}/{photo.name}"
            uploads[name] = identity
            d.upload(name, small_jpeg(photo))
    metadata, people = backend.metadata(), backend.people()

    def ingested() -> bool:
        return all(d.status(name) == "done" for name in uploads)

    wait_for("every upload ingested", ingested, 300)
    faces = {
        name: metadata.list_faces(image_id=d.image_id(name), limit=100).items for name in uploads
    }
    total = sum(len(f) for f in faces.values())
    assert total >= len(uploads)
    wait_for("every face clustered", lambda: people.counts().faces == total, 300, 0.5)

    # who each photo's subject is, as the API shows it
    subject = {name: _main_face(f).face_id for name, f in faces.items()}
    person_of = {}
    for name, face_id in subject.items():
        response = api.get(f"/v1/faces/{face_id}")
        assert response.status_code == 200, response.get_data(as_text=True)
        person_of[name] = response.get_json()["person_id"]
    by_identity: dict[str, set[str | None]] = {}
    for name, identity in uploads.items():
        by_identity.setdefault(identity, set()).add(person_of[name])
    # precision: a person never holds two identities' subjects
    owners: dict[str, str] = {}
    for name, identity in uploads.items():
        pid = person_of[name]
        if pid is not None:
            assert owners.setdefault(pid, identity) == identity, (pid, owners, identity)
    grouped = [i for i, ps in by_identity.items() if len(ps) == 1 and None not in ps]
    assert len(grouped) >= 2, by_identity
    # two racing clusterers founded one person per identity, not two
    listed = api.get("/v1/persons?limit=100").get_json()["items"]
    assert len({p["person_id"] for p in listed}) == len(listed)
    for identity in grouped:
        (pid,) = by_identity[identity]
        assert pid is not None
        person = api.get(f"/v1/persons/{pid}").get_json()
        assert person["faces"] >= PHOTOS_EACH
        images = api.get(f"/v1/persons/{pid}/images").get_json()["items"]
        ids = {i["image_id"] for i in images}
        assert {d.image_id(n) for n, i in uploads.items() if i == identity} <= ids

    # corrections through the API: merge two persons, undo it, split a face out
    a_identity, b_identity = grouped[:2]
    (a,) = by_identity[a_identity]
    (b,) = by_identity[b_identity]
    merged = api.post(f"/v1/persons/{a}/merge", json_body={"persons": [b]})
    assert merged.status_code == 200, merged.get_data(as_text=True)
    b_face = next(subject[n] for n, i in uploads.items() if i == b_identity)
    assert api.get(f"/v1/faces/{b_face}").get_json()["person_id"] == a
    undo = api.post(f"/v1/corrections/{merged.get_json()['correction_id']}/undo")
    assert undo.status_code == 200, undo.get_data(as_text=True)
    assert api.get(f"/v1/faces/{b_face}").get_json()["person_id"] == b

    a_face = next(subject[n] for n, i in uploads.items() if i == a_identity)
    split = api.post(f"/v1/persons/{a}/split", json_body={"face_ids": [a_face], "name": "Solo"})
    assert split.status_code == 200, split.get_data(as_text=True)
    solo = split.get_json()["created_person"]
    assert solo and api.get(f"/v1/faces/{a_face}").get_json()["person_id"] == solo
    assert api.get(f"/v1/persons/{solo}").get_json()["name"] == "Solo"
    # the clusterers never move a user-assigned face back, whatever events come later
    assert api.get(f"/v1/faces/{a_face}").get_json()["person_source"] == "user"
    log = api.get("/v1/corrections?limit=10").get_json()["items"]
    assert [e["kind"] for e in log[:3]] == ["move", "undo", "merge"]
