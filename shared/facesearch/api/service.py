"""The query service: one object per process that owns what every request shares.

It holds the collaborators (metadata store, crop URLs, the vision pipeline, the
index view) and hands them to the four services the routes call:

* :attr:`QueryService.searcher` — search and match (:mod:`.search`)
* :attr:`QueryService.records` — faces, images, persons (:mod:`.records`)
* :attr:`QueryService.forgetter` — forget an image or a person (:mod:`.forget`)
* :attr:`QueryService.operations` — models, stats, health (:mod:`.operations`)

Transport-free: inputs are decoded values, outputs are the response models of
:mod:`.schemas`, failures are typed errors (:mod:`facesearch.errors`). The HTTP
layer (:mod:`.app`) parses, authenticates and renders; the CLI and tests can
call the services directly. Built by :func:`facesearch.backends.services.query_service`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from facesearch.api.crops import CropUrls
from facesearch.api.forget import ForgetService, IndexForgetter
from facesearch.api.index_view import IndexView, ReaderFactory
from facesearch.api.operations import OperationsService
from facesearch.api.records import RecordService
from facesearch.api.search import SearchService
from facesearch.config import Settings
from facesearch.index.reader import IndexReader
from facesearch.storage.metadata import MetadataStore
from facesearch.vision.pipeline import FacePipeline


class QueryService:
    """One per process (Cloud Run instance): models, index view and stores load once."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: MetadataStore,
        crops: CropUrls,
        forget_index: IndexForgetter,
        pipeline: FacePipeline,
        fetch: Callable[[str], bytes],
        open_reader: ReaderFactory | None = None,
        reader: IndexReader | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.store = store
        self.crops = crops
        self.pipeline = pipeline
        self.index = IndexView(
            open_reader,
            model_id=lambda: pipeline.embedder.model_id,
            refresh_interval_s=settings.index.refresh_interval_s,
            reader=reader,
            clock=clock,
        )
        self.searcher = SearchService(
            settings, store=store, crops=crops, pipeline=pipeline, index=self.index, fetch=fetch
        )
        self.records = RecordService(store, crops)
        self.forgetter = ForgetService(store, crops, forget_index, self.index)
        self.operations = OperationsService(
            settings, store=store, pipeline=pipeline, index=self.index
        )
