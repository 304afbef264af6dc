"""functions/query/main.py through functions-framework's real Flask request path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facesearch.auth import sign_request
from facesearch.config import get_settings
from tests.support.api import KEY

ROOT = Path(__file__).resolve().parents[2]


def test_query_function_serves_signed_api_and_problem_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import functions_framework

    monkeypatch.setenv("FACESEARCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FACESEARCH_SIGNING_KEYS", json.dumps({KEY.key_id: KEY.secret}))
    monkeypatch.setenv("FACESEARCH_LOG_JSON", "false")
    get_settings.cache_clear()
    try:
        client = functions_framework.create_app(
            target="query", source=str(ROOT / "functions" / "query" / "main.py")
        ).test_client()
        assert client.get("/healthz").status_code == 200
        unsigned = client.get("/v1/stats")
        assert unsigned.status_code == 401
        assert unsigned.content_type == "application/problem+json"
        signed = client.get("/v1/stats", headers=sign_request(KEY, "GET", "/v1/stats"))
        assert signed.status_code == 200, signed.get_data(as_text=True)
        assert signed.get_json()["faces"] == 0
        body = json.dumps({"name": "Ada"}).encode()
        created = client.post(
            "/v1/persons",
            data=body,
            headers={
                **sign_request(KEY, "POST", "/v1/persons", body),
                "Content-Type": "application/json",
            },
        )
        assert created.status_code == 201 and created.get_json()["name"] == "Ada"
        spec = client.get("/openapi.json").get_json()
        assert "/v1/search" in spec["paths"]
    finally:
        get_settings.cache_clear()
