"""CLI: `sign` makes headers the server accepts; `match/search --remote` use a live server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from facesearch.api.app import QueryApp
from facesearch.api.cli import add_api_commands
from facesearch.auth import StaticKeyRing, Verifier
from facesearch.auth.signing import query_pairs
from facesearch.cli import main
from facesearch.storage.local.nonces import SqliteNonceStore
from tests.support.api import KEY

SECRET = KEY.secret


@pytest.fixture
def keys_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACESEARCH_SIGNING_KEYS", json.dumps({KEY.key_id: SECRET}))
    monkeypatch.delenv("FACESEARCH_CLIENT_KEY_ID", raising=False)
    monkeypatch.delenv("FACESEARCH_CLIENT_SECRET", raising=False)


def test_sign_prints_headers_the_verifier_accepts(
    keys_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(b'{"face_id": "x-0"}')
    assert (
        main(
            [
                "sign",
                "POST",
                "https://api.example/v1/search?k=3",
                "--data-file",
                str(body),
                "--json",
            ]
        )
        == 0
    )
    headers = json.loads(capsys.readouterr().out)
    verifier = Verifier(StaticKeyRing({KEY.key_id: SECRET}), SqliteNonceStore(":memory:"))
    verified = verifier.verify("POST", "/v1/search", query_pairs("k=3"), headers, body.read_bytes())
    assert verified.key_id == KEY.key_id


def test_sign_curl_output_and_explicit_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACESEARCH_SIGNING_KEYS", "{}")
    assert (
        main(["sign", "GET", "http://h/v1/stats", "--curl", "--key-id", "k9", "--secret", "z" * 40])
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("curl -sS -X GET -H 'X-Facesearch-Key-Id: k9'")
    assert out.strip().endswith("http://h/v1/stats")
    assert main(["sign", "GET", "/v1/stats"]) == 2  # no key configured: a clear error


def test_registers_remote_modes_only_on_existing_commands() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command")
    add_api_commands(commands)  # no 'match'/'search' here: nothing to extend, no crash
    assert {"sign", "serve", "remote-search"} <= set(commands.choices)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from facesearch.vision.pipeline import FacePipeline
    from tests.support.api import build_env
    from tests.unit.api.test_routes import _settings

    tmp = tmp_path_factory.mktemp("cli")
    settings = _settings(tmp)
    env = build_env(
        settings,
        FacePipeline(settings),
        images={"obama-1": Path(__file__).parents[2] / "data/photos/labelled/obama/obama_1.jpg"},
    )
    app: QueryApp = env.app
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_remote_search_and_match_against_a_live_server(
    keys_env: None, live_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = Path(__file__).parents[2] / "data/photos/labelled"
    assert (
        main(
            ["remote-search", str(photos / "obama/obama_2.jpg"), "--remote", live_server, "--json"]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["faces"][0]["matches"][0]["image_id"] == "obama-1"
    same = main(
        [
            "match",
            str(photos / "obama/obama_1.jpg"),
            str(photos / "obama/obama_2.jpg"),
            "--remote",
            live_server,
        ]
    )
    assert same == 0 and "SAME person" in capsys.readouterr().out
    different = main(
        [
            "match",
            str(photos / "obama/obama_1.jpg"),
            str(photos / "biden/biden_1.jpg"),
            "--remote",
            live_server,
        ]
    )
    assert different == 1


def test_remote_flag_wraps_an_existing_local_command(keys_env: None, tmp_path: Path) -> None:
    import argparse

    from facesearch.errors import TransientError

    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command")
    local = commands.add_parser("search")
    local.add_argument("image")
    local.set_defaults(handler=lambda args: 42)
    add_api_commands(commands)
    image = tmp_path / "q.jpg"
    image.write_bytes(b"x")
    args = parser.parse_args(["search", str(image)])
    assert args.handler(args) == 42  # without --remote: the local command, untouched
    args = parser.parse_args(["search", str(image), "--remote", "http://127.0.0.1:9"])
    with pytest.raises(TransientError):  # the remote path: nothing listens on port 9
        args.handler(args)
