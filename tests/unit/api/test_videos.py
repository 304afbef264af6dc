"""Videos through the signed API: moments on search hits, GET and DELETE /v1/videos/{id}.

The clip is ingested by the embedded system (the cloud's code paths: plan, chunk tasks,
finisher, indexer) into the data dir the API serves; search, the video's page of
tracks, persons on tracks, scopes, the collection-scoped routes, the client, and a
forget that leaves no face, crop, index entry or record behind.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from facesearch.auth import SigningKey
from facesearch.client import Client
from facesearch.client_transport import ApiError
from facesearch.local import EmbeddedSystem
from facesearch.vision.pipeline import FacePipeline
from tests.support.api import SignedClient, build_env
from tests.support.clips import SPANS, probe_photo, two_people_mp4
from tests.unit.api.test_routes import _settings

READER = SigningKey("reader", "r" * 40)
ERASER = SigningKey("eraser", "e" * 40)
KEYS = {
    READER.key_id: {"secret": READER.secret, "scopes": ["search"]},
    ERASER.key_id: {"secret": ERASER.secret, "scopes": ["erase", "search"]},
}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> FacePipeline:
    pipe = FacePipeline(_settings(tmp_path_factory.mktemp("p"), onnx_threads=1))
    pipe.warm_up()
    return pipe


class World:
    def __init__(self, tmp: Path, pipeline: FacePipeline, photos_dir: Path) -> None:
        self.settings = _settings(tmp, video_chunk_s=1.0)
        self.photos_dir = photos_dir
        clip = tmp / "clip.mp4"
        clip.write_bytes(two_people_mp4(photos_dir, pipeline))
        seen: list[tuple[str, int, int | None]] = []
        system = EmbeddedSystem(
            self.settings, pipeline=pipeline, on_video_progress=lambda *a: seen.append(a)
        )
        self.outcome = system.ingest_file(clip)
        self.progress = seen
        self.video_id = self.outcome.image_id
        self.env = build_env(self.settings, pipeline, images={}, keys=KEYS)
        self.client = SignedClient(self.env.app)

    def search(self, who: str, path: str = "/v1/search") -> Any:
        response = self.client.post(
            path, body=probe_photo(self.photos_dir, who), content_type="image/jpeg"
        )
        assert response.status_code == 200, response.get_data()
        return response.get_json()


@pytest.fixture
def world(tmp_path: Path, pipeline: FacePipeline, photos_dir: Path) -> World:
    return World(tmp_path, pipeline, photos_dir)


def test_embedded_ingest_of_a_clip_reports_progress_in_video_time(world: World) -> None:
    assert world.outcome.outcome == "done" and world.outcome.media == "video"
    assert world.outcome.faces == 2
    times = [t for _, t, _ in world.progress]
    assert times == sorted(times) and times[-1] == 3960  # the last frame, in order
    assert {d for *_, d in world.progress} == {4000}


def test_search_finds_the_moments_of_each_person(world: World) -> None:
    for n, who in enumerate(("obama", "biden")):
        (face,) = world.search(who)["faces"]
        (match,) = [m for m in face["matches"] if m.get("video_id")]
        assert match["video_id"] == match["image_id"] == world.video_id
        assert match["track_id"] == match["face_id"] == f"{world.video_id}-t{n}"
        assert [(m["start_ms"], m["end_ms"]) for m in match["moments"]] == SPANS[who]
        assert SPANS[who][0][0] <= match["t_ms"] <= SPANS[who][0][1]
        crop = world.client.wsgi.get(match["crop_url"].removeprefix("http://localhost"))
        assert crop.status_code == 200 and crop.data[:3] == b"\xff\xd8\xff"  # the thumbnail
    # photo hits carry no video fields
    assert all(m["video_id"] is None for m in world.search("obama")["faces"][0]["matches"][1:])


def test_get_video_pages_tracks_with_moments_and_persons(world: World) -> None:
    path = f"/v1/videos/{world.video_id}"
    body = world.client.get(path).get_json()
    assert (body["status"], body["duration_ms"], body["codec"]) == ("done", 4000, "h264")
    assert body["progress"] == {"chunks_done": 4, "chunks_total": 4, "fraction": 1.0}
    assert body["track_count"] == 2 and body["next_cursor"] is None
    assert [[(m["start_ms"], m["end_ms"]) for m in t["moments"]] for t in body["tracks"]] == [
        SPANS["obama"],
        SPANS["biden"],
    ]
    assert body["source"] == "clip.mp4"  # the file's name, never a local path
    # label the first track's face: the person shows on the track
    person = world.client.post("/v1/persons", json_body={"name": "Barack Obama"}).get_json()
    labelled = world.client.call(
        "PUT",
        f"/v1/faces/{world.video_id}-t0/person",
        json_body={"person_id": person["person_id"]},
    )
    assert labelled.status_code == 200 and labelled.get_json()["video_id"] == world.video_id
    first = world.client.get(f"{path}?limit=1").get_json()
    (track,) = first["tracks"]
    assert (track["person_id"], track["person_name"]) == (person["person_id"], "Barack Obama")
    assert track["hits"] >= 2 and track["crop_url"] and first["next_cursor"]
    rest = world.client.get(f"{path}?limit=1&cursor={first['next_cursor']}").get_json()
    assert [t["track_index"] for t in rest["tracks"]] == [1]
    last = world.client.get(f"{path}?limit=1&cursor={rest['next_cursor']}").get_json()
    assert last["tracks"] == [] and last["next_cursor"] is None  # (a full page has a cursor)
    # the same under the collection's own path; other collections do not have it
    scoped = world.client.get(f"/v1/collections/default/videos/{world.video_id}")
    assert scoped.status_code == 200 and scoped.get_json()["video_id"] == world.video_id
    assert world.client.get("/v1/videos/nope").status_code == 404
    stats = world.client.get("/v1/stats").get_json()
    assert (stats["videos"], stats["tracks"], stats["faces"]) == (1, 2, 2)


def test_forget_needs_the_erase_scope_and_leaves_nothing(world: World) -> None:
    path = f"/v1/videos/{world.video_id}"
    reader = SignedClient(world.env.app, READER)
    assert reader.get(path).status_code == 200
    denied = reader.call("DELETE", path)
    assert denied.status_code == 403 and denied.get_json()["code"] == "forbidden-scope"
    crops = sorted((world.settings.data_dir / "crops").rglob("*.jpg"))
    assert len(crops) == 2
    forgotten = SignedClient(world.env.app, ERASER).call("DELETE", path)
    assert forgotten.status_code == 200, forgotten.get_data()
    body = forgotten.get_json()
    assert body["deleted_faces"] == [f"{world.video_id}-t0", f"{world.video_id}-t1"]
    assert (body["crops_deleted"], body["index"]) == (2, "tombstoned")
    assert world.client.get(path).status_code == 404
    assert not any(m.get("video_id") for m in world.search("obama")["faces"][0]["matches"])
    assert not any(p.exists() for p in crops)
    store = world.env.store
    counts = store.counts()
    assert (counts.videos, counts.tracks, counts.faces) == (0, 0, 0)
    assert not list((world.settings.data_dir / "crops").rglob("videos/*"))
    assert reader.call("DELETE", path).status_code == 403  # scope first, then existence
    assert SignedClient(world.env.app, ERASER).call("DELETE", path).status_code == 404


@pytest.fixture
def served(world: World) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, world.env.app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_the_client_reads_and_forgets_videos(world: World, served: str) -> None:
    from tests.support.api import KEY

    client = Client(served, KEY)
    video = client.video(world.video_id, limit=1)
    assert video.status == "done" and len(video.tracks) == 1 and video.next_cursor
    assert [t.track_id for t in client.iter_tracks(world.video_id, page_size=1)] == [
        f"{world.video_id}-t0",
        f"{world.video_id}-t1",
    ]
    scoped = client.in_collection("default").video(world.video_id)
    assert scoped.progress.chunks_total == 4
    result = client.search_image(probe_photo(world.photos_dir, "biden"))
    hit = next(m for m in result.faces[0].matches if m.video_id)
    assert hit.moments is not None and (hit.moments[0].start_ms, hit.moments[0].end_ms) == (
        2000,
        3960,
    )
    assert len(client.forget_video(world.video_id).deleted_faces) == 2
    with pytest.raises(ApiError) as info:
        client.video(world.video_id)
    assert info.value.http_status == 404
