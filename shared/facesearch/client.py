"""Python client for the query API: signs every request, returns typed results.

    from facesearch.client import Client
    client = Client("https://facesearch-dev-query-xyz.a.run.app", SigningKey("k1", secret))
    result = client.search_image(Path("photo.jpg").read_bytes(), k=5)
    for face in result.faces:
        for match in face.matches:
            print(match.face_id, match.similarity, match.person_name)
    event = client.in_collection("wedding-2026")   # /v1/collections/wedding-2026/...

Errors come back as :class:`ApiError` carrying the problem+json body (``code``
is the stable machine-readable part). The request body is serialised here,
once, and exactly those bytes are signed and sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import requests
import requests.auth
from pydantic import BaseModel

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
from facesearch.auth.signing import SigningKey, sign_request
from facesearch.config import Settings
from facesearch.errors import ConfigError, FaceSearchError, TransientError

M = TypeVar("M", bound=BaseModel)

DEFAULT_TIMEOUT_S = 60.0


class ApiError(FaceSearchError):
    """The API answered with a problem+json error."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        detail = problem.get("detail") or problem.get("title") or f"HTTP {status}"
        super().__init__(str(detail))
        self.http_status = status
        self.code = str(problem.get("code") or "http-error")
        self.problem = problem
        self.retryable = status in (429, 503)


class SigningAuth(requests.auth.AuthBase):
    """Sign any ``requests`` call (``session.auth = SigningAuth(key)``): it sees the final body."""

    def __init__(self, key: SigningKey) -> None:
        self.key = key

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode()
        r.headers.update(sign_request(self.key, r.method or "GET", r.path_url, body))
        return r


def _encode_multipart(files: dict[str, bytes], fields: dict[str, str]) -> tuple[bytes, str]:
    prepared = requests.Request(
        "POST",
        "http://x/",
        files={name: (name, data, "application/octet-stream") for name, data in files.items()},
        data=fields,
    ).prepare()
    body = prepared.body
    assert isinstance(body, bytes)
    return body, str(prepared.headers["Content-Type"])


def _params(**values: Any) -> dict[str, str]:
    out = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            out[name] = ",".join(str(v) for v in value)
        else:
            out[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


class Client:
    def __init__(
        self,
        base_url: str,
        key: SigningKey,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        session: requests.Session | None = None,
        extra_headers: dict[str, str] | None = None,
        collection: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        #: data calls go to this collection (``None``: the default collection)
        self.collection = collection
        self.key = key
        self.timeout_s = timeout_s
        self.session = session or requests.Session()
        self.extra_headers = dict(extra_headers or {})

    @classmethod
    def from_settings(
        cls, settings: Settings, url: str | None = None, *, collection: str | None = None
    ) -> Client:
        base = url or settings.client.url
        if not base:
            raise ConfigError("no API URL: pass --remote URL or set FACESEARCH_CLIENT_URL")
        return cls(base, client_key_from_settings(settings), collection=collection)

    def in_collection(self, collection: str | None) -> Client:
        """The same connection, its data calls scoped to ``collection``."""
        return Client(
            self.base_url,
            self.key,
            timeout_s=self.timeout_s,
            session=self.session,
            extra_headers=self.extra_headers,
            collection=collection,
        )

    def _data(self, path: str) -> str:
        """``/v1/...`` of the client's collection (``/v1/collections/<id>/...``)."""
        if self.collection is None:
            return path
        return f"/v1/collections/{quote(self.collection, safe='')}" + path.removeprefix("/v1")

    # --- transport -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> requests.Response:
        """Send one signed request; raises ApiError for a problem response."""
        target = path + ("?" + urlencode(params) if params else "")
        headers = dict(self.extra_headers)
        headers.update(sign_request(self.key, method, target, body))
        if content_type:
            headers["Content-Type"] = content_type
        try:
            response = self.session.request(
                method, self.base_url + target, data=body, headers=headers, timeout=self.timeout_s
            )
        except requests.RequestException as exc:
            raise TransientError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            try:
                problem = response.json()
                if not isinstance(problem, dict):
                    raise ValueError
            except ValueError:
                problem = {"detail": response.text[:200] or response.reason}
            raise ApiError(response.status_code, problem)
        return response

    def _json(
        self,
        model: type[M],
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        payload: Any = None,
    ) -> M:
        body = b"" if payload is None else json.dumps(payload).encode()
        response = self.request(
            method,
            path,
            params=params,
            body=body,
            content_type="application/json" if payload is not None else None,
        )
        return model.model_validate_json(response.content)

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
        params = _params(
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
        payload.update({k: v for k, v in params.items() if v is not None})
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
        body, content_type = _encode_multipart(
            {"image_a": image_a, "image_b": image_b},
            _params(face_a=face_a, face_b=face_b, largest=largest, threshold=threshold),
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
        params = _params(person=person, image=image, cursor=cursor, limit=limit)
        return self._json(FacePage, "GET", self._data("/v1/faces"), params=params)

    def iter_faces(self, **filters: Any) -> Iterator[FaceOut]:
        cursor = None
        while True:
            page = self.faces(cursor=cursor, **filters)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

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
        payload: dict[str, Any] = {}
        if name is not None:
            payload["name"] = name
        if metadata is not None:
            payload["metadata"] = metadata
        return self._json(
            PersonOut, "PATCH", self._data(f"/v1/persons/{person_id}"), payload=payload
        )

    def persons(self, *, cursor: str | None = None, limit: int = 100) -> PersonPage:
        return self._json(
            PersonPage, "GET", self._data("/v1/persons"), params=_params(cursor=cursor, limit=limit)
        )

    def iter_persons(self, *, limit: int = 100) -> Iterator[PersonOut]:
        cursor = None
        while True:
            page = self.persons(cursor=cursor, limit=limit)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def person_images(
        self, person_id: str, *, cursor: str | None = None, limit: int = 100
    ) -> PersonImagePage:
        """Every image of a person ("every photo of me"), with their faces in it."""
        return self._json(
            PersonImagePage,
            "GET",
            self._data(f"/v1/persons/{person_id}/images"),
            params=_params(cursor=cursor, limit=limit),
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
        payload: dict[str, Any] = {"face_ids": list(face_ids)}
        if to_person is not None:
            payload["to_person"] = to_person
        if name is not None:
            payload["name"] = name
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
            params=_params(before=before, limit=limit),
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
        params = _params(cursor=cursor, limit=limit)
        return self._json(VideoOut, "GET", self._data(f"/v1/videos/{video_id}"), params=params)

    def iter_tracks(self, video_id: str, *, page_size: int = 100) -> Iterator[TrackOut]:
        """Every track of a video, page by page."""
        cursor = None
        while True:
            page = self.video(video_id, cursor=cursor, limit=page_size)
            yield from page.tracks
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def forget_video(self, video_id: str) -> Forgotten:
        """Every track face of the video (records, crops, index entries) and its record."""
        return self._json(Forgotten, "DELETE", self._data(f"/v1/videos/{video_id}"))

    # --- collections ---------------------------------------------------------------------------

    def collections(self, *, cursor: str | None = None, limit: int = 100) -> CollectionPage:
        """The collections this key may see."""
        return self._json(
            CollectionPage, "GET", "/v1/collections", params=_params(cursor=cursor, limit=limit)
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
        payload: dict[str, Any] = {}
        if name is not None:
            payload["name"] = name
        if settings is not None:
            payload["settings"] = settings
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
