"""Test support for the query API: a small real collection and a signing test client.

Faces are put in place the way ingest does (pipeline -> metadata records +
crops -> index) so that API tests do not depend on the ingest service's
internals; the embeddings, boxes and crops are real.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from werkzeug.test import Client as WsgiClient
from werkzeug.test import TestResponse

from facesearch.api.app import QueryApp
from facesearch.api.crops import LocalCropUrls
from facesearch.api.service import QueryService
from facesearch.auth import SigningKey, StaticKeyRing, sign_request
from facesearch.backends import services
from facesearch.backends.local import LocalBackend
from facesearch.config import Settings
from facesearch.index.writer import IndexWriter
from facesearch.storage.metadata import FaceRecord, ImageRecord, ImageStatus, MetadataStore
from facesearch.vision.pipeline import FacePipeline
from tests.data.image_corpus import PHOTOS

KEY = SigningKey("test-key", "s3cr3t-" + "0123456789abcdef" * 3)
COLLECTION = {
    "obama-1": PHOTOS / "labelled" / "obama" / "obama_1.jpg",
    "obama-2": PHOTOS / "labelled" / "obama" / "obama_2.jpg",
    "biden-1": PHOTOS / "labelled" / "biden" / "biden_1.jpg",
    "hanks-1": PHOTOS / "labelled" / "tom_hanks" / "tom_hanks_1.png",
    "group-t1": PHOTOS / "group" / "insightface_t1.jpg",
}
PROBE = PHOTOS / "labelled" / "obama" / "obama_3.jpg"  # not in the collection


def add_image(
    pipeline: FacePipeline,
    *,
    store: MetadataStore,
    writer: IndexWriter,
    crops_dir: Path,
    image_id: str,
    data: bytes,
) -> list[str]:
    result = pipeline.process(data)
    records = []
    for face in result.faces:
        assert face.embedding is not None and face.crop is not None
        face_id = f"{image_id}-{face.index}"
        crop = crops_dir / image_id / f"{face.index}.jpg"
        crop.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        Image.fromarray(face.crop).save(buffer, format="JPEG")
        crop.write_bytes(buffer.getvalue())
        records.append(
            FaceRecord.from_face(
                face,
                face_id=face_id,
                image_id=image_id,
                model=result.model,
                crop_url=crop.as_uri(),
            )
        )
    store.put_image(
        ImageRecord(
            image_id=image_id,
            source=f"test://{image_id}",
            status=ImageStatus.DONE,
            face_count=len(records),
            width=result.width,
            height=result.height,
            model=result.model,
        )
    )
    store.put_faces(image_id, records)
    if records:
        writer.add([r.face_id for r in records], [r.vector() for r in records], result.model)
    return [r.face_id for r in records]


@dataclass
class Env:
    settings: Settings
    app: QueryApp
    service: QueryService
    store: MetadataStore
    writer: IndexWriter
    pipeline: FacePipeline
    crops: LocalCropUrls
    crops_dir: Path
    faces: dict[str, list[str]]
    backend: LocalBackend


def build_env(
    settings: Settings,
    pipeline: FacePipeline,
    *,
    images: Mapping[str, Path] = COLLECTION,
    keys: Mapping[str, object] | None = None,
) -> Env:
    """The API as ``facesearch serve`` wires it (same composition root), with the test's
    pipeline, keys (``keys``: more, e.g. scoped ones) and crop base URL put in, over a small
    real collection."""
    crops = LocalCropUrls.from_data_dir(
        settings.data_dir, settings.api.signed_url_ttl_s, base_url="http://localhost"
    )
    backend = LocalBackend(settings).override(
        pipeline=pipeline,
        crop_urls=crops,
        keyring=StaticKeyRing({KEY.key_id: KEY.secret, **(keys or {})}),
    )
    store = backend.metadata()
    writer = backend.index_writer()
    crops_dir = settings.data_dir / "crops"
    faces = {
        image_id: add_image(
            pipeline,
            store=store,
            writer=writer,
            crops_dir=crops_dir,
            image_id=image_id,
            data=path.read_bytes(),
        )
        for image_id, path in images.items()
    }
    app = services.query_app(backend)
    return Env(
        settings,
        app,
        services.query_service(backend),
        store,
        writer,
        pipeline,
        crops,
        crops_dir,
        faces,
        backend,
    )


class SignedClient:
    """werkzeug test client that signs exactly the bytes it sends."""

    def __init__(self, app: QueryApp, key: SigningKey = KEY) -> None:
        self.wsgi = WsgiClient(app)
        self.key = key

    def call(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        json_body: Any = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        sign: bool = True,
    ) -> TestResponse:
        if json_body is not None:
            body = json.dumps(json_body).encode()
            content_type = content_type or "application/json"
        all_headers = dict(headers or {})
        if sign:
            all_headers.update(sign_request(self.key, method, path, body))
        if content_type:
            all_headers["Content-Type"] = content_type
        return self.wsgi.open(path, method=method, data=body, headers=all_headers)

    def get(self, path: str, **kw: Any) -> TestResponse:
        return self.call("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> TestResponse:
        return self.call("POST", path, **kw)
