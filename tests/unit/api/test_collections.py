"""Collections through the API: admin routes, scoped keys, isolation, erase, quotas.

The isolation property drives random interleavings of adds, searches, listings,
forgets and person edits over several collections through the signed HTTP API and
checks, after every step, that a collection shows exactly its own faces and that a
key scoped to one collection is refused (403 problem+json) everywhere else.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facesearch.api.problems import PROBLEM_TYPE_PREFIX
from facesearch.auth.signing import SigningKey
from facesearch.storage.metadata import (
    FaceRecord,
    ImageRecord,
    ImageStatus,
    collection_prefix,
)
from facesearch.vision.pipeline import FacePipeline
from tests.support.api import COLLECTION, Env, SignedClient, add_image, build_env
from tests.unit.api.test_routes import _settings

COLLECTIONS = ("alpha", "beta", "gamma")
ISOLATED = ("iso-a", "iso-b", "iso-c")  # the property test's own
KIOSK = SigningKey("kiosk", "k" * 40)  # search only, alpha only
ALPHA_ADMIN = SigningKey("alpha-admin", "a" * 40)  # everything, alpha only
SCOPED_KEYS = {
    KIOSK.key_id: {"secret": KIOSK.secret, "collections": ["alpha"], "scopes": ["search"]},
    ALPHA_ADMIN.key_id: {"secret": ALPHA_ADMIN.secret, "collections": ["alpha"]},
}


def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["type"] == PROBLEM_TYPE_PREFIX + code and body["code"] == code
    return body


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> FacePipeline:
    return FacePipeline(_settings(tmp_path_factory.mktemp("p")))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, pipeline: FacePipeline) -> Env:
    """Default holds two images; alpha, beta and gamma start empty."""
    env = build_env(
        _settings(tmp_path_factory.mktemp("coll")),
        pipeline,
        images={k: COLLECTION[k] for k in ("obama-1", "biden-1")},
        keys=SCOPED_KEYS,
    )
    admin = SignedClient(env.app)
    for cid in (*COLLECTIONS, *ISOLATED):
        assert admin.post("/v1/collections", json_body={"collection_id": cid}).status_code == 201
    return env


@pytest.fixture(scope="module")
def faces(env: Env) -> list[FaceRecord]:
    """Real face records (one per labelled photo) to copy into collections."""
    out: list[FaceRecord] = []
    for image_id in ("obama-2", "biden-1", "hanks-1"):
        result = env.pipeline.process(COLLECTION[image_id].read_bytes())
        face = result.faces[0]
        out.append(
            FaceRecord.from_face(face, face_id="x", image_id="x", model=result.model, crop_url="")
        )
    return out


_ids = itertools.count()


def _put(env: Env, collection_id: str, template: FaceRecord) -> tuple[str, str]:
    """An image with one face in ``collection_id`` (records + index), as ingest leaves it."""
    n = next(_ids)
    image_id, face_id = f"{collection_id}-img-{n}", f"{collection_id}-img-{n}-0"
    store = env.backend.metadata(collection_id)
    store.put_image(
        ImageRecord(
            image_id=image_id,
            source=f"test://{image_id}",
            status=ImageStatus.DONE,
            face_count=1,
            model=template.model,
        )
    )
    face = FaceRecord(**{**template.__dict__, "face_id": face_id, "image_id": image_id})
    store.put_faces(image_id, [face])
    env.backend.index_writer(collection_id=collection_id).add(
        [face_id], [face.vector()], face.model
    )
    return image_id, face_id


def _search_ids(client: SignedClient, collection_id: str, vector: list[float]) -> set[str]:
    response = client.post(
        f"/v1/collections/{collection_id}/search",
        json_body={"embedding": vector, "k": 100, "threshold": -1},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return {m["face_id"] for m in response.get_json()["faces"][0]["matches"]}


def _listed_ids(client: SignedClient, collection_id: str) -> set[str]:
    response = client.get(f"/v1/collections/{collection_id}/faces?limit=1000")
    assert response.status_code == 200, response.get_data(as_text=True)
    return {f["face_id"] for f in response.get_json()["items"]}


# --- admin routes ---------------------------------------------------------------------------


def test_create_list_get_update(env: Env) -> None:
    client = SignedClient(env.app)
    created = client.post(
        "/v1/collections",
        json_body={
            "collection_id": "event-2026",
            "name": "Summer gala",
            "settings": {
                "match_threshold": 0.5,
                "retention_days": 30,
                "quality": {"min_face_px": 60},
            },
        },
    )
    assert created.status_code == 201
    body = created.get_json()
    assert body["status"] == "active" and body["name"] == "Summer gala"
    assert body["settings"]["match_threshold"] == 0.5
    _problem(
        client.post("/v1/collections", json_body={"collection_id": "event-2026"}), 409, "conflict"
    )
    _problem(
        client.post("/v1/collections", json_body={"collection_id": "default"}),
        400,
        "invalid-request",
    )
    _problem(
        client.post("/v1/collections", json_body={"collection_id": "Bad_Id"}),
        400,
        "invalid-request",
    )
    _problem(
        client.post(
            "/v1/collections", json_body={"collection_id": "x1", "settings": {"embedder": "nope"}}
        ),
        400,
        "invalid-request",
    )

    listed = [c["collection_id"] for c in client.get("/v1/collections").get_json()["items"]]
    assert {"default", "alpha", "event-2026"} <= set(listed)

    one = client.get("/v1/collections/event-2026").get_json()
    assert one["stats"]["faces"] == 0 and one["stats"]["index"]["live_faces"] == 0
    default = client.get("/v1/collections/default").get_json()
    assert default["stats"]["faces"] == len(env.faces["obama-1"]) + len(env.faces["biden-1"])

    patched = client.call(
        "PATCH", "/v1/collections/event-2026", json_body={"settings": {"match_threshold": 0.7}}
    ).get_json()
    assert patched["settings"]["match_threshold"] == 0.7
    assert patched["settings"]["retention_days"] is None  # settings are replaced, not merged
    _problem(
        client.call(
            "PATCH",
            "/v1/collections/event-2026",
            json_body={"settings": {"embedder": "dlib-resnet-v1"}},
        ),
        400,
        "invalid-request",
    )
    _problem(client.get("/v1/collections/nope"), 404, "not-found")
    _problem(client.get("/v1/collections/nope/stats"), 404, "not-found")


def test_collection_threshold_applies_to_its_searches(env: Env, faces: list[FaceRecord]) -> None:
    client = SignedClient(env.app)
    client.post(
        "/v1/collections",
        json_body={"collection_id": "strict", "settings": {"match_threshold": 0.99}},
    )
    _put(env, "strict", faces[0])
    probe = faces[0].vector() + np.float32(0.02)
    response = client.post(
        "/v1/collections/strict/search", json_body={"embedding": probe.tolist()}
    ).get_json()
    assert response["threshold"] == 0.99
    default = client.post("/v1/search", json_body={"embedding": probe.tolist()}).get_json()
    assert default["threshold"] != 0.99


# --- scoped keys ----------------------------------------------------------------------------


def test_search_only_key_for_one_collection(env: Env, faces: list[FaceRecord]) -> None:
    _put(env, "alpha", faces[0])
    kiosk = SignedClient(env.app, KIOSK)
    vector = faces[0].vector().tolist()
    assert _search_ids(kiosk, "alpha", vector)
    assert kiosk.get("/v1/collections/alpha").status_code == 200

    refused = [
        kiosk.post("/v1/collections/beta/search", json_body={"embedding": vector}),
        kiosk.post("/v1/search", json_body={"embedding": vector}),  # the default collection
        kiosk.get("/v1/stats"),
        kiosk.get("/v1/collections/beta"),
        kiosk.get("/v1/collections/beta/faces"),
        kiosk.post("/v1/collections", json_body={"collection_id": "kiosk-made"}),
        kiosk.call("DELETE", "/v1/collections/alpha/images/whatever"),  # erase scope
        kiosk.post("/v1/collections/alpha/persons", json_body={"name": "x"}),  # manage scope
        kiosk.call("PATCH", "/v1/collections/alpha", json_body={"name": "x"}),
        kiosk.call("DELETE", "/v1/collections/alpha"),
    ]
    for response in refused:
        body = _problem(response, 403, "forbidden-scope")
        assert body["detail"]
    listed = [c["collection_id"] for c in kiosk.get("/v1/collections").get_json()["items"]]
    assert listed == ["alpha"]

    admin = SignedClient(env.app, ALPHA_ADMIN)
    person = admin.post("/v1/collections/alpha/persons", json_body={"name": "A"})
    assert person.status_code == 201
    _problem(
        admin.post("/v1/collections/beta/persons", json_body={"name": "B"}), 403, "forbidden-scope"
    )
    _problem(
        admin.post("/v1/collections", json_body={"collection_id": "not-alpha"}),
        403,
        "forbidden-scope",
    )


# --- isolation as a property ----------------------------------------------------------------

_op = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(ISOLATED), st.integers(0, 2)),
    st.tuples(st.just("search"), st.sampled_from(ISOLATED), st.integers(0, 2)),
    st.tuples(st.just("forget"), st.sampled_from(ISOLATED), st.sampled_from(ISOLATED)),
    st.tuples(st.just("label"), st.sampled_from(ISOLATED), st.sampled_from(ISOLATED)),
)


@pytest.fixture(scope="module")
def owned(env: Env) -> Iterator[dict[str, dict[str, str]]]:
    """collection -> {image_id: face_id} of what the property test put there."""
    yield {cid: {} for cid in ISOLATED}


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(_op, min_size=1, max_size=8))
def test_no_collection_ever_shows_or_touches_another(
    env: Env,
    faces: list[FaceRecord],
    owned: dict[str, dict[str, str]],
    ops: list[tuple[str, str, Any]],
) -> None:
    client = SignedClient(env.app)
    kiosk = SignedClient(env.app, KIOSK)
    for kind, cid, arg in ops:
        mine = owned[cid]
        if kind == "add":
            image_id, face_id = _put(env, cid, faces[arg])
            mine[image_id] = face_id
        elif kind == "search":
            found = _search_ids(client, cid, faces[arg].vector().tolist())
            assert found <= set(mine.values()), f"{cid} returned {found - set(mine.values())}"
        elif kind in ("forget", "label") and owned[arg]:
            image_id, face_id = next(iter(owned[arg].items()))
            if kind == "forget":
                response = client.call("DELETE", f"/v1/collections/{cid}/images/{image_id}")
                if arg == cid:
                    assert response.status_code == 200
                    del mine[image_id]
                else:
                    _problem(response, 404, "not-found")
            else:
                person = client.post(f"/v1/collections/{cid}/persons", json_body={"name": "p"})
                person_id = person.get_json()["person_id"]
                response = client.call(
                    "PUT",
                    f"/v1/collections/{cid}/faces/{face_id}/person",
                    json_body={"person_id": person_id},
                )
                assert response.status_code == (200 if arg == cid else 404)
        # after every step: each collection lists exactly its own faces
        for other in ISOLATED:
            assert _listed_ids(client, other) == set(owned[other].values())
            # and below the records: the collection's own index holds only its faces
            reader = env.service.collection(other).index.reader
            assert set(reader.face_ids()) == set(owned[other].values())
            _problem(kiosk.get(f"/v1/collections/{other}/faces"), 403, "forbidden-scope")


# --- erase ------------------------------------------------------------------------------------


def _wait_status(client: SignedClient, collection_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        body: dict[str, Any] = client.get(f"/v1/collections/{collection_id}").get_json()
        if body["status"] == status or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and ".blobstore" not in p.parts]


def test_erase_removes_everything_and_refuses_later_writes(
    env: Env, faces: list[FaceRecord]
) -> None:
    client = SignedClient(env.app)
    client.post("/v1/collections", json_body={"collection_id": "doomed"})
    for template in faces:
        _put(env, "doomed", template)
    data = env.settings.data_dir
    crops = data / "crops" / collection_prefix("doomed")
    add_image(
        env.pipeline,
        store=env.backend.metadata("doomed"),
        writer=env.backend.index_writer(collection_id="doomed"),
        crops_dir=crops,
        image_id="doomed-photo",
        data=COLLECTION["obama-1"].read_bytes(),
    )
    vector = faces[0].vector().tolist()
    assert _search_ids(client, "doomed", vector)  # index opened: its segments are cached
    index_dir = data / "index" / collection_prefix("doomed")
    cache_dir = env.backend.index_cache_dir("doomed")
    assert _files(crops) and _files(index_dir) and _files(cache_dir)
    before_default = _listed_ids(client, "default")

    started = client.call("DELETE", "/v1/collections/doomed")
    assert started.status_code == 202
    assert started.get_json()["status"] in ("erasing", "erased")
    erased = _wait_status(client, "doomed", "erased")
    assert erased["status"] == "erased", erased
    report = erased["erase_report"]
    assert report["verified"] is True and not any(report["leftovers"].values())
    assert report["removed"]["images"] == 4 and report["removed"]["faces"] == 4
    assert report["removed"]["crops"] == 1

    # the scan, done here independently of the job's own
    counts = env.backend.metadata("doomed").counts()
    assert (counts.images, counts.faces) == (0, 0)
    assert env.backend.people("doomed").counts().records == 0
    assert _files(crops) == [] and _files(index_dir) == [] and _files(cache_dir) == []
    # nothing is written into it again, through any path
    _problem(
        client.post("/v1/collections/doomed/search", json_body={"embedding": vector}),
        409,
        "collection-closed",
    )
    _problem(
        client.post("/v1/collections/doomed/persons", json_body={"name": "x"}),
        409,
        "collection-closed",
    )
    from facesearch.errors import CollectionClosed

    with pytest.raises(CollectionClosed):
        _put(env, "doomed", faces[0])
    assert env.backend.metadata("doomed").counts().images == 0
    _problem(client.call("DELETE", "/v1/collections/default"), 409, "cannot-erase")
    _problem(
        client.post("/v1/collections", json_body={"collection_id": "doomed"}), 409, "conflict"
    )  # ids are never reused
    assert _listed_ids(client, "default") == before_default


# --- quotas -----------------------------------------------------------------------------------


def test_request_rate_quota_is_per_collection(env: Env, faces: list[FaceRecord]) -> None:
    client = SignedClient(env.app)
    client.post(
        "/v1/collections", json_body={"collection_id": "slow", "settings": {"requests_per_s": 1}}
    )
    statuses = [client.get("/v1/collections/slow/stats").status_code for _ in range(4)]
    assert statuses[:2] == [200, 200]  # a burst of two seconds' worth
    assert statuses[2:] == [429, 429]
    response = client.get("/v1/collections/slow/stats")
    body = _problem(response, 429, "quota-exceeded")
    assert int(response.headers["Retry-After"]) >= 1 and "1 requests/s" in body["detail"]
    # other collections do not notice
    assert all(client.get("/v1/collections/beta/stats").status_code == 200 for _ in range(5))
