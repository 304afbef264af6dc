"""The query API end to end over WSGI: real models, real index, SQLite metadata."""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facesearch.api.problems import PROBLEM_TYPE_PREFIX
from facesearch.auth import SigningKey
from facesearch.auth.signing import HEADER_SIGNATURE
from facesearch.client_transport import encode_multipart
from facesearch.config import Settings, load_settings
from facesearch.vision.pipeline import FacePipeline
from tests.data.image_corpus import PHOTOS
from tests.support.api import KEY, PROBE, Env, SignedClient, build_env

OBAMA_1 = (PHOTOS / "labelled" / "obama" / "obama_1.jpg").read_bytes()
BIDEN_1 = (PHOTOS / "labelled" / "biden" / "biden_1.jpg").read_bytes()
GROUP = (PHOTOS / "group" / "insightface_t1.jpg").read_bytes()


def _settings(tmp: Path, **overrides: object) -> Settings:
    return load_settings(
        data_dir=tmp, index_auto_compact=False, index_refresh_interval_s=0.0, **overrides
    )


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> FacePipeline:
    pipe = FacePipeline(_settings(tmp_path_factory.mktemp("p")))
    pipe.warm_up()
    return pipe


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, pipeline: FacePipeline) -> Env:
    return build_env(_settings(tmp_path_factory.mktemp("api")), pipeline)


@pytest.fixture
def client(env: Env) -> SignedClient:
    return SignedClient(env.app)


