"""Property: no input a caller can send makes the API or the webhook answer 5xx.

The pass that would have found the probe's 500s: deep and recursive JSON, values of
every JSON type in every body field, arbitrary query values and header values — all
*correctly signed*, so they get past authentication into the parsers.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facesearch.auth import sign_request
from facesearch.auth.signing import HEADER_KEY_ID, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP
from facesearch.backends import services
from facesearch.backends.local import LocalBackend
from facesearch.cloudinary.entry import handle_http
from facesearch.config import load_settings
from facesearch.vision.pipeline import FacePipeline
from tests.data.image_corpus import PHOTOS
from tests.support.api import KEY, Env, SignedClient, build_env
from tests.support.cloudinary import CLOUD, TEST_SECRET, sign

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=25,
)


@st.composite
def deep_json(draw: st.DrawFn) -> str:
    """JSON text nested far beyond any limit (json.dumps itself could not write it)."""
    depth = draw(st.sampled_from([33, 100, 1_000, 20_000]))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    return opener * depth + "1" + closer * depth


FIELD_VALUE = JSON.map(json.dumps) | deep_json()


def _cursor(kind: str, values: list[Any]) -> str:
    """A cursor in our own encoding, holding values of any JSON type."""
    raw = json.dumps([kind, values]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


CURSORS = st.builds(
    _cursor, st.sampled_from(["faces", "persons", "images"]), st.lists(JSON, max_size=2)
)

BODIES: dict[str, tuple[str, str, list[str]]] = {
    "search": (
        "POST",
        "/v1/search",
        [
            "image_base64",
            "image_url",
            "embedding",
            "face_id",
            "k",
            "threshold",
            "bbox",
            "face_index",
            "min_quality",
        ],
    ),
    "match": (
        "POST",
        "/v1/match",
        ["image_a_base64", "image_b_url", "face_a", "largest", "threshold"],
    ),
    "create_person": ("POST", "/v1/persons", ["name", "metadata"]),
    "update_person": ("PATCH", "/v1/persons/p-1", ["name", "metadata"]),
    "label_face": ("PUT", "/v1/faces/obama-1-0/person", ["person_id"]),
}
QUERIES = ["/v1/faces", "/v1/persons", "/v1/search", "/v1/crops/obama-1-0"]
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    cfg = load_settings(data_dir=tmp_path_factory.mktemp("fuzz"), index_auto_compact=False)
    pipeline = FacePipeline(cfg)
    pipeline.warm_up()
    return build_env(cfg, pipeline, images={"obama-1": PHOTOS / "labelled/obama/obama_1.jpg"})


def _no_5xx(response: Any) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        assert response.mimetype == "application/problem+json"


@FUZZ
@given(
    route=st.sampled_from(sorted(BODIES)),
    values=st.dictionaries(st.integers(0, 8), FIELD_VALUE, max_size=4),
    raw=st.one_of(st.none(), FIELD_VALUE),
)
def test_signed_json_bodies_never_cause_5xx(
    env: Env, route: str, values: dict[int, str], raw: str | None
) -> None:
    method, path, fields = BODIES[route]
    if raw is not None:
        text = raw  # the whole body is some JSON value (or deep junk)
    else:
        text = (
            "{"
            + ",".join(
                f"{json.dumps(fields[i % len(fields)])}: {value}" for i, value in values.items()
            )
            + "}"
        )
    response = SignedClient(env.app).call(
        method, path, body=text.encode(), content_type="application/json"
    )
    _no_5xx(response)


@FUZZ
@given(
    path=st.sampled_from(QUERIES),
    params=st.dictionaries(
        st.sampled_from(
            [
                "cursor",
                "limit",
                "person",
                "image",
                "k",
                "threshold",
                "bbox",
                "expires",
                "sig",
                "face_index",
                "x",
            ]
        ),
        st.text(max_size=60) | st.integers().map(str) | JSON.map(json.dumps) | CURSORS,
        max_size=4,
    ),
)
def test_any_query_values_never_cause_5xx(env: Env, path: str, params: dict[str, str]) -> None:
    query = "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in params.items())
    target = f"{path}?{query}" if query else path
    method = "POST" if path == "/v1/search" else "GET"
    body = json.dumps({"embedding": [0.1] * 128}).encode() if method == "POST" else b""
    client = SignedClient(env.app)
    headers = sign_request(KEY, method, target, body)
    response = client.wsgi.open(
        target, method=method, data=body, headers={**headers, "Content-Type": "application/json"}
    )
    _no_5xx(response)


@FUZZ
@given(path=st.sampled_from(["/v1/faces", "/v1/persons"]), cursor=CURSORS)
def test_any_page_cursor_never_causes_5xx(env: Env, path: str, cursor: str) -> None:
    response = SignedClient(env.app).get(f"{path}?cursor={cursor}")
    _no_5xx(response)


@FUZZ
@given(
    header=st.sampled_from(
        [
            HEADER_KEY_ID,
            HEADER_TIMESTAMP,
            HEADER_NONCE,
            HEADER_SIGNATURE,
            "Content-Type",
            "X-Cloud-Trace-Context",
            "X-Request-Id",
        ]
    ),
    value=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=200),
)
def test_any_header_values_never_cause_5xx(env: Env, header: str, value: str) -> None:
    body = json.dumps({"embedding": [0.1] * 128}).encode()
    headers = {**sign_request(KEY, "POST", "/v1/search", body), "Content-Type": "application/json"}
    headers[header] = value
    response = SignedClient(env.app).wsgi.post("/v1/search", data=body, headers=headers)
    _no_5xx(response)


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Any:
    cfg = load_settings(
        data_dir=Path(tmp_path_factory.mktemp("hook")),
        cloudinary_cloud_name=CLOUD,
        cloudinary_api_secret=TEST_SECRET,
    )
    return services.cloudinary_webhook(LocalBackend(cfg), forget_image=lambda image_id: 0)


@FUZZ
@given(
    kind=st.sampled_from(["upload", "eager", "delete", "rename", None, 7]),
    fields=st.dictionaries(
        st.sampled_from(
            [
                "public_id",
                "version",
                "resource_type",
                "type",
                "format",
                "resources",
                "secure_url",
                "created_at",
                "eager",
                "asset_folder",
                "tags",
            ]
        ),
        JSON,
        max_size=6,
    ),
)
def test_signed_cloudinary_notifications_never_cause_5xx(
    webhook: Any, kind: object, fields: dict[str, Any]
) -> None:
    from werkzeug.test import EnvironBuilder
    from werkzeug.wrappers import Request

    body = json.dumps({"notification_type": kind, **fields}).encode()
    builder = EnvironBuilder(
        method="POST", data=body, headers={**sign(body), "Content-Type": "application/json"}
    )
    response = handle_http(Request(builder.get_environ()), webhook)
    assert response.status_code < 500, response.get_data()
