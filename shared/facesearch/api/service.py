"""The query service: one object per process that owns what every request shares.

Per collection it opens (on first use) a :class:`CollectionQuery` — that
collection's store, index view, embedder pipeline and policy — holding the four
services the routes call:

* ``searcher`` — search and match, by face or by person (:mod:`.search`)
* ``records`` — faces and images (:mod:`.records`)
* ``persons`` — persons, their images, corrections and undo (:mod:`.persons`)
* ``videos`` — a video's status, progress and tracks (:mod:`.videos`)
* ``forgetter`` — forget an image, a video or a person (:mod:`.forget`)
* ``operations`` — models, stats, health (:mod:`.operations`)

All of them see persons through one :class:`~facesearch.people.service.PeopleService`
per collection, over the collection's people store, this view of its index and its
metadata store.

Open collections are kept in an LRU within a budget (how many, and how many bytes
of index segments they map): a deployment with hundreds of event collections keeps
the busy ones warm and cold-opens the rest on demand (segments are mmapped, so a
cold open reads the manifest and maps files; it does not load vectors).

Transport-free: inputs are decoded values, outputs are the response models of
:mod:`.schemas`, failures are typed errors (:mod:`facesearch.errors`). Built by
:func:`facesearch.backends.services.query_service`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from facesearch.api.crops import CropUrls
from facesearch.api.forget import ForgetService, IndexForgetter
from facesearch.api.index_view import IndexView
from facesearch.api.operations import OperationsService
from facesearch.api.persons import PersonsService
from facesearch.api.records import RecordService
from facesearch.api.search import SearchService
from facesearch.api.videos import VideoService
from facesearch.collections.policy import CollectionSettings
from facesearch.config import Settings
from facesearch.index.reader import IndexReader
from facesearch.people.adapters import IndexNeighbourSearch, MetadataFaceSource
from facesearch.people.engine import PeopleEngine
from facesearch.people.ports import PeopleStore
from facesearch.people.service import PeopleService
from facesearch.storage.metadata import DEFAULT_COLLECTION, MetadataStore
from facesearch.vision.pipeline import FacePipeline

#: opens a collection's index for a model: (collection_id, model_id) -> reader
CollectionReaderFactory = Callable[[str, str], IndexReader]
#: a collection's settings (the policy stored on its record)
PolicyLookup = Callable[[str], CollectionSettings]


@dataclass
class CollectionQuery:
    """One collection's services over its store, index view, pipeline and policy."""

    collection_id: str
    embedder: str | None  # the collection setting it was opened with (None: the default)
    store: MetadataStore
    index: IndexView
    pipeline: FacePipeline
    searcher: SearchService
    records: RecordService
    persons: PersonsService
    videos: VideoService
    forgetter: ForgetService
    operations: OperationsService

    def mapped_bytes(self) -> int:
        """Index segment bytes this collection has open (0 until its index is opened)."""
        reader = self.index.opened
        manifest = reader.manifest if reader is not None else None
        return sum(s.index_bytes for s in manifest.segments) if manifest else 0