def _problem(response: object, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.get_data(as_text=True)  # type: ignore[attr-defined]
    assert response.mimetype == "application/problem+json"  # type: ignore[attr-defined]
    body: dict[str, object] = response.get_json()  # type: ignore[attr-defined]
    assert body["type"] == PROBLEM_TYPE_PREFIX + code and body["status"] == status
    assert body["code"] == code and body["request_id"]
    return body


# --- authentication over HTTP -------------------------------------------------------------


def test_unsigned_forged_tampered_and_replayed_requests_are_refused(client: SignedClient) -> None:
    _problem(client.get("/v1/stats", sign=False), 401, "unauthorized")
    forged = SignedClient(client.wsgi.application, SigningKey(KEY.key_id, "f" * 40))  # type: ignore[arg-type]
    _problem(forged.get("/v1/stats"), 403, "forbidden")

    body = json.dumps({"embedding": [0.1] * 128}).encode()
    from facesearch.auth import sign_request

    headers = sign_request(KEY, "POST", "/v1/search", body)
    tampered = json.dumps({"embedding": [0.2] * 128}).encode()
    response = client.wsgi.post(
        "/v1/search", data=tampered, headers={**headers, "Content-Type": "application/json"}
    )
    _problem(response, 403, "forbidden")

    headers = sign_request(KEY, "GET", "/v1/stats")
    assert client.wsgi.get("/v1/stats", headers=headers).status_code == 200
    replay = client.wsgi.get("/v1/stats", headers=headers)
    body403 = _problem(replay, 403, "forbidden")
    assert body403["detail"] == "request rejected"  # says nothing about why


def test_healthz_and_openapi_are_unsigned(client: SignedClient) -> None:
    health = client.get("/healthz", sign=False)
    assert health.status_code == 200 and health.get_json()["status"] == "ok"
    assert health.get_json()["index_readable"] is True
    spec = client.get("/openapi.json", sign=False).get_json()
    assert spec["openapi"].startswith("3.1")


def test_responses_carry_request_id_and_stage_timings(client: SignedClient) -> None:
    response = client.get("/v1/stats", headers={"X-Cloud-Trace-Context": "abc123/1;o=1"})
    assert response.headers["X-Request-Id"] == "abc123"
    assert "auth;dur=" in response.headers["Server-Timing"]


# --- search -------------------------------------------------------------------------------


def test_search_by_image_finds_the_same_person(client: SignedClient, env: Env) -> None:
    response = client.post("/v1/search?k=3", body=PROBE.read_bytes(), content_type="image/jpeg")
    assert response.status_code == 200, response.get_data(as_text=True)
    result = response.get_json()
    assert len(result["faces"]) == 1
    matches = result["faces"][0]["matches"]
    assert matches, "obama_3 should match the other Obama photos"
    assert {m["image_id"] for m in matches} <= {"obama-1", "obama-2"}
    assert all(m["similarity"] >= result["threshold"] for m in matches)
    assert matches[0]["crop_url"].startswith("http://localhost/v1/crops/")
    assert {"detect", "embed", "ann", "total"} <= set(result["timings_ms"])
    assert "detect;dur=" in response.headers["Server-Timing"]


def test_search_image_as_multipart_and_base64_gives_the_same_answer(client: SignedClient) -> None:
    raw = client.post("/v1/search", body=PROBE.read_bytes(), content_type="image/jpeg")
    b64 = client.post(
        "/v1/search",
        json_body={"image_base64": base64.b64encode(PROBE.read_bytes()).decode()},
    )
    body, ctype = _multipart(image=PROBE.read_bytes())
    multipart = client.post("/v1/search", body=body, content_type=ctype)
    ids = [
        [m["face_id"] for m in r.get_json()["faces"][0]["matches"]] for r in (raw, b64, multipart)
    ]
    assert ids[0] and ids[0] == ids[1] == ids[2]


def test_selective_search_by_face_index_and_bbox(client: SignedClient, env: Env) -> None:
    everyone = client.post("/v1/search?k=1", body=GROUP, content_type="image/jpeg").get_json()
    assert len(everyone["faces"]) == 6
    # each group face's best match is itself (the group photo is in the collection)
    assert [f["matches"][0]["face_id"] for f in everyone["faces"]] == env.faces["group-t1"]
    one = client.post(
        "/v1/search?k=1&face_index=2", body=GROUP, content_type="image/jpeg"
    ).get_json()
    assert [f["face_index"] for f in one["faces"]] == [2]
    box = ",".join(str(v) for v in everyone["faces"][4]["bbox"])
    boxed = client.post(f"/v1/search?k=1&bbox={box}", body=GROUP, content_type="image/jpeg")
    assert [f["face_index"] for f in boxed.get_json()["faces"]] == [4]
    _problem(
        client.post("/v1/search?face_index=17", body=GROUP, content_type="image/jpeg"),
        422,
        "no-face",
    )


def test_min_liveness_and_quality_skip_query_faces(client: SignedClient) -> None:
    result = client.post(
        "/v1/search?min_quality=0.99&min_liveness=0.0", body=GROUP, content_type="image/jpeg"
    ).get_json()
    skipped = [f for f in result["faces"] if f["skipped"]]
    searched = [f for f in result["faces"] if not f["skipped"]]
    assert skipped and all(f["matches"] == [] for f in skipped)
    assert all(f["quality"] >= 0.99 for f in searched)


def test_search_by_embedding_and_by_face_id(client: SignedClient, env: Env) -> None:
    face_id = env.faces["obama-1"][0]
    record = env.store.get_face(face_id)
    assert record is not None
    by_vec = client.post("/v1/search", json_body={"embedding": record.vector().tolist(), "k": 2})
    matches = by_vec.get_json()["faces"][0]["matches"]
    assert matches[0]["face_id"] == face_id and matches[0]["similarity"] > 0.999
    by_id = client.post("/v1/search", json_body={"face_id": face_id, "k": 2}).get_json()
    ids = [m["face_id"] for m in by_id["faces"][0]["matches"]]
    assert face_id not in ids and ids[0] == env.faces["obama-2"][0]
    _problem(client.post("/v1/search", json_body={"face_id": "nope-0"}), 404, "not-found")


def test_threshold_filters_matches(client: SignedClient, env: Env) -> None:
    vec = env.store.get_face(env.faces["obama-1"][0]).vector().tolist()  # type: ignore[union-attr]
    loose = client.post("/v1/search", json_body={"embedding": vec, "k": 20, "threshold": -1.0})
    strict = client.post("/v1/search", json_body={"embedding": vec, "k": 20, "threshold": 0.9999})
    assert len(loose.get_json()["faces"][0]["matches"]) == env.service.index.reader.live_count
    assert len(strict.get_json()["faces"][0]["matches"]) == 1


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"not an image at all", "image/jpeg", 400, "invalid-image"),
        (b"hello", "text/plain", 415, "unsupported-media-type"),
        (b"{not json", "application/json", 400, "invalid-request"),
        (
            json.dumps({"embedding": [1.0, 2.0]}).encode(),
            "application/json",
            422,
            "invalid-embedding",
        ),
        (
            json.dumps({"embedding": [0.0] * 128}).encode(),
            "application/json",
            422,
            "invalid-embedding",
        ),
        (json.dumps({"k": 5}).encode(), "application/json", 400, "invalid-request"),
        (
            json.dumps({"face_id": "a", "embedding": [1.0]}).encode(),
            "application/json",
            400,
            "invalid-request",
        ),
        (json.dumps({"face_id": "a", "k": 0}).encode(), "application/json", 400, "invalid-request"),
        (
            json.dumps({"face_id": "a", "k": 101}).encode(),
            "application/json",
            400,
            "invalid-request",
        ),
        (json.dumps({"image_base64": "!!!"}).encode(), "application/json", 400, "invalid-image"),
        (
            json.dumps({"image_url": "http://169.254.169.254/latest"}).encode(),
            "application/json",
            400,
            "url-not-allowed",
        ),
    ],
)
def test_bad_search_requests_get_typed_problems(
    client: SignedClient, body: bytes, content_type: str, status: int, code: str
) -> None:
    _problem(client.post("/v1/search", body=body, content_type=content_type), status, code)


