"""functions/cloudinary/main.py as functions-framework serves it, configured by env vars only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from facesearch.config import get_settings
from tests.support.cloudinary import CLOUD, TEST_SECRET, raw, sample, sign

MAIN = Path(__file__).resolve().parents[2] / "functions" / "cloudinary" / "main.py"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    for name, value in {
        "FACESEARCH_BACKEND": "local",
        "FACESEARCH_DATA_DIR": str(tmp_path),
        "FACESEARCH_LOG_JSON": "true",
        "FACESEARCH_CLOUDINARY_CLOUD_NAME": CLOUD,
        "FACESEARCH_CLOUDINARY_API_SECRET": TEST_SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def client() -> Any:
    import functions_framework

    return functions_framework.create_app(target="cloudinary", source=str(MAIN)).test_client()


def test_the_function_queues_a_signed_upload(env: pytest.MonkeyPatch) -> None:
    body = raw(sample("upload"))
    app = client()
    response = app.post("/", data=body, headers=sign(body))
    assert response.status_code == 200, response.get_data()
    assert json.loads(response.get_data())["outcome"] == "queued"
    again = app.post("/", data=body, headers=sign(body))
    assert json.loads(again.get_data())["outcome"] == "duplicate"
    refused = app.post("/", data=body, headers={"Content-Type": "application/json"})
    assert refused.status_code == 401 and refused.content_type == "application/problem+json"


def test_a_missing_secret_is_a_problem_json_500_not_a_crash(env: pytest.MonkeyPatch) -> None:
    env.delenv("FACESEARCH_CLOUDINARY_API_SECRET")
    get_settings.cache_clear()
    body = raw(sample("upload"))
    response = client().post("/", data=body, headers=sign(body))
    assert response.status_code == 500 and response.content_type == "application/problem+json"
    problem = json.loads(response.get_data())
    assert problem["code"] == "config" and "SECRET" not in problem["detail"]
