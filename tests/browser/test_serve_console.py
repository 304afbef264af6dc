"""`facesearch serve --console` as a user runs it: the printed link signs a browser in, once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.browser.conftest import ROOT, _free_port


def test_serve_console_prints_a_one_time_login_link(tmp_path: Path, browser: Any) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "shared"),
        "FACESEARCH_DATA_DIR": str(tmp_path),
        "FACESEARCH_LOG_JSON": "false",
    }
    env.pop("FACESEARCH_PUBLIC_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "facesearch.cli", "serve", "--console", "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        link = None
        deadline = time.monotonic() + 180
        assert process.stderr is not None
        while link is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line and process.poll() is not None:
                break
            found = re.search(r"(http://127\.0\.0\.1:\d+/console/login\?token=\S+)", line)
            link = found.group(1) if found else None
        assert link, "serve --console printed no login link"
        assert link.startswith(f"http://127.0.0.1:{port}/")
        first = browser.new_context()
        try:
            page = first.new_page()
            page.goto(link)
            page.wait_for_selector("#probe")
            assert page.inner_text("#who").startswith("local-")
        finally:
            first.close()
        second = browser.new_context()
        try:
            response = second.new_page().goto(link)
            assert response is not None and response.status == 403
        finally:
            second.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