def test_image_without_a_face_is_422(client: SignedClient) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (200, 200), (120, 130, 140)).save(buffer, format="PNG")
    _problem(
        client.post("/v1/search", body=buffer.getvalue(), content_type="image/png"), 422, "no-face"
    )


def test_oversized_upload_is_413(tmp_path: Path, pipeline: FacePipeline) -> None:
    small = build_env(_settings(tmp_path, max_image_bytes=1000), pipeline, images={})
    response = SignedClient(small.app).post(
        "/v1/search", body=b"\xff" * 5000, content_type="image/jpeg"
    )
    _problem(response, 413, "image-too-large")


def test_anonymous_large_body_is_refused_before_it_is_read(
    tmp_path: Path, pipeline: FacePipeline
) -> None:
    small = build_env(_settings(tmp_path, max_image_bytes=1000), pipeline, images={})
    response = SignedClient(small.app).post(
        "/v1/search", body=b"\xff" * 100_000, content_type="image/jpeg", sign=False
    )
    _problem(response, 401, "unauthorized")  # not 413: the body was never buffered


def test_busy_instance_answers_429(client: SignedClient, env: Env) -> None:
    slots = env.service.searcher._image_slots
    taken = [
        slots.acquire(blocking=False) for _ in range(env.settings.api.query_max_concurrent_images)
    ]
    try:
        response = client.post("/v1/search", body=OBAMA_1, content_type="image/jpeg")
        _problem(response, 429, "rate-limited")
        assert response.headers["Retry-After"] == "1"
    finally:
        for ok in taken:
            if ok:
                slots.release()


# --- match --------------------------------------------------------------------------------


def _multipart(**files: bytes) -> tuple[bytes, str]:
    return encode_multipart(files, {})


def test_match_same_and_different_people(client: SignedClient) -> None:
    body, ctype = _multipart(image_a=OBAMA_1, image_b=PROBE.read_bytes())
    same = client.post("/v1/match", body=body, content_type=ctype).get_json()
    assert same["same_person"] is True and same["similarity"] >= same["threshold"]
    assert abs(same["distance"] - (2 - 2 * same["similarity"]) ** 0.5) < 1e-5  # euclidean
    assert [f["face_count"] for f in same["faces"]] == [1, 1]
    different = client.post(
        "/v1/match",
        json_body={
            "image_a_base64": base64.b64encode(OBAMA_1).decode(),
            "image_b_base64": base64.b64encode(BIDEN_1).decode(),
        },
    ).get_json()
    assert different["same_person"] is False


def test_match_needs_a_face_choice_in_group_photos(client: SignedClient) -> None:
    body, ctype = _multipart(image_a=GROUP, image_b=OBAMA_1)
    problem = _problem(
        client.post("/v1/match", body=body, content_type=ctype), 422, "several-faces"
    )
    assert "6 faces" in str(problem["detail"])
    chosen = client.post(
        "/v1/match",
        json_body={
            "image_a_base64": base64.b64encode(GROUP).decode(),
            "image_b_base64": base64.b64encode(OBAMA_1).decode(),
            "face_a": 3,
        },
    )
    assert chosen.status_code == 200 and chosen.get_json()["faces"][0]["face_index"] == 3
    buffer = io.BytesIO()
    Image.new("RGB", (100, 100), (200, 10, 10)).save(buffer, format="PNG")
    body, ctype = _multipart(image_a=OBAMA_1, image_b=buffer.getvalue())
    _problem(client.post("/v1/match", body=body, content_type=ctype), 422, "no-face")


