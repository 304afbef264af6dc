"""Re-embed on the local backend, real photos and models: dlib-resnet-v1 → mobileface-v1.

Searches before, during and after the job find the right person and never mix models;
the switch is one manifest CAS plus the collection's embedder; counts in metadata equal
the new index's live count; the old segments are retired (GC-able); re-running is a
no-op and a killed task resumes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from facesearch.api.schemas import SearchParams
from facesearch.api.search import ImageProbe
from facesearch.backends import Backend, services
from facesearch.config import load_settings
from facesearch.errors import ModelMismatch
from facesearch.index.ids import SegmentIds
from facesearch.index.writer import read_manifest
from facesearch.jobs.rebuild import Rebuild
from facesearch.jobs.reembed import Reembed, crop_is_enough
from facesearch.jobs.tasks import TaskSlot
from facesearch.local import EmbeddedSystem

PHOTOS = Path(__file__).parents[2] / "data" / "photos" / "labelled"
OLD, NEW = "dlib-resnet-v1@2", "mobileface-v1@1"
pytestmark = pytest.mark.skipif(not (PHOTOS / "obama").is_dir(), reason="no test photos")


def _photo(name: str) -> Path:
    return next(PHOTOS.glob(f"*/{name}.*"))


@pytest.fixture
def system(tmp_path: Path) -> EmbeddedSystem:
    data = tmp_path / "data"
    # the photos are copied: re-embedding from originals reads them where ingest saw them
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("obama_1", "obama_2", "biden_1", "tom_hanks_1"):
        shutil.copy(_photo(name), photos / _photo(name).name)
    system = EmbeddedSystem(load_settings(backend="local", data_dir=data), cluster=False)
    summary = system.ingest_files(sorted(photos.iterdir()))
    assert summary.faces >= 4
    return system


def _live(backend: Backend) -> list[str]:
    store = backend.index_store()
    manifest, _ = read_manifest(store)
    assert manifest is not None
    out: list[str] = []
    for entry in manifest.segments:
        dead = set(map(int, entry.tombstones))
        out += [f for k, f in SegmentIds(store.read(entry.ids_name)[0]).items() if k not in dead]
    return sorted(out)


def _search(backend: Backend, name: str) -> tuple[str, str, float]:
    """(model the answer was computed with, image id and similarity of the best match),
    through the query service as the API calls it."""
    backend.collections().forget("default")
    result = services.query_service(backend).searcher.search(
        ImageProbe(_photo(name).read_bytes()), SearchParams(k=3)
    )
    best = max(result.faces, key=lambda f: f.matches[0].similarity if f.matches else -1)
    assert best.matches
    return result.model, str(best.matches[0].image_id), best.matches[0].similarity


def _image_of(system: EmbeddedSystem, file: str) -> str:
    for page_item in system.metadata.list_images(limit=100).items:
        if Path(page_item.source).name == file:
            return page_item.image_id
    raise AssertionError(file)


def test_reembed_switches_atomically_and_serves_one_model_throughout(
    system: EmbeddedSystem, tmp_path: Path
) -> None:
    backend = system.backend
    obama_1 = _image_of(system, _photo("obama_1").name)
    before = _search(backend, "obama_1")
    assert before[:2] == (OLD, obama_1) and before[2] > 0.99
    old_manifest, _ = read_manifest(backend.index_store())
    assert old_manifest is not None and str(old_manifest.model) == OLD
    old_reader = backend.index_reader(expected_model=OLD)

    job = Reembed(backend, "reembed-test", model="mobileface-v1", segment_size=2)
    started = job.start()
    assert (started["from_model"], started["model"]) == (OLD, NEW)
    first = job.run_task(TaskSlot(0, 2))
    # during: the old index serves, with the old model; the side segments are unnamed
    assert _search(backend, "obama_1")[:2] == (OLD, obama_1)
    # meanwhile ingest adds a face (old model) and forgets one: both carried over
    late = tmp_path / "late"
    late.mkdir()
    shutil.copy(_photo("obama_3"), late / _photo("obama_3").name)
    system.ingest_files([late / _photo("obama_3").name])
    biden = _image_of(system, _photo("biden_1").name)
    gone = system.metadata.delete_image(biden)
    backend.remove_from_index("default", gone)
    second = job.run_task(TaskSlot(1, 2))
    assert first.faces + second.faces == 4  # the faces there when the tasks read them
    with pytest.raises(Exception, match="not every task"):
        Reembed(backend, "reembed-other", model="mobileface-v1").switch(2)

    switched = job.switch(2)
    assert switched.switched
    manifest, _ = read_manifest(backend.index_store())
    assert manifest is not None and str(manifest.model) == NEW
    assert manifest.dims == backend.pipeline("mobileface-v1").embedder.dim
    assert backend.collections().get("default", fresh=True).settings["embedder"] == "mobileface-v1"
    # counts: every face in metadata (obama_3 included, biden gone) is live once
    faces = [f.face_id for f in system.metadata.list_faces(limit=100).items]
    assert _live(backend) == sorted(faces)
    assert switched.live == len(faces) == system.metadata.counts().faces
    assert all(f.vector_for(NEW) is not None for f in system.metadata.list_faces(limit=100).items)
    # the old segments are retired, not deleted: readers holding them finish, GC removes them
    assert {s.id for s in old_manifest.segments} <= {r.id for r in manifest.retired}
    # after: queries are embedded with the new model and still find the person
    # mobileface sees more around the face than dlib's crop holds: from the originals
    assert job.sources.original > 0 and job.sources.crop == 0
    after = _search(backend, "obama_1")
    assert after[:2] == (NEW, obama_1) and after[2] > 0.99
    late_hit = _search(backend, "obama_3")  # re-embedded at the switch (the late segment)
    assert late_hit[:2] == (NEW, _image_of(system, _photo("obama_3").name))
    # a reader bound to the old model refuses the new manifest instead of mixing
    with pytest.raises(ModelMismatch):
        old_reader.refresh()
    with pytest.raises(ModelMismatch):
        backend.index_reader(expected_model=OLD).search(np.zeros((1, 128), np.float32), 1)

    # a second switch and a re-run change nothing (reused vectors, same live faces)
    assert not job.switch(2).switched
    again = Reembed(backend, "reembed-again", model="mobileface-v1")
    again.start()
    again.run_task(TaskSlot(0, 1))
    assert again.sources.reused == len(faces)
    assert again.sources.crop == again.sources.original == 0
    again.switch(1)
    assert _live(backend) == sorted(faces)
    # and a plain rebuild of the new model's index finds the re-embedded vectors
    rebuild = Rebuild(backend, "rebuild-after")
    rebuild.start()
    rebuilt = rebuild.run_task(TaskSlot(0, 1))
    assert (rebuilt.faces, rebuilt.skipped_other_model) == (len(faces), 0)
    assert rebuild.switch(1).switched and _live(backend) == sorted(faces)
    assert _search(backend, "obama_1")[:2] == (NEW, obama_1)


def test_killed_task_resumes_after_its_checkpoint(
    system: EmbeddedSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = system.backend
    job = Reembed(backend, "reembed-kill", model="mobileface-v1", segment_size=1)
    job.start()
    real = job._build_vectors
    calls = {"n": 0}

    def dies_on_second(ids: list[str], raw: np.ndarray):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("task killed")
        return real(ids, raw)

    monkeypatch.setattr(job, "_build_vectors", dies_on_second)
    with pytest.raises(RuntimeError):
        job.run_task(TaskSlot(0, 1))
    monkeypatch.undo()
    resumed = Reembed(backend, "reembed-kill", model="mobileface-v1", segment_size=1)
    result = resumed.run_task(TaskSlot(0, 1))
    assert result.resumed
    faces = sorted(f.face_id for f in system.metadata.list_faces(limit=100).items)
    assert result.faces == len(faces) - 1  # the checkpointed segment is not done again
    assert resumed.switch(1).switched
    assert _live(backend) == faces  # nothing lost, nothing doubled


def test_crop_too_small_falls_back_to_the_original(system: EmbeddedSystem) -> None:
    backend = system.backend
    old = backend.pipeline("dlib-resnet-v1").embedder
    new = backend.pipeline("mobileface-v1").embedder
    # mobileface's 112 px input reaches past dlib's chip (coverage); dlib's eyes are
    # further apart than mobileface's crop has them (resolution); a model's own crop will do
    assert not crop_is_enough(old, new) and not crop_is_enough(new, old)
    assert crop_is_enough(old, old)
    faces = system.metadata.list_faces(limit=100).items
    auto = Reembed(backend, "reembed-auto", model="mobileface-v1")
    from_original = auto.embed_faces(faces)
    assert auto.sources.original == len(faces) and auto.sources.crop == 0
    crop_job = Reembed(backend, "reembed-crop", model="mobileface-v1", source="crop")
    from_crop = crop_job.embed_faces(faces)
    assert crop_job.sources.crop == len(faces)
    # the same face from crop and from original: the same person, not the same vector
    sims = [float(from_original[f.face_id] @ from_crop[f.face_id]) for f in faces]
    assert min(sims) > 0.5 and max(sims) < 0.999, sims
    # the same model from its own crops (auto picks the crop): near the stored vectors
    same = Reembed(backend, "reembed-same", model="dlib-resnet-v1")
    again = same.embed_faces(faces)
    assert same.sources.crop == len(faces)
    own = [float(f.vector() @ again[f.face_id]) for f in faces]
    assert min(own) > 0.9, own
