"""Request bodies -> typed inputs: JSON, multipart, raw image bytes, base64, image URLs.

Search and match accept an image four ways, because the systems we replace
did (browser uploads, curl --data-binary, JSON clients, links): multipart
``image`` file, a raw ``image/*`` body, ``image_base64`` in JSON, or an
``image_url`` fetched through the SSRF-safe fetcher. Parameters come from the
JSON body, or from form fields / the query string for the other two.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request

from facesearch import jsonsafe
from facesearch.api.schemas import MatchRequest, SearchParams, SearchRequest
from facesearch.api.search import (
    EmbeddingProbe,
    FaceIdProbe,
    ImageInput,
    ImageProbe,
    Probe,
    UrlProbe,
)
from facesearch.errors import BadRequest, ImageTooLarge, InvalidImage, UnsupportedMediaType

M = TypeVar("M", bound=BaseModel)
Fetch = Callable[[str], bytes]

RAW_IMAGE_TYPES = ("image/", "application/octet-stream")


def media_type(request: Request) -> str:
    return (request.mimetype or "").lower()


def validation_problem(exc: ValidationError) -> BadRequest:
    errors = [
        {"loc": [str(p) for p in err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid"}
    where = ".".join(first["loc"]) or "body"
    return BadRequest(f"invalid request: {where}: {first['msg']}", errors)


def parse_model(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc) from exc


def json_body(request: Request, body: bytes) -> Any:
    if media_type(request) != "application/json":
        raise UnsupportedMediaType("expected Content-Type: application/json")
    try:
        return jsonsafe.loads(body)
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc


def json_model(request: Request, body: bytes, model: type[M]) -> M:
    return parse_model(model, json_body(request, body))


def _flat(multi: MultiDict[str, str]) -> dict[str, str]:
    return {key: multi[key] for key in multi}


def decode_base64(text: str, *, max_bytes: int, field: str) -> bytes:
    if len(text) > max_bytes * 4 // 3 + 8:
        raise ImageTooLarge(f"{field} decodes to more than {max_bytes} bytes")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImage(f"{field} is not valid base64") from exc


def _upload(request: Request, name: str, max_bytes: int) -> bytes | None:
    file = request.files.get(name)
    if file is None:
        return None
    data: bytes = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageTooLarge(f"{name} is larger than {max_bytes} bytes")
    return data


def parse_search(request: Request, body: bytes, *, max_bytes: int) -> tuple[Probe, SearchParams]:
    kind = media_type(request)
    query = _flat(request.args)
    if kind == "application/json":
        raw = json_body(request, body)
        if not isinstance(raw, dict):
            raise BadRequest("the JSON body must be an object")
        req = parse_model(SearchRequest, {**query, **raw})
        given = [
            name
            for name in ("image_base64", "image_url", "embedding", "face_id")
            if getattr(req, name) is not None
        ]
        if len(given) != 1:
            raise BadRequest(
                "give exactly one of image_base64, image_url, embedding, face_id"
                + (f" (got {', '.join(given)})" if given else "")
            )
        params = SearchParams.model_validate(req.model_dump(include=set(SearchParams.model_fields)))
        if req.image_base64 is not None:
            probe: Probe = ImageProbe(
                decode_base64(req.image_base64, max_bytes=max_bytes, field="image_base64")
            )
        elif req.image_url is not None:
            probe = UrlProbe(req.image_url)  # fetched under the detection slot
        elif req.embedding is not None:
            probe = EmbeddingProbe(req.embedding)
        else:
            assert req.face_id is not None
            probe = FaceIdProbe(req.face_id)
        return probe, params
    if kind == "multipart/form-data":
        params = parse_model(SearchParams, {**query, **_flat(request.form)})
        data = _upload(request, "image", max_bytes)
        if data is None:
            raise BadRequest("multipart body needs a file part named 'image'")
        return ImageProbe(data), params
    if kind.startswith(RAW_IMAGE_TYPES):
        if len(body) > max_bytes:
            raise ImageTooLarge(f"image is larger than {max_bytes} bytes")
        return ImageProbe(body), parse_model(SearchParams, query)
    raise UnsupportedMediaType(
        "send application/json, multipart/form-data or the raw image (image/*)"
    )


def parse_match(
    request: Request, body: bytes, *, max_bytes: int
) -> tuple[ImageInput, ImageInput, MatchRequest]:
    kind = media_type(request)
    if kind == "application/json":
        raw = json_body(request, body)
        if not isinstance(raw, dict):
            raise BadRequest("the JSON body must be an object")
        req = parse_model(MatchRequest, raw)
        images: list[ImageInput] = []
        for side in ("a", "b"):
            b64 = getattr(req, f"image_{side}_base64")
            url = getattr(req, f"image_{side}_url")
            if (b64 is None) == (url is None):
                raise BadRequest(f"give exactly one of image_{side}_base64, image_{side}_url")
            images.append(
                decode_base64(b64, max_bytes=max_bytes, field=f"image_{side}_base64")
                if b64 is not None
                else UrlProbe(url)
            )
        return images[0], images[1], req
    if kind == "multipart/form-data":
        req = parse_model(MatchRequest, {**_flat(request.args), **_flat(request.form)})
        a = _upload(request, "image_a", max_bytes)
        b = _upload(request, "image_b", max_bytes)
        if a is None or b is None:
            raise BadRequest("multipart body needs file parts 'image_a' and 'image_b'")
        return a, b, req
    raise UnsupportedMediaType("send application/json or multipart/form-data")