# --- records, persons, crops --------------------------------------------------------------


def test_records_and_crop_urls(client: SignedClient, env: Env) -> None:
    face_id = env.faces["obama-1"][0]
    face = client.get(f"/v1/faces/{face_id}").get_json()
    assert face["image_id"] == "obama-1" and len(face["landmarks"]) == 5
    image = client.get("/v1/images/group-t1").get_json()
    assert image["status"] == "done" and len(image["faces"]) == 6
    _problem(client.get("/v1/images/missing"), 404, "not-found")
    _problem(client.get("/v1/faces/__reserved__"), 404, "not-found")
    _problem(client.get("/v1/persons/__proto__"), 404, "not-found")

    crop = client.get(face["crop_url"].removeprefix("http://localhost"), sign=False)
    assert crop.status_code == 200 and crop.mimetype == "image/jpeg"
    assert Image.open(io.BytesIO(crop.data)).size[0] > 50
    forged = face["crop_url"].removeprefix("http://localhost").replace("sig=", "sig=0")
    _problem(client.get(forged, sign=False), 403, "forbidden")
    other = (
        face["crop_url"].removeprefix("http://localhost").replace(face_id, env.faces["biden-1"][0])
    )
    _problem(client.get(other, sign=False), 403, "forbidden")


def test_persons_label_search_results_and_paginate(client: SignedClient, env: Env) -> None:
    created = client.post("/v1/persons", json_body={"name": "Barack", "metadata": {"a": 1}})
    assert created.status_code == 201
    person_id = created.get_json()["person_id"]
    for face_id in (env.faces["obama-1"][0], env.faces["obama-2"][0]):
        labelled = client.call(
            "PUT", f"/v1/faces/{face_id}/person", json_body={"person_id": person_id}
        )
        assert labelled.status_code == 200 and labelled.get_json()["person_name"] == "Barack"
    renamed = client.call(
        "PATCH", f"/v1/persons/{person_id}", json_body={"name": "Barack Obama"}
    ).get_json()
    assert renamed["name"] == "Barack Obama" and renamed["metadata"] == {"a": 1}
    result = client.post("/v1/search", body=PROBE.read_bytes(), content_type="image/jpeg")
    labels = {m["person_name"] for m in result.get_json()["faces"][0]["matches"]}
    assert labels == {"Barack Obama"}

    seen: list[str] = []
    cursor = None
    for _ in range(5):
        path = f"/v1/faces?person={person_id}&limit=1" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(path).get_json()
        assert len(page["items"]) <= 1
        seen += [f["face_id"] for f in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted([env.faces["obama-1"][0], env.faces["obama-2"][0]])
    assert cursor is None

    for n in range(4):
        client.post("/v1/persons", json_body={"name": f"p{n}"})
    names: list[str] = []
    cursor = None
    while True:
        path = "/v1/persons?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(path).get_json()
        names += [p["name"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(names) == sorted(["Barack Obama", "p0", "p1", "p2", "p3"])
    _problem(client.get("/v1/persons?cursor=garbage"), 400, "invalid-cursor")
    _problem(
        client.call(
            "PUT", f"/v1/faces/{env.faces['biden-1'][0]}/person", json_body={"person_id": "nobody"}
        ),
        404,
        "not-found",
    )
    unlabel = client.call(
        "PUT", f"/v1/faces/{env.faces['obama-2'][0]}/person", json_body={"person_id": None}
    )
    assert unlabel.get_json()["person_id"] is None


def test_stats(client: SignedClient, env: Env) -> None:
    stats = client.get("/v1/stats").get_json()
    assert stats["images"] == 5 and stats["index"]["live_faces"] == stats["faces"] == 10
    assert stats["index"]["segments"] >= 1 and stats["index"]["size_bytes"] > 0
    assert stats["models"]["embedder"] == env.pipeline.embedder.model_id


def test_method_and_route_errors(client: SignedClient) -> None:
    _problem(client.get("/v1/nothing"), 404, "not-found")
    _problem(client.call("PUT", "/v1/stats"), 405, "method-not-allowed")


# --- forget -------------------------------------------------------------------------------


@pytest.fixture
def small(tmp_path: Path, pipeline: FacePipeline) -> Iterator[Env]:
    from tests.support.api import COLLECTION

    yield build_env(
        _settings(tmp_path),
        pipeline,
        images={k: COLLECTION[k] for k in ("obama-1", "obama-2", "biden-1")},
    )


def _found(client: SignedClient, vector: list[float]) -> list[str]:
    result = client.post("/v1/search", json_body={"embedding": vector, "k": 10, "threshold": -1})
    return [m["face_id"] for m in result.get_json()["faces"][0]["matches"]]


def test_forget_image_removes_records_crops_and_index_entries(small: Env) -> None:
    client = SignedClient(small.app)
    face_id = small.faces["obama-1"][0]
    record = small.store.get_face(face_id)
    assert record is not None and record.crop_url
    crop_path = Path(record.crop_url.removeprefix("file://"))
    assert crop_path.exists() and face_id in _found(client, record.vector().tolist())

    forgotten = client.call("DELETE", "/v1/images/obama-1").get_json()
    assert forgotten == {"deleted_faces": [face_id], "crops_deleted": 1, "index": "tombstoned"}
    assert face_id not in _found(client, record.vector().tolist())
    assert face_id not in small.service.index.reader.face_ids()  # tombstoned, not just filtered
    assert not crop_path.exists()
    _problem(client.get(f"/v1/faces/{face_id}"), 404, "not-found")
    _problem(client.call("DELETE", "/v1/images/obama-1"), 404, "not-found")


def test_forget_person_removes_their_faces_everywhere(small: Env) -> None:
    client = SignedClient(small.app)
    person = client.post("/v1/persons", json_body={"name": "Obama"}).get_json()["person_id"]
    faces = [small.faces["obama-1"][0], small.faces["obama-2"][0]]
    vectors = [small.store.get_face(f).vector().tolist() for f in faces]  # type: ignore[union-attr]
    for face_id in faces:
        client.call("PUT", f"/v1/faces/{face_id}/person", json_body={"person_id": person})
    forgotten = client.call("DELETE", f"/v1/persons/{person}").get_json()
    assert forgotten["deleted_faces"] == sorted(faces) and forgotten["crops_deleted"] == 2
    for vector in vectors:
        assert not set(faces) & set(_found(client, vector))
    assert _found(client, vectors[0]) == [small.faces["biden-1"][0]]
    _problem(client.get(f"/v1/persons/{person}"), 404, "not-found")
    assert client.get("/v1/images/obama-1").get_json()["faces"] == []


def test_forgotten_but_not_yet_tombstoned_faces_are_already_unsearchable(small: Env) -> None:
    """Cloud path: the tombstone is queued for the indexer; search must not wait for it."""
    queued: list[list[str]] = []
    small.service.forgetter._forget_index = lambda ids: queued.append(ids) or "queued"  # type: ignore[method-assign]
    client = SignedClient(small.app)
    face_id = small.faces["biden-1"][0]
    vector = small.store.get_face(face_id).vector().tolist()  # type: ignore[union-attr]
    assert client.call("DELETE", "/v1/images/biden-1").get_json()["index"] == "queued"
    assert queued == [[face_id]]
    assert face_id in small.service.index.reader.face_ids()  # still in the index...
    assert face_id not in _found(client, vector)  # ...but never returned


def test_concurrent_signed_searches(client: SignedClient, env: Env) -> None:
    vec = np.asarray(env.store.get_face(env.faces["hanks-1"][0]).vector())  # type: ignore[union-attr]
    errors: list[int] = []

    def run() -> None:
        for _ in range(10):
            r = client.post("/v1/search", json_body={"embedding": vec.tolist(), "k": 1})
            if r.status_code != 200:
                errors.append(r.status_code)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_signature_header_names_are_documented(client: SignedClient) -> None:
    spec = client.get("/openapi.json", sign=False).get_json()
    assert spec["components"]["securitySchemes"]["hmac"]["name"] == HEADER_SIGNATURE
