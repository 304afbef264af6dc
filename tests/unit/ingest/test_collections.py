"""Ingest into collections: routing by object name, per-collection stores, crops and
messages, the faces quota, and no resurrection of an erased collection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from facesearch.config import load_settings
from facesearch.ingest.entry import handle_event
from facesearch.ingest.service import Outcome
from facesearch.ingest.sources import STORAGE_FINALIZED, collection_for_object, image_id_for
from facesearch.storage.catalog import CollectionRecord
from facesearch.storage.metadata import DEFAULT_COLLECTION, check_collection_id
from facesearch.vision.pipeline import FacePipeline
from tests.unit.ingest.test_service import BUCKET, World

PATTERN = "collections/{collection}/"


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    return FacePipeline(load_settings())


@pytest.fixture
def world(tmp_path: Path, pipeline: FacePipeline) -> Iterator[World]:
    w = World(tmp_path, pipeline)
    w.backend.catalog().create_collection(CollectionRecord("wedding"))
    w.backend.catalog().create_collection(CollectionRecord("capped", settings={"max_faces": 2}))
    yield w
    w.metadata.close()


def _finalize(world: World, name: str, data: bytes) -> Outcome | None:
    world.upload(name, data, generation=1)
    event = {"bucket": BUCKET, "name": name, "generation": "1", "size": str(len(data))}
    outcome = handle_event(STORAGE_FINALIZED, event, service=world.service)
    return None if outcome is None else outcome.outcome


@given(st.text(max_size=80))
def test_any_object_name_maps_to_a_valid_collection(name: str) -> None:
    collection = collection_for_object(name, PATTERN)
    assert check_collection_id(collection) == collection
    if not name.startswith("collections/"):
        assert collection == DEFAULT_COLLECTION


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("collections/wedding/a.jpg", "wedding"),
        ("collections/wedding/deep/er/a.jpg", "wedding"),
        ("collections/Wedding/a.jpg", DEFAULT_COLLECTION),  # not a collection id
        ("collections/wedding", DEFAULT_COLLECTION),  # no trailing slash: not under it
        ("uploads/collections/wedding/a.jpg", DEFAULT_COLLECTION),  # anchored at the start
        ("a.jpg", DEFAULT_COLLECTION),
    ],
)
def test_bucket_prefix_pattern(name: str, expected: str) -> None:
    assert collection_for_object(name, PATTERN) == expected
    renamed = name.replace("collections/", "events/", 1)
    assert collection_for_object(renamed, "events/{collection}/") == expected


def test_upload_under_a_collection_prefix_lands_in_that_collection_only(
    world: World, photos_dir: Path
) -> None:
    data = (photos_dir / "labelled/obama/obama_1.jpg").read_bytes()
    assert _finalize(world, "collections/wedding/obama.jpg", data) is Outcome.DONE
    assert _finalize(world, "obama.jpg", data) is Outcome.DONE  # same bytes, default

    wedding = world.backend.metadata("wedding")
    image_id = image_id_for(f"gs://{BUCKET}/collections/wedding/obama.jpg#1", "wedding")
    assert wedding.get_image(image_id) is not None
    assert world.metadata.get_image(image_id) is None  # default does not see it
    assert wedding.counts().faces == 1 and world.metadata.counts().faces == 1
    (face,) = wedding.list_faces(image_id=image_id).items
    assert face.crop_url is not None and "/crops/collections/wedding/" in face.crop_url
    messages = world.embeddings()
    assert sorted(m.collection_id for m in messages) == ["default", "wedding"]
    assert {m.face_ids[0] for m in messages if m.collection_id == "wedding"} == {face.face_id}
    (sent,) = [m for m in world.bus.published["face-embeddings"] if b"wedding" in m.data]
    assert sent.attributes["collection"] == "wedding"


def test_unknown_and_erased_collections_take_nothing(world: World, photos_dir: Path) -> None:
    data = (photos_dir / "labelled/biden/biden_1.jpg").read_bytes()
    assert _finalize(world, "collections/nobody/b.jpg", data) is Outcome.SKIPPED
    assert world.backend.metadata("nobody").counts().images == 0

    world.backend.erase_job().run("wedding")
    world.backend.collections().forget("wedding")
    assert _finalize(world, "collections/wedding/b.jpg", data) is Outcome.SKIPPED
    assert world.backend.metadata("wedding").counts().images == 0
    assert world.crops.list("collections/wedding/") == []
    assert world.embeddings() == []


def test_erase_starting_mid_ingest_leaves_nothing_behind(world: World, photos_dir: Path) -> None:
    """The erase wins: the store refuses the image's write, its crops are removed."""
    data = (photos_dir / "group/insightface_t1.jpg").read_bytes()
    job = world.backend.erase_job()
    pipeline = world.service.pipelines(None)
    original = pipeline.process

    def process_then_erase(*args: object, **kwargs: object) -> object:
        result = original(*args, **kwargs)  # type: ignore[arg-type]
        job.start("wedding")  # another instance starts the erase now
        return result

    pipeline.process = process_then_erase  # type: ignore[method-assign]
    try:
        assert _finalize(world, "collections/wedding/t1.jpg", data) is Outcome.SKIPPED
    finally:
        pipeline.process = original  # type: ignore[method-assign]
    assert world.crops.list("collections/wedding/") == []
    assert world.embeddings() == []
    report = job.run("wedding")
    assert report["verified"] and not any(report["leftovers"].values())


def test_faces_quota_refuses_only_its_collection(world: World, photos_dir: Path) -> None:
    one = (photos_dir / "labelled/obama/obama_1.jpg").read_bytes()
    two = (photos_dir / "labelled/biden/biden_1.jpg").read_bytes()
    three = (photos_dir / "labelled/obama/obama_2.jpg").read_bytes()
    assert _finalize(world, "collections/capped/1.jpg", one) is Outcome.DONE
    assert _finalize(world, "collections/capped/2.jpg", two) is Outcome.DONE
    world.upload("collections/capped/3.jpg", three)
    event = {"bucket": BUCKET, "name": "collections/capped/3.jpg", "generation": "1"}
    outcome = handle_event(STORAGE_FINALIZED, event, service=world.service)
    assert outcome is not None and outcome.outcome is Outcome.FAILED
    assert outcome.error_code == "quota-exceeded"
    assert world.backend.metadata("capped").counts().faces == 2
    assert _finalize(world, "collections/wedding/3.jpg", three) is Outcome.DONE  # unaffected
