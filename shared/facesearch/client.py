"""Python client for the query API: signs every request, returns typed results.

    from facesearch.client import Client
    client = Client("https://facesearch-dev-query-xyz.a.run.app", SigningKey("k1", secret))
    result = client.search_image(Path("photo.jpg").read_bytes(), k=5)
    for face in result.faces:
        for match in face.matches:
            print(match.face_id, match.similarity, match.person_name)
    event = client.in_collection("wedding-2026")   # /v1/collections/wedding-2026/...

One method per API route. How a request is signed and sent lives in
:mod:`facesearch.client_transport`: errors come back as its :class:`ApiError` carrying the
problem+json body (``code`` is the stable machine-readable part), and the request body is
serialised there, once, and exactly those bytes are signed and sent.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote

from facesearch.api.collection_schemas import CollectionOut, CollectionPage
from facesearch.api.person_schemas import (
    CorrectionOut,
    CorrectionPage,
    PersonImagePage,
    PersonOut,
    PersonPage,
)
from facesearch.api.schemas import (
    FaceOut,
    FacePage,
    Forgotten,
    Health,
    ImageOut,
    MatchResponse,
    SearchResponse,
    Stats,
)
from facesearch.api.settings import key_secret
from facesearch.api.video_schemas import TrackOut, VideoOut
from facesearch.auth.signing import SigningKey
from facesearch.client_transport import (
    Transport,
    encode_multipart,
    follow_pages,
    given,
    query_params,
)
from facesearch.config import Settings
from facesearch.errors import ConfigError


class Client(Transport):
    """One method per API route; :class:`~facesearch.client_transport.Transport` signs and
    sends, and raises :class:`~facesearch.client_transport.ApiError` for a problem."""

    @classmethod
    def from_settings(
        cls, settings: Settings, url: str | None = None, *, collection: str | None = None
    ) -> Client:
        base = url or settings.client.url
        if not base:
            raise ConfigError("no API URL: pass --remote URL or set FACESEARCH_CLIENT_URL")
        return cls(base, client_key_from_settings(settings), collection=collection)

    # --- search & match ------------------------------------------------------------------------

    def search_image(
        self,
        image: bytes,
        *,
        k: int | None = None,
        threshold: float | None = None,
        min_liveness: float | None = None,
        min_quality: float | None = None,
        face_index: int | None = None,
        bbox: Sequence[float] | None = None,
        group_by: str | None = None,
    ) -> SearchResponse:
        """Search with every face of an image; ``group_by="person"`` ranks persons instead
        of faces (each query face's ``persons``: "who is this?")."""
        params = query_params(
            k=k,
            threshold=threshold,
            min_liveness=min_liveness,
            min_quality=min_quality,
            face_index=face_index,
            bbox=list(bbox) if bbox is not None else None,
            group_by=group_by,
        )
        response = self.request(
            "POST",
            self._data("/v1/search"),
            params=params,
            body=image,
            content_type="application/octet-stream",
        )
        return SearchResponse.model_validate_json(response.content)

    def _search_json(self, payload: dict[str, Any], **params: Any) -> SearchResponse:
        payload.update(given(**params))
        return self._json(SearchResponse, "POST", self._data("/v1/search"), payload=payload)

    def search_url(self, image_url: str, **params: Any) -> SearchResponse:
        return self._search_json({"image_url": image_url}, **params)

    def search_embedding(self, embedding: Sequence[float], **params: Any) -> SearchResponse:
        return self._search_json({"embedding": [float(v) for v in embedding]}, **params)

    def search_face(self, face_id: str, **params: Any) -> SearchResponse:
        return self._search_json({"face_id": face_id}, **params)

    def match(
        self,
        image_a: bytes,
        image_b: bytes,
        *,
        face_a: int | None = None,
        face_b: int | None = None,
        largest: bool = False,
        threshold: float | None = None,
    ) -> MatchResponse:
        body, content_type = encode_multipart(
            {"image_a": image_a, "image_b": image_b},
            query_params(face_a=face_a, face_b=face_b, largest=largest, threshold=threshold),
        )
        response = self.request(
            "POST", self._data("/v1/match"), body=body, content_type=content_type
        )
        return MatchResponse.model_validate_json(response.content)

    # --- records & persons --------------------------------------------------------------------

    def face(self, face_id: str) -> FaceOut:
        return self._json(FaceOut, "GET", self._data(f"/v1/faces/{face_id}"))

    def image(self, image_id: str) -> ImageOut:
        return self._json(ImageOut, "GET", self._data(f"/v1/images/{image_id}"))

    def faces(
        self,
        *,
        person: str | None = None,
        image: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> FacePage:
        params = query_params(person=person, image=image, cursor=cursor, limit=limit)
        return self._json(FacePage, "GET", self._data("/v1/faces"), params=params)

    def iter_faces(self, **filters: Any) -> Iterator[FaceOut]:
        for page in follow_pages(lambda cursor: self.faces(cursor=cursor, **filters)):
            yield from page.items

    def create_person(self, name: str, metadata: dict[str, Any] | None = None) -> PersonOut:
        return self._json(
            PersonOut,
            "POST",
            self._data("/v1/persons"),
            payload={"name": name, "metadata": metadata or {}},
        )

    def person(self, person_id: str) -> PersonOut:
        return self._json(PersonOut, "GET", self._data(f"/v1/persons/{person_id}"))

    def update_person(
        self, person_id: str, *, name: str | None = None, metadata: dict[str, Any] | None = None
    ) -> PersonOut:
        payload = given(name=name, metadata=metadata)
        return self._json(
            PersonOut, "PATCH", self._data(f"/v1/persons/{person_id}"), payload=payload
        )

    def persons(self, *, cursor: str | None = None, limit: int = 100) -> PersonPage:
        return self._json(
            PersonPage,
            "GET",
            self._data("/v1/persons"),
            params=query_params(cursor=cursor, limit=limit),
        )

    def iter_persons(self, *, limit: int = 100) -> Iterator[PersonOut]:
        for page in follow_pages(lambda cursor: self.persons(cursor=cursor, limit=limit)):
            yield from page.items

    def person_images(
        self, person_id: str, *, cursor: str | None = None, limit: int = 100
    ) -> PersonImagePage:
        """Every image of a person ("every photo of me"), with their faces in it."""
        return self._json(
            PersonImagePage,
            "GET",
            self._data(f"/v1/persons/{person_id}/images"),
            params=query_params(cursor=cursor, limit=limit),
        )

    def set_face_person(self, face_id: str, person_id: str | None) -> FaceOut:
        """Assign a face to a person (the machine never moves it again); ``None``: the
        face is not its current person (a remembered rejection)."""
        return self._json(
            FaceOut,
            "PUT",
            self._data(f"/v1/faces/{face_id}/person"),
            payload={"person_id": person_id},
        )

    def merge_persons(self, person_id: str, others: Sequence[str]) -> CorrectionOut:
        """Merge ``others`` into ``person_id`` (undoable)."""
        return self._json(
            CorrectionOut,
            "POST",
            self._data(f"/v1/persons/{person_id}/merge"),
            payload={"persons": list(others)},
        )

    def split_person(
        self,
        person_id: str,
        face_ids: Sequence[str],
        *,
        to_person: str | None = None,
        name: str | None = None,
    ) -> CorrectionOut:
        """Move chosen faces of a person to ``to_person`` or (default) a new person."""
        payload = {"face_ids": list(face_ids), **given(to_person=to_person, name=name)}
        return self._json(
            CorrectionOut, "POST", self._data(f"/v1/persons/{person_id}/split"), payload=payload
        )

    def reject_face(self, person_id: str, face_id: str) -> CorrectionOut:
        """This face is not this person: it leaves and is never put back by the machine."""
        return self._json(
            CorrectionOut,
            "POST",
            self._data(f"/v1/persons/{person_id}/reject"),
            payload={"face_id": face_id},
        )

    def corrections(self, *, before: str | None = None, limit: int = 100) -> CorrectionPage:
        """The correction log, newest first."""
        return self._json(
            CorrectionPage,
            "GET",
            self._data("/v1/corrections"),
            params=query_params(before=before, limit=limit),
        )

    def undo(self, correction_id: str) -> CorrectionOut:
        """Undo a recent correction (answers with the undo's own log entry)."""
        return self._json(
            CorrectionOut, "POST", self._data(f"/v1/corrections/{correction_id}/undo")
        )

    def forget_image(self, image_id: str) -> Forgotten:
        return self._json(Forgotten, "DELETE", self._data(f"/v1/images/{image_id}"))

    def forget_person(self, person_id: str) -> Forgotten:
        return self._json(Forgotten, "DELETE", self._data(f"/v1/persons/{person_id}"))

    # --- videos --------------------------------------------------------------------------------

    def video(self, video_id: str, *, cursor: str | None = None, limit: int = 100) -> VideoOut:
        """A video's status and progress, and a page of its tracks (``next_cursor``)."""
        params = query_params(cursor=cursor, limit=limit)
        return self._json(VideoOut, "GET", self._data(f"/v1/videos/{video_id}"), params=params)

    def iter_tracks(self, video_id: str, *, page_size: int = 100) -> Iterator[TrackOut]:
        """Every track of a video, page by page."""
        for page in follow_pages(
            lambda cursor: self.video(video_id, cursor=cursor, limit=page_size)
        ):
            yield from page.tracks

    def forget_video(self, video_id: str) -> Forgotten:
        """Every track face of the video (records, crops, index entries) and its record."""
        return self._json(Forgotten, "DELETE", self._data(f"/v1/videos/{video_id}"))

    # --- collections ---------------------------------------------------------------------------

    def collections(self, *, cursor: str | None = None, limit: int = 100) -> CollectionPage:
        """The collections this key may see."""
        return self._json(
            CollectionPage,
            "GET",
            "/v1/collections",
            params=query_params(cursor=cursor, limit=limit),
        )

    def create_collection(
        self, collection_id: str, *, name: str = "", settings: dict[str, Any] | None = None
    ) -> CollectionOut:
        payload = {"collection_id": collection_id, "name": name, "settings": settings or {}}
        return self._json(CollectionOut, "POST", "/v1/collections", payload=payload)

    def get_collection(self, collection_id: str) -> CollectionOut:
        return self._json(CollectionOut, "GET", f"/v1/collections/{quote(collection_id, safe='')}")

    def update_collection(
        self,
        collection_id: str,
        *,
        name: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> CollectionOut:
        payload = given(name=name, settings=settings)
        path = f"/v1/collections/{quote(collection_id, safe='')}"
        return self._json(CollectionOut, "PATCH", path, payload=payload)

    def erase_collection(self, collection_id: str) -> CollectionOut:
        """Starts the erase (202); poll :meth:`get_collection` for ``erased`` and its report."""
        path = f"/v1/collections/{quote(collection_id, safe='')}"
        return self._json(CollectionOut, "DELETE", path)

    # --- operations --------------------------------------------------------------------------

    def stats(self) -> Stats:
        return self._json(Stats, "GET", self._data("/v1/stats"))

    def health(self) -> Health:
        """Unsigned; a 503 (unhealthy) still returns the Health body."""
        response = self.session.get(self.base_url + "/healthz", timeout=self.timeout_s)
        return Health.model_validate_json(response.content)


def client_key_from_settings(settings: Settings) -> SigningKey:
    """The key a local client signs with: explicit id+secret, or the only configured key."""
    client, keys = settings.client, settings.api.signing_keys
    if client.key_id and client.secret is not None:
        return SigningKey(client.key_id, client.secret.get_secret_value())
    if client.key_id and client.key_id in keys:
        return SigningKey(client.key_id, key_secret(keys[client.key_id]))
    if len(keys) == 1 and not client.key_id:
        ((key_id, value),) = keys.items()
        return SigningKey(key_id, key_secret(value))
    raise ConfigError(
        "no signing key: set FACESEARCH_CLIENT_KEY_ID and FACESEARCH_CLIENT_SECRET "
        "(or exactly one key in FACESEARCH_SIGNING_KEYS)"
    )