class QueryService:
    """One per process (Cloud Run instance): models, index views and stores load once."""

    def __init__(
        self,
        settings: Settings,
        *,
        stores: Callable[[str], MetadataStore],
        people: Callable[[str], PeopleStore],
        crops: CropUrls,
        forget_index: Callable[[str], IndexForgetter],
        pipelines: Callable[[str | None], FacePipeline],
        fetch: Callable[[str], bytes],
        open_reader: CollectionReaderFactory | None = None,
        policies: PolicyLookup | None = None,
        drop_cache: Callable[[str], None] | None = None,
        crops_root: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.stores = stores
        self.people = people
        self.crops = crops
        self._forget_index = forget_index
        self.pipelines = pipelines
        self._fetch = fetch
        self._open_reader = open_reader
        self._policies = policies or (lambda collection_id: CollectionSettings())
        self._drop_cache = drop_cache
        self.crops_root = crops_root
        self._clock = clock
        self._open: OrderedDict[str, CollectionQuery] = OrderedDict()
        self._lock = threading.Lock()
        self._readers: dict[str, IndexReader] = {}

    @classmethod
    def single(
        cls,
        settings: Settings,
        *,
        store: MetadataStore,
        people: PeopleStore,
        crops: CropUrls,
        forget_index: IndexForgetter,
        pipeline: FacePipeline,
        fetch: Callable[[str], bytes],
        open_reader: Callable[[str], IndexReader] | None = None,
        reader: IndexReader | None = None,
    ) -> QueryService:
        """A service over one store (and its people store) and index (tests, tools)."""
        service = cls(
            settings,
            stores=lambda collection_id: store,
            people=lambda collection_id: people,
            crops=crops,
            forget_index=lambda collection_id: forget_index,
            pipelines=lambda embedder: pipeline,
            fetch=fetch,
            open_reader=None if open_reader is None else (lambda cid, model: open_reader(model)),
        )
        if reader is not None:
            service._readers[DEFAULT_COLLECTION] = reader
        return service

    # --- collections ------------------------------------------------------------------

    def collection(self, collection_id: str = DEFAULT_COLLECTION) -> CollectionQuery:
        """The collection's services, opened on first use, kept while the budget allows."""
        with self._lock:
            query = self._open.get(collection_id)
        if query is not None and query.embedder == self._policies(collection_id).embedder:
            with self._lock:
                self._open.move_to_end(collection_id)
            return query
        # not open, or its embedder changed (a re-embed switched it): open it again, so
        # queries are embedded by the model the index now holds (the reader refuses others)
        query = self._build(collection_id)
        with self._lock:
            found = self._open.get(collection_id)
            if found is not None and found.embedder == query.embedder:
                query = found
            self._open[collection_id] = query
            self._open.move_to_end(collection_id)
            self._evict()
        return query

    def close(self, collection_id: str, *, erased: bool = False) -> None:
        """Drop a collection's services (its index unmapped); once it is being erased,
        also this instance's cached copies of its index segments (embeddings)."""
        with self._lock:
            self._open.pop(collection_id, None)
        if erased and self._drop_cache is not None and collection_id != DEFAULT_COLLECTION:
            self._drop_cache(collection_id)

    def open_collections(self) -> list[str]:
        with self._lock:
            return list(self._open)

    def _evict(self) -> None:
        """Least recently used first, never the one just opened (caller holds the lock)."""
        api = self.settings.api
        budget = api.open_index_budget_mb * 1024 * 1024
        while len(self._open) > 1 and (
            len(self._open) > api.open_collections_max
            or sum(q.mapped_bytes() for q in self._open.values()) > budget
        ):
            self._open.popitem(last=False)

    def _build(self, collection_id: str) -> CollectionQuery:
        policy = self._policies(collection_id)
        store = self.stores(collection_id)
        pipeline = self.pipelines(policy.embedder)
        opener = self._open_reader
        index = IndexView(
            None if opener is None else (lambda model: opener(collection_id, model)),
            model_id=lambda: pipeline.embedder.model_id,
            refresh_interval_s=self.settings.index.refresh_interval_s,
            reader=self._readers.get(collection_id),
            clock=self._clock,
        )
        people = PeopleService(
            PeopleEngine(
                self.people(collection_id),
                IndexNeighbourSearch(lambda: index.reader),
                MetadataFaceSource(store),
                self.settings.people,
            )
        )
        return CollectionQuery(
            collection_id=collection_id,
            embedder=policy.embedder,
            store=store,
            index=index,
            pipeline=pipeline,
            searcher=SearchService(
                self.settings,
                store=store,
                crops=self.crops,
                pipeline=pipeline,
                index=index,
                fetch=self._fetch,
                people=people,
                threshold=policy.match_threshold,
            ),
            records=RecordService(store, self.crops, people),
            persons=PersonsService(people, store, self.crops),
            videos=VideoService(store, self.crops, people),
            forgetter=ForgetService(
                store,
                self.crops,
                self._forget_index(collection_id),
                index,
                people,
                crops_root=self.crops_root,
            ),
            operations=OperationsService(
                self.settings,
                store=store,
                people=people.store,
                pipeline=pipeline,
                index=index,
            ),
        )

    # --- the default collection (the API's unscoped routes, embedded tools) -------------

    @property
    def searcher(self) -> SearchService:
        return self.collection().searcher

    @property
    def records(self) -> RecordService:
        return self.collection().records

    @property
    def persons(self) -> PersonsService:
        return self.collection().persons

    @property
    def forgetter(self) -> ForgetService:
        return self.collection().forgetter

    @property
    def operations(self) -> OperationsService:
        return self.collection().operations

    @property
    def index(self) -> IndexView:
        return self.collection().index

    @property
    def store(self) -> MetadataStore:
        return self.collection().store

    @property
    def pipeline(self) -> FacePipeline:
        return self.collection().pipeline
