"""facesearch.client.Client against a live local server: typed results, ApiError, paging."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
import requests
from werkzeug.serving import make_server

from facesearch.api.schemas import SearchResponse
from facesearch.auth import SigningKey
from facesearch.client import Client
from facesearch.client_transport import ApiError, SigningAuth
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


def test_client_persons_and_corrections(served: tuple[str, Env]) -> None:
    """Every persons call of the client against the live API, undo included (runs before
    the round trip below, which forgets the Obama faces)."""
    url, env = served
    client = Client(url, KEY)
    first, second = env.faces["obama-1"][0], env.faces["obama-2"][0]
    a = client.create_person("A")
    b = client.create_person("B")
    for face_id in (first, second):
        assert client.set_face_person(face_id, a.person_id).person_id == a.person_id
    assert client.person(a.person_id).faces == 2
    assert {i.image_id for i in client.person_images(a.person_id).items} == {"obama-1", "obama-2"}
    assert a.person_id in {p.person_id for p in client.iter_persons(limit=1)}

    moved = client.split_person(a.person_id, [second], to_person=b.person_id)
    assert [(f.face_id, f.after_person) for f in moved.faces] == [(second, b.person_id)]
    assert [i.image_id for i in client.person_images(b.person_id).items] == ["obama-2"]

    merged = client.merge_persons(a.person_id, [b.person_id])
    assert client.person(b.person_id).person_id == a.person_id  # an alias answers as its root
    assert client.person(a.person_id).faces == 2
    undone = client.undo(merged.correction_id)
    assert undone.undoes == merged.correction_id
    assert client.person(b.person_id).person_id == b.person_id
    assert client.corrections(limit=1).items[0].correction_id == undone.correction_id

    grouped = client.search_face(first, group_by="person", k=2, threshold=0.0)
    assert {p.person_id for p in grouped.faces[0].persons} >= {b.person_id}

    rejected = client.reject_face(b.person_id, second)
    assert rejected.person_id == b.person_id
    # it never comes back to B (the engine may place it with its neighbour in A)
    assert client.face(second).person_id != b.person_id
    with pytest.raises(ApiError) as info:
        client.undo("no-such-correction")
    assert info.value.http_status == 404


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


def test_persons_cli_against_the_api(
    served: tuple[str, Env], capsys: pytest.CaptureFixture[str]
) -> None:
    """``facesearch persons ... --remote URL`` answers what the client does."""
    from facesearch.cli import main

    url, _ = served
    remote = ["--remote", url, "--key-id", KEY.key_id, "--secret", KEY.secret, "--json"]
    listed = Client(url, KEY).persons(limit=100)
    assert listed.items, "earlier tests left persons"
    assert main(["persons", "list", *remote]) == 0
    assert json.loads(capsys.readouterr().out) == listed.model_dump(mode="json")
    pid = listed.items[0].person_id
    assert main(["persons", "name", pid, "Remote name", *remote]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "Remote name"
    assert main(["persons", "log", *remote]) == 0
    entry = json.loads(capsys.readouterr().out)["items"][0]
    assert entry["kind"] == "name" and entry["new_name"] == "Remote name"
    assert main(["persons", "show", "nobody", *remote]) == 2
    assert "not-found" in capsys.readouterr().err


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
