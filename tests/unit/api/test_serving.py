"""``facesearch serve --server``: each production server really answers the app's routes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from facesearch.api.serving import SERVERS, default_threads, serve
from facesearch.errors import ConfigError
from tests.support.emulators import free_port

ROOT = Path(__file__).resolve().parents[3]


def test_serve_refuses_no_workers_or_threads() -> None:
    with pytest.raises(ConfigError):
        serve("waitress", host="127.0.0.1", port=1, workers=0, threads=1)
    with pytest.raises(ConfigError):
        serve("gunicorn", host="127.0.0.1", port=1, workers=1, threads=0)


def test_default_threads_scale_with_cpus() -> None:
    assert default_threads() == max(4, 4 * (os.cpu_count() or 1))


@pytest.mark.slow
@pytest.mark.parametrize("server", [s for s in SERVERS if s != "werkzeug"])
def test_each_server_serves_the_query_app(server: str, tmp_path: Path) -> None:
    """Unsigned /healthz answers 200 and a signed route without a signature 401, through
    the real server process (gunicorn's worker builds the app after its fork)."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "shared"),
        "FACESEARCH_DATA_DIR": str(tmp_path),
        "FACESEARCH_SIGNING_KEYS": '{"k1": "a-secret-of-enough-length-000000"}',
        "FACESEARCH_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "facesearch.cli", "serve", "--port", str(port)]
    proc = subprocess.Popen(
        [*command, "--server", server, "--workers", "1", "--threads", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = requests.get(base + "/healthz", timeout=5)
                break
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.3)
        assert health is not None, proc.stderr.read().decode() if proc.stderr else ""
        assert health.status_code == 200
        assert requests.get(base + "/v1/stats", timeout=10).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)
