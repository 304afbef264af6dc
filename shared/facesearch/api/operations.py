"""What operators ask: which models run, how big the collection is, is this instance healthy."""

from __future__ import annotations

from facesearch.api.index_view import IndexView
from facesearch.api.schemas import Health, IndexStats, Stats
from facesearch.config import Settings
from facesearch.errors import FaceSearchError
from facesearch.people.ports import PeopleStore
from facesearch.storage.metadata import MetadataStore
from facesearch.vision.pipeline import FacePipeline


class OperationsService:
    def __init__(
        self,
        settings: Settings,
        *,
        store: MetadataStore,
        people: PeopleStore,
        pipeline: FacePipeline,
        index: IndexView,
    ) -> None:
        self.settings = settings
        self.store = store
        self.people = people
        self.pipeline = pipeline
        self.index = index

    def models(self) -> dict[str, str]:
        return {
            "embedder": self.pipeline.embedder.model_id,
            "detector": "mtcnn",
            "liveness": self.settings.vision.liveness_model,
        }

    def stats(self) -> Stats:
        counts = self.store.counts()
        reader = self.index.reader
        manifest = reader.manifest
        index = IndexStats(
            live_faces=reader.live_count,
            vectors=manifest.vector_count if manifest else 0,
            segments=len(manifest.segments) if manifest else 0,
            size_bytes=sum(s.index_bytes + s.ids_bytes for s in manifest.segments)
            if manifest
            else 0,
            manifest_version=manifest.version if manifest else None,
            model=str(manifest.model) if manifest else None,
        )
        return Stats(
            faces=counts.faces,
            images=counts.images,
            persons=self.people.counts().persons,
            images_by_status=dict(counts.images_by_status),
            videos=counts.videos,
            tracks=counts.tracks,
            index=index,
            models=self.models(),
        )

    def health(self) -> Health:
        problems: list[str] = []
        models: dict[str, str] = {}
        try:
            self.pipeline.warm_up()
            models = self.models()
        except FaceSearchError as exc:
            problems.append(f"models: {exc.code}")
        readable, faces = False, None
        if not problems:
            try:
                # the view's snapshot, refreshed on its own interval: a probe is no storage read
                reader = self.index.reader
                readable, faces = True, reader.live_count
            except FaceSearchError as exc:
                problems.append(f"index: {exc.code}")
        return Health(
            status="ok" if not problems else "unavailable",
            env=self.settings.env,
            models=models,
            index_readable=readable,
            index_faces=faces,
            problems=problems,
        )
