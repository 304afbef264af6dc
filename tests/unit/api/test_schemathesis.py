"""Property-based API test: schemathesis drives a live local server from /openapi.json.

Requests are generated from the generated OpenAPI document, signed by a
``requests`` auth hook (it sees the final serialised body, so signatures are
valid), sent over real HTTP, and must never produce a 5xx; responses must match
the documented schemas and status codes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.serving import make_server

from facesearch.api.openapi import openapi_document
from facesearch.client_transport import SigningAuth
from facesearch.vision.pipeline import FacePipeline
from tests.support.api import COLLECTION, KEY, build_env
from tests.unit.api.test_routes import _settings

schema = schemathesis.openapi.from_dict(openapi_document())


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cfg = _settings(tmp_path_factory.mktemp("st"))
    env = build_env(cfg, FacePipeline(cfg), images={"obama-1": COLLECTION["obama-1"]})
    server = make_server("127.0.0.1", 0, env.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="module")
def session() -> requests.Session:
    s = requests.Session()
    s.auth = SigningAuth(KEY)
    return s


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_server_errors_and_responses_match_the_spec(
    case: schemathesis.Case, live: str, session: requests.Session
) -> None:
    case.call_and_validate(
        base_url=live,
        session=session,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
