"""facesearch.client.Client against a live local server: typed results, ApiError, paging."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import requests
from werkzeug.serving import make_server

from facesearch.api.schemas import SearchResponse
from facesearch.auth import SigningKey
from facesearch.client import ApiError, Client, SigningAuth
from facesearch.vision.pipeline import FacePipeline
from tests.support.api import COLLECTION, KEY, PROBE, Env, build_env
from tests.unit.api.test_routes import _settings


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Env]]:
    cfg = _settings(tmp_path_factory.mktemp("client"))
    env = build_env(
        cfg,
        FacePipeline(cfg),
        images={k: COLLECTION[k] for k in ("obama-1", "obama-2", "biden-1")},
    )
    server = make_server("127.0.0.1", 0, env.app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", env
    server.shutdown()


def test_client_round_trip(served: tuple[str, Env]) -> None:
    url, env = served
    client = Client(url, KEY)
    assert client.health().status == "ok"
    result = client.search_image(PROBE.read_bytes(), k=2)
    assert isinstance(result, SearchResponse)
    assert {m.image_id for m in result.faces[0].matches} == {"obama-1", "obama-2"}

    person = client.create_person("Barack Obama", {"source": "test"})
    for face_id in env.faces["obama-1"] + env.faces["obama-2"]:
        assert client.set_face_person(face_id, person.person_id).person_name == "Barack Obama"
    labelled = [f.face_id for f in client.iter_faces(person=person.person_id, limit=1)]
    assert sorted(labelled) == sorted(env.faces["obama-1"] + env.faces["obama-2"])
    assert client.update_person(person.person_id, name="B. Obama").name == "B. Obama"
    by_face = client.search_face(env.faces["obama-1"][0], k=1)
    assert by_face.faces[0].matches[0].person_name == "B. Obama"

    forgotten = client.forget_person(person.person_id)
    assert sorted(forgotten.deleted_faces) == sorted(labelled)
    assert client.stats().faces == 1
    with pytest.raises(ApiError) as info:
        client.face(env.faces["obama-1"][0])
    assert info.value.http_status == 404 and info.value.code == "not-found"


def test_client_errors_are_typed(served: tuple[str, Env]) -> None:
    url, _ = served
    with pytest.raises(ApiError) as info:
        Client(url, SigningKey(KEY.key_id, "w" * 40)).stats()
    assert info.value.http_status == 403 and info.value.code == "forbidden"
    with pytest.raises(ApiError) as info:
        Client(url, KEY).search_embedding([1.0, 2.0])
    assert info.value.code == "invalid-embedding"


def test_signing_auth_for_plain_requests(served: tuple[str, Env]) -> None:
    url, _ = served
    response = requests.get(
        f"{url}/v1/persons", params={"limit": 5}, auth=SigningAuth(KEY), timeout=30
    )
    assert response.status_code == 200 and "items" in response.json()
