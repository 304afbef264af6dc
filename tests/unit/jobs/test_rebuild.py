"""Rebuild from the metadata store: parallel tasks, resumable, one atomic switch that
keeps what the indexer did meanwhile; counts in metadata == index live count."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from facesearch.backends import Backend, backend_for
from facesearch.config import load_settings
from facesearch.index.ids import SegmentIds
from facesearch.index.writer import read_manifest
from facesearch.jobs.rebuild import Rebuild
from facesearch.jobs.tasks import TaskSlot
from facesearch.storage.metadata import FaceRecord

MODEL = "dlib-resnet-v1@2"


def _face(n: int) -> FaceRecord:
    image_id = hashlib.sha256(str(n).encode()).hexdigest()[:32]
    vector = np.random.default_rng(n).normal(size=128).astype("<f4")
    vector /= np.linalg.norm(vector)
    return FaceRecord(
        face_id=f"{image_id}-0",
        image_id=image_id,
        face_index=0,
        bbox=(1.0, 2.0, 50.0, 60.0),
        landmarks=((10.0, 11.0), (20.0, 11.0), (15.0, 20.0), (11.0, 30.0), (19.0, 30.0)),
        det_score=0.99,
        embedding=vector.tobytes(),
        model=MODEL,
        liveness=0.9,
        live=True,
    )


@pytest.fixture
def backend(tmp_path: Path) -> Backend:
    return backend_for(load_settings(backend="local", data_dir=tmp_path, index_auto_compact=False))


def _put(backend: Backend, faces: list[FaceRecord]) -> None:
    store = backend.metadata()
    for face in faces:
        store.put_faces(face.image_id, [face])


def _live_ids(backend: Backend) -> list[str]:
    store = backend.index_store()
    manifest, _ = read_manifest(store)
    assert manifest is not None
    out: list[str] = []
    for entry in manifest.segments:
        sidecar = SegmentIds(store.read(entry.ids_name)[0])
        dead = set(map(int, entry.tombstones))
        out += [face for key, face in sidecar.items() if key not in dead]
    return sorted(out)


def test_two_tasks_rebuild_and_switch_keeping_what_happened_meanwhile(backend: Backend) -> None:
    faces = [_face(n) for n in range(300)]
    _put(backend, faces)
    writer = backend.index_writer()
    # the old index: only part of the faces (a lost segment), to be replaced
    writer.add([f.face_id for f in faces[:100]], np.stack([f.vector() for f in faces[:100]]), MODEL)
    rebuild = Rebuild(backend, "rebuild-test", segment_size=64)
    rebuild.start()
    results = [rebuild.run_task(TaskSlot(i, 2)) for i in range(2)]
    assert sum(r.faces for r in results) == 300
    assert min(r.faces for r in results) > 100  # the ranges split the hex ids evenly
    # meanwhile: the indexer adds a new face and deletes an old one (metadata too)
    late = _face(1000)
    _put(backend, [late])
    writer.add([late.face_id], late.vector()[None, :], MODEL)
    gone = faces[5]
    writer.delete([gone.face_id])
    backend.metadata().delete_image(gone.image_id)
    # the live index still serves the old manifest until the switch
    assert len(_live_ids(backend)) == 100
    result = rebuild.switch(2)
    assert result.switched and result.carried_segments == 1
    expected = sorted({f.face_id for f in faces} - {gone.face_id} | {late.face_id})
    assert _live_ids(backend) == expected
    assert backend.metadata().counts().faces == len(expected) == result.live
    # idempotent: a second switch (another task finishing) changes nothing
    again = rebuild.switch(2)
    assert not again.switched and _live_ids(backend) == expected


def test_a_killed_task_resumes_after_its_last_segment(backend: Backend) -> None:
    faces = [_face(n) for n in range(200)]
    _put(backend, faces)
    rebuild = Rebuild(backend, "rebuild-resume", segment_size=50, model=MODEL)
    rebuild.start()
    built = 0

    def die_after_two(n: int) -> None:
        nonlocal built
        built += 1
        if built == 2:
            raise KeyboardInterrupt  # killed after uploading its 2nd segment, before saying so

    with pytest.raises(KeyboardInterrupt):
        rebuild.run_task(TaskSlot(0, 1), die_after_two)
    state = rebuild.checkpoints.read(TaskSlot(0, 1).label)
    assert state is not None and not state["finished"] and len(state["segments"]) == 1
    result = rebuild.run_task(TaskSlot(0, 1))
    assert result.faces == 150  # the first segment's 50 are not built again
    switched = rebuild.switch(1)
    assert switched.switched and switched.live == 200
    assert _live_ids(backend) == sorted(f.face_id for f in faces)


def test_switch_refuses_before_every_task_finished(backend: Backend) -> None:
    _put(backend, [_face(n) for n in range(20)])
    rebuild = Rebuild(backend, "rebuild-early", model=MODEL)
    rebuild.start()
    rebuild.run_task(TaskSlot(0, 2))
    with pytest.raises(Exception, match="not every task"):
        rebuild.switch(2)


def test_tasks_starting_at_once_agree_on_one_start_record(backend: Backend) -> None:
    _put(backend, [_face(n) for n in range(10)])
    first = Rebuild(backend, "rebuild-race", model=MODEL)
    second = Rebuild(backend, "rebuild-race", model=MODEL)
    record = first.checkpoints.create("start.json", {"model": MODEL, "segments": {}, "n": 1})
    assert second.start() == record  # the later starter reads the stored record
    assert second.checkpoints.create("start.json", {"n": 2}) == record
